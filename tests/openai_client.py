"""Drives a running `glimpse serve` with the official `openai` Python package, the way
an OpenAI client would: a base64 image in `chat.completions.create`, once plain and once
with `stream=True` (plus `include_usage`), asserting the answer text and the usage; then
checks that refusals surface as the client's own exception types. With `ca_file` in the
case the server speaks https with a certificate of that CA: a client without the CA must
fail to connect, one given it must get the same answers.

Run by tests/server_openai_client.rs with the venv from scripts/setup_test_deps.sh; the
case comes as JSON in the GLIMPSE_CLIENT_TEST environment variable.
"""

import base64
import json
import os
import sys

import openai


def main() -> None:
    case = json.loads(os.environ["GLIMPSE_CLIENT_TEST"])

    def connect(api_key, **options):
        return openai.OpenAI(
            base_url=case["base_url"] + "/v1", api_key=api_key, max_retries=0, **options
        )

    if case.get("ca_file"):
        # https with a private CA: trusted only when the client is given the CA.
        expect_error(openai.APIConnectionError, lambda: connect(case["api_key"]).models.list())
        trusting = connect
        connect = lambda api_key: trusting(  # noqa: E731
            api_key, http_client=openai.DefaultHttpxClient(verify=case["ca_file"])
        )
    client = connect(case["api_key"])
    with open(case["image"], "rb") as f:
        image = base64.b64encode(f.read()).decode("ascii")
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{image}"}},
                {"type": "text", "text": case["question"]},
            ],
        }
    ]
    request = dict(
        model=case["model"],
        messages=messages,
        temperature=0,
        max_tokens=case["max_tokens"],
    )

    completion = client.chat.completions.create(**request)
    answer = completion.choices[0].message.content
    check(answer == case["expected_text"], f"answer {answer!r} != {case['expected_text']!r}")
    check_usage(completion.usage, case)
    check(completion.choices[0].finish_reason == case["finish_reason"], "finish_reason")

    stream = client.chat.completions.create(
        **request, stream=True, stream_options={"include_usage": True}
    )
    pieces, usage, finish_reason = [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            finish_reason = choice.finish_reason or finish_reason
    streamed = "".join(pieces)
    check(streamed == case["expected_text"], f"streamed {streamed!r} != {case['expected_text']!r}")
    check(usage is not None, "the stream carried no usage chunk")
    check_usage(usage, case)
    check(finish_reason == case["finish_reason"], "streamed finish_reason")

    expect_error(openai.BadRequestError, lambda: client.chat.completions.create(**{**request, "temperature": 9}))
    wrong_key = connect("wrong")
    expect_error(openai.AuthenticationError, lambda: wrong_key.chat.completions.create(**request))
    models = client.models.list()
    check([m.id for m in models.data] == [case["model"]], "models.list")
    print("openai", openai.__version__, "client: ok")


def check_usage(usage, case) -> None:
    check(usage.prompt_tokens == case["prompt_tokens"], f"prompt_tokens {usage.prompt_tokens}")
    check(usage.completion_tokens == case["completion_tokens"], f"completion_tokens {usage.completion_tokens}")
    check(usage.total_tokens == usage.prompt_tokens + usage.completion_tokens, "total_tokens")


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
