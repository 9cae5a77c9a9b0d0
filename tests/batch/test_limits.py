"""The governor's decisions on a fake clock, and the adaptive concurrency window."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

from tokenhub_core.batch import AdaptiveLimit, BatchGovernor


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _sends(governor: BatchGovernor, clock: Clock, n: int, tokens: int = 10) -> list[float]:
    """Admit n requests as fast as asked; the times at which each may be sent."""
    times = []
    for _ in range(n):
        admission = governor.admit(tokens, None)
        assert admission.kind == "go"
        times.append(clock.now + admission.delay)
    return times


def _most_in_a_minute(times: list[float]) -> int:
    return max(sum(1 for u in times if t <= u < t + 60) for t in times)


def test_requests_are_paced_evenly_and_no_minute_holds_more_than_rpm() -> None:
    clock = Clock()
    governor = BatchGovernor(rpm=120, clock=clock)
    times = _sends(governor, clock, 600)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.5  # no burst, even at the start
    assert _most_in_a_minute(times) == 119  # the cap, less the headroom kept for jitter
    assert times[-1] - times[0] < 600 / 120 * 60 * 1.02  # and close to the cap overall


def test_tokens_per_minute_count_the_estimate_then_the_real_usage() -> None:
    clock = Clock()
    governor = BatchGovernor(tpm=1000, clock=clock)
    first = governor.admit(600, None)
    second = governor.admit(600, None)
    assert first.delay == 0 and second.delay == pytest.approx(60.6)  # 1,200 would pass 1,000
    governor = BatchGovernor(tpm=1000, clock=clock)
    first = governor.admit(600, None)
    governor.settle(first.ticket, model_id="m", input_tokens=50, output_tokens=50)
    assert governor.admit(600, None).delay == 0  # the first one really used 100
    refused = governor.admit(5000, None)
    assert refused.kind == "refuse" and refused.param == "max_tokens"
    assert "5000 tokens, more than tpm=1000" in refused.reason


def test_retry_after_pauses_every_sender() -> None:
    clock = Clock()
    governor = BatchGovernor(clock=clock)
    governor.pause(2.5)
    assert governor.admit(10, None).delay == 2.5
    clock.now += 3
    assert governor.admit(10, None).delay == 0


def test_the_budget_holds_worst_cases_waits_for_them_then_stops() -> None:
    clock = Clock()
    governor = BatchGovernor(budget_usd=1.0, clock=clock)
    a = governor.admit(10, Decimal("0.4"))
    b = governor.admit(10, Decimal("0.4"))
    assert a.kind == b.kind == "go"
    assert governor.admit(10, Decimal("0.4")).kind == "wait"  # 1.2 if all cost their worst
    governor.settle(a.ticket, model_id="m", input_tokens=5, output_tokens=5, cost=Decimal("0.1"))
    c = governor.admit(10, Decimal("0.4"))
    assert c.kind == "go"  # 0.1 spent + 0.4 + 0.4 held
    governor.settle(b.ticket, model_id="m", cost=Decimal("0.4"))
    governor.settle(c.ticket, model_id="m", cost=Decimal("0.4"))
    assert governor.admit(10, Decimal("0.4")).kind == "stop"  # 0.9 spent, nothing in flight
    assert governor.spent == Decimal("0.9") and governor.tally.by_model["m"].calls == 3
    unpriced = governor.admit(10, None)
    assert unpriced.kind == "refuse" and unpriced.param == "model"


@pytest.mark.parametrize("bad", [0, -5.0])
def test_caps_must_be_positive(bad: float) -> None:
    with pytest.raises(ValueError, match=rf"rpm must be a positive number or None, got {bad}"):
        BatchGovernor(rpm=bad)
    with pytest.raises(ValueError, match="max_concurrency must be a positive integer"):
        AdaptiveLimit(0)


async def test_the_window_shrinks_on_overload_and_grows_back() -> None:
    limit = AdaptiveLimit(8, cooldown_s=0)
    limit.overloaded()
    limit.overloaded()
    assert limit.limit == 4.5 and limit.cuts == 2
    for _ in range(40):
        await limit.succeeded()
    assert limit.limit == 8
    for _ in range(20):
        limit.overloaded()
    assert limit.limit == 1  # never below one
    slow = AdaptiveLimit(8, cooldown_s=60)
    slow.overloaded()
    slow.overloaded()  # the same wave of 429s: counted once
    assert slow.limit == 6
