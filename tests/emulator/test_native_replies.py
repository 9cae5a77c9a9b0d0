"""``POST /v1/messages``: what Claude's native endpoint answers, as a body and as a stream."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from tests.emulator.native_helpers import (
    ADD,
    MODEL,
    PNG_B64,
    WEATHER,
    accumulate,
    body,
    events,
    post,
)
from tokenhub_emulator import TokenHubEmulator
from tokenhub_emulator.pdf import simple_pdf

THINKING = {"type": "enabled", "budget_tokens": 1024}


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def _stream(http: httpx.Client, data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    response = post(http, {**data, "stream": True})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return events(response.text)


def test_a_plain_message(http: httpx.Client) -> None:
    response = post(http, body("Hello there"))
    message = _ok(response)
    assert message["id"].startswith("msg_")
    assert (message["type"], message["role"], message["model"]) == ("message", "assistant", MODEL)
    assert message["content"] == [{"type": "text", "text": "[emulator] You said: Hello there"}]
    assert (message["stop_reason"], message["stop_sequence"]) == ("end_turn", None)
    usage = message["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["cache_read_input_tokens"] == usage["cache_creation_input_tokens"] == 0
    assert response.headers["request-id"] == response.headers["x-request-id"]


@pytest.mark.parametrize(
    "model", ["claude-sonnet-4-6", "anthropic/claude-sonnet-4-6", "claude-haiku-4-5-20251001"]
)
def test_every_form_of_the_model_id_is_served_and_echoed(http: httpx.Client, model: str) -> None:
    assert _ok(post(http, body(model=model)))["model"] == model


def test_the_endpoint_answers_at_the_root_and_under_the_api_base(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    headers = {"x-api-key": tokenhub_emulator.api_key, "anthropic-version": "2023-06-01"}
    for url in (f"{tokenhub_emulator.url}/v1/messages", f"{tokenhub_emulator.base_url}/messages"):
        response = httpx.post(url, json=body(), headers=headers)
        assert response.status_code == 200, (url, response.text)
    assert [r.protocol for r in tokenhub_emulator.requests] == ["messages", "messages"]


def test_a_stream_sends_claudes_events_in_order_and_adds_up_to_the_body(
    http: httpx.Client,
) -> None:
    data = body("Stream a longer answer to me, please")
    whole = _ok(post(http, data))
    parsed = _stream(http, data)
    names = [name for name, _ in parsed]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert names.count("content_block_delta") > 5
    start = parsed[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None
    assert start["usage"]["input_tokens"] == whole["usage"]["input_tokens"]
    streamed = accumulate(parsed)
    assert streamed["content"] == whole["content"]
    assert streamed["stop_reason"] == "end_turn"
    assert streamed["usage"]["output_tokens"] == whole["usage"]["output_tokens"]


def test_a_tool_named_in_the_prompt_is_called_with_valid_input(http: httpx.Client) -> None:
    data = body("What's the weather in Paris?", tools=[WEATHER, ADD])
    message = _ok(post(http, data))
    assert message["stop_reason"] == "tool_use"
    [call] = message["content"]
    assert call["type"] == "tool_use" and call["id"].startswith("toolu_")
    assert (call["name"], call["input"]) == ("get_weather", {"location": "Paris"})
    parsed = _stream(http, data)
    fragments = [
        d["delta"]["partial_json"]
        for name, d in parsed
        if name == "content_block_delta" and d["delta"]["type"] == "input_json_delta"
    ]
    assert fragments[0] == "" and len(fragments) > 2
    start = next(d for name, d in parsed if name == "content_block_start")
    assert start["content_block"]["input"] == {}
    assert accumulate(parsed)["content"][0]["input"] == call["input"]


def test_parallel_calls_unless_disabled(http: httpx.Client) -> None:
    prompt = "Use get_weather for Paris, then add 2 and 3."
    both = _ok(post(http, body(prompt, tools=[WEATHER, ADD])))
    assert [b["name"] for b in both["content"]] == ["get_weather", "add"]
    choice = {"type": "auto", "disable_parallel_tool_use": True}
    one = _ok(post(http, body(prompt, tools=[WEATHER, ADD], tool_choice=choice)))
    assert [b["name"] for b in one["content"]] == ["get_weather"]


@pytest.mark.parametrize(
    ("choice", "called"),
    [
        ({"type": "any"}, ["get_weather"]),
        ({"type": "tool", "name": "add"}, ["add"]),
        ({"type": "none"}, []),
    ],
)
def test_tool_choice(http: httpx.Client, choice: dict[str, Any], called: list[str]) -> None:
    prompt = "Tell me the weather in Paris" if choice["type"] == "none" else "Hi"
    message = _ok(post(http, body(prompt, tools=[WEATHER, ADD], tool_choice=choice)))
    assert [b["name"] for b in message["content"] if b["type"] == "tool_use"] == called


def test_an_answer_after_tool_results(http: httpx.Client) -> None:
    data = {
        "model": MODEL,
        "max_tokens": 200,
        "tools": [WEATHER],
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny"}],
            },
        ],
    }
    message = _ok(post(http, data))
    assert message["content"][0]["text"] == "[emulator] Tool results: get_weather returned Sunny"


def test_structured_output_follows_the_schema(http: httpx.Client) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
        "additionalProperties": False,
    }
    config = {"format": {"type": "json_schema", "schema": schema}}
    message = _ok(post(http, body("Paris has 2100000 people.", output_config=config)))
    value = json.loads(message["content"][0]["text"])
    assert set(value) == {"city", "population"} and isinstance(value["population"], int)


def test_a_system_prompt_asking_for_a_json_object_gets_one(http: httpx.Client) -> None:
    system = "Answer with one JSON object and nothing else."
    message = _ok(post(http, body("Give me 'setup' and 'punchline' keys", system=system)))
    assert set(json.loads(message["content"][0]["text"])) == {"setup", "punchline"}


def test_stop_sequences_and_max_tokens(http: httpx.Client) -> None:
    message = _ok(post(http, body("alpha beta gamma", stop_sequences=["gamma"])))
    assert message["content"][0]["text"] == "[emulator] You said: alpha beta "
    assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", "gamma")
    cut = _ok(post(http, body("alpha beta gamma", max_tokens=3)))
    assert cut["stop_reason"] == "max_tokens" and cut["usage"]["output_tokens"] == 3


def test_thinking_comes_first_signed_and_counted_in_output(http: httpx.Client) -> None:
    message = _ok(post(http, body("Why is the sky blue?", max_tokens=2000, thinking=THINKING)))
    thinking, text = message["content"]
    assert thinking["type"] == "thinking" and "Why is the sky blue?" in thinking["thinking"]
    assert len(thinking["signature"]) > 20
    assert text["type"] == "text"
    details = message["usage"]["output_tokens_details"]
    assert 0 < details["thinking_tokens"] < message["usage"]["output_tokens"]
    plain = _ok(post(http, body("Why is the sky blue?", max_tokens=2000)))
    assert plain["usage"]["output_tokens"] == (
        message["usage"]["output_tokens"] - details["thinking_tokens"]
    )


def test_thinking_shares_max_tokens_with_the_answer(http: httpx.Client) -> None:
    data = body("x " * 50, max_tokens=1100, thinking={"type": "enabled", "budget_tokens": 1024})
    message = _ok(post(http, data))
    assert message["usage"]["output_tokens"] <= 1100
    adaptive = body("Why?", max_tokens=40, thinking={"type": "adaptive"})
    short = _ok(post(http, adaptive))
    assert short["content"][0]["type"] == "thinking"
    assert short["usage"]["output_tokens_details"]["thinking_tokens"] <= 20
    assert short["usage"]["output_tokens"] <= 40


def test_thinking_streams_as_thinking_and_signature_deltas(http: httpx.Client) -> None:
    data = body("What's the weather in Paris?", max_tokens=2000, thinking=THINKING, tools=[WEATHER])
    parsed = _stream(http, data)
    kinds = [d["delta"]["type"] for name, d in parsed if name == "content_block_delta"]
    assert kinds.count("signature_delta") == 1
    assert kinds.index("signature_delta") > kinds.index("thinking_delta")
    assert kinds.index("input_json_delta") > kinds.index("signature_delta")
    start = parsed[1][1]["content_block"]
    assert start == {"type": "thinking", "thinking": "", "signature": ""}
    whole = _ok(post(http, data))
    streamed = accumulate(parsed)["content"]
    assert streamed[0] == whole["content"][0]  # the same thinking, the same signature
    assert [{**b, "id": ""} for b in streamed[1:]] == [
        {**b, "id": ""} for b in whole["content"][1:]
    ]


def _loop(first: dict[str, Any], assistant: list[dict[str, Any]]) -> dict[str, Any]:
    call = next(b for b in first["content"] if b["type"] == "tool_use")
    return body(
        "What's the weather in Paris?",
        max_tokens=2000,
        thinking=THINKING,
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "What's the weather in Paris?"},
            {"role": "assistant", "content": assistant},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "21C"}],
            },
        ],
    )


def test_a_tool_loop_with_thinking_needs_the_signed_block_back(http: httpx.Client) -> None:
    data = body("What's the weather in Paris?", max_tokens=2000, thinking=THINKING, tools=[WEATHER])
    first = _ok(post(http, data))
    final = _ok(post(http, _loop(first, first["content"])))
    assert final["content"][-1]["text"] == "[emulator] Tool results: get_weather returned 21C"

    forged = [{**first["content"][0], "thinking": "I was told to."}, first["content"][1]]
    refused = post(http, _loop(first, forged))
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == (
        "messages.1.content.0: Invalid `signature` in `thinking` block"
    )
    missing = post(http, _loop(first, first["content"][1:]))
    assert missing.status_code == 400
    message = missing.json()["error"]["message"]
    assert message.startswith("messages.1.content.0.type: Expected `thinking` or")
    assert "a final `assistant` message must start with a thinking block" in message
    redacted = [{"type": "redacted_thinking", "data": "EmwKAhgB..."}, first["content"][1]]
    assert post(http, _loop(first, redacted)).status_code == 200


def test_omitted_thinking_is_empty_but_signed(http: httpx.Client) -> None:
    thinking = {**THINKING, "display": "omitted"}
    data = body("What's the weather in Paris?", max_tokens=2000, thinking=thinking, tools=[WEATHER])
    first = _ok(post(http, data))
    assert first["content"][0]["thinking"] == "" and first["content"][0]["signature"]
    assert first["usage"]["output_tokens_details"]["thinking_tokens"] > 0
    assert post(http, _loop(first, first["content"])).status_code == 200


def test_images_are_acknowledged(http: httpx.Client) -> None:
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]
    text = _ok(post(http, body(content)))["content"][0]["text"]
    assert text == "[emulator] You said: What is this? [2 images: 1 base64 image/png, 1 URL]"


def _pdf_block(data: bytes, **extra: Any) -> dict[str, Any]:
    source = {"type": "base64", "media_type": "application/pdf"}
    return {
        "type": "document",
        "source": {**source, "data": base64.b64encode(data).decode()},
        **extra,
    }


def test_a_question_about_a_pdf_is_answered_from_its_text(http: httpx.Client) -> None:
    pdf = simple_pdf(
        "Duskwine grapes grow on the slopes of Lake Orin.\nThe vines are old.",
        "Duskwine is harvested in late September.",
    )
    content = [
        _pdf_block(pdf, title="Duskwine notes"),
        {"type": "text", "text": "When is Duskwine harvested?"},
    ]
    message = _ok(post(http, body(content)))
    text = message["content"][0]["text"]
    assert text.startswith("[emulator] ") and "Duskwine is harvested in late September." in text
    assert text.endswith(' [1 document: PDF "Duskwine notes", 2 pages]')
    plain = _ok(post(http, body("When is Duskwine harvested?")))
    assert message["usage"]["input_tokens"] > plain["usage"]["input_tokens"] + 2 * 800


def test_text_and_url_documents(http: httpx.Client) -> None:
    text_doc = {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "Orin has 4200 people."},
    }
    question = {"type": "text", "text": "How many people does Orin have?"}
    answer = _ok(post(http, body([text_doc, question])))["content"][0]["text"]
    assert answer == "[emulator] Orin has 4200 people. [1 document: text document]"
    url_doc = {
        "type": "document",
        "source": {"type": "url", "url": "https://example.com/report.pdf"},
        "title": "Report",
    }
    seen = _ok(post(http, body([url_doc, {"type": "text", "text": "Summarize it"}])))
    assert seen["content"][0]["text"] == (
        "[emulator] You said: Summarize it [1 document: PDF at https://example.com/report.pdf "
        '"Report" (not fetched)]'
    )


def test_a_pdf_without_readable_text_is_still_acknowledged(http: httpx.Client) -> None:
    blank = b"%PDF-1.4\n1 0 obj << /Type /Page >> endobj\n%%EOF\n"
    content = [_pdf_block(blank), {"type": "text", "text": "What does it say?"}]
    text = _ok(post(http, body(content)))["content"][0]["text"]
    assert text == "[emulator] You said: What does it say? [1 document: PDF, 1 page, no text found]"


def test_count_tokens_matches_the_input_a_call_is_billed(http: httpx.Client) -> None:
    data = body("Count me, please", tools=[WEATHER], system="Be brief.")
    counted = http.post(
        "/messages/count_tokens", json={k: v for k, v in data.items() if k != "max_tokens"}
    )
    assert counted.status_code == 200, counted.text
    assert counted.json() == {"input_tokens": _ok(post(http, data))["usage"]["input_tokens"]}


def test_count_tokens_with_thinking_and_refusals(http: httpx.Client) -> None:
    data = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Hi"}],
        "thinking": {"type": "enabled", "budget_tokens": 2048},
    }
    counted = http.post("/messages/count_tokens", json=data)
    assert counted.status_code == 200, counted.text
    assert counted.json()["input_tokens"] > 0
    bad = http.post("/messages/count_tokens", json={**data, "model": "claude-9"})
    assert bad.status_code == 404 and bad.json()["error"]["type"] == "not_found_error"
