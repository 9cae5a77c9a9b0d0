"""Broken and hostile servers over real loopback HTTP: bounded, typed, never hung, never
overbilled; and the key never leaves its place."""

from __future__ import annotations

import asyncio
import json
import time
import traceback
import warnings
from typing import Any

import pytest

import tokenhub_core.client as client_module
from tests.hostile import (
    HostileServer,
    chunk,
    completion,
    gzip_bomb,
    gzipped,
    head,
    huge_json,
    keepalives,
    raw,
    sse,
)
from tokenhub_core import MODELS, TokenHubClient, track_cost
from tokenhub_core._lifecycle import MAX_REPLY_BYTES
from tokenhub_core.catalog import resolve_model
from tokenhub_core.errors import (
    APIConnectionError,
    APIResponseError,
    APITimeoutError,
    AuthenticationError,
    BudgetExceededError,
    InvalidParameterError,
    StreamInterruptedError,
)
from tokenhub_core.params import estimate_tokens
from tokenhub_emulator import TokenHubEmulator

HAIKU = "claude-haiku-4-5"
USER = [{"role": "user", "content": "hello there"}]
KEY = "th-hostile-0123456789/abc+def.ghi=jkl"


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _client(server: HostileServer, **kwargs: Any) -> TokenHubClient:
    kwargs.setdefault("max_retries", 0)
    return TokenHubClient(api_key=KEY, base_url=server.base_url, **kwargs)


def call(client: TokenHubClient, mode: str, *, stream: bool = False, **params: Any) -> Any:
    params.setdefault("model", HAIKU)
    params.setdefault("messages", USER)
    if mode == "sync":
        if stream:
            s = client.stream(**params)
            list(s)
            return s.completion()
        return client.chat(**params)

    async def run() -> Any:
        if stream:
            s = client.astream(**params)
            async for _ in s:
                pass
            return s.completion()
        return await client.achat(**params)

    return asyncio.run(run())


# Encoded


@pytest.mark.parametrize("stream", [False, True], ids=["json", "event-stream"])
def test_a_gzip_encoded_reply_is_decoded(stream: bool, mode: str) -> None:
    # The pools do not ask for an encoding; a proxy in between may send one all the same.
    events = sse(chunk({"role": "assistant", "content": "zipped"}), chunk({}, "stop"), "[DONE]")
    answer = gzipped(events, "text/event-stream") if stream else gzipped(completion("zipped"))
    with HostileServer(answer) as server:
        reply = call(_client(server), mode, stream=stream)
    assert reply.choices[0].message.content == "zipped"


# Bounded


@pytest.mark.parametrize(
    ("answer", "stream"),
    [
        (huge_json(1 << 30), False),  # a 1 GB JSON body
        (gzip_bomb(200 << 20), False),  # 200 KB of gzip that expands to 200 MB
        (gzip_bomb(200 << 20), True),  # the same answering a stream=true request
    ],
    ids=["1GB-json", "gzip-bomb", "gzip-bomb-for-a-stream"],
)
def test_a_reply_larger_than_any_legal_one_is_cut_and_typed(
    answer: Any, stream: bool, mode: str
) -> None:
    with (
        HostileServer(answer) as server,
        track_cost() as meter,
        pytest.raises(APIResponseError, match="larger than"),
    ):
        call(_client(server), mode, stream=stream)
    assert server.bytes_sent[0] < 300 << 20  # reading stopped long before the end
    assert meter.calls == meter.estimated_calls == 1  # a 200 the server may bill


def test_the_cap_is_above_the_largest_legal_reply() -> None:
    biggest = max(m.max_output_tokens for m in MODELS.values())
    # One JSON body of the longest reply, every character escaped as \\uXXXX.
    assert biggest * 4 * 6 < MAX_REPLY_BYTES


@pytest.mark.parametrize("timeout", [1.0, 10.0])
def test_keepalives_cannot_keep_an_attempt_alive_past_its_deadline(
    timeout: float, mode: str
) -> None:
    with HostileServer(keepalives(0.1)) as server:
        client = _client(server, timeout=timeout, deadline=1.0)
        with pytest.raises((APITimeoutError, StreamInterruptedError), match="deadline"):
            call(client, mode, stream=True)


def test_a_trickling_json_body_is_cut_at_the_deadline(mode: str) -> None:
    def trickle(body: dict[str, Any], sock: Any) -> None:
        sock.sendall(head(content_length="100000"))
        for _ in range(1000):
            sock.sendall(b" ")
            time.sleep(0.05)

    with HostileServer(trickle) as server, pytest.raises(APITimeoutError, match="deadline"):
        call(_client(server, timeout=5, deadline=0.5), mode)


# Typed


@pytest.mark.parametrize("depth", [500, 5000, 100_000])
def test_deeply_nested_json_is_a_typed_error(depth: int, mode: str) -> None:
    nested = "[" * depth + "]" * depth
    body = f'{{"id": "x", "choices": [], "nested": {nested}}}'.encode()
    answer = raw(head(content_length=str(len(body))) + body)
    with HostileServer(answer) as server, pytest.raises(APIResponseError):
        call(_client(server), mode)
    event = sse(f'{{"id": "x", "choices": [], "nested": {nested}}}')
    answer = raw(head(content_type="text/event-stream") + event)
    with HostileServer(answer) as server, pytest.raises(APIResponseError):
        call(_client(server), mode, stream=True)


# The meter believes only what it checked


def test_a_stream_that_never_reports_usage_counts_at_its_worst_case(mode: str) -> None:
    events = sse(chunk({"role": "assistant", "content": "hi"}), chunk({}, finish="stop"), "[DONE]")
    worst = resolve_model(HAIKU).cost_usd(estimate_tokens(USER), 100)  # type: ignore[union-attr]
    with HostileServer(raw(head(content_type="text/event-stream") + events)) as server:
        client = _client(server)
        with track_cost(budget_usd=float(worst * 5)) as meter:
            completed = _until_refused(lambda: call(client, mode, stream=True, max_tokens=100))
    assert completed == 5  # the budget stopped the loop
    assert meter.calls == meter.estimated_calls == 5
    assert meter.total == worst * 5


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": -1_000_000, "completion_tokens": 5},
        {"prompt_tokens": 10, "completion_tokens": 10_000_000},
    ],
    ids=["negative", "over-max_tokens"],
)
def test_usage_that_cannot_be_true_is_a_server_fault_charged_at_the_worst_case(
    usage: dict[str, int], tokenhub_emulator: TokenHubEmulator, mode: str
) -> None:
    client = TokenHubClient(max_retries=0)
    worst = resolve_model(HAIKU).cost_usd(estimate_tokens(USER), 100)  # type: ignore[union-attr]
    for stream in (False, True):
        tokenhub_emulator.queue_reply("ok", usage=usage)
        with track_cost(budget_usd=0.01) as meter:
            with pytest.raises(APIResponseError, match="cannot be true"):
                call(client, mode, stream=stream, max_tokens=100)
            assert meter.total == worst and meter.estimated_calls == 1
            assert meter.remaining_usd is not None and meter.remaining_usd < 0.01


def _until_refused(make_call: Any) -> int:
    for done in range(100):
        try:
            make_call()
        except BudgetExceededError:
            return done
    return 100


# The key stays hidden


@pytest.mark.parametrize(
    "base_url",
    [
        f"https://{KEY}@gateway.test/api/v1",
        f"https://user:{KEY}@gateway.test/api/v1",
        f"https://gateway.test/api/v1?key={KEY}",
    ],
)
def test_credentials_in_the_base_url_are_refused_without_showing_them(base_url: str) -> None:
    with pytest.raises(InvalidParameterError) as caught:
        TokenHubClient(base_url=base_url)
    assert "0123456789" not in str(caught.value) and caught.value.param == "base_url"


def test_plain_http_warns_once_except_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "_warned_plain_http", set())
    messages = [{"role": "user", "content": "x"}]
    client = TokenHubClient(api_key=KEY, base_url="http://gateway.test/api/v1", max_retries=0)
    with pytest.warns(UserWarning, match="clear text"), pytest.raises(APIConnectionError):
        client.chat(model=HAIKU, messages=messages)  # gateway.test is off limits in the suite
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(APIConnectionError):
            client.chat(model=HAIKU, messages=messages)  # warned once only
        loopback = TokenHubClient(api_key=KEY, base_url="http://127.0.0.1:9/api/v1", max_retries=0)
        with pytest.raises(APIConnectionError):
            loopback.chat(model=HAIKU, messages=messages)


def test_traceback_locals_never_show_the_key(tokenhub_emulator: TokenHubEmulator) -> None:
    tokenhub_emulator.fail_next(401)
    client = TokenHubClient(api_key=KEY, max_retries=0)
    with pytest.raises(AuthenticationError) as caught:
        client.chat(model=HAIKU, messages=USER)
    text = "".join(
        traceback.TracebackException.from_exception(caught.value, capture_locals=True).format()
    )
    assert "life = " in text and "send = " in text  # the locals are shown, the request too
    assert KEY not in text and "0123456789" not in text


def test_a_key_read_from_a_file_with_its_newline_works(
    tokenhub_emulator: TokenHubEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKENHUB_API_KEY", tokenhub_emulator.api_key + "\n")
    assert TokenHubClient().chat(model=HAIKU, messages=USER).choices
    assert (
        TokenHubClient(api_key=f"  {tokenhub_emulator.api_key}\r\n")
        .chat(model=HAIKU, messages=USER)
        .choices
    )


@pytest.mark.parametrize("bad", ["th-abc\ndef", "th-abc def", "th-ключ"])
def test_an_unusable_key_is_refused_at_once_without_showing_it(
    bad: str, tokenhub_emulator: TokenHubEmulator
) -> None:
    with pytest.raises(InvalidParameterError) as caught:
        TokenHubClient(api_key=bad)
    assert bad not in str(caught.value) and caught.value.param == "api_key"
    assert tokenhub_emulator.requests == []


def test_a_long_reply_within_the_cap_is_read_whole(tokenhub_emulator: TokenHubEmulator) -> None:
    text = "word " * 20_000
    tokenhub_emulator.queue_reply(text, usage={"prompt_tokens": 5, "completion_tokens": 20_000})
    reply = TokenHubClient().chat(model=HAIKU, messages=USER, max_tokens=20_000)
    assert reply.choices[0].message.content == text
    assert json.loads(reply.model_dump_json())["usage"]["completion_tokens"] == 20_000


def test_a_growing_usage_seen_before_the_end_is_not_taken_as_final(mode: str) -> None:
    """Some servers send usage-so-far on every chunk: leaving early, the call is not that cheap."""
    growing = {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}
    events = sse(*({**chunk({"content": "x"}), "usage": growing} for _ in range(3)))
    answer = raw(head(content_type="text/event-stream") + events + b": more to come\n\n")
    worst = resolve_model(HAIKU).cost_usd(estimate_tokens(USER), 100)  # type: ignore[union-attr]
    with HostileServer(answer) as server, track_cost() as meter:
        client = _client(server)
        if mode == "sync":
            stream = client.stream(model=HAIKU, messages=USER, max_tokens=100)
            next(iter(stream))
            stream.close()
        else:

            async def leave() -> None:
                stream = client.astream(model=HAIKU, messages=USER, max_tokens=100)
                await stream.__anext__()
                await stream.aclose()

            asyncio.run(leave())
    assert meter.calls == meter.estimated_calls == 1 and meter.total == worst
