"""The batch engine: rows in, one output line per row, within rate caps and a budget.

`BatchRunner` sends rows with asyncio and reports each outcome to a sink; `arun_batch` /
`run_batch` drive it from a JSONL file to a JSONL output that a rerun resumes.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from tokenhub_core.batch.limits import AdaptiveLimit, Admission, BatchGovernor, CostTally
from tokenhub_core.batch.rows import (
    BatchRequest,
    error_line,
    is_retryable,
    read_requests,
    read_results,
    success_line,
)
from tokenhub_core.catalog import DEFAULT_MODEL, price_call, price_usage, resolve_model
from tokenhub_core.client import TokenHubClient
from tokenhub_core.errors import (
    APIStatusError,
    AuthenticationError,
    BudgetExceededError,
    InvalidParameterError,
    MissingAPIKeyError,
    PaymentRequiredError,
    TokenHubError,
)
from tokenhub_core.params import estimate_tokens

__all__ = [
    "BatchProgress",
    "BatchRunner",
    "BatchSummary",
    "Governor",
    "LocalGovernor",
    "arun_batch",
    "run_batch",
]

DEFAULT_MAX_CONCURRENCY = 64
DEFAULT_MAX_ATTEMPTS = 6
DEFAULT_MAX_TOKENS = 1024
_BUDGET_POLL_S = 0.02
_FSYNC_EVERY_S = 1.0
BUDGET_SPENT = "the budget is spent"
# Errors that every row would meet: the batch stops and leaves the rows for a rerun.
_FATAL = (MissingAPIKeyError, AuthenticationError, PaymentRequiredError)


class Governor(Protocol):
    """What the runner asks before and after each request (a local or a cluster-wide governor)."""

    def admit(self, tokens: int, worst_usd: Decimal | None) -> Awaitable[Admission]: ...

    def settle(
        self,
        ticket: int,
        *,
        model_id: str | None = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost: Decimal | None = None,
    ) -> Awaitable[None]: ...

    def pause(self, seconds: float) -> Awaitable[None]: ...


class LocalGovernor:
    """A `BatchGovernor` used by the tasks of this process."""

    def __init__(self, governor: BatchGovernor) -> None:
        self.governor = governor

    async def admit(self, tokens: int, worst_usd: Decimal | None) -> Admission:
        return self.governor.admit(tokens, worst_usd)

    async def settle(
        self,
        ticket: int,
        *,
        model_id: str | None = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost: Decimal | None = None,
    ) -> None:
        self.governor.settle(
            ticket,
            model_id=model_id,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost=cost,
        )

    async def pause(self, seconds: float) -> None:
        self.governor.pause(seconds)


@dataclass
class BatchProgress:
    """Where a run stands; handed to the ``progress`` callback after each row."""

    total: int
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    cost_usd: float = 0.0
    elapsed_s: float = 0.0

    @property
    def finished(self) -> int:
        """Rows answered or failed in this run."""
        return self.succeeded + self.failed

    @property
    def rows_per_s(self) -> float:
        return self.finished / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        rate = self.rows_per_s
        left = self.total - self.skipped - self.finished
        return left / rate if rate > 0 else None


@dataclass
class BatchSummary:
    """What a run did: rows answered, failed, skipped and left over; cost and throughput."""

    total: int
    succeeded: int
    failed: int
    skipped: int
    not_sent: int
    requests: int
    rate_limited: int
    cost: CostTally = field(default_factory=CostTally)
    elapsed_s: float = 0.0
    stopped: str | None = None

    @property
    def cost_usd(self) -> float:
        return self.cost.total_usd

    @property
    def stopped_by_budget(self) -> bool:
        return self.stopped == BUDGET_SPENT

    @property
    def rows_per_minute(self) -> float:
        """Rows answered or failed per minute of this run."""
        done = self.succeeded + self.failed
        return done * 60 / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def __str__(self) -> str:
        lines = [
            f"{self.succeeded} answered, {self.failed} failed, {self.skipped} skipped "
            f"(already in the output), {self.not_sent} not sent, of {self.total} rows",
            f"{self.requests} requests ({self.rate_limited} rate-limited) in "
            f"{self.elapsed_s:.1f} s: {self.rows_per_minute:,.0f} rows/min",
            f"cost ${self.cost.total:.6f}",
        ]
        for model, spend in sorted(self.cost.by_model.items()):
            lines.append(
                f"  {model}: {spend.calls} calls, {spend.input_tokens:,} input + "
                f"{spend.output_tokens:,} output tokens, ${spend.cost:.6f}"
            )
        if self.stopped:
            lines.append(f"stopped early: {self.stopped}")
        return "\n".join(lines)


@dataclass
class _Outcome:
    request: BatchRequest
    line: dict[str, Any]
    ok: bool


def _backoff(attempt: int) -> float:
    return min(0.5 * 2.0**attempt, 8.0) * (1 - 0.25 * random.random())


def _overload(error: TokenHubError) -> bool:
    return isinstance(error, APIStatusError) and error.status_code in (429, 503, 529)


class BatchRunner:
    """Sends rows concurrently and hands each finished row's output line to ``sink``.

    One runner per process. It owns the retries (its client should have ``max_retries=0``), so a
    429 or 529 slows every task down: the row waits the server's Retry-After (or a backoff) and
    the concurrency window shrinks; once the window is down to one request, a Retry-After pauses
    every sender (cluster-wide with Ray), since slowing down was not enough. Isolated 429s thus
    cost little throughput, and a real rate limit stops the traffic. A row ends answered or with
    its final error; a row the budget cannot cover, or that a fatal error (no key, 401, 402)
    leaves unsent, produces no line.
    """

    def __init__(
        self,
        client: TokenHubClient,
        governor: Governor,
        *,
        model: str | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        if not isinstance(max_attempts, int) or isinstance(max_attempts, bool) or max_attempts < 1:
            raise ValueError(f"max_attempts must be a positive integer, got {max_attempts!r}")
        self.client = client
        self.governor = governor
        self.model = model
        self.max_attempts = max_attempts
        self.limit = AdaptiveLimit(max_concurrency)
        self.rate_limited = 0
        self.stopped: str | None = None

    async def run(
        self,
        requests: Iterable[BatchRequest],
        sink: Callable[[_Outcome], None],
    ) -> None:
        """Send every request (until stopped) and wait for the last to finish."""
        tasks: set[asyncio.Task[None]] = set()
        try:
            for request in requests:
                await self.limit.acquire()
                if self.stopped:
                    await self.limit.release()
                    break
                task = asyncio.create_task(self._row(request, sink))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    async def _row(self, request: BatchRequest, sink: Callable[[_Outcome], None]) -> None:
        try:
            outcome = await self._send(request)
        finally:
            await self.limit.release()
        if outcome is not None:
            sink(outcome)

    async def _send(self, request: BatchRequest) -> _Outcome | None:
        model = self.model or request.model or DEFAULT_MODEL
        params = request.params
        max_tokens = params.get("max_tokens", DEFAULT_MAX_TOKENS)
        info = resolve_model(model)
        try:
            prompt = estimate_tokens(request.messages, params.get("tools"))
        except (AttributeError, TypeError):  # malformed messages: the client will say which
            prompt = 0
        # A malformed max_tokens is the client's to refuse, with the parameter named.
        output = max_tokens if isinstance(max_tokens, int) else DEFAULT_MAX_TOKENS
        size = prompt + output
        worst = None if info is None else info.cost_usd(prompt, output)
        attempt = 0
        while True:
            if self.stopped:
                return None
            admission = await self.governor.admit(size, worst)
            if admission.kind == "wait":
                await asyncio.sleep(_BUDGET_POLL_S)
                continue
            if admission.kind == "stop":
                self.stopped = self.stopped or BUDGET_SPENT
                return None
            if admission.kind == "refuse":
                value = model if admission.param == "model" else max_tokens
                error = InvalidParameterError(admission.param, value, admission.reason)
                return _Outcome(request, error_line(request.custom_id, error), ok=False)
            if admission.delay > 0:
                await asyncio.sleep(admission.delay)
            try:
                completion = await self.client.achat(
                    model=model, messages=request.messages, **params
                )
            except TokenHubError as error:
                await self.governor.settle(admission.ticket)
                if isinstance(error, _FATAL):
                    self.stopped = self.stopped or f"{type(error).__name__}: {error}"
                    return None
                if isinstance(error, BudgetExceededError):  # a track_cost budget around the run
                    self.stopped = self.stopped or str(error)
                    return None
                retry_after = getattr(error, "retry_after", None)
                if _overload(error):
                    self.rate_limited += 1
                    self.limit.overloaded()
                    if retry_after and self.limit.limit <= 1:
                        await self.governor.pause(retry_after)
                attempt += 1
                if attempt >= self.max_attempts or not is_retryable(error):
                    return _Outcome(request, error_line(request.custom_id, error), ok=False)
                # Waiting holds no slot: the window counts requests in flight, not rows.
                await self.limit.release()
                try:
                    await asyncio.sleep(retry_after if retry_after else _backoff(attempt - 1))
                finally:
                    await self.limit.acquire()
                continue
            usage = completion.usage
            prompt_tokens = usage.prompt_tokens if usage else 0
            completion_tokens = usage.completion_tokens if usage else 0
            if usage is not None:
                model_id, cost = price_usage(model, completion.model, usage)
            else:
                model_id, cost = price_call(model, completion.model, 0, 0)
            await self.governor.settle(
                admission.ticket,
                model_id=model_id,
                input_tokens=prompt_tokens,
                output_tokens=completion_tokens,
                cost=cost,
            )
            await self.limit.succeeded()
            return _Outcome(request, success_line(request.custom_id, completion), ok=True)


class _Output:
    """The output file, appended one whole line per write; fsynced at most once a second.

    A line is one ``write`` on an ``O_APPEND`` descriptor, so a killed process leaves at most a
    torn last line, which the next run drops and redoes.
    """

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._synced = time.monotonic()

    def write(self, line: dict[str, Any]) -> None:
        data = (json.dumps(line, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
        os.write(self._fd, data)
        now = time.monotonic()
        if now - self._synced >= _FSYNC_EVERY_S:
            os.fsync(self._fd)
            self._synced = now

    def close(self) -> None:
        try:
            os.fsync(self._fd)
        finally:
            os.close(self._fd)


def _compact(path: Path, kept: dict[str, str]) -> None:
    """Rewrite the output with its final lines only, atomically (write, fsync, rename)."""
    partial = path.with_name(path.name + ".compacting")
    with partial.open("w", encoding="utf-8") as handle:
        handle.writelines(kept.values())
        handle.flush()
        os.fsync(handle.fileno())
    partial.replace(path)


def _pending(requests: Iterable[BatchRequest], done: dict[str, str]) -> Iterator[BatchRequest]:
    return (r for r in requests if r.custom_id not in done)


async def arun_batch(
    requests: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    model: str | None = None,
    rpm: float | None = None,
    tpm: float | None = None,
    budget_usd: float | None = None,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    client: TokenHubClient | None = None,
    progress: Callable[[BatchProgress], None] | None = None,
) -> BatchSummary:
    """Run a JSONL batch file into a JSONL output; rerun with the same output to resume.

    Args:
        requests: the input, OpenAI Batch lines or plain ``{"custom_id", "messages", ...}`` rows.
        output: where result lines are appended as rows finish. Rows already answered there (or
            failed for good, e.g. a 400) are skipped; rows that failed in a way a retry may fix
            are sent again.
        model: sent for every row, instead of each row's own ``model`` (default: the row's, else
            the catalog default).
        rpm, tpm: caps on requests and tokens (prompt estimate plus ``max_tokens``) per minute.
        budget_usd: spend cap, under `track_cost`'s rule: nothing is sent that could pass it.
        max_concurrency: the most requests in flight; cut on 429/529, grown back after.
        max_attempts: attempts per row for retryable failures, honoring Retry-After.
        client: the `TokenHubClient` to use (default: from the environment, ``max_retries=0``).
        progress: called with a `BatchProgress` after each row.
    """
    source, target = Path(requests), Path(output)
    done, dropped = read_results(target)
    if dropped:
        _compact(target, done)
    total = skipped = 0
    for request in read_requests(source):  # every line is checked before any is sent
        total += 1
        skipped += request.custom_id in done
    governor = BatchGovernor(rpm=rpm, tpm=tpm, budget_usd=budget_usd)
    runner = BatchRunner(
        client or TokenHubClient(max_retries=0),
        LocalGovernor(governor),
        model=model,
        max_concurrency=max_concurrency,
        max_attempts=max_attempts,
    )
    state = BatchProgress(total=total, skipped=skipped)
    started = time.monotonic()
    sink = _Output(target)

    def record(outcome: _Outcome) -> None:
        sink.write(outcome.line)
        if outcome.ok:
            state.succeeded += 1
        else:
            state.failed += 1
        state.cost_usd = float(governor.spent)
        state.elapsed_s = time.monotonic() - started
        if progress is not None:
            progress(state)

    try:
        await runner.run(_pending(read_requests(source), done), record)
    finally:
        sink.close()
    _, tally, admitted = governor.state()
    return BatchSummary(
        total=total,
        succeeded=state.succeeded,
        failed=state.failed,
        skipped=skipped,
        not_sent=total - skipped - state.succeeded - state.failed,
        requests=admitted,
        rate_limited=runner.rate_limited,
        cost=tally,
        elapsed_s=time.monotonic() - started,
        stopped=runner.stopped,
    )


def run_batch(
    requests: str | os.PathLike[str], output: str | os.PathLike[str], **options: Any
) -> BatchSummary:
    """Blocking `arun_batch` (runs its own event loop)."""
    return asyncio.run(arun_batch(requests, output, **options))
