"""Streams look like the real service's: role chunk, small deltas, tool-call deltas, usage, DONE."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.emulator.helpers import ADD_TOOL, WEATHER_TOOL, chat, chunks, sse, streamed_text
from tokenhub_emulator import TokenHubEmulator

USAGE = {"include_usage": True}


def _stream(http: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    response = http.post("/chat/completions", json={**body, "stream": True})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-request-id"]
    return response


def test_a_text_stream_has_role_chunk_many_small_deltas_finish_usage_and_done(
    http: httpx.Client,
) -> None:
    prompt = "Explain the CAP theorem in three short bullets, please, with examples."
    parsed = chunks(_stream(http, chat(prompt, stream_options=USAGE)).text)
    first, *middle, finish, usage = parsed
    assert first["choices"][0]["delta"]["role"] == "assistant"
    assert first["object"] == "chat.completion.chunk"
    deltas = [c["choices"][0]["delta"]["content"] for c in middle]
    assert len(deltas) >= 15
    assert max(len(d) for d in deltas) <= 8
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert finish["choices"][0]["delta"] == {}
    assert usage["choices"] == []
    assert usage["usage"]["total_tokens"] == (
        usage["usage"]["prompt_tokens"] + usage["usage"]["completion_tokens"]
    )
    assert len({c["id"] for c in parsed}) == 1
    assert {c["model"] for c in parsed} == {"anthropic/claude-haiku-4-5"}


def test_a_stream_says_what_the_non_streamed_answer_says(http: httpx.Client) -> None:
    body = chat("Same words either way", max_tokens=6, stream_options=USAGE)
    plain = http.post("/chat/completions", json=body).json()
    parsed = chunks(_stream(http, body).text)
    assert streamed_text(parsed) == plain["choices"][0]["message"]["content"]
    assert parsed[-2]["choices"][0]["finish_reason"] == "length"
    assert parsed[-1]["usage"] == plain["usage"]


def test_without_include_usage_there_is_no_usage_chunk(http: httpx.Client) -> None:
    parsed = chunks(_stream(http, chat("hi")).text)
    assert all(c["choices"] for c in parsed)
    assert all("usage" not in c or c["usage"] is None for c in parsed)


def test_tool_call_deltas_carry_id_and_name_first_and_split_arguments(
    http: httpx.Client,
) -> None:
    prompt = "Check get_weather in San Francisco, CA and add 120 and 3400"
    parsed = chunks(_stream(http, chat(prompt, tools=[WEATHER_TOOL, ADD_TOOL])).text)
    deltas = [
        call
        for c in parsed
        if c["choices"]
        for call in c["choices"][0]["delta"].get("tool_calls", [])
    ]
    by_index: dict[int, list[dict[str, Any]]] = {}
    for delta in deltas:
        by_index.setdefault(delta["index"], []).append(delta)
    assert sorted(by_index) == [0, 1]
    arguments = {}
    for parts in by_index.values():
        head, *rest = parts
        assert head["id"].startswith("call_") and head["type"] == "function"
        assert head["function"] == {"name": head["function"]["name"], "arguments": ""}
        assert len(rest) >= 2
        assert all("id" not in p and "name" not in p["function"] and "type" not in p for p in rest)
        arguments[head["function"]["name"]] = json.loads(
            "".join(p["function"]["arguments"] for p in rest)
        )
    assert arguments == {
        "get_weather": {"location": "San Francisco, CA"},
        "add": {"a": 120, "b": 3400},
    }
    assert parsed[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_keepalive_comments_can_be_switched_on(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    _, comments = sse(_stream(http, chat("hi")).text)
    assert comments == 0
    tokenhub_emulator.keepalive_interval_s = 0.02
    tokenhub_emulator.slow_drip(0.05)
    raw = _stream(http, chat("one two three")).text
    datas, comments = sse(raw)
    assert raw.startswith(": keep-alive\n\n")
    assert comments >= 3
    assert datas[-1] == "[DONE]"
    tokenhub_emulator.reset()
    assert tokenhub_emulator.keepalive_interval_s is None


def test_keepalive_comments_flow_while_waiting_for_the_first_token(
    http: httpx.Client,
) -> None:
    with TokenHubEmulator(latency_ms=100, keepalive_interval_s=0.02) as emu:
        response = http.post(
            f"{emu.base_url}/chat/completions",
            json=chat("hi", stream=True),
            headers={"Authorization": f"Bearer {emu.api_key}"},
        )
    datas, comments = sse(response.text)
    assert comments >= 2
    assert response.text.index("data:") > response.text.rindex(": keep-alive")
    assert datas[-1] == "[DONE]"


def test_a_long_stream_is_delivered_whole(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    text = " ".join(f"w{i}" for i in range(2500))
    tokenhub_emulator.queue_reply(text=text)
    with http.stream("POST", "/chat/completions", json=chat("long", stream=True)) as response:
        raw = "".join(response.iter_text())
    parsed = chunks(raw)
    assert len(parsed) >= 2500
    assert streamed_text(parsed) == text
