"""One call's lifecycle over real loopback HTTP: holds released once, every call priced once,
abandoned streams closed and metered, threads metered, no hang whatever the collector does."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest

import tokenhub_core.client as client_module
from tests.hostile import open_connections_to
from tokenhub_core import BudgetExceededError, TokenHubClient, track_cost
from tokenhub_core.catalog import price_call, resolve_model
from tokenhub_core.errors import APIConnectionError, APITimeoutError, RateLimitError
from tokenhub_core.params import estimate_tokens
from tokenhub_emulator import TokenHubEmulator

HAIKU = "claude-haiku-4-5"
USER = [{"role": "user", "content": "hello there"}]
# A prompt whose streamed echo spans several network writes: usage comes last, in a later one.
LONG = [{"role": "user", "content": "tell me everything about the orchard " * 60}]


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def client(tokenhub_emulator: TokenHubEmulator) -> TokenHubClient:
    return TokenHubClient(max_retries=0)


def _port(emulator: TokenHubEmulator) -> int:
    return emulator.port


def _wait_for(condition: Any, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return bool(condition())


# Holds are released exactly once, on every exit


async def test_a_cancelled_call_leaves_nothing_in_flight(
    client: TokenHubClient, tokenhub_emulator: TokenHubEmulator
) -> None:
    tokenhub_emulator.latency_ms = 1000
    with track_cost(budget_usd=0.01) as meter:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.achat(model=HAIKU, messages=USER, max_tokens=100), 0.2)
        assert meter.in_flight_usd == 0
        # The request had been sent: the server may bill it, so it counts, at its worst case.
        assert meter.calls == meter.estimated_calls == 1
        tokenhub_emulator.latency_ms = 0
        for _ in range(3):  # and later calls are not refused
            await client.achat(model=HAIKU, messages=USER, max_tokens=100)
        assert meter.calls == 4 and meter.in_flight_usd == 0


async def test_a_task_cancelled_while_waiting_to_retry_is_charged_nothing(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    tokenhub_emulator.fail_next(429, headers={"Retry-After": "30"})
    client = TokenHubClient(max_retries=2)
    with track_cost(budget_usd=0.01) as meter:
        task = asyncio.create_task(client.achat(model=HAIKU, messages=USER, max_tokens=100))
        assert await asyncio.to_thread(
            _wait_for, lambda: [r.status for r in tokenhub_emulator.requests] == [429]
        )
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert meter.in_flight_usd == 0 and meter.calls == 0  # a 429 is never billed


def test_keyboard_interrupt_during_a_retry_wait_releases_the_hold(
    tokenhub_emulator: TokenHubEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(client_module, "_sleep", interrupted)
    tokenhub_emulator.fail_next(503)
    client = TokenHubClient(max_retries=2)
    with track_cost(budget_usd=0.01) as meter:
        with pytest.raises(KeyboardInterrupt):
            client.chat(model=HAIKU, messages=USER, max_tokens=100)
        assert meter.in_flight_usd == 0 and meter.calls == 0
        monkeypatch.setattr(client_module, "_sleep", time.sleep)
        client.chat(model=HAIKU, messages=USER, max_tokens=100)
        assert meter.calls == 1 and meter.estimated_calls == 0


# Abandoned streams are calls


def _abandon(client: TokenHubClient, mode: str, **params: Any) -> None:
    if mode == "sync":
        stream = client.stream(model=HAIKU, messages=LONG, **params)
        next(iter(stream))
        stream.close()
    else:

        async def run() -> None:
            stream = client.astream(model=HAIKU, messages=LONG, **params)
            await stream.__anext__()
            await stream.aclose()

        asyncio.run(run())


def test_streams_closed_early_are_metered_and_stopped_by_a_budget(
    client: TokenHubClient, tokenhub_emulator: TokenHubEmulator, mode: str
) -> None:
    tokenhub_emulator.slow_drip(0.01, times=1000)  # so the usage is still to come when we leave
    with track_cost() as meter:
        for _ in range(100 if mode == "sync" else 20):
            _abandon(client, mode, max_tokens=500)
    expected = 100 if mode == "sync" else 20
    # Usage had not arrived: each counts at its worst case, marked as an estimate.
    assert meter.calls == meter.estimated_calls == expected
    assert meter.total >= tokenhub_emulator.ledger().total_usd  # never below what was billed

    prompt = estimate_tokens(LONG)
    worst = resolve_model(HAIKU).cost_usd(prompt, 500)  # type: ignore[union-attr]
    budget = float(worst * 5)
    with track_cost(budget_usd=budget) as meter:
        refused_after = _until_refused(lambda: _abandon(client, mode, max_tokens=500))
    assert refused_after == 5
    assert meter.calls == 5 and meter.total_usd <= budget


def test_a_stream_closed_after_its_usage_is_metered_exactly(
    client: TokenHubClient, tokenhub_emulator: TokenHubEmulator
) -> None:
    with track_cost() as meter:
        stream = client.stream(model=HAIKU, messages=USER)
        for _chunk in stream:
            if stream.usage is not None:
                break
        stream.close()
    # (An abandoned stream of an earlier test may still be billed meanwhile: match by id.)
    billed = [e for e in tokenhub_emulator.ledger().entries if e.request_id == stream.request_id]
    assert meter.calls == 1 and meter.estimated_calls == 0
    assert [meter.total] == [e.cost_usd for e in billed]


def _until_refused(make_call: Any) -> int:
    for done in range(100):
        try:
            make_call()
        except BudgetExceededError:
            return done
    return 100


# One pricing rule


def test_a_dated_model_id_is_priced_like_its_catalog_entry(
    client: TokenHubClient, tokenhub_emulator: TokenHubEmulator, mode: str
) -> None:
    tokenhub_emulator.queue_reply(
        "ok",
        model="claude-haiku-4-5-20251001",
        usage={"prompt_tokens": 1000, "completion_tokens": 10},
    )
    with track_cost() as meter:
        if mode == "sync":
            completion = client.chat(model=HAIKU, messages=USER)
        else:
            completion = asyncio.run(client.achat(model=HAIKU, messages=USER))
    assert completion.model == "claude-haiku-4-5-20251001"
    model_id, cost = price_call(HAIKU, completion.model, 1000, 10)
    assert list(meter.by_model) == [model_id] == ["anthropic/claude-haiku-4-5"]
    assert meter.total == cost == Decimal("0.00105")


# Plain threads


def test_calls_from_a_thread_pool_are_metered_and_budgeted(
    client: TokenHubClient, tokenhub_emulator: TokenHubEmulator
) -> None:
    def ask(_: int) -> str:
        return client.chat(model=HAIKU, messages=USER, max_tokens=50).id

    with track_cost() as meter, ThreadPoolExecutor(4) as pool:
        list(pool.map(ask, range(8)))
    assert meter.calls == 8 and meter.total == tokenhub_emulator.ledger().total_usd

    worst = resolve_model(HAIKU).cost_usd(10, 50)  # type: ignore[union-attr]
    with (
        track_cost(budget_usd=float(worst * 3)) as meter,
        ThreadPoolExecutor(2) as pool,
        pytest.raises(BudgetExceededError),
    ):
        list(pool.map(ask, range(40)))
    assert meter.calls < 40 and meter.total <= worst * 3

    with track_cost(threads=False) as private, ThreadPoolExecutor(2) as pool:
        list(pool.map(ask, range(2)))
        client.chat(model=HAIKU, messages=USER, max_tokens=50)
    assert private.calls == 1  # only this context's own call


# Abandoned streams close their connection promptly, whatever the collector does


@pytest.mark.parametrize("collector", ["default", "off", "forced"])
def test_breaking_out_of_sync_streams_never_hangs_or_leaks(
    client: TokenHubClient, tokenhub_emulator: TokenHubEmulator, collector: str
) -> None:
    was_enabled = gc.isenabled()
    before = open_connections_to(tokenhub_emulator.port)  # idle ones other tests left
    if collector == "off":
        gc.disable()
    try:
        with track_cost() as meter:
            for i in range(1000):
                for _chunk in client.stream(model=HAIKU, messages=USER, max_tokens=20):
                    break
                if collector == "forced":
                    # The young generation every time (where the abandoned stream is), the
                    # whole heap every 100 (a full collection costs ~0.1 s here).
                    gc.collect(0 if i % 100 else 2)
                if i % 100 == 0:
                    assert open_connections_to(tokenhub_emulator.port) <= before
        assert meter.in_flight_usd == 0
        assert meter.calls == 1000
    finally:
        if was_enabled:
            gc.enable()


def test_a_stream_in_a_reference_cycle_collected_inside_the_pool_lock_does_not_deadlock(
    client: TokenHubClient, tokenhub_emulator: TokenHubEmulator
) -> None:
    before = open_connections_to(tokenhub_emulator.port)
    thresholds = gc.get_threshold()
    gc.set_threshold(1, 1, 1)  # collect at almost every allocation, inside locks included
    try:
        with track_cost() as meter:
            for _ in range(60):
                stream: Any = client.stream(model=HAIKU, messages=USER, max_tokens=20)
                next(iter(stream))
                stream.cycle = stream  # only the collector can free it now
                del stream
                client.chat(model=HAIKU, messages=USER, max_tokens=20)
        gc.collect()
        assert meter.calls == 120 and meter.in_flight_usd == 0
    finally:
        gc.set_threshold(*thresholds)
    assert _wait_for(lambda: open_connections_to(tokenhub_emulator.port) <= before + 1)


def test_a_loop_body_that_raises_closes_the_stream(
    client: TokenHubClient, tokenhub_emulator: TokenHubEmulator
) -> None:
    before = open_connections_to(tokenhub_emulator.port)
    gc.disable()
    try:
        for _ in range(20):
            with pytest.raises(ValueError):  # noqa: PT012 - raised from the loop body
                for _chunk in client.stream(model=HAIKU, messages=USER):
                    raise ValueError("boom")
        assert open_connections_to(tokenhub_emulator.port) <= before
    finally:
        gc.enable()


async def test_breaking_out_of_async_streams_closes_them_promptly(
    client: TokenHubClient, tokenhub_emulator: TokenHubEmulator
) -> None:
    await client.achat(model=HAIKU, messages=USER)  # the loop's pool is up
    before = open_connections_to(tokenhub_emulator.port)
    tokenhub_emulator.slow_drip(0.2, times=20)  # the server is still sending when we leave
    with track_cost() as meter:
        for _ in range(20):
            async for _chunk in client.astream(model=HAIKU, messages=USER):
                break
        for _ in range(50):  # the event loop runs the closes it scheduled
            await asyncio.sleep(0.02)
            if open_connections_to(tokenhub_emulator.port) <= before:
                break
        assert open_connections_to(tokenhub_emulator.port) <= before
        assert meter.calls == 20 and meter.in_flight_usd == 0


# A read timeout is a call the server may have answered


def test_an_attempt_that_timed_out_is_charged_when_it_is_retried(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    tokenhub_emulator.delay_headers(1.5)
    client = TokenHubClient(max_retries=1, timeout=0.3)
    with track_cost() as meter:
        client.chat(model=HAIKU, messages=USER, max_tokens=50)
    assert tokenhub_emulator.ledger().calls == 2  # the server billed both attempts
    assert meter.calls == 2 and meter.estimated_calls == 1
    assert meter.total >= tokenhub_emulator.ledger().total_usd


def test_transport_errors_are_chained_to_their_cause() -> None:
    client = TokenHubClient(base_url="http://127.0.0.1:9/api/v1", api_key="th-x", max_retries=0)
    with pytest.raises(APIConnectionError) as caught:
        client.chat(model=HAIKU, messages=USER)
    assert caught.value.__cause__ is not None
    assert type(caught.value.__cause__).__module__.startswith("httpx")


def test_retry_budget_is_checked_again_after_a_charged_attempt(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    tokenhub_emulator.delay_headers(1.0)
    worst = resolve_model(HAIKU).cost_usd(10, 1000)  # type: ignore[union-attr]
    client = TokenHubClient(max_retries=2, timeout=0.2)
    with track_cost(budget_usd=float(worst * Decimal("1.5"))) as meter:
        with pytest.raises(BudgetExceededError) as caught:
            client.chat(model=HAIKU, messages=USER, max_tokens=1000)
        assert isinstance(caught.value.__context__, (APITimeoutError, RateLimitError)) or (
            caught.value.__context__ is None
        )
        assert meter.in_flight_usd == 0 and meter.calls == meter.estimated_calls == 1


def test_threads_and_meters_are_independent_per_thread_when_asked(
    client: TokenHubClient,
) -> None:
    seen: dict[str, int] = {}

    def own_meter(name: str) -> None:
        with track_cost(threads=False) as meter:
            client.chat(model=HAIKU, messages=USER, max_tokens=20)
        seen[name] = meter.calls

    threads = [threading.Thread(target=own_meter, args=(str(i),)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {"0": 1, "1": 1, "2": 1}


def _chunks(stream: Iterator[Any]) -> int:
    return sum(1 for _ in stream)
