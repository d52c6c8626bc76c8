"""Drives a running `glimpse serve` with the official `anthropic` Python package, the way an
app written for Claude would: `messages.create` with a base64 image block (greedy, so the
answer must be transformers' tokens), once whole and once streamed through
`messages.stream`, checking the text, the stop reason and the usage; then a stop sequence,
`x-api-key` authentication and a refusal surfacing as the client's own exception type.

Run by tests/server_client_apis.rs with the venv from scripts/setup_test_deps.sh; the case
comes as JSON in the GLIMPSE_CLIENT_TEST environment variable.
"""

import base64
import json
import os
import sys

import anthropic


def main() -> None:
    case = json.loads(os.environ["GLIMPSE_CLIENT_TEST"])
    # The SDK sends the key as x-api-key.
    client = anthropic.Anthropic(base_url=case["base_url"], api_key=case["api_key"], max_retries=0)
    with open(case["image"], "rb") as f:
        image = base64.b64encode(f.read()).decode("ascii")
    request = dict(
        model=case["model"],
        max_tokens=case["max_tokens"],
        temperature=0,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": image}},
                    {"type": "text", "text": case["question"]},
                ],
            }
        ],
    )
    expected_reason = "end_turn" if case["finish_reason"] == "stop" else "max_tokens"

    message = client.messages.create(**request)
    text = "".join(block.text for block in message.content if block.type == "text")
    check(text == case["expected_text"], f"answer {text!r} != {case['expected_text']!r}")
    check(message.stop_reason == expected_reason, f"stop_reason {message.stop_reason}")
    check(message.usage.output_tokens == case["completion_tokens"], f"output_tokens {message.usage.output_tokens}")
    total_input = message.usage.input_tokens + (message.usage.cache_read_input_tokens or 0)
    check(total_input == case["prompt_tokens"], f"input tokens {total_input}")

    with client.messages.stream(**request) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    check(streamed == case["expected_text"], f"streamed {streamed!r} != {case['expected_text']!r}")
    check(final.stop_reason == expected_reason, f"streamed stop_reason {final.stop_reason}")
    check(final.usage.output_tokens == case["completion_tokens"], "streamed output_tokens")

    # A stop sequence inside the answer ends it there and is reported.
    words = case["expected_text"].split()
    if len(words) >= 3:
        stop = words[1]
        stopped = client.messages.create(**request, stop_sequences=[stop])
        text = "".join(block.text for block in stopped.content)
        check(stopped.stop_reason == "stop_sequence", f"stop_reason {stopped.stop_reason}")
        check(stopped.stop_sequence == stop, f"stop_sequence {stopped.stop_sequence!r}")
        check(case["expected_text"].startswith(text) and stop not in text, f"stopped text {text!r}")

    expect_error(anthropic.BadRequestError, lambda: client.messages.create(**{**request, "temperature": 1.5}))
    wrong_key = anthropic.Anthropic(base_url=case["base_url"], api_key="wrong", max_retries=0)
    expect_error(anthropic.AuthenticationError, lambda: wrong_key.messages.create(**request))
    print("anthropic", anthropic.__version__, "client: ok")


def expect_error(kind, call) -> None:
    try:
        call()
    except kind:
        return
    raise AssertionError(f"expected {kind.__name__}")


def check(condition: bool, message: str) -> None:
    if not condition:
        print("FAILED:", message, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
