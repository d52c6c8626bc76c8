"""Structured output against a running `glimpse serve` with a random-weight fixture model,
through the official `openai` client: every one of the schemas below (nested objects,
arrays with min/max items, enums, integer and number ranges, required and optional fields,
strings with patterns and lengths, $defs references, anyOf) is sent as
`response_format: json_schema`, and every answer must parse and validate against its schema
(`jsonschema`). A random model writes nonsense, so this checks the constraint alone. Then
`json_object`, and `client.chat.completions.parse` with a pydantic model.

Run by tests/server_client_apis.rs with the venv from scripts/setup_test_deps.sh; the case
comes as JSON in the GLIMPSE_CLIENT_TEST environment variable.
"""

import json
import os
import sys
from typing import List, Optional

import jsonschema
import openai
import pydantic

SCHEMAS = [
    {"type": "object", "properties": {"total": {"type": "number", "minimum": 0, "maximum": 100000}}, "required": ["total"], "additionalProperties": False},
    {"type": "object", "properties": {"label": {"enum": ["cat", "dog", "bird"]}}, "required": ["label"], "additionalProperties": False},
    {"type": "object", "properties": {"count": {"type": "integer", "minimum": 0, "maximum": 20}}, "required": ["count"], "additionalProperties": False},
    {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"], "additionalProperties": False},
    {"type": "object", "properties": {"code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"}}, "required": ["code"], "additionalProperties": False},
    {"type": "object", "properties": {"date": {"type": "string", "pattern": "^20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"}}, "required": ["date"], "additionalProperties": False},
    {"type": "object", "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 12}}, "required": ["name"], "additionalProperties": False},
    {"type": "object", "properties": {"tags": {"type": "array", "items": {"enum": ["red", "green", "blue"]}, "minItems": 1, "maxItems": 3}}, "required": ["tags"], "additionalProperties": False},
    {"type": "object", "properties": {"bbox_2d": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 1000}, "minItems": 4, "maxItems": 4}}, "required": ["bbox_2d"], "additionalProperties": False},
    {"type": "array", "items": {"type": "object", "properties": {
        "bbox_2d": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 1000}, "minItems": 4, "maxItems": 4},
        "label": {"type": "string", "maxLength": 10}}, "required": ["bbox_2d", "label"], "additionalProperties": False},
     "minItems": 1, "maxItems": 3},
    {"type": "object", "properties": {"point_2d": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 1000}, "minItems": 2, "maxItems": 2}}, "required": ["point_2d"], "additionalProperties": False},
    {"type": "object", "properties": {
        "invoice": {"type": "object", "properties": {
            "number": {"type": "string", "pattern": "^[0-9]{5}$"},
            "total": {"type": "number", "minimum": 0, "maximum": 9999},
            "currency": {"enum": ["EUR", "USD", "GBP"]}},
            "required": ["number", "total", "currency"], "additionalProperties": False}},
     "required": ["invoice"], "additionalProperties": False},
    {"type": "object", "properties": {
        "a": {"type": "integer", "minimum": 1, "maximum": 9},
        "b": {"type": "integer", "minimum": 1, "maximum": 9}},
     "required": ["a"], "additionalProperties": False},
    {"type": "object", "properties": {"answer": {"enum": ["yes", "no"]}, "confidence": {"type": "number", "minimum": 0, "maximum": 1}}, "required": ["answer", "confidence"], "additionalProperties": False},
    {"type": "object", "properties": {"rows": {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "integer", "minimum": -5, "maximum": 5}}}}, "required": ["rows"], "additionalProperties": False},
    {"type": "object", "properties": {"value": {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 9}, {"enum": ["none"]}]}}, "required": ["value"], "additionalProperties": False},
    {"type": "object", "properties": {"maybe": {"type": ["integer", "null"], "minimum": 0, "maximum": 9}}, "required": ["maybe"], "additionalProperties": False},
    {"$defs": {"item": {"type": "object", "properties": {"sku": {"type": "string", "pattern": "^[a-z]{2}[0-9]{2}$"}, "qty": {"type": "integer", "minimum": 1, "maximum": 5}}, "required": ["sku", "qty"], "additionalProperties": False}},
     "type": "object", "properties": {"items": {"type": "array", "items": {"$ref": "#/$defs/item"}, "minItems": 1, "maxItems": 2}}, "required": ["items"], "additionalProperties": False},
    {"type": "object", "properties": {"kind": {"const": "photo"}, "people": {"type": "integer", "minimum": 0, "maximum": 50}}, "required": ["kind", "people"], "additionalProperties": False},
    {"type": "object", "properties": {"words": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]{1,8}$"}, "minItems": 0, "maxItems": 4}}, "required": ["words"], "additionalProperties": False},
    {"type": "object", "properties": {"temperature_c": {"type": "number", "minimum": -40, "maximum": 60}, "unit": {"enum": ["C"]}}, "required": ["temperature_c", "unit"], "additionalProperties": False},
    {"type": "object", "properties": {"email": {"type": "string", "pattern": "^[a-z]{1,8}@[a-z]{1,8}\\.(com|org)$"}}, "required": ["email"], "additionalProperties": False},
    {"type": "object", "properties": {"meta": {"type": "object", "properties": {"w": {"type": "integer", "minimum": 1, "maximum": 4096}, "h": {"type": "integer", "minimum": 1, "maximum": 4096}}, "required": ["w", "h"], "additionalProperties": False}, "caption": {"type": "string", "maxLength": 20}}, "required": ["meta"], "additionalProperties": False},
]


class Box(pydantic.BaseModel):
    label: str = pydantic.Field(max_length=10)
    bbox_2d: List[int] = pydantic.Field(min_length=4, max_length=4)


class Detections(pydantic.BaseModel):
    count: int = pydantic.Field(ge=0, le=5)
    boxes: List[Box] = pydantic.Field(max_length=2)
    note: Optional[str] = pydantic.Field(default=None, max_length=10)


def main() -> None:
    case = json.loads(os.environ["GLIMPSE_CLIENT_TEST"])
    client = openai.OpenAI(base_url=case["base_url"] + "/v1", api_key=case["api_key"], max_retries=0)
    messages = [{"role": "user", "content": "Answer in JSON."}]
    for index, schema in enumerate(SCHEMAS):
        completion = client.chat.completions.create(
            model=case["model"], messages=messages, temperature=0, max_tokens=400,
            response_format={"type": "json_schema", "json_schema": {"name": f"s{index}", "schema": schema, "strict": True}},
        )
        text = completion.choices[0].message.content
        check(completion.choices[0].finish_reason == "stop", f"schema {index}: not finished: {text!r}")
        try:
            jsonschema.validate(json.loads(text), schema)
        except (ValueError, jsonschema.ValidationError) as error:
            check(False, f"schema {index}: {text!r}: {error}")
    print(f"{len(SCHEMAS)} schemas: every answer parses and validates")

    # Sampled (not greedy) answers follow the schema too.
    for seed in range(3):
        completion = client.chat.completions.create(
            model=case["model"], messages=messages, temperature=1.0, seed=seed, max_tokens=400,
            response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": SCHEMAS[11]}},
        )
        jsonschema.validate(json.loads(completion.choices[0].message.content), SCHEMAS[11])

    # Any JSON object: free keys and strings, which a random model need not ever close, so
    # the prompt is one whose greedy answer the grammar ends at once ("{}").
    completion = client.chat.completions.create(
        model=case["model"], messages=[{"role": "user", "content": "hi"}], temperature=0, max_tokens=400,
        response_format={"type": "json_object"})
    check(isinstance(json.loads(completion.choices[0].message.content), dict), "json_object")

    parse = client.chat.completions.parse if hasattr(client.chat.completions, "parse") else client.beta.chat.completions.parse
    parsed = parse(model=case["model"], messages=messages, temperature=0, max_tokens=400, response_format=Detections)
    check(isinstance(parsed.choices[0].message.parsed, Detections), f"parsed {parsed.choices[0].message}")

    try:
        client.chat.completions.create(
            model=case["model"], messages=messages, max_tokens=5,
            response_format={"type": "json_schema", "json_schema": {"name": "bad", "schema": {"type": "no-such-type"}}})
        check(False, "an invalid schema was accepted")
    except openai.BadRequestError:
        pass
    check_tool_calls(client, case)
    print("structured output client: ok")


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 12},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
                "unit": {"enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "days", "unit"],
            "additionalProperties": False,
        },
    },
}
CLOCK = {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}, "additionalProperties": False}}}


def check_tool_calls(client, case) -> None:
    """A named tool_choice makes a call whose arguments validate, whole and streamed; a
    required one calls one of the tools; the call and its result go back in a follow-up."""
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    named = {"type": "function", "function": {"name": "get_weather"}}
    completion = client.chat.completions.create(
        model=case["model"], messages=messages, tools=[WEATHER, CLOCK], tool_choice=named, temperature=0, max_tokens=200)
    choice = completion.choices[0]
    check(choice.finish_reason == "tool_calls", f"finish_reason {choice.finish_reason}")
    call = choice.message.tool_calls[0]
    check(call.function.name == "get_weather" and call.id.startswith("call_"), f"call {call}")
    jsonschema.validate(json.loads(call.function.arguments), WEATHER["function"]["parameters"])

    name, arguments, reason = None, "", None
    for chunk in client.chat.completions.create(
            model=case["model"], messages=messages, tools=[WEATHER, CLOCK], tool_choice=named, temperature=0,
            max_tokens=200, stream=True):
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                name = delta.function.name or name
                arguments += delta.function.arguments or ""
            reason = choice.finish_reason or reason
    check(name == "get_weather" and reason == "tool_calls", f"streamed call {name} {reason}")
    check(arguments == call.function.arguments, f"streamed arguments {arguments!r} != {call.function.arguments!r}")

    required = client.chat.completions.create(
        model=case["model"], messages=messages, tools=[WEATHER, CLOCK], tool_choice="required", temperature=0, max_tokens=200)
    check(required.choices[0].message.tool_calls[0].function.name in ("get_weather", "now"), "required call")

    follow_up = messages + [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "{\"temperature\": 21}"},
    ]
    answer = client.chat.completions.create(
        model=case["model"], messages=follow_up, tools=[WEATHER, CLOCK], tool_choice="none", temperature=0, max_tokens=5)
    check(answer.choices[0].message.tool_calls is None, "tool_choice none made a call")


def check(condition: bool, message: str) -> None:
    if not condition:
        print("FAILED:", message, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
