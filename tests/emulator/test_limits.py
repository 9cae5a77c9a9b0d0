"""Realistic limits: rate windows, random faults, stream pace, Claude's context and conversation rules."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.emulator.helpers import MODEL, chat
from tokenhub_core import TokenHubClient
from tokenhub_core.errors import RateLimitError
from tokenhub_emulator import TokenHubEmulator
from tokenhub_emulator.limits import Admission, RateLimiter


def _post(http: httpx.Client, body: dict[str, Any], key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else None
    return http.post("/chat/completions", json=body, headers=headers)


def _error(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


# -- requests and tokens per minute ------------------------------------------------------------


def test_requests_beyond_the_rpm_get_429_with_retry_after(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    assert "x-ratelimit-limit-requests" not in _post(http, chat()).headers  # no limit, no header
    tokenhub_emulator.reset()
    tokenhub_emulator.configure(rpm=3)
    answers = [_post(http, chat()), _post(http, chat(stream=True)), _post(http, chat())]
    refused = _post(http, chat())
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert {a.headers["x-ratelimit-limit-requests"] for a in answers} == {"3"}
    assert [a.headers["x-ratelimit-remaining-requests"] for a in answers] == ["2", "1", "0"]
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert _error(refused)["type"] == "rate_limit_error"
    assert "3 requests per minute" in _error(refused)["message"]
    assert _post(http, chat(), key="th-another-key").status_code == 200  # limits are per key
    assert tokenhub_emulator.ledger().calls == 4  # the 429 is not billed


def test_the_core_client_sees_the_retry_after(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    tokenhub_emulator.configure(rpm=1)
    client = TokenHubClient(max_retries=0)
    messages = [{"role": "user", "content": "hi"}]
    client.chat(model=MODEL, messages=messages)
    with pytest.raises(RateLimitError) as caught:
        client.chat(model=MODEL, messages=messages)
    assert caught.value.retry_after is not None and 0 < caught.value.retry_after <= 60


def test_tokens_beyond_the_tpm_get_429(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    first = _post(http, chat("a" * 400))
    usage = first.json()["usage"]
    tokenhub_emulator.reset()
    tokenhub_emulator.configure(tpm=usage["total_tokens"] + usage["prompt_tokens"] - 1)
    admitted = _post(http, chat("a" * 400))
    assert admitted.status_code == 200
    remaining = int(admitted.headers["x-ratelimit-remaining-tokens"])
    assert remaining == usage["total_tokens"] - 1  # what was left when it was let through
    refused = _post(http, chat("a" * 400))
    assert refused.status_code == 429 and "tokens per minute" in _error(refused)["message"]
    assert int(refused.headers["retry-after"]) >= 1
    tokenhub_emulator.configure(tpm=10)
    alone = _post(http, chat("a" * 400), key="th-fresh")
    assert alone.status_code == 429 and "on their own" in _error(alone)["message"]


def test_a_refused_call_uses_up_no_script(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    tokenhub_emulator.configure(rpm=1)
    _post(http, chat())
    tokenhub_emulator.queue_reply("kept")
    assert _post(http, chat()).status_code == 429
    tokenhub_emulator.configure(rpm=None)
    assert _post(http, chat()).json()["choices"][0]["message"]["content"] == "kept"


def test_reset_restores_the_started_settings_and_clears_the_windows() -> None:
    with TokenHubEmulator(rpm=1) as emu:
        client = TokenHubClient(base_url=emu.base_url, api_key=emu.api_key, max_retries=0)
        messages = [{"role": "user", "content": "hi"}]
        client.chat(model=MODEL, messages=messages)
        emu.configure(rpm=5)
        emu.reset()
        assert emu.configure()["rpm"] == 1
        client.chat(model=MODEL, messages=messages)
        with pytest.raises(RateLimitError):
            client.chat(model=MODEL, messages=messages)


def test_the_window_slides() -> None:
    now = [1000.0]
    limiter = RateLimiter(lambda: now[0])
    assert isinstance(limiter.admit("k", 10, 2, None), Admission)
    now[0] += 30
    assert isinstance(limiter.admit("k", 10, 2, None), Admission)
    refusal = limiter.admit("k", 10, 2, None)
    assert not isinstance(refusal, Admission) and refusal.retry_after_s == 30
    now[0] += 30.5  # the first call left the window
    assert isinstance(limiter.admit("k", 10, 2, None), Admission)
    tokens = limiter.admit("t", 50, None, 100)
    assert isinstance(tokens, Admission)
    tokens.tokens += 40  # its completion
    assert not isinstance(limiter.admit("t", 20, None, 100), Admission)
    assert isinstance(limiter.admit("t", 10, None, 100), Admission)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"rpm": 0}, "rpm=0: expected an integer >= 1 or None"),
        ({"tpm": 2.5}, "tpm=2.5: expected an integer >= 1 or None"),
        ({"fault_rate": 1.5}, "fault_rate=1.5: expected a number 0 to 1"),
        ({"tokens_per_second": 0}, "tokens_per_second=0: expected a number > 0 or None"),
    ],
)
def test_bad_settings_are_refused_by_name(setting: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TokenHubEmulator(**setting)


# -- random faults -----------------------------------------------------------------------------


def _statuses(emu: TokenHubEmulator, n: int) -> list[int]:
    with httpx.Client(base_url=emu.base_url, timeout=10) as http:
        headers = {"Authorization": f"Bearer {emu.api_key}"}
        return [
            http.post("/chat/completions", json=chat(), headers=headers).status_code
            for _ in range(n)
        ]


def test_a_seeded_fault_rate_fails_the_same_calls_every_run() -> None:
    with TokenHubEmulator(fault_rate=0.5, seed=7) as emu:
        first = _statuses(emu, 30)
        emu.reset()  # reseeds
        again = _statuses(emu, 30)
        billed = emu.ledger().calls
    assert first == again
    assert 200 in first and set(first) - {200} <= {500, 503, 529}
    assert 5 < first.count(200) < 25
    assert billed == again.count(200)


def test_fault_rate_one_fails_every_call_and_zero_none(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    tokenhub_emulator.configure(fault_rate=1.0, seed=1)
    assert {_post(http, chat()).status_code for _ in range(10)} <= {500, 503, 529}
    tokenhub_emulator.queue_reply("scripted faults come first")
    tokenhub_emulator.fail_next(418)
    assert _post(http, chat()).status_code == 418
    tokenhub_emulator.configure(fault_rate=0)
    assert _post(http, chat()).status_code == 200


def test_random_faults_also_cut_streams(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    tokenhub_emulator.configure(fault_rate=1.0, seed=3)
    outcomes = set()
    for _ in range(20):
        try:
            response = _post(http, chat(stream=True))
        except httpx.RemoteProtocolError:
            outcomes.add("cut")
            continue
        outcomes.add(str(response.status_code))
    assert "cut" in outcomes and outcomes - {"cut"} <= {"500", "503", "529"}
    assert tokenhub_emulator.ledger().calls == 0


# -- stream pace -------------------------------------------------------------------------------


def _reads(http: httpx.Client, body: dict[str, Any]) -> list[bytes]:
    with http.stream("POST", "/chat/completions", json=body) as response:
        return list(response.iter_raw())


def test_a_paced_stream_arrives_event_by_event(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    body = chat("Tell me about the orchard, the apples and the cider.", stream=True)
    unpaced = _reads(http, body)
    tokenhub_emulator.configure(tokens_per_second=2000)
    paced = _reads(http, body)
    assert b"".join(paced).count(b"data: ") == b"".join(unpaced).count(b"data: ")
    assert len(unpaced) <= 2  # written in one or two batches
    assert len(paced) >= b"".join(paced).count(b"data: ") // 2  # one event at a time


def test_a_started_stream_is_billed_in_full_when_the_client_leaves(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    body = chat("Tell me about the orchard, the apples and the cider.", stream=True)
    whole = http.post("/chat/completions", json=chat(body["messages"][0]["content"]))
    tokenhub_emulator.reset()
    tokenhub_emulator.configure(tokens_per_second=20)
    with http.stream("POST", "/chat/completions", json=body) as response:
        next(response.iter_raw())  # the first event or two, then the client goes away
    deadline = time.monotonic() + 30
    while not tokenhub_emulator.ledger().calls and time.monotonic() < deadline:
        time.sleep(0.05)
    [entry] = tokenhub_emulator.ledger().entries
    assert entry.stream and entry.completion_tokens == whole.json()["usage"]["completion_tokens"]


# -- Claude's rules ------------------------------------------------------------------------------


def _messages(*messages: dict[str, Any], **params: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": list(messages), **params}


USER = {"role": "user", "content": "hello"}
CALL = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
        {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "{}"}},
    ],
}


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        (
            _messages({"role": "system", "content": "You are terse."}),
            "messages",
            "at least one message with the user role",
        ),
        (_messages({"role": "user", "content": ""}), "messages[0].content", "must be non-empty"),
        (_messages({"role": "user", "content": []}), "messages[0].content", "must be non-empty"),
        (
            _messages({"role": "user", "content": [{"type": "text", "text": " \n"}]}),
            "messages[0].content",
            "non-whitespace text",
        ),
        (
            _messages(USER, {"role": "assistant", "content": ""}, USER),
            "messages[1].content",
            "non-empty content except for the optional final assistant message",
        ),
        (
            _messages(USER, CALL, {"role": "tool", "tool_call_id": "c1", "content": "1"}, USER),
            "messages[3]",
            "c2",
        ),
        (_messages(USER, CALL), "messages", "without a tool result"),
    ],
)
def test_conversations_claude_refuses_get_400(
    http: httpx.Client, body: dict[str, Any], param: str, message: str
) -> None:
    response = _post(http, body)
    assert response.status_code == 400
    assert _error(response)["param"] == param
    assert message in _error(response)["message"]


def test_conversations_claude_accepts_pass(http: httpx.Client) -> None:
    answered = [
        CALL,
        {"role": "tool", "tool_call_id": "c1", "content": "1"},
        {"role": "tool", "tool_call_id": "c2", "content": ""},
    ]
    for body in (
        _messages(USER, *answered),
        _messages(USER, {"role": "assistant", "content": ""}),  # an empty final turn
        _messages(
            {
                "role": "user",
                "content": [{"type": "text", "text": ""}, {"type": "text", "text": "x"}],
            }
        ),
    ):
        assert _post(http, body).status_code == 200, _post(http, body).text


def test_the_context_window_and_max_output_of_each_model(http: httpx.Client) -> None:
    huge = "word " * 216_000  # about 270k tokens
    haiku = _post(http, chat(huge))
    assert haiku.status_code == 400
    assert _error(haiku)["code"] == "context_length_exceeded"
    assert _error(haiku)["message"].startswith("prompt is too long: ")
    assert _error(haiku)["message"].endswith(" tokens > 200000 maximum")
    assert _post(http, {**chat(huge), "model": "claude-sonnet-4-6"}).status_code == 200  # 1M

    near = "word " * 158_000  # about 197.5k tokens: fits, but not with 8k of output
    assert _post(http, chat(near)).status_code == 200
    both = _post(http, chat(near, max_tokens=8000))
    assert both.status_code == 400 and _error(both)["param"] == "max_tokens"
    assert "exceed context limit" in _error(both)["message"]

    too_long = _post(http, chat(max_tokens=64_001))
    assert too_long.status_code == 400
    assert (
        "64001 > 64000, which is the maximum allowed number of output tokens"
        in _error(too_long)["message"]
    )


def test_claude_rules_can_be_turned_off(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    tokenhub_emulator.configure(claude_rules=False)
    assert _post(http, chat("")).status_code == 200
    assert _post(http, _messages({"role": "system", "content": "x"})).status_code == 200
    assert _post(http, chat("word " * 216_000)).status_code == 200
