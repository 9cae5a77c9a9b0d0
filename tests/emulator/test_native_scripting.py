"""Scripting ``/v1/messages``: queued replies (either shape), every fault, limits, the ledger."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.emulator.helpers import chat
from tests.emulator.native_helpers import MODEL, WEATHER, accumulate, body, events, post
from tokenhub_emulator import RemoteEmulator, TokenHubEmulator


def _message(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def _native_error(response: httpx.Response, status: int, type_: str) -> str:
    assert response.status_code == status, response.text
    data = response.json()
    assert (data["type"], data["error"]["type"]) == ("error", type_)
    assert data["request_id"] == response.headers["request-id"]
    return str(data["error"]["message"])


# -- queued replies ----------------------------------------------------------------------------


def test_a_queued_text_reply_is_sent_exactly(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    tokenhub_emulator.queue_reply("an exact answer with STOP inside", times=2)
    message = _message(post(http, body(max_tokens=2, stop_sequences=["STOP"])))
    assert message["content"] == [{"type": "text", "text": "an exact answer with STOP inside"}]
    assert message["stop_reason"] == "end_turn"
    streamed = accumulate(events(post(http, body(stream=True)).text))
    assert streamed["content"] == message["content"]


def test_a_queued_reply_in_the_native_shape(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    content = [
        {"type": "thinking", "thinking": "Paris it is."},
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "name": "get_weather", "input": {"location": "Paris"}},
    ]
    usage = {"input_tokens": 7, "output_tokens": 9, "cache_read_input_tokens": 100}
    tokenhub_emulator.queue_reply(content=content, stop_reason="tool_use", usage=usage)
    thinking = {"type": "enabled", "budget_tokens": 1024}
    data = body("Weather?", max_tokens=2000, tools=[WEATHER], thinking=thinking)
    message = _message(post(http, data))
    thought, text, call = message["content"]
    assert thought["thinking"] == "Paris it is." and thought["signature"]
    assert text == {"type": "text", "text": "Let me check."}
    assert call["name"] == "get_weather" and call["id"].startswith("toolu_")
    assert message["stop_reason"] == "tool_use"
    assert (message["usage"]["input_tokens"], message["usage"]["output_tokens"]) == (7, 9)
    assert message["usage"]["cache_read_input_tokens"] == 100
    # The emulator signed the scripted thinking: it is accepted back in the tool loop.
    data["messages"] += [
        {"role": "assistant", "content": message["content"]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"]}]},
    ]
    assert post(http, data).status_code == 200


def test_a_native_queued_reply_on_chat_completions(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    tokenhub_emulator.queue_reply(
        content=[
            {"type": "thinking", "thinking": "hidden here"},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_9", "name": "f", "input": {"a": 1}},
        ],
        stop_reason="tool_use",
        usage={"input_tokens": 5, "cache_read_input_tokens": 20, "output_tokens": 3},
    )
    reply = http.post("/chat/completions", json=chat()).json()
    message = reply["choices"][0]["message"]
    assert message["content"] == "Checking."
    assert message["tool_calls"][0]["id"] == "toolu_9"
    assert json.loads(message["tool_calls"][0]["function"]["arguments"]) == {"a": 1}
    assert reply["choices"][0]["finish_reason"] == "tool_calls"
    assert reply["usage"]["prompt_tokens"] == 25
    assert reply["usage"]["prompt_tokens_details"] == {"cached_tokens": 20}


def test_an_openai_shaped_queued_reply_with_thinking_on_messages(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    tokenhub_emulator.queue_reply(
        tool_calls=[{"name": "get_weather", "arguments": '{"location": "Oslo"}'}],
        thinking="Oslo, then.",
        usage={"prompt_tokens": 50, "cached_tokens": 40, "completion_tokens": 6},
    )
    message = _message(post(http, body("Weather?", tools=[WEATHER])))
    assert [b["type"] for b in message["content"]] == ["thinking", "tool_use"]
    assert message["content"][1]["input"] == {"location": "Oslo"}
    assert message["stop_reason"] == "tool_use"
    usage = message["usage"]
    assert (usage["input_tokens"], usage["cache_read_input_tokens"]) == (10, 40)
    assert usage["output_tokens"] == 6


def test_invalid_argument_text_streams_as_is(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    tokenhub_emulator.queue_reply(tool_calls=[{"name": "get_weather", "arguments": '{"loc'}])
    parsed = events(post(http, body("Weather?", tools=[WEATHER], stream=True)).text)
    fragments = "".join(
        d["delta"]["partial_json"]
        for name, d in parsed
        if name == "content_block_delta" and d["delta"]["type"] == "input_json_delta"
    )
    assert fragments == '{"loc'


def test_bad_native_content_is_refused(tokenhub_emulator: TokenHubEmulator) -> None:
    with pytest.raises(ValueError, match="content block needs a type"):
        tokenhub_emulator.queue_reply(content=[{"type": "image"}])
    with pytest.raises(ValueError, match="not both"):
        tokenhub_emulator.queue_reply("text", content=[{"type": "text", "text": "x"}])


# -- faults ------------------------------------------------------------------------------------


def test_an_injected_529_is_claudes_overloaded_error_and_keeps_the_queued_reply(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    tokenhub_emulator.queue_reply("after the storm")
    tokenhub_emulator.fail_next(529, headers={"retry-after": "1"})
    response = post(http, body())
    assert _native_error(response, 529, "overloaded_error").startswith("[emulator] injected 529")
    assert response.headers["retry-after"] == "1"
    assert _message(post(http, body()))["content"][0]["text"] == "after the storm"
    assert [r.status for r in tokenhub_emulator.requests] == [529, 200]
    assert tokenhub_emulator.ledger().calls == 1


@pytest.mark.parametrize(
    ("status", "type_"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (402, "billing_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (504, "timeout_error"),
    ],
)
def test_injected_statuses_carry_claudes_error_types(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client, status: int, type_: str
) -> None:
    tokenhub_emulator.fail_next(status, message="scripted")
    assert _native_error(post(http, body()), status, type_) == "scripted"


def test_a_given_error_body_and_an_html_page_are_sent_as_they_are(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    tokenhub_emulator.fail_next(500, body={"error": {"message": "openai-shaped"}})
    tokenhub_emulator.fail_next_html(502)
    assert post(http, body()).json() == {"error": {"message": "openai-shaped"}}
    html = post(http, body())
    assert html.status_code == 502 and "<html>" in html.text


def test_an_overloaded_error_event_inside_a_200_stream(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    tokenhub_emulator.sse_error_after(3)
    response = post(http, body(stream=True))
    assert response.status_code == 200
    parsed = events(response.text)
    assert [name for name, _ in parsed] == [
        "message_start",
        "content_block_start",
        "ping",
        "error",
    ]
    assert parsed[-1][1]["error"]["type"] == "overloaded_error"
    tokenhub_emulator.sse_error_after(1, type="api_error", message="boom")
    error = events(post(http, body(stream=True)).text)[-1][1]
    assert error == {"type": "error", "error": {"type": "api_error", "message": "boom"}}
    assert tokenhub_emulator.ledger().calls == 0


def _read_until_dropped(http: httpx.Client, data: dict[str, Any]) -> str:
    received = ""
    try:
        with http.stream("POST", "/messages", json=data) as response:
            for text in response.iter_text():
                received += text
    except httpx.RemoteProtocolError:
        return received
    raise AssertionError(f"the stream was not dropped: {received!r}")


def test_a_dropped_stream_and_a_truncated_one(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    tokenhub_emulator.drop_stream_after(4)
    received = _read_until_dropped(http, body(stream=True))
    assert received.count("event: ") == 4 and "message_stop" not in received
    tokenhub_emulator.truncate_next()
    cut = post(http, body(stream=True)).text
    assert "message_stop" not in cut and not cut.endswith("\n\n")
    tokenhub_emulator.truncate_next()
    half = post(http, body())
    assert half.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(half.text)
    assert tokenhub_emulator.ledger().calls == 0


def test_keepalives_and_drips_leave_the_events_intact(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    tokenhub_emulator.keepalive_interval_s = 0.01
    tokenhub_emulator.slow_drip(0.002)
    raw = post(http, body("Hello keepalive", stream=True)).text
    assert raw.startswith(": keep-alive\n\n")
    message = accumulate(events(raw))
    assert message["content"][0]["text"] == "[emulator] You said: Hello keepalive"


def test_rate_limits_answer_in_claudes_shape(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    tokenhub_emulator.configure(rpm=1)
    assert post(http, body()).status_code == 200
    refused = post(http, body())
    assert "1 requests per minute" in _native_error(refused, 429, "rate_limit_error")
    assert int(refused.headers["retry-after"]) >= 1
    tokenhub_emulator.advance_clock(61)  # the emulator's clock also moves the rate windows
    assert post(http, body()).status_code == 200


def test_random_faults_use_the_native_shape(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    tokenhub_emulator.configure(fault_rate=1.0, seed=3)
    response = post(http, body())
    assert response.status_code in (500, 503, 529)
    assert response.json()["type"] == "error"


# -- the ledger and the request log ------------------------------------------------------------


def test_billed_calls_record_their_protocol(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    post(http, body(stream=True))
    http.post("/chat/completions", json=chat())
    ledger = tokenhub_emulator.ledger()
    assert [(e.protocol, e.stream) for e in ledger.entries] == [
        ("messages", True),
        ("chat/completions", False),
    ]
    assert [r.protocol for r in tokenhub_emulator.requests] == ["messages", "chat/completions"]
    entry = ledger.entries[0]
    assert entry.requested_model == MODEL and entry.model == "anthropic/claude-sonnet-4-6"
    assert entry.cost_usd > 0


def test_the_cache_ops_over_http(tokenhub_emulator: TokenHubEmulator, http: httpx.Client) -> None:
    long = "Orin keeps its own calendar of harvests. " * 300
    data = body(
        "Hi", system=[{"type": "text", "text": long, "cache_control": {"type": "ephemeral"}}]
    )
    post(http, data)
    with RemoteEmulator(tokenhub_emulator.url) as remote:
        assert remote.advance_clock(10) == 10.0
        assert post(http, data).json()["usage"]["cache_read_input_tokens"] > 0
        assert remote.clear_cache() == 1
        remote.reset()
    again = post(http, data).json()["usage"]
    assert again["cache_read_input_tokens"] == 0 and again["cache_creation_input_tokens"] > 0
    assert tokenhub_emulator.ledger().cache_write_tokens == again["cache_creation_input_tokens"]
