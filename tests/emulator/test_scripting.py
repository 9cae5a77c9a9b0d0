"""Scripting from tests: queued replies, every fault kind, recorded requests, the ledger, reset."""

from __future__ import annotations

import json
import threading
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.emulator.helpers import MODEL, chat, chunks, sse, streamed_text
from tokenhub_core.catalog import price_call, resolve_model
from tokenhub_emulator import TokenHubEmulator

USAGE = {"include_usage": True}


def _post(http: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    return http.post("/chat/completions", json=body)


def _text(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return str(response.json()["choices"][0]["message"]["content"])


# -- queue_reply ------------------------------------------------------------------------------


def test_queued_replies_are_exact_and_fifo(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    tokenhub_emulator.queue_reply("first")
    tokenhub_emulator.queue_reply(text="second", times=2)
    assert [_text(_post(http, chat())) for _ in range(3)] == ["first", "second", "second"]
    assert _text(_post(http, chat())).startswith("[emulator]")


def test_a_queued_reply_is_exact_even_under_max_tokens_and_stop(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    tokenhub_emulator.queue_reply("a long exact answer with STOP inside")
    response = _post(http, chat(max_tokens=2, stop=["STOP"]))
    assert _text(response) == "a long exact answer with STOP inside"
    assert response.json()["choices"][0]["finish_reason"] == "stop"


def test_queued_tool_calls_usage_finish_reason_and_model(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    tokenhub_emulator.queue_reply(
        tool_calls=[
            {"name": "f", "arguments": {"a": 1}, "id": "call_x"},
            {"name": "g", "arguments": '{"broken": '},
        ],
        usage={"prompt_tokens": 5, "completion_tokens": 7, "cached_tokens": 2},
        model="anthropic/claude-opus-4-7",
    )
    body = _post(http, chat()).json()
    message = body["choices"][0]["message"]
    assert message["content"] is None
    assert [
        (c["id"], c["function"]["name"], c["function"]["arguments"]) for c in message["tool_calls"]
    ] == [
        ("call_x", "f", '{"a": 1}'),
        (message["tool_calls"][1]["id"], "g", '{"broken": '),
    ]
    assert message["tool_calls"][1]["id"].startswith("call_")
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    assert body["usage"] == {
        "prompt_tokens": 5,
        "completion_tokens": 7,
        "total_tokens": 12,
        "prompt_tokens_details": {"cached_tokens": 2},
    }
    assert body["model"] == "anthropic/claude-opus-4-7"
    tokenhub_emulator.queue_reply("cut", finish_reason="length")
    assert _post(http, chat()).json()["choices"][0]["finish_reason"] == "length"


def test_queue_reply_json_is_sent_as_json_text(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    tokenhub_emulator.queue_reply(json={"setup": "Why?", "punchline": "Because."})
    assert json.loads(_text(_post(http, chat()))) == {"setup": "Why?", "punchline": "Because."}
    with pytest.raises(ValueError, match="not both"):
        tokenhub_emulator.queue_reply("x", json={})
    with pytest.raises(ValueError, match="name"):
        tokenhub_emulator.queue_reply(tool_calls=[{"arguments": {}}])


def test_a_queued_reply_streams_with_split_tool_arguments(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    tokenhub_emulator.queue_reply(
        "Let me check.", tool_calls=[{"name": "lookup", "arguments": {"query": "owls at night"}}]
    )
    parsed = chunks(_post(http, chat(stream=True, stream_options=USAGE)).text)
    assert streamed_text(parsed) == "Let me check."
    fragments = [
        d["function"]["arguments"]
        for c in parsed
        if c["choices"]
        for d in c["choices"][0]["delta"].get("tool_calls", [])
    ]
    assert fragments[0] == "" and len(fragments) >= 3
    assert json.loads("".join(fragments)) == {"query": "owls at night"}


# -- faults -----------------------------------------------------------------------------------


def test_fail_next_sends_the_status_body_and_headers_then_recovers(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    tokenhub_emulator.fail_next(
        429, times=2, headers={"Retry-After": "3", "x-should-retry": "true"}, message="slow down"
    )
    for _ in range(2):
        response = _post(http, chat())
        assert response.status_code == 429
        assert response.headers["retry-after"] == "3"
        assert response.headers["x-should-retry"] == "true"
        assert response.headers["x-request-id"]
        assert response.json()["error"] == {
            "message": "slow down",
            "type": "rate_limit_error",
            "param": None,
            "code": None,
        }
    assert _post(http, chat()).status_code == 200


def test_fail_next_with_a_custom_body(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    tokenhub_emulator.fail_next(402, body={"error": {"message": "out of credit", "code": "quota"}})
    tokenhub_emulator.fail_next(500, body="not json at all")
    first = _post(http, chat())
    assert first.status_code == 402
    assert first.json()["error"]["code"] == "quota"
    second = _post(http, chat())
    assert second.status_code == 500
    assert second.text == "not json at all"


def test_a_failed_call_does_not_consume_the_queued_reply(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    tokenhub_emulator.queue_reply("after the retry")
    tokenhub_emulator.fail_next(503)
    assert _post(http, chat()).status_code == 503
    assert _text(_post(http, chat())) == "after the retry"


def test_invalid_requests_do_not_consume_faults(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    tokenhub_emulator.fail_next(500)
    assert _post(http, chat(temperature=3)).status_code == 400
    assert _post(http, chat()).status_code == 500


def test_fail_next_html_sends_a_proxy_page(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    tokenhub_emulator.fail_next_html()
    tokenhub_emulator.fail_next_html(504)
    first, second = _post(http, chat()), _post(http, chat(stream=True))
    assert (first.status_code, second.status_code) == (502, 504)
    assert first.headers["content-type"] == "text/html"
    assert "<html>" in first.text and "502 Bad Gateway" in first.text


def test_truncate_next_cuts_a_json_body(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    tokenhub_emulator.truncate_next()
    response = _post(http, chat())
    assert response.status_code == 200
    assert response.text.startswith('{"id":')
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert _post(http, chat()).json()["object"] == "chat.completion"


def test_truncate_next_cuts_a_stream_mid_event_without_done(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    tokenhub_emulator.truncate_next()
    raw = _post(http, chat("some words to stream here", stream=True)).text
    assert "[DONE]" not in raw
    assert not raw.endswith("\n\n")
    complete = raw[: raw.rindex("\n\n")]
    events, _ = sse(complete)
    assert len(events) >= 1
    for data in events:
        json.loads(data)


def test_drop_stream_after_cuts_the_connection_after_k_events(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    tokenhub_emulator.drop_stream_after(3)
    received: list[bytes] = []
    body = chat("a b c d e f", stream=True)
    with (
        http.stream("POST", "/chat/completions", json=body) as resp,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        received.extend(resp.iter_bytes())
    events, _ = sse(b"".join(received).decode())
    assert len(events) == 3
    assert "[DONE]" not in events
    assert _post(http, chat(stream=True)).text.endswith("data: [DONE]\n\n")


def test_stream_faults_wait_for_a_streamed_call(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    tokenhub_emulator.drop_stream_after(0)
    assert _post(http, chat()).status_code == 200
    with pytest.raises(httpx.RemoteProtocolError):
        _post(http, chat(stream=True))


def test_sse_error_after_sends_an_error_event_then_ends(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    tokenhub_emulator.sse_error_after(2, message="model overloaded")
    raw = _post(http, chat("one two three four", stream=True)).text
    events, _ = sse(raw)
    assert len(events) == 3
    assert json.loads(events[-1]) == {
        "error": {"message": "model overloaded", "type": "overloaded_error", "code": "overloaded"}
    }
    assert "choices" in json.loads(events[0])


def test_slow_drip_outlasts_a_short_read_timeout(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    tokenhub_emulator.slow_drip(1.0)
    with pytest.raises(httpx.ReadTimeout):
        http.post("/chat/completions", json=chat(stream=True), timeout=httpx.Timeout(5, read=0.2))
    assert _post(http, chat(stream=True)).text.endswith("[DONE]\n\n")


def test_delay_headers_outlasts_a_short_read_timeout_and_applies_once(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    tokenhub_emulator.delay_headers(1.0)
    with pytest.raises(httpx.ReadTimeout):
        _post_with_timeout(http, chat(), read=0.2)
    assert _post_with_timeout(http, chat(), read=5).status_code == 200


def _post_with_timeout(http: httpx.Client, body: dict[str, Any], read: float) -> httpx.Response:
    return http.post("/chat/completions", json=body, timeout=httpx.Timeout(5, read=read))


def test_latency_applies_to_every_call_until_reset(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    tokenhub_emulator.latency_ms = 1000
    with pytest.raises(httpx.ReadTimeout):
        _post_with_timeout(http, chat(), read=0.2)
    tokenhub_emulator.reset()
    assert _post_with_timeout(http, chat(), read=5).status_code == 200


@pytest.mark.parametrize(
    "script",
    [
        lambda e: e.fail_next(99),
        lambda e: e.fail_next(500, times=0),
        lambda e: e.drop_stream_after(-1),
        lambda e: e.slow_drip(0.1, times=0),
    ],
)
def test_nonsense_scripts_are_refused(tokenhub_emulator: TokenHubEmulator, script: Any) -> None:
    with pytest.raises(ValueError):
        script(tokenhub_emulator)


# -- recorded requests, reset, ledger ---------------------------------------------------------


def test_requests_are_recorded_with_the_key_redacted(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    body = chat("record me", temperature=0.2)
    _post(http, body)
    http.post("/chat/completions", content=b"{oops", headers={"x-custom": "1"})
    first, second = tokenhub_emulator.requests
    assert first.method == "POST" and first.path == "/api/v1/chat/completions"
    assert first.body == body
    assert first.headers["authorization"] == "Bearer th-***"
    assert tokenhub_emulator.api_key not in repr(first)
    assert first.status == 200 and first.request_id
    assert second.body is None and second.raw_body == b"{oops"
    assert second.headers["x-custom"] == "1"
    assert second.status == 400


def test_reset_forgets_everything(tokenhub_emulator: TokenHubEmulator, http: httpx.Client) -> None:
    _post(http, chat())
    tokenhub_emulator.queue_reply("queued")
    tokenhub_emulator.fail_next(500)
    tokenhub_emulator.delay_headers(5)
    tokenhub_emulator.slow_drip(5)
    tokenhub_emulator.drop_stream_after(0)
    tokenhub_emulator.reset()
    assert tokenhub_emulator.requests == []
    assert tokenhub_emulator.ledger().calls == 0
    assert _text(_post(http, chat())).startswith("[emulator]")
    assert _post(http, chat(stream=True)).text.endswith("[DONE]\n\n")


def test_the_ledger_bills_successful_calls_only_by_the_catalog(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    ok = _post(http, chat("bill me"))
    streamed = chunks(
        _post(
            http,
            {
                **chat("bill me too", stream=True),
                "stream_options": USAGE,
                "model": "claude-opus-4-7",
            },
        ).text
    )
    tokenhub_emulator.fail_next(500)
    _post(http, chat())
    tokenhub_emulator.truncate_next()
    _post(http, chat())
    tokenhub_emulator.sse_error_after(1)
    _post(http, chat(stream=True))
    tokenhub_emulator.drop_stream_after(1)
    with pytest.raises(httpx.RemoteProtocolError):
        _post(http, chat(stream=True))
    _post(http, chat(temperature=9))

    ledger = tokenhub_emulator.ledger()
    assert ledger.calls == 2
    usage_ok, usage_streamed = ok.json()["usage"], streamed[-1]["usage"]
    haiku, opus = resolve_model(MODEL), resolve_model("claude-opus-4-7")
    assert haiku is not None and opus is not None
    expected = haiku.cost_usd(usage_ok["prompt_tokens"], usage_ok["completion_tokens"]) + (
        opus.cost_usd(usage_streamed["prompt_tokens"], usage_streamed["completion_tokens"])
    )
    assert ledger.total_usd == expected
    assert isinstance(ledger.total_usd, Decimal) and ledger.total_usd > 0
    assert ledger.prompt_tokens == usage_ok["prompt_tokens"] + usage_streamed["prompt_tokens"]
    assert [e.model for e in ledger.entries] == [haiku.id, opus.id]
    assert [e.stream for e in ledger.entries] == [False, True]
    assert ledger.entries[0].request_id == ok.headers["x-request-id"]


def test_the_ledger_is_kept_per_key(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    _post(http, chat())
    http.post("/chat/completions", json=chat(), headers={"Authorization": "Bearer th-other"})
    http.post("/chat/completions", json=chat(), headers={"Authorization": "Bearer th-other"})
    assert tokenhub_emulator.ledger(tokenhub_emulator.api_key).calls == 1
    assert tokenhub_emulator.ledger("th-other").calls == 2
    assert tokenhub_emulator.ledger().calls == 3
    assert tokenhub_emulator.ledger("th-nobody").total_usd == Decimal(0)
    assert "th-other" not in repr(tokenhub_emulator.ledger("th-other"))


def test_queued_usage_is_what_gets_billed(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    tokenhub_emulator.queue_reply("x", usage={"prompt_tokens": 1_000_000, "completion_tokens": 0})
    _post(http, chat())
    assert tokenhub_emulator.ledger().total_usd == Decimal("1.00")  # Haiku 4.5 input price


def test_scripting_from_many_threads_while_serving(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    def worker(n: int) -> None:
        for i in range(10):
            tokenhub_emulator.queue_reply(f"{n}-{i}")
            assert _post(http, chat()).status_code == 200

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(tokenhub_emulator.requests) == 40
    assert tokenhub_emulator.ledger().calls == 40


def test_the_ledger_prices_with_the_one_pricing_rule(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    usage = {"prompt_tokens": 1000, "completion_tokens": 100}
    tokenhub_emulator.queue_reply("served by Opus", model="claude-opus-4-7", usage=usage)
    tokenhub_emulator.queue_reply("served by a model the catalog lacks", model="x-9", usage=usage)
    _post(http, chat())
    _post(http, chat())
    served, unknown = tokenhub_emulator.ledger().entries
    assert (served.model, served.cost_usd) == price_call(MODEL, "claude-opus-4-7", 1000, 100)
    assert served.model == "anthropic/claude-opus-4-7"  # billed as the model that answered
    assert (unknown.model, unknown.cost_usd) == price_call(MODEL, "x-9", 1000, 100)
    assert unknown.model == MODEL  # else as the model requested
