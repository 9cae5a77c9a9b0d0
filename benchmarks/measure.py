"""Timing: client CPU (``time.process_time``) per call and per streamed content delta.

Process CPU counts every thread of this process (work a library pushes to a thread pool is
still client work) and none of the server's, which runs in its own process. Wall time is not
used: on a small box it mostly measures the server and the scheduler.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from ops import AsyncOps, Contender, Server, SyncOps

__all__ = ["FULL", "QUICK", "Plan", "Row", "Runner"]

_T = TypeVar("_T")


@dataclass(frozen=True)
class Plan:
    """How much to run: per contender and round, ``calls`` calls, ``streams`` batched streams
    of ``long_words`` deltas and ``drips`` dripped streams of ``drip_words`` deltas."""

    name: str
    rounds: int
    calls: int
    streams: int
    drips: int
    warmup_calls: int
    warmup_streams: int
    long_words: int
    drip_words: int


FULL = Plan("full", 15, calls=100, streams=2, drips=1, warmup_calls=30, warmup_streams=2,
            long_words=2000, drip_words=300)  # fmt: skip
QUICK = Plan("quick", 1, calls=5, streams=1, drips=1, warmup_calls=1, warmup_streams=0,
             long_words=200, drip_words=20)  # fmt: skip


@dataclass
class Row:
    """One contender's measurements: one value per round, in µs of client CPU."""

    contender: Contender
    ops: SyncOps | AsyncOps | None = None  # calls to `short`, streams from `long`
    drip_ops: SyncOps | AsyncOps | None = None  # streams from `drip`
    error: str | None = None
    call_us: list[float] = field(default_factory=list)
    chunk_us: list[float] = field(default_factory=list)
    drip_us: list[float] = field(default_factory=list)

    @property
    def call(self) -> float | None:
        """Median µs per call over the rounds."""
        return statistics.median(self.call_us) if self.call_us and not self.error else None

    @property
    def chunk(self) -> float | None:
        """Median µs per streamed content delta over the rounds (batched delivery)."""
        return statistics.median(self.chunk_us) if self.chunk_us and not self.error else None

    @property
    def drip(self) -> float | None:
        """Median µs per streamed content delta over the rounds (one event per read)."""
        return statistics.median(self.drip_us) if self.drip_us and not self.error else None

    def values(self, kind: str) -> list[float]:
        """The per-round values of ``kind``: "call", "chunk" or "drip"."""
        return {"call": self.call_us, "chunk": self.chunk_us, "drip": self.drip_us}[kind]


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ").replace("|", "/")
    return text if len(text) <= 160 else text[:157] + "..."


class Runner:
    """Builds, checks, warms up and times contenders; owns the one event loop of the run."""

    def __init__(self, server: Server, plan: Plan) -> None:
        self.server = server
        self.plan = plan
        self._loop = asyncio.new_event_loop()

    def _run(self, awaitable: Awaitable[_T]) -> _T:
        return self._loop.run_until_complete(awaitable)

    def close(self) -> None:
        """Let async generators and per-loop pools finish, then close the loop."""
        self._run(self._loop.shutdown_asyncgens())
        self._loop.close()

    # -- preparing --------------------------------------------------------------------------

    def prepare(self, contender: Contender) -> Row:
        """Build a contender, check its answers are the exact replies, warm it up."""
        row = Row(contender)
        server = self.server
        try:
            ops = contender.build(server.short, server.long)
            drip_ops = contender.build(server.short, server.drip)
            self._check(ops, server.long.text)
            self._check(drip_ops, server.drip.text)
            self.time_calls(ops, self.plan.warmup_calls)
            self.time_streams(ops, self.plan.warmup_streams)
            row.ops, row.drip_ops = ops, drip_ops
        except Exception as exc:  # a broken contender fails its own row, not the run
            row.error = _describe(exc)
        return row

    def _check(self, ops: SyncOps | AsyncOps, stream_text: str) -> None:
        if isinstance(ops, SyncOps):
            text = ops.call_text(ops.call())
            streamed = "".join(p for p in map(ops.piece, ops.open_stream()) if p)
        else:
            text = ops.call_text(self._run(ops.call()))
            streamed = self._run(_astream_text(ops))
        if text != self.server.short.text:
            raise AssertionError(f"call answered {text[:60]!r}, not the queued reply")
        if streamed != stream_text:
            raise AssertionError(
                f"stream gave {len(streamed)} chars, not the {len(stream_text)} queued"
            )

    # -- timing -----------------------------------------------------------------------------

    def time_calls(self, ops: SyncOps | AsyncOps, n: int, collect: bool = True) -> float:
        """µs of client CPU per call, over ``n`` calls (``collect``: a full GC first)."""
        if n <= 0:
            return 0.0
        if collect:
            gc.collect()
        if isinstance(ops, SyncOps):
            call = ops.call
            start = time.process_time()
            for _ in range(n):
                call()
            spent = time.process_time() - start
        else:
            spent = self._run(_atime_calls(ops, n))
        return spent / n * 1e6

    def time_streams(self, ops: SyncOps | AsyncOps, n: int, collect: bool = True) -> float:
        """µs of client CPU per content delta, over ``n`` whole streams (``collect``: GC first)."""
        return self._time_streams(ops, n, collect, self.server.long.deltas)

    def time_drips(self, ops: SyncOps | AsyncOps, n: int, collect: bool = True) -> float:
        """`time_streams` for ops built against the ``drip`` endpoint."""
        return self._time_streams(ops, n, collect, self.server.drip.deltas)

    def _time_streams(self, ops: SyncOps | AsyncOps, n: int, collect: bool, deltas: int) -> float:
        if n <= 0:
            return 0.0
        if collect:
            gc.collect()
        if isinstance(ops, SyncOps):
            open_stream = ops.open_stream
            start = time.process_time()
            for _ in range(n):
                for _chunk in open_stream():
                    pass
            spent = time.process_time() - start
        else:
            spent = self._run(_atime_streams(ops, n))
        return spent / (n * deltas) * 1e6

    def measure(self, rows: list[Row]) -> None:
        """The timed rounds: every contender's calls, then every contender's streams.

        The order of contenders rotates each round; an anchor and its challenger stay next to
        each other, so each round's pair is measured well under a second apart.
        """
        plan = self.plan
        live = [row for row in rows if row.ops is not None]
        gc.collect()
        gc.freeze()  # the imported frameworks' objects stay out of every later collection
        for round_no in range(plan.rounds):
            self.server.reset()
            print(f"round {round_no + 1}/{plan.rounds}", file=sys.stderr, flush=True)
            shift = round_no % len(live) if live else 0
            order = live[shift:] + live[:shift]
            for row in order:
                self._timed(row, self.time_calls, 1)  # wakes a connection the server let go
                row.call_us.extend(self._timed(row, self.time_calls, plan.calls))
            for row in order:
                row.chunk_us.extend(self._timed(row, self.time_streams, plan.streams))
            for row in order:
                row.drip_us.extend(self._timed(row, self.time_drips, plan.drips, drip=True))

    @staticmethod
    def _timed(
        row: Row, timer: Callable[[SyncOps | AsyncOps, int], float], n: int, drip: bool = False
    ) -> list[float]:
        """``[timer(ops, n)]``, or ``[]`` once the row has failed (the failure is recorded)."""
        ops = row.drip_ops if drip else row.ops
        if row.error is not None or ops is None:
            return []
        try:
            return [timer(ops, n)]
        except Exception as exc:
            row.error = _describe(exc)
            return []


async def _astream_text(ops: AsyncOps) -> str:
    parts = []
    async for item in await ops.open_stream():
        piece = ops.piece(item)
        if piece:
            parts.append(piece)
    return "".join(parts)


async def _atime_calls(ops: AsyncOps, n: int) -> float:
    call = ops.call
    start = time.process_time()
    for _ in range(n):
        await call()
    return time.process_time() - start


async def _atime_streams(ops: AsyncOps, n: int) -> float:
    open_stream = ops.open_stream
    start = time.process_time()
    for _ in range(n):
        async for _chunk in await open_stream():
            pass
    return time.process_time() - start
