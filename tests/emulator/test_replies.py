"""Deterministic answers: text, limits, tool calls, JSON, images, usage (non-streamed)."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import jsonschema
import pytest

from tests.emulator.helpers import ADD_TOOL, MODEL, WEATHER_TOOL, chat

PNG_URL = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 32).decode()
JPEG_URL = "data:image/jpeg;base64," + base64.b64encode(b"\xff\xd8\xff" + b"\0" * 32).decode()

NESTED_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "book_trip",
        "description": "Book a trip.",
        "parameters": {
            "type": "object",
            "$defs": {
                "Traveller": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "minLength": 2},
                        "age": {"type": "integer", "minimum": 0, "maximum": 130},
                        "vip": {"type": "boolean"},
                    },
                    "required": ["name", "age"],
                    "additionalProperties": False,
                }
            },
            "properties": {
                "destination": {"type": "string"},
                "nights": {"type": "integer", "minimum": 1, "maximum": 30},
                "budget": {"type": "number", "exclusiveMinimum": 0},
                "class": {"enum": ["economy", "business", "first"]},
                "travellers": {
                    "type": "array",
                    "items": {"$ref": "#/$defs/Traveller"},
                    "minItems": 2,
                    "maxItems": 4,
                },
                "notes": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
                "dates": {
                    "type": "object",
                    "properties": {
                        "start": {"type": "string", "format": "date"},
                        "end": {"type": "string", "format": "date"},
                    },
                    "required": ["start", "end"],
                },
            },
            "required": ["destination", "nights", "budget", "class", "travellers", "dates"],
            "additionalProperties": False,
        },
    },
}


def _complete(http: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = http.post("/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _message(completion: dict[str, Any]) -> dict[str, Any]:
    return dict(completion["choices"][0]["message"])


def _calls(completion: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    calls = _message(completion).get("tool_calls") or []
    return [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls]


def test_text_is_deterministic_prompt_dependent_and_marked(http: httpx.Client) -> None:
    first = _complete(http, chat("Tell me about owls"))
    again = _complete(http, chat("Tell me about owls"))
    other = _complete(http, chat("Tell me about cats"))
    text = _message(first)["content"]
    assert text.startswith("[emulator]")
    assert "owls" in text
    assert text == _message(again)["content"]
    assert text != _message(other)["content"]
    assert first["choices"][0]["finish_reason"] == "stop"
    assert first["object"] == "chat.completion"
    assert first["id"] != again["id"]


def test_max_tokens_cuts_the_text_with_finish_reason_length(http: httpx.Client) -> None:
    prompt = "one two three four five six seven eight nine ten eleven twelve"
    full = _complete(http, chat(prompt))
    cut = _complete(http, chat(prompt, max_tokens=5))
    assert cut["choices"][0]["finish_reason"] == "length"
    assert cut["usage"]["completion_tokens"] == 5
    cut_text = _message(cut)["content"]
    assert _message(full)["content"].startswith(cut_text)
    assert len(cut_text) < len(_message(full)["content"])
    assert full["usage"]["completion_tokens"] > 5


def test_a_stop_sequence_ends_the_text_before_it(http: httpx.Client) -> None:
    completion = _complete(http, chat("alpha beta gamma delta", stop=["gamma", "zzz"]))
    text = _message(completion)["content"]
    assert "alpha beta" in text
    assert "gamma" not in text and "delta" not in text
    assert completion["choices"][0]["finish_reason"] == "stop"


def test_a_forced_tool_call_has_schema_valid_arguments(http: httpx.Client) -> None:
    completion = _complete(http, chat("Hello", tools=[WEATHER_TOOL], tool_choice="required"))
    assert completion["choices"][0]["finish_reason"] == "tool_calls"
    message = _message(completion)
    assert message["content"] is None
    [(name, args)] = _calls(completion)
    assert name == "get_weather"
    jsonschema.validate(args, WEATHER_TOOL["function"]["parameters"])
    assert message["tool_calls"][0]["id"].startswith("call_")
    assert message["tool_calls"][0]["type"] == "function"


def test_a_named_tool_choice_calls_that_tool(http: httpx.Client) -> None:
    named = {"type": "function", "function": {"name": "add"}}
    completion = _complete(
        http, chat("What is the weather?", tools=[WEATHER_TOOL, ADD_TOOL], tool_choice=named)
    )
    assert [name for name, _ in _calls(completion)] == ["add"]


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("What is the weather in San Francisco, CA?", {"location": "San Francisco, CA"}),
        ("Use get_weather for 'Paris' in fahrenheit", {"location": "Paris", "unit": "fahrenheit"}),
        ("please get weather for Tokyo", {"location": "Tokyo"}),
    ],
)
def test_a_prompt_naming_a_tool_gets_a_call_with_values_from_the_prompt(
    http: httpx.Client, prompt: str, expected: dict[str, Any]
) -> None:
    completion = _complete(http, chat(prompt, tools=[WEATHER_TOOL, ADD_TOOL]))
    [(name, args)] = _calls(completion)
    assert name == "get_weather"
    assert args == expected


def test_numbers_in_the_prompt_fill_integer_fields(http: httpx.Client) -> None:
    completion = _complete(http, chat("Please add 17 and 25.", tools=[ADD_TOOL]))
    assert _calls(completion) == [("add", {"a": 17, "b": 25})]


def test_a_prompt_not_naming_a_tool_gets_text(http: httpx.Client) -> None:
    completion = _complete(http, chat("Tell me a story", tools=[WEATHER_TOOL, ADD_TOOL]))
    assert _message(completion)["content"].startswith("[emulator]")
    assert "tool_calls" not in _message(completion)


def test_tool_choice_none_never_calls(http: httpx.Client) -> None:
    body = chat("Use get_weather for Paris", tools=[WEATHER_TOOL], tool_choice="none")
    assert "tool_calls" not in _message(_complete(http, body))


def test_two_tools_named_give_parallel_calls_unless_disabled(http: httpx.Client) -> None:
    prompt = "Check get_weather in Paris and add 2 and 3"
    parallel = _complete(http, chat(prompt, tools=[WEATHER_TOOL, ADD_TOOL]))
    assert _calls(parallel) == [("get_weather", {"location": "Paris"}), ("add", {"a": 2, "b": 3})]
    ids = [c["id"] for c in _message(parallel)["tool_calls"]]
    assert len(set(ids)) == 2
    single = _complete(
        http, chat(prompt, tools=[WEATHER_TOOL, ADD_TOOL], parallel_tool_calls=False)
    )
    assert [name for name, _ in _calls(single)] == ["get_weather"]


def test_nested_schema_arguments_validate(http: httpx.Client) -> None:
    prompt = "book_trip to 'Lisbon' for 5 nights, budget 1200.50, business class"
    completion = _complete(http, chat(prompt, tools=[NESTED_TOOL]))
    [(name, args)] = _calls(completion)
    assert name == "book_trip"
    jsonschema.validate(args, NESTED_TOOL["function"]["parameters"])
    assert args["destination"] == "Lisbon"
    assert args["nights"] == 5
    assert args["budget"] == 1200.5
    assert args["class"] == "business"
    assert 2 <= len(args["travellers"]) <= 4


def test_after_tool_results_the_answer_quotes_them(http: httpx.Client) -> None:
    call = {
        "id": "call_9",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'},
    }
    messages = [
        {"role": "user", "content": "Use get_weather for Paris"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_9", "content": "sunny, 21 degrees"},
    ]
    completion = _complete(http, {"model": MODEL, "messages": messages, "tools": [WEATHER_TOOL]})
    text = _message(completion)["content"]
    assert "tool_calls" not in _message(completion)
    assert text.startswith("[emulator]")
    assert "get_weather" in text and "sunny, 21 degrees" in text


def test_json_object_mode_returns_an_object_with_the_asked_keys(http: httpx.Client) -> None:
    prompt = "Tell me a joke about cats. Return JSON with 'setup' and 'punchline' keys."
    completion = _complete(http, chat(prompt, response_format={"type": "json_object"}))
    value = json.loads(_message(completion)["content"])
    assert set(value) == {"setup", "punchline"}
    plain = _complete(http, chat("Say hi as JSON", response_format={"type": "json_object"}))
    assert isinstance(json.loads(_message(plain)["content"]), dict)


def test_json_schema_mode_returns_schema_valid_json(http: httpx.Client) -> None:
    schema = NESTED_TOOL["function"]["parameters"]
    fmt = {"type": "json_schema", "json_schema": {"name": "trip", "schema": schema, "strict": True}}
    completion = _complete(http, chat("Plan a trip to 'Oslo' for 3 nights", response_format=fmt))
    value = json.loads(_message(completion)["content"])
    jsonschema.validate(value, schema)
    assert value["destination"] == "Oslo"


def test_images_are_acknowledged_by_count_and_kind(http: httpx.Client) -> None:
    content = [
        {"type": "text", "text": "Compare these"},
        {"type": "image_url", "image_url": {"url": PNG_URL}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        {"type": "image_url", "image_url": {"url": JPEG_URL, "detail": "low"}},
    ]
    completion = _complete(http, chat(content))
    text = _message(completion)["content"]
    assert "Compare these" in text
    assert "3 images" in text
    assert "1 base64 image/png" in text and "1 base64 image/jpeg" in text and "1 URL" in text
    without = _complete(http, chat("Compare these"))
    assert completion["usage"]["prompt_tokens"] >= without["usage"]["prompt_tokens"] + 3 * 100


def test_usage_is_consistent_and_grows_with_the_prompt(http: httpx.Client) -> None:
    short = _complete(http, chat("hi"))
    long = _complete(http, chat("hi " * 400))
    for completion in (short, long):
        usage = completion["usage"]
        assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert long["usage"]["prompt_tokens"] > short["usage"]["prompt_tokens"] + 200
    assert _complete(http, chat("hi"))["usage"] == short["usage"]


def test_the_request_model_string_is_echoed(http: httpx.Client) -> None:
    for model in ("claude-haiku-4-5", "anthropic/claude-haiku-4-5"):
        assert _complete(http, {**chat(), "model": model})["model"] == model
