"""Drives a running `glimpse serve` with the official `ollama` Python package, the way an
app written for Ollama would: `chat` with an image (greedy, so the answer must be
transformers' tokens), whole and streamed; `generate` with the same image and question;
`list`, `show`, `ps`; and a refusal surfacing as the client's own exception type.

Run by tests/server_client_apis.rs with the venv from scripts/setup_test_deps.sh; the case
comes as JSON in the GLIMPSE_CLIENT_TEST environment variable.
"""

import json
import os
import sys

import ollama


def main() -> None:
    case = json.loads(os.environ["GLIMPSE_CLIENT_TEST"])
    client = ollama.Client(host=case["base_url"], headers={"Authorization": f"Bearer {case['api_key']}"})
    options = {"temperature": 0, "num_predict": case["max_tokens"]}
    messages = [{"role": "user", "content": case["question"], "images": [case["image"]]}]
    done_reason = case["finish_reason"]

    response = client.chat(model=case["model"], messages=messages, options=options)
    check(response.message.content == case["expected_text"], f"chat {response.message.content!r}")
    check(response.done and response.done_reason == done_reason, f"done_reason {response.done_reason}")
    check(response.eval_count == case["completion_tokens"], f"eval_count {response.eval_count}")
    check(response.prompt_eval_count == case["prompt_tokens"], f"prompt_eval_count {response.prompt_eval_count}")

    pieces, last = [], None
    for part in client.chat(model=case["model"], messages=messages, options=options, stream=True):
        pieces.append(part.message.content)
        last = part
    streamed = "".join(pieces)
    check(streamed == case["expected_text"], f"streamed chat {streamed!r}")
    check(last is not None and last.done and last.eval_count == case["completion_tokens"], "last streamed part")

    generated = client.generate(model=case["model"], prompt=case["question"], images=[case["image"]], options=options)
    check(generated.response == case["expected_text"], f"generate {generated.response!r}")
    pieces = [part.response for part in client.generate(
        model=case["model"], prompt=case["question"], images=[case["image"]], options=options, stream=True)]
    check("".join(pieces) == case["expected_text"], "streamed generate")

    models = client.list().models
    check([m.model for m in models] == [case["model"]], f"list {models}")
    check(models[0].details.family == "qwen3vl", "family")
    shown = client.show(case["model"])
    check("vision" in (shown.capabilities or []), f"capabilities {shown.capabilities}")
    check("thinking" not in (shown.capabilities or []), f"capabilities {shown.capabilities}")
    parameters = dict(line.split(None, 1) for line in (shown.parameters or "").splitlines())
    check(parameters.get("top_k") == "20" and parameters.get("temperature") == "0.7", f"parameters {shown.parameters!r}")
    check("<|im_start|>" in (shown.template or ""), "template")
    check([m.model for m in client.ps().models] == [case["model"]], "ps")

    # A schema as `format`: the answer is JSON valid against it.
    schema = {
        "type": "object",
        "properties": {"label": {"enum": ["cat", "dog"]}, "count": {"type": "integer", "minimum": 0, "maximum": 9}},
        "required": ["label", "count"],
        "additionalProperties": False,
    }
    shaped = client.chat(model=case["model"], messages=messages, format=schema, options={"temperature": 0, "num_predict": 64})
    value = json.loads(shaped.message.content)
    check(value["label"] in ("cat", "dog") and 0 <= value["count"] <= 9, f"format answer {value}")
    try:
        client.chat(model=case["model"], messages=messages, think=True)
        raise AssertionError("think was not refused")
    except ollama.ResponseError as error:
        # An Instruct model cannot think (a Thinking model's thought comes back as `thinking`).
        check(error.status_code == 400 and "does not think" in str(error), f"think: {error.status_code} {error}")
    wrong = ollama.Client(host=case["base_url"], headers={"Authorization": "Bearer wrong"})
    try:
        wrong.list()
        raise AssertionError("a wrong key was accepted")
    except ollama.ResponseError as error:
        check(error.status_code == 401, f"status {error.status_code}")
    print("ollama client: ok")


def check(condition: bool, message: str) -> None:
    if not condition:
        print("FAILED:", message, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
