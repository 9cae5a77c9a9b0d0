"""Spend metering and budgets: ``with track_cost(budget_usd=...) as meter:``.

The client reports every call it makes to the meters active where the call was made: those of
the caller's context (`contextvars`, so asyncio tasks and context-copying thread pools inherit
them) or, for a thread that carries none of its own (a plain ``threading.Thread``, a
``ThreadPoolExecutor`` worker, ``run_in_executor``), every ``track_cost(threads=True)`` block open
in the process. Amounts are exact `Decimal`s, shown as floats.

A call is priced once, by `tokenhub_core.catalog.price_call` (cache reads and writes at their own
prices); ``cache_saved_usd`` is what those calls would have cost without prompt caching, minus what
they cost. When the server's usage for a call
that may have been billed never arrives (a stream abandoned or cut short, a timed-out attempt that
is retried, a reply whose usage cannot be true), the call is charged its worst case and counted
in ``estimated_calls`` / ``estimated_usd``: a budget can only be passed by a server that bills more
than the worst case of what was asked.
"""

from __future__ import annotations

import gc
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal
from html import escape
from typing import TYPE_CHECKING, Any

from tokenhub_core.catalog import canonical_model_id, price_usage, resolve_model
from tokenhub_core.errors import BudgetExceededError

if TYPE_CHECKING:
    from tokenhub_core.wire import Usage

__all__ = ["CallMeters", "CostMeter", "ModelSpend", "track_cost"]

_ZERO = Decimal(0)
_context_meters: ContextVar[tuple[CostMeter, ...]] = ContextVar("tokenhub_cost_meters", default=())
_thread_meters: list[CostMeter] = []  # open track_cost(threads=True) blocks, process-wide
_thread_meters_lock = threading.Lock()


# Settling a call takes a meter's lock. A stream abandoned inside a reference cycle is finalized by
# the garbage collector, which may run while this very thread holds that lock (or the connection
# pool's): so work that a collection triggers is queued, lock-free, and done at the next safe point.
_collecting = False
_deferred: deque[Callable[[], None]] = deque()


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    global _collecting
    _collecting = phase == "start"


gc.callbacks.append(_on_gc)


def run_when_safe(work: Callable[[], None]) -> None:
    """Run ``work`` now, or at the next safe point when called from a garbage collection."""
    if _collecting:
        _deferred.append(work)
        return
    run_deferred()
    work()


def run_deferred() -> None:
    """Do the work queued during garbage collections (cheap when there is none)."""
    while _deferred and not _collecting:
        try:
            work = _deferred.popleft()
        except IndexError:
            return
        work()


@dataclass
class ModelSpend:
    """What one model cost inside a meter."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: Decimal = _ZERO
    estimated_calls: int = 0

    @property
    def total_usd(self) -> float:
        return float(self.cost)


class CostMeter:
    """Calls, tokens and USD of the calls made while it was active.

    ``calls`` counts every call that may have been billed; ``estimated_calls`` of them (costing
    ``estimated_usd``) are charged at their worst case because the server's usage did not arrive.
    """

    def __init__(self, budget_usd: float | None = None) -> None:
        if budget_usd is not None and (
            isinstance(budget_usd, bool)
            or not isinstance(budget_usd, (int, float, Decimal))
            or not budget_usd >= 0
        ):
            raise ValueError(f"budget_usd must be a number >= 0, got {budget_usd!r}")
        self.budget_usd = budget_usd
        self._budget = None if budget_usd is None else Decimal(str(budget_usd))
        self._lock = threading.Lock()
        self._reserved = _ZERO
        self._total = _ZERO
        self._estimated = _ZERO
        self._calls = 0
        self._estimated_calls = 0
        self._input_tokens = 0
        self._output_tokens = 0
        self._cache_read_tokens = 0
        self._cache_write_tokens = 0
        self._cache_saved = _ZERO
        self._by_model: dict[str, ModelSpend] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        for name in ("_cache_read_tokens", "_cache_write_tokens"):
            self.__dict__.setdefault(name, 0)
        self.__dict__.setdefault("_cache_saved", _ZERO)
        self._lock = threading.Lock()

    @property
    def total(self) -> Decimal:
        """Exact USD spent."""
        run_deferred()
        return self._total

    @property
    def total_usd(self) -> float:
        return float(self.total)

    @property
    def calls(self) -> int:
        run_deferred()
        return self._calls

    @property
    def input_tokens(self) -> int:
        run_deferred()
        return self._input_tokens

    @property
    def output_tokens(self) -> int:
        run_deferred()
        return self._output_tokens

    @property
    def cache_read_tokens(self) -> int:
        """Prompt tokens read from the prompt cache (counted in ``input_tokens`` too)."""
        run_deferred()
        return self._cache_read_tokens

    @property
    def cache_write_tokens(self) -> int:
        """Prompt tokens written to the prompt cache (counted in ``input_tokens`` too)."""
        run_deferred()
        return self._cache_write_tokens

    @property
    def cache_saved_usd(self) -> float:
        """What the calls would have cost without prompt caching, minus what they cost.

        Negative while cache writes (priced above the input price) have not been read back.
        """
        run_deferred()
        return float(self._cache_saved)

    @property
    def estimated_calls(self) -> int:
        """Calls charged at their worst case because their usage never arrived."""
        run_deferred()
        return self._estimated_calls

    @property
    def estimated_usd(self) -> float:
        """The part of ``total_usd`` that is worst-case estimates."""
        run_deferred()
        return float(self._estimated)

    @property
    def in_flight_usd(self) -> float:
        """The worst cases held by calls in progress."""
        run_deferred()
        return float(self._reserved)

    @property
    def by_model(self) -> dict[str, ModelSpend]:
        run_deferred()
        return self._by_model

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
                    spent_usd=float(self._total),
                    worst_case_usd=float("inf"),
                )
            committed = self._total + self._reserved
            if committed + worst > self._budget:
                raise BudgetExceededError(
                    f"budget of ${self._budget} would be exceeded: spent ${self._total:.6f}"
                    f" (+${self._reserved:.6f} in flight), this call may cost up to ${worst:.6f}."
                    " Nothing was sent.",
                    budget_usd=float(self._budget),
                    spent_usd=float(self._total),
                    worst_case_usd=float(worst),
                )
            self._reserved += worst

    def _settle(
        self,
        held: Decimal | None,
        model_id: str | None,
        prompt: int,
        completion: int,
        cost: Decimal,
        estimated: bool,
        cache_read: int = 0,
        cache_write: int = 0,
        cache_saved: Decimal = _ZERO,
    ) -> None:
        """Drop a hold and, unless ``model_id`` is None, record a call: in one step."""
        with self._lock:
            if held is not None and self._budget is not None:
                self._reserved -= held
            if model_id is None:
                return
            self._calls += 1
            self._input_tokens += prompt
            self._output_tokens += completion
            self._total += cost
            self._cache_read_tokens += cache_read
            self._cache_write_tokens += cache_write
            self._cache_saved += cache_saved
            spend = self._by_model.setdefault(model_id, ModelSpend())
            spend.calls += 1
            spend.input_tokens += prompt
            spend.output_tokens += completion
            spend.cost += cost
            if estimated:
                self._estimated_calls += 1
                self._estimated += cost
                spend.estimated_calls += 1

    def __repr__(self) -> str:
        budget = "" if self._budget is None else f", budget_usd={self.budget_usd}"
        estimated = f", estimated_calls={self.estimated_calls}" if self.estimated_calls else ""
        cache = ""
        if self.cache_read_tokens or self.cache_write_tokens:
            cache = (
                f", cache_read_tokens={self.cache_read_tokens}, "
                f"cache_write_tokens={self.cache_write_tokens}, "
                f"cache_saved_usd={self.cache_saved_usd:.6f}"
            )
        return (
            f"CostMeter(calls={self.calls}, input_tokens={self.input_tokens}, "
            f"output_tokens={self.output_tokens}, total_usd={self.total_usd:.6f}"
            f"{cache}{estimated}{budget})"
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
        notes = ""
        if self.cache_read_tokens or self.cache_write_tokens:
            notes += (
                f"<p>prompt cache: {self.cache_read_tokens:,} tokens read, "
                f"{self.cache_write_tokens:,} written; saved ${self.cache_saved_usd:.6f} "
                "against the same calls without caching</p>"
            )
        if self.estimated_calls:
            notes += (
                f"<p>{self.estimated_calls} call(s) charged at their worst case "
                f"(${self.estimated_usd:.6f}): their usage never arrived</p>"
            )
        if self._budget is not None:
            notes += f"<p>budget: ${self._budget} </p>"
        return (
            "<table><thead><tr><th>model</th><th>calls</th><th>input tokens</th>"
            f"<th>output tokens</th><th>USD</th></tr></thead><tbody>{rows}{total}</tbody></table>"
            + notes
        )


@contextmanager
def track_cost(budget_usd: float | None = None, *, threads: bool = True) -> Iterator[CostMeter]:
    """Meter every TokenHub call made inside the block; optionally cap the spend.

    With a budget, a call whose worst case (estimated prompt tokens at the input price plus
    ``max_tokens`` at the output price) would take the spend past it raises
    `BudgetExceededError` before anything is sent. Meters nest: an inner call counts in all.

    Args:
        budget_usd: the most the block may spend, in USD.
        threads: also meter calls made, while the block is open, by threads that carry no meter
            of their own (plain threads, ``ThreadPoolExecutor`` workers, ``run_in_executor``).
            Set it to False where several threads each meter their own work (a threaded server
            with one meter per request): then only this context and what inherits it counts.
    """
    meter = CostMeter(budget_usd)
    token = _context_meters.set((*_context_meters.get(), meter))
    if threads:
        with _thread_meters_lock:
            _thread_meters.append(meter)
    try:
        yield meter
    finally:
        if threads:
            with _thread_meters_lock:
                _thread_meters.remove(meter)
        _context_meters.reset(token)


def active_meters() -> tuple[CostMeter, ...]:
    """The meters a call made here reports to."""
    return _context_meters.get() or tuple(_thread_meters)


class CallMeters:
    """One call's account with the meters active where it was made.

    ``hold()`` reserves the call's worst case in every budget (raising `BudgetExceededError`,
    nothing held, when one cannot take it) until the call is settled by exactly one of
    ``record()`` (the server's usage), ``charge_worst_case()`` (an attempt that may have been
    billed and whose usage never came) or ``release()`` (nothing was billed). A settlement
    without a hold is a no-op for the budget but still records.
    """

    __slots__ = ("_held", "_meters", "_model", "_prompt_tokens", "_worst", "max_tokens")

    def __init__(
        self, model: str, prompt_tokens: int, max_tokens: int, *, cache_writes: str | None = None
    ) -> None:
        self._meters = active_meters()
        self._model = model
        self._prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self._held = False
        info = resolve_model(model) if self._meters else None
        # A request with cache breakpoints may be billed its whole prompt as cache writes.
        self._worst = (
            None
            if info is None
            else info.cost_usd(
                prompt_tokens,
                max_tokens,
                cache_write_5m_tokens=prompt_tokens if cache_writes == "5m" else 0,
                cache_write_1h_tokens=prompt_tokens if cache_writes == "1h" else 0,
            )
        )

    @property
    def metered(self) -> bool:
        return bool(self._meters)

    def check(self) -> None:
        """Raise `BudgetExceededError` now if the call could not be held."""
        self.hold()
        self.release()

    def hold(self) -> None:
        if self._held or not self._meters:
            return
        run_deferred()
        held: list[CostMeter] = []
        try:
            for meter in self._meters:
                meter._reserve(self._model, self._worst)
                held.append(meter)
        except BudgetExceededError:
            for meter in held:
                meter._settle(self._worst, None, 0, 0, _ZERO, False)
            raise
        self._held = True

    def _settle(
        self,
        model_id: str | None,
        prompt: int,
        completion: int,
        cost: Decimal,
        estimated: bool,
        cache: tuple[int, int, Decimal] = (0, 0, _ZERO),
    ) -> None:
        held = self._worst if self._held else None
        self._held = False
        meters = self._meters
        if not meters or (held is None and model_id is None):
            return

        def settle() -> None:
            for meter in meters:
                meter._settle(held, model_id, prompt, completion, cost, estimated, *cache)

        run_when_safe(settle)

    def release(self) -> None:
        """Drop the hold: nothing was billed."""
        self._settle(None, 0, 0, _ZERO, False)

    def record(self, served_model: str | None, usage: Usage) -> None:
        """Record the call with the server's usage, priced by the catalog; drop the hold."""
        if not self._meters:
            return
        model_id, cost = price_usage(self._model, served_model, usage)
        cost = cost or _ZERO
        reads, writes = usage.cache_read_tokens, usage.cache_creation_tokens
        saved = _ZERO
        if reads or writes:
            info = resolve_model(model_id)
            if info is not None:
                saved = info.cost_usd(usage.prompt_tokens, usage.completion_tokens) - cost
        self._settle(
            model_id,
            usage.prompt_tokens,
            usage.completion_tokens,
            cost,
            False,
            (reads, writes, saved),
        )

    def charge_worst_case(self) -> None:
        """Record an attempt that may have been billed, at its worst case; drop the hold."""
        if not self._meters:
            return
        info = resolve_model(self._model)
        model_id = info.id if info is not None else canonical_model_id(self._model)
        self._settle(model_id, self._prompt_tokens, self.max_tokens, self._worst or _ZERO, True)
