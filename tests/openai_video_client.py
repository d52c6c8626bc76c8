"""Drives a running `glimpse serve` with the official `openai` Python package, sending videos the
way vLLM and qwen-vl-utils clients do: a clip as a `video_url` data URI (an animated GIF) and a
video as its list of frames (`{"type": "video", "video": [...], "fps": 2}`), each followed by a
question; the answers and prompt sizes must be the transformers fixture's
(tests/fixtures/video). The parts are plain dicts: the client passes them through unchanged.

Run by tests/video_parity.rs with the venv from scripts/setup_test_deps.sh; the cases come as
JSON in the GLIMPSE_CLIENT_TEST environment variable.
"""

import base64
import json
import os
import sys
from pathlib import Path

import openai


def data_uri(path: Path, media_type: str) -> str:
    return f"data:{media_type};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def main() -> None:
    test = json.loads(os.environ["GLIMPSE_CLIENT_TEST"])
    client = openai.OpenAI(base_url=test["base_url"] + "/v1", api_key="none", max_retries=0)
    for case in test["cases"]:
        video = Path(case["video"])
        if video.is_dir():
            frames = [data_uri(f, "image/png") for f in sorted(video.iterdir())]
            part = {"type": "video", "video": frames, "fps": case["fps"]}
        else:
            part = {"type": "video_url", "video_url": {"url": data_uri(video, "image/gif")}}
        completion = client.chat.completions.create(
            model=test["model"],
            messages=[{"role": "user", "content": [part, {"type": "text", "text": case["question"]}]}],
            temperature=0,
            max_tokens=case["max_tokens"],
        )
        answer = completion.choices[0].message.content
        check(answer == case["expected_text"], f"{case['name']}: answer {answer!r} != {case['expected_text']!r}")
        check(
            completion.usage.prompt_tokens == case["prompt_tokens"],
            f"{case['name']}: prompt_tokens {completion.usage.prompt_tokens} != {case['prompt_tokens']}",
        )
    try:
        client.chat.completions.create(
            model=test["model"],
            messages=[{"role": "user", "content": [{"type": "video_url", "video_url": {"url": "data:video/mp4;base64,AAAA"}}]}],
            max_tokens=1,
        )
    except openai.BadRequestError as error:
        check("video" in str(error), f"unexpected refusal: {error}")
    else:
        check(False, "a broken video was accepted")
    print("client: ok")


def check(condition: bool, message: str) -> None:
    if not condition:
        print(f"client: FAILED: {message}")
        sys.exit(1)


if __name__ == "__main__":
    main()
