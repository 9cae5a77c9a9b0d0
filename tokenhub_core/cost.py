"""Spend metering and budgets: ``with track_cost(budget_usd=...) as meter:``.

The client reports every successful call to the meters active in the caller's context
(`contextvars`, so asyncio tasks and context-copying thread pools inherit them). Amounts are kept
as exact `Decimal`s and shown as floats.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal
from html import escape

from tokenhub_core.catalog import canonical_model_id, resolve_model
from tokenhub_core.errors import BudgetExceededError
from tokenhub_core.wire import Usage

__all__ = ["CallMeters", "CostMeter", "ModelSpend", "track_cost"]

_ZERO = Decimal(0)
_active_meters: ContextVar[tuple[CostMeter, ...]] = ContextVar("tokenhub_cost_meters", default=())


@dataclass
class ModelSpend:
    """What one model cost inside a meter."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: Decimal = _ZERO

    @property
    def total_usd(self) -> float:
        return float(self.cost)


class CostMeter:
    """Calls, tokens and USD of the successful calls made while it was active."""

    def __init__(self, budget_usd: float | None = None) -> None:
        if budget_usd is not None and budget_usd < 0:
            raise ValueError(f"budget_usd must be >= 0, got {budget_usd!r}")
        self.budget_usd = budget_usd
        self._budget = None if budget_usd is None else Decimal(str(budget_usd))
        self._lock = threading.Lock()
        self._reserved = _ZERO
        self.total = _ZERO
        self.calls = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.by_model: dict[str, ModelSpend] = {}

    @property
    def total_usd(self) -> float:
        return float(self.total)

    @property
    def remaining_usd(self) -> float | None:
        return None if self._budget is None else float(self._budget - self.total)

    def _reserve(self, model: str, worst: Decimal | None) -> None:
        if self._budget is None:
            return
        with self._lock:
            if worst is None:
                raise BudgetExceededError(
                    f"cannot hold model {model!r} to the budget: it is not in the price catalog",
                    budget_usd=float(self._budget),
                    spent_usd=float(self.total),
                    worst_case_usd=float("inf"),
                )
            committed = self.total + self._reserved
            if committed + worst > self._budget:
                raise BudgetExceededError(
                    f"budget of ${self._budget} would be exceeded: spent ${self.total:.6f}"
                    f" (+${self._reserved:.6f} in flight), this call may cost up to ${worst:.6f}."
                    " Nothing was sent.",
                    budget_usd=float(self._budget),
                    spent_usd=float(self.total),
                    worst_case_usd=float(worst),
                )
            self._reserved += worst

    def _release(self, worst: Decimal | None) -> None:
        if self._budget is not None and worst is not None:
            with self._lock:
                self._reserved -= worst

    def _record(self, model_id: str, usage: Usage | None, cost: Decimal) -> None:
        prompt = usage.prompt_tokens if usage else 0
        completion = usage.completion_tokens if usage else 0
        with self._lock:
            self.calls += 1
            self.input_tokens += prompt
            self.output_tokens += completion
            self.total += cost
            spend = self.by_model.setdefault(model_id, ModelSpend())
            spend.calls += 1
            spend.input_tokens += prompt
            spend.output_tokens += completion
            spend.cost += cost

    def __repr__(self) -> str:
        budget = "" if self._budget is None else f", budget_usd={self.budget_usd}"
        return (
            f"CostMeter(calls={self.calls}, input_tokens={self.input_tokens}, "
            f"output_tokens={self.output_tokens}, total_usd={self.total_usd:.6f}{budget})"
        )

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td><code>{escape(model)}</code></td><td>{s.calls}</td><td>{s.input_tokens:,}</td>"
            f"<td>{s.output_tokens:,}</td><td>${s.cost:.6f}</td></tr>"
            for model, s in sorted(self.by_model.items())
        )
        total = (
            f"<tr><th>total</th><th>{self.calls}</th><th>{self.input_tokens:,}</th>"
            f"<th>{self.output_tokens:,}</th><th>${self.total:.6f}</th></tr>"
        )
        budget = "" if self._budget is None else f"<p>budget: ${self._budget} </p>"
        return (
            "<table><thead><tr><th>model</th><th>calls</th><th>input tokens</th>"
            f"<th>output tokens</th><th>USD</th></tr></thead><tbody>{rows}{total}</tbody></table>"
            + budget
        )


@contextmanager
def track_cost(budget_usd: float | None = None) -> Iterator[CostMeter]:
    """Meter every successful TokenHub call made inside the block; optionally cap the spend.

    With a budget, a call whose worst case (estimated prompt tokens at the input price plus
    ``max_tokens`` at the output price) would take the spend past it raises
    `BudgetExceededError` before anything is sent. Meters nest: an inner call counts in all.
    """
    meter = CostMeter(budget_usd)
    token = _active_meters.set((*_active_meters.get(), meter))
    try:
        yield meter
    finally:
        _active_meters.reset(token)


class CallMeters:
    """The meters one call reports to: those active where the call was made.

    ``check()`` tests the call's worst case against every budget; ``hold()`` also reserves it until
    ``release()``, so concurrent calls cannot together overshoot a budget.
    """

    __slots__ = ("_held", "_meters", "_model", "_worst")

    def __init__(self, model: str, prompt_tokens: int, max_tokens: int) -> None:
        self._meters = _active_meters.get()
        self._model = model
        self._held = False
        info = resolve_model(model) if self._meters else None
        self._worst = None if info is None else info.cost_usd(prompt_tokens, max_tokens)

    def check(self) -> None:
        self.hold()
        self.release()

    def hold(self) -> None:
        held: list[CostMeter] = []
        try:
            for meter in self._meters:
                meter._reserve(self._model, self._worst)
                held.append(meter)
        except BudgetExceededError:
            for meter in held:
                meter._release(self._worst)
            raise
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            for meter in self._meters:
                meter._release(self._worst)

    def record(self, served_model: str | None, usage: Usage | None) -> None:
        """Add the successful call to the meters, priced by the catalog, and drop the hold."""
        self.release()
        if not self._meters:
            return
        model = served_model if served_model and resolve_model(served_model) else self._model
        info = resolve_model(model)
        cost = _ZERO
        if info is not None and usage is not None:
            cost = info.cost_usd(usage.prompt_tokens, usage.completion_tokens)
        model_id = info.id if info is not None else canonical_model_id(model)
        for meter in self._meters:
            meter._record(model_id, usage, cost)
