#!/usr/bin/env python3
"""Records how transformers renders the official Qwen3-VL Thinking chat template, for
tests/chat_parity.rs (glimpse's minijinja rendering must match it byte for byte).

The template is src/chat/qwen3vl_thinking_chat_template.jinja: the `chat_template` of the
Qwen3-VL-*-Thinking checkpoints, taken from xinference 4.1.0's model registry
(xinference/model/llm/models/Qwen3-VL-Thinking.json), whose Instruct entry is byte-identical
to the official Instruct template glimpse already carries. Rendering needs transformers and
jinja2 only (no torch): `pip install transformers jinja2`, then run this script; it writes
tests/fixtures/thinking/renders.json.

Cases may pass keyword arguments to the template (`apply_chat_template(**kwargs)`, which
glimpse's server takes as `chat_template_kwargs`); the `add_vision_id` cases are rendered with
both the Thinking and the Instruct template (src/chat/qwen3vl_chat_template.jinja).
"""

import json
from pathlib import Path

import transformers
from transformers.utils.chat_template_utils import render_jinja_template

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = {
    "thinking": REPO / "src/chat/qwen3vl_thinking_chat_template.jinja",
    "instruct": REPO / "src/chat/qwen3vl_chat_template.jinja",
}
OUT = REPO / "tests/fixtures/thinking/renders.json"

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}

CASES = [
    ("one_question", [{"role": "user", "content": "Why is the sky blue?"}], [], True),
    ("image_question", [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]}], [], True),
    ("system_and_question", [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": [{"type": "text", "text": "Count the cats."}, {"type": "image"}]},
    ], [], True),
    ("earlier_reasoning_is_dropped", [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe it."}]},
        {"role": "assistant", "content": "<think>\nA cat on a mat.\n</think>\n\nA cat sits on a mat."},
        {"role": "user", "content": "What colour is the cat?"},
    ], [], True),
    ("reasoning_content_of_the_last_turn_is_kept", [
        {"role": "user", "content": "Two plus two?"},
        {"role": "assistant", "reasoning_content": "Simple sum.", "content": "Four."},
    ], [], False),
    ("tool_round_trip", [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "reasoning_content": "I should ask the tool.", "content": "",
         "tool_calls": [{"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}]},
        {"role": "tool", "content": "{\"temperature\": 21}"},
    ], [WEATHER], True),
]

TWO_IMAGES = [
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Compare"}, {"type": "image"}]},
    {"role": "assistant", "content": "They differ."},
    {"role": "user", "content": [{"type": "text", "text": "And this?"}, {"type": "image"}]},
]
# (name, template, messages, kwargs)
KWARGS_CASES = [
    (f"vision_ids_{kind}", kind, TWO_IMAGES, {"add_vision_id": True}) for kind in ("thinking", "instruct")
]


def main() -> None:
    cases = []
    every_case = [(name, "thinking", messages, tools, generation, {}) for name, messages, tools, generation in CASES]
    every_case += [(name, kind, messages, [], True, kwargs) for name, kind, messages, kwargs in KWARGS_CASES]
    for name, kind, messages, tools, add_generation_prompt, kwargs in every_case:
        rendered, _ = render_jinja_template(
            conversations=[messages],
            tools=tools or None,
            chat_template=TEMPLATES[kind].read_text(),
            add_generation_prompt=add_generation_prompt,
            **kwargs,
        )
        cases.append({
            "name": name,
            "template": kind,
            "messages": messages,
            "tools": tools,
            "add_generation_prompt": add_generation_prompt,
            "kwargs": kwargs,
            "rendered": rendered[0],
        })
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"transformers": transformers.__version__, "cases": cases}, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {OUT} ({len(cases)} cases, transformers {transformers.__version__})")


if __name__ == "__main__":
    main()
