"""Admission for a batch: request and token rate caps, Retry-After pauses, the budget, the tally.

`BatchGovernor` is plain synchronous state with its own clock, so one instance serves the tasks of
one process, or, wrapped in a Ray actor, every worker of a cluster. `AdaptiveLimit` is the
per-process concurrency window that shrinks on overload and grows back.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from html import escape
from typing import Literal

from tokenhub_core.cost import ModelSpend

__all__ = ["AdaptiveLimit", "Admission", "BatchGovernor", "CostTally"]

WINDOW_S = 60.0
# Pace a little under the caps, so that a few hundred ms of network jitter cannot put one request
# too many into the gateway's minute.
HEADROOM = 0.01
_ZERO = Decimal(0)
DECREASE = 0.75


@dataclass
class CostTally:
    """Calls, tokens and USD per model: picklable, and mergeable across workers."""

    by_model: dict[str, ModelSpend] = field(default_factory=dict)

    def add(self, model_id: str, input_tokens: int, output_tokens: int, cost: Decimal) -> None:
        spend = self.by_model.setdefault(model_id, ModelSpend())
        spend.calls += 1
        spend.input_tokens += input_tokens
        spend.output_tokens += output_tokens
        spend.cost += cost

    def merge(self, other: CostTally) -> None:
        for model_id, spend in other.by_model.items():
            mine = self.by_model.setdefault(model_id, ModelSpend())
            mine.calls += spend.calls
            mine.input_tokens += spend.input_tokens
            mine.output_tokens += spend.output_tokens
            mine.cost += spend.cost

    @property
    def calls(self) -> int:
        return sum(s.calls for s in self.by_model.values())

    @property
    def total(self) -> Decimal:
        return sum((s.cost for s in self.by_model.values()), _ZERO)

    @property
    def total_usd(self) -> float:
        return float(self.total)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td><code>{escape(model)}</code></td><td>{s.calls}</td><td>{s.input_tokens:,}</td>"
            f"<td>{s.output_tokens:,}</td><td>${s.cost:.6f}</td></tr>"
            for model, s in sorted(self.by_model.items())
        )
        return (
            "<table><thead><tr><th>model</th><th>calls</th><th>input tokens</th>"
            f"<th>output tokens</th><th>USD</th></tr></thead><tbody>{rows}"
            f"<tr><th>total</th><th>{self.calls}</th><th></th><th></th>"
            f"<th>${self.total:.6f}</th></tr></tbody></table>"
        )


@dataclass(frozen=True)
class Admission:
    """The answer to "may I send this request?".

    ``go``: send after ``delay`` seconds (at ``at`` on the governor's clock), then
    `BatchGovernor.settle` the ``ticket``. ``wait``: the
    budget is held by requests in flight; ask again shortly. ``stop``: the budget is spent.
    ``refuse``: this request can never be admitted (``param`` is the cause, ``reason`` says why).
    """

    kind: Literal["go", "wait", "stop", "refuse"]
    ticket: int = 0
    delay: float = 0.0
    at: float = 0.0
    param: str = ""
    reason: str = ""


class BatchGovernor:
    """One batch's shared limits: RPM pacing, a TPM window, Retry-After pauses, a budget.

    Requests are paced evenly, at least ``60 / rpm`` seconds apart (no bursts), so no 60-second
    window holds more than ``rpm`` of them. Tokens are counted at admission as the estimate (prompt
    plus ``max_tokens``) and corrected to the reported usage at settlement. The budget follows
    `track_cost`'s rule: a request is admitted only if the spend, plus the worst case of every
    request in flight, plus its own worst case, stays within the budget.
    """

    def __init__(
        self,
        *,
        rpm: float | None = None,
        tpm: float | None = None,
        budget_usd: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        for name, value in (("rpm", rpm), ("tpm", tpm), ("budget_usd", budget_usd)):
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be a positive number or None, got {value!r}")
        self.rpm = rpm
        self.tpm = tpm
        self.budget_usd = budget_usd
        self._budget = None if budget_usd is None else Decimal(str(budget_usd))
        self._clock = clock
        window = WINDOW_S * (1 + HEADROOM)
        self._window = window
        self._interval = 0.0 if rpm is None else window / rpm
        self._next_slot = 0.0
        self._paused_until = 0.0
        self._tokens: deque[list[float]] = deque()  # [slot, tokens, ticket], in slot order
        self._tokens_by_ticket: dict[int, list[float]] = {}
        self._tokens_in_window = 0.0
        self._held: dict[int, Decimal] = {}
        self._held_total = _ZERO
        self._tickets = 0
        self.spent = _ZERO
        self.tally = CostTally()
        self.requests = 0

    def admit(self, tokens: int, worst_usd: Decimal | None) -> Admission:
        """Reserve the next send slot for a request of about ``tokens`` tokens."""
        if self._budget is not None:
            if worst_usd is None:
                return Admission(
                    "refuse",
                    param="model",
                    reason="not in the price catalog, so a budget cannot cover it",
                )
            if self.spent + self._held_total + worst_usd > self._budget:
                return Admission("wait" if self._held else "stop")
        if self.tpm is not None and tokens > self.tpm:
            return Admission(
                "refuse",
                param="max_tokens",
                reason=f"the row may use {tokens} tokens, more than tpm={self.tpm:g}",
            )
        now = self._clock()
        slot = max(now, self._next_slot, self._paused_until)
        if self.tpm is not None:
            slot = self._tpm_slot(slot, tokens)
        self._next_slot = slot + self._interval
        self._tickets += 1
        ticket = self._tickets
        if self._budget is not None and worst_usd is not None:
            self._held[ticket] = worst_usd
            self._held_total += worst_usd
        if self.tpm is not None:
            entry = [slot, float(tokens), float(ticket)]
            self._tokens.append(entry)
            self._tokens_by_ticket[ticket] = entry
            self._tokens_in_window += tokens
        self.requests += 1
        return Admission("go", ticket=ticket, delay=slot - now, at=slot)

    def _tpm_slot(self, slot: float, tokens: int) -> float:
        assert self.tpm is not None
        while self._tokens and self._tokens[0][0] <= slot - self._window:
            self._forget(self._tokens.popleft())
        used = self._tokens_in_window
        for entry in self._tokens:
            if used + tokens <= self.tpm:
                break
            used -= entry[1]
            slot = max(slot, entry[0] + self._window)
        return slot

    def _forget(self, entry: list[float]) -> None:
        self._tokens_in_window -= entry[1]
        self._tokens_by_ticket.pop(int(entry[2]), None)

    def settle(
        self,
        ticket: int,
        *,
        model_id: str | None = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost: Decimal | None = None,
    ) -> None:
        """The request of ``ticket`` is over: release its budget hold, record what it used."""
        worst = self._held.pop(ticket, None)
        if worst is not None:
            self._held_total -= worst
        if model_id is None:
            return
        entry = self._tokens_by_ticket.get(ticket)
        if entry is not None:
            used = float(input_tokens + output_tokens)
            self._tokens_in_window += used - entry[1]
            entry[1] = used
        if cost is not None:
            self.spent += cost
        self.tally.add(model_id, input_tokens, output_tokens, cost or _ZERO)

    def pause(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (a server's Retry-After)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    def state(self) -> tuple[Decimal, CostTally, int]:
        """The spend, the tally and the number of requests admitted, for a summary."""
        return self.spent, self.tally, self.requests


class AdaptiveLimit:
    """How many requests one process keeps in flight: cut on overload, grown back on success.

    Additive increase, multiplicative decrease: each success adds ``1 / limit`` (one more slot per
    window of successes); an overload (429, 529, 503) cuts it by a quarter, at most once per
    ``cooldown_s`` so that one wave of rejections counts once. A quarter, not TCP's half: isolated
    429s (10% of requests) then leave about 90% of the throughput, while a rate limit that keeps
    answering 429 still brings 64 slots down to 1 within 15 seconds.
    """

    def __init__(self, maximum: int, cooldown_s: float = 1.0) -> None:
        if not isinstance(maximum, int) or isinstance(maximum, bool) or maximum < 1:
            raise ValueError(f"max_concurrency must be a positive integer, got {maximum!r}")
        self.maximum = maximum
        self.limit = float(maximum)
        self.lowest = float(maximum)
        self.cuts = 0
        self._cooldown_s = cooldown_s
        self._cut_until = 0.0
        self._in_flight = 0
        self._changed = asyncio.Condition()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def acquire(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._in_flight < int(self.limit))
            self._in_flight += 1

    async def release(self) -> None:
        async with self._changed:
            self._in_flight -= 1
            self._changed.notify_all()

    async def succeeded(self) -> None:
        if self.limit < self.maximum:
            async with self._changed:
                self.limit = min(float(self.maximum), self.limit + 1 / self.limit)
                self._changed.notify_all()

    def overloaded(self) -> None:
        now = time.monotonic()
        if now >= self._cut_until:
            self.limit = max(1.0, self.limit * DECREASE)
            self.lowest = min(self.lowest, self.limit)
            self.cuts += 1
            self._cut_until = now + self._cooldown_s
