"""Concurrency: wall time of async calls one at a time, in bursts and at hundreds in flight.

Each contender runs in its own process (a fresh interpreter, one event loop, its own pools)
against one `LoadServer` child for the whole run, one contender after another. A worker prints
one JSON line of measurements; `render` turns the rows into the table and checks the targets
of issue 14. Wall time, not CPU: under concurrency what a user waits for is the point.

    python benchmarks/concurrency.py [--quick]      # the table alone
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchserver import Endpoint
from loadserver import REPLY_TEXT, LoadServer
from ops import CALL_PROMPT, MAX_TOKENS, MODEL

__all__ = ["FULL", "QUICK", "ConcurrencyPlan", "measure_all", "render"]

Call = Callable[[], Awaitable[str]]


@dataclass(frozen=True)
class ConcurrencyPlan:
    """Sizes: ``calls`` sequential calls per figure, bursts of ``burst``, ``in_flight`` at
    ``latency_ms``, and ``fresh_loops`` new event loops for the first-call figure."""

    name: str
    calls: int
    burst: int
    bursts: int
    in_flight: tuple[int, int]
    latency_ms: int
    fresh_loops: int


FULL = ConcurrencyPlan("full", 40, 200, 15, (200, 1000), 200, 7)
QUICK = ConcurrencyPlan("quick", 3, 20, 1, (20, 50), 50, 1)


# -- contenders ----------------------------------------------------------------------------------


def _body() -> dict[str, Any]:
    messages = [{"role": "user", "content": CALL_PROMPT}]
    return {"model": MODEL, "messages": messages, "max_tokens": MAX_TOKENS}


def _aiohttp(base_url: str) -> Call:
    import aiohttp

    session: aiohttp.ClientSession | None = None
    url, body = f"{base_url}/chat/completions", _body()
    headers = {"Authorization": "Bearer th-bench"}

    async def call() -> str:
        nonlocal session
        if session is None:  # aiohttp wants its session built inside the loop
            session = aiohttp.ClientSession()
        async with session.post(url, json=body, headers=headers) as response:
            response.raise_for_status()
            return str(json.loads(await response.read())["choices"][0]["message"]["content"])

    return call


def _httpx(base_url: str) -> Call:
    import httpx

    client = httpx.AsyncClient(timeout=60.0)
    url, body = f"{base_url}/chat/completions", _body()
    headers = {"Authorization": "Bearer th-bench"}

    async def call() -> str:
        response = await client.post(url, json=body, headers=headers)
        response.raise_for_status()
        return str(json.loads(response.content)["choices"][0]["message"]["content"])

    return call


def _core(base_url: str) -> Call:
    from tokenhub_core import TokenHubClient

    client = TokenHubClient(api_key="th-bench", base_url=base_url)
    messages = [{"role": "user", "content": CALL_PROMPT}]

    async def call() -> str:
        completion = await client.achat(model=MODEL, messages=messages)
        return str(completion.choices[0].message.content)

    return call


def _core_on(transport: str) -> Callable[[str], Call]:
    """The core with its shared async pool swapped for another transport: the comparison
    behind the transport decision (``--transports``)."""

    def build(base_url: str) -> Call:
        import httpx

        from tokenhub_core import _pools

        def other_pool() -> httpx.AsyncBaseTransport:
            if transport == "httpx-aiohttp":
                from httpx_aiohttp import AiohttpTransport

                limits = httpx.Limits(max_connections=_pools.ASYNC_POOL_LIMIT)
                return AiohttpTransport(verify=_pools.pools.ssl_context(), limits=limits)
            keepalive = int(transport.rsplit("-", 1)[1])  # "httpcore-100": the old pool
            limits = httpx.Limits(max_connections=100, max_keepalive_connections=keepalive)
            return httpx.AsyncHTTPTransport(limits=limits, verify=_pools.pools.ssl_context())

        _pools.pools._new_async_pool = other_pool  # type: ignore[method-assign]
        return _core(base_url)

    return build


def _endpoint(base_url: str) -> Endpoint:
    return Endpoint(base_url=base_url, api_key="th-bench", text=REPLY_TEXT, deltas=0)


def _langchain(ours: bool) -> Callable[[str], Call]:
    def build(base_url: str) -> Call:
        from contenders import _langchain_models
        from langchain_core.messages import HumanMessage

        model, _ = _langchain_models(_endpoint(base_url), _endpoint(base_url), ours)
        messages = [HumanMessage(CALL_PROMPT)]

        async def call() -> str:
            return str((await model.ainvoke(messages)).content)

        return call

    return build


def _llamaindex(ours: bool) -> Callable[[str], Call]:
    def build(base_url: str) -> Call:
        from contenders import _li_messages, _llamaindex_models

        llm, _ = _llamaindex_models(_endpoint(base_url), _endpoint(base_url), ours)
        messages, _ = _li_messages()

        async def call() -> str:
            return str((await llm.achat(messages)).message.content)

        return call

    return build


@dataclass(frozen=True)
class Contender:
    """A row: ``build(base_url)`` gives the call; ``ours`` rows also get the fresh-loop figure."""

    key: str
    label: str
    build: Callable[[str], Call]
    ours: bool = False
    survives_loops: bool = False  # one instance usable from many event loops
    transports: bool = False  # only with --transports: the core on other transports


CONTENDERS = (
    Contender("aiohttp", "raw aiohttp.ClientSession", _aiohttp),
    Contender("httpx", "raw httpx.AsyncClient", _httpx),
    Contender("core", "TokenHubClient.achat (ours)", _core, ours=True, survives_loops=True),
    Contender(
        "langchain", "ChatTokenHub.ainvoke (ours)", _langchain(True), ours=True, survives_loops=True
    ),
    Contender(
        "llamaindex", "TokenHub.achat (ours)", _llamaindex(True), ours=True, survives_loops=True
    ),
    Contender("langchain-openai", "ChatOpenAI.ainvoke", _langchain(False)),
    Contender("llamaindex-openai", "llama-index OpenAI.achat", _llamaindex(False)),
    Contender(
        "core-httpx-aiohttp",
        "TokenHubClient.achat on httpx-aiohttp's AiohttpTransport",
        _core_on("httpx-aiohttp"),
        survives_loops=True,
        transports=True,
    ),
    Contender(
        "core-httpcore-100",
        "TokenHubClient.achat on httpcore, 100 idle kept (before)",
        _core_on("httpcore-100"),
        survives_loops=True,
        transports=True,
    ),
    Contender(
        "core-httpcore-20",
        "TokenHubClient.achat on httpcore, 20 idle kept",
        _core_on("httpcore-20"),
        survives_loops=True,
        transports=True,
    ),
)
_BY_KEY = {c.key: c for c in CONTENDERS}


# -- the worker (one contender, in its own process) ---------------------------------------------


async def _sequential(call: Call, n: int) -> float:
    """Median wall µs of ``n`` calls one after another."""
    times = []
    for _ in range(n):
        start = time.perf_counter()
        await call()
        times.append((time.perf_counter() - start) * 1e6)
    return statistics.median(times)


async def _burst(call: Call, n: int) -> tuple[float, int, str]:
    """Wall seconds for ``n`` concurrent calls, the number that failed and the first error."""
    start = time.perf_counter()
    results = await asyncio.gather(*(call() for _ in range(n)), return_exceptions=True)
    elapsed = time.perf_counter() - start
    errors = [r for r in results if isinstance(r, BaseException)]
    wrong = [r for r in results if not isinstance(r, BaseException) and r != REPLY_TEXT]
    first = f"{type(errors[0]).__name__}: {errors[0]}"[:200] if errors else ""
    return (
        elapsed,
        len(errors) + len(wrong),
        first or (f"wrong answer {wrong[0]!r}" if wrong else ""),
    )


def _fresh_loops(call: Call, new_connection: Call, loops: int) -> tuple[float, float, float]:
    """In each of ``loops`` new event loops (each in a new thread, as a server or a notebook
    running ``asyncio.run`` per request would): the wall µs of the first call, then of a call on
    a new connection in that loop, now warm. Medians of both, and of their per-loop ratio."""
    pairs: list[tuple[float, float]] = []

    async def timed(call: Call) -> float:
        start = time.perf_counter()
        await call()
        return (time.perf_counter() - start) * 1e6

    async def one_loop() -> None:
        first = await timed(call)
        later = statistics.median([await timed(new_connection) for _ in range(3)])
        pairs.append((first, later))

    for _ in range(loops):
        thread = threading.Thread(target=asyncio.run, args=(one_loop(),))
        thread.start()
        thread.join()
    return (
        statistics.median(p[0] for p in pairs),
        statistics.median(p[1] for p in pairs),
        statistics.median(p[0] / p[1] for p in pairs),
    )


async def _work(contender: Contender, port: int, plan: ConcurrencyPlan) -> dict[str, Any]:
    server = LoadServer(port=port)
    call = contender.build(server.base_url(0))
    assert await call() == REPLY_TEXT, "wrong answer"
    await _sequential(call, plan.calls)  # warm-up: imports, pools, caches
    cpu = time.process_time()
    await _sequential(call, plan.calls)
    row: dict[str, Any] = {"cpu_call_us": (time.process_time() - cpu) / plan.calls * 1e6}
    # Each burst between two runs of sequential calls, so a before and its after are seconds
    # apart: the machine's load drifts less between them than over the whole run.
    before, bursts, after = [], [], []
    for _ in range(plan.bursts):
        before.append(await _sequential(call, plan.calls))
        bursts.append(await _burst(call, plan.burst))
        after.append(await _sequential(call, plan.calls))
    row["call_us"], row["after_burst_us"] = statistics.median(before), statistics.median(after)
    row["after_ratio"] = statistics.median(a / b for a, b in zip(after, before, strict=True))
    row["burst_s"] = statistics.median(b[0] for b in bursts)
    slow = contender.build(server.base_url(plan.latency_ms))
    await slow()
    errors, first = sum(b[1] for b in bursts), next((b[2] for b in bursts if b[2]), "")
    for n in plan.in_flight:
        row[f"in_flight_{n}_s"], failed, error = await _burst(slow, n)
        errors, first = errors + failed, first or error
    row["errors"], row["first_error"] = errors, first
    return row


def _worker(key: str, port: int, plan: ConcurrencyPlan) -> dict[str, Any]:
    contender = _BY_KEY[key]
    row: dict[str, Any] = {"key": key}
    try:
        row |= asyncio.run(_work(contender, port, plan))
        if contender.survives_loops:
            # The same instances in new loops, in a process that has made calls before.
            server = LoadServer(port=port)
            call = contender.build(server.base_url(0))
            new_connection = contender.build(server.base_url(0, close=True))
            row["fresh_loop_us"], row["new_connection_us"], row["fresh_ratio"] = _fresh_loops(
                call, new_connection, plan.fresh_loops
            )
    except Exception as exc:  # one broken contender must not hide the others
        row["failed"] = f"{type(exc).__name__}: {exc}"[:300]
    return row


def measure_all(
    plan: ConcurrencyPlan,
    keys: list[str] | None = None,
    *,
    transports: bool = False,
    timeout_s: float = 600,
) -> list[dict[str, Any]]:
    """Every contender (or ``keys``), each in its own process, against one server; with
    ``transports``, also the core on the transports it was compared with.

    A full run runs the processes one after another. A quick run (the smoke test, whose figures
    are noise anyway) starts them all at once: their imports are most of its time."""
    chosen = [
        c
        for c in CONTENDERS
        if (c.key in keys if keys is not None else transports or not c.transports)
    ]
    rows = []
    with LoadServer() as server:
        batches = [chosen] if plan is QUICK else [[c] for c in chosen]
        for batch in batches:
            print(f"concurrency: {', '.join(c.key for c in batch)}", file=sys.stderr, flush=True)
            workers = [
                subprocess.Popen(
                    [sys.executable, __file__, "--worker", c.key, str(server.port)]
                    + (["--quick"] if plan is QUICK else []),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    cwd=Path(__file__).parent,
                )
                for c in batch
            ]
            for contender, worker in zip(batch, workers, strict=True):
                try:
                    out, err = worker.communicate(timeout=timeout_s)
                    lines = out.strip().splitlines()
                    row = json.loads(lines[-1]) if lines else {"failed": err[-300:]}
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.communicate()
                    row = {"failed": f"no answer in {timeout_s:g} s"}
                rows.append({"key": contender.key, **row})
    return rows


# -- the report ----------------------------------------------------------------------------------


def _fmt(value: float | None, unit: str) -> str:
    if value is None or math.isnan(value):
        return "—"
    if unit == "µs":
        return f"{value:,.0f} µs"
    if unit == "ms":
        return f"{value * 1000:,.0f} ms"
    return f"{value:.2f} s"


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b is not None and b > 0 else None


def _check(name: str, value: float | None, target: str, ok: bool | None) -> str:
    shown = "—" if value is None else f"{value:.2f}×"
    verdict = "—" if ok is None or value is None else ("met" if ok else "missed")
    return f"| {name} | {shown} | {target} | {verdict} |"


def render(rows: list[dict[str, Any]], plan: ConcurrencyPlan) -> str:
    """The concurrency table and the targets, as markdown."""
    small, large = plan.in_flight
    lines = [
        "## Concurrency: async calls one at a time, in bursts and hundreds in flight",
        "",
        f"Mode {plan.name}, wall time: {plan.bursts} times {plan.calls} sequential calls, a "
        f"burst of {plan.burst} concurrent calls and {plan.calls} sequential calls again "
        f"(medians; the after ÷ before target is the median of the per-burst ratios); then "
        f"{small} and {large} calls in flight with the server answering after "
        f"{plan.latency_ms} ms; then, for ours, {plan.fresh_loops} new event loops each in a new "
        f"thread: the first call in it, and a call there on a new connection (the server closes "
        f"each). µs CPU / call: process time of {plan.calls} sequential calls. One process per "
        f"client, one after another, against one local server with pre-encoded replies "
        f"(benchmarks/loadserver.py); a machine shared with other work makes single figures "
        f"noisy, the ratios less so.",
        "",
        f"| key | client | one call | {plan.burst} concurrent | one call after a burst "
        f"| {small} / {large} in flight, {plan.latency_ms} ms | errors | first call in a fresh "
        f"loop | call on a new connection | µs CPU / call |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by_key = {row["key"]: row for row in rows}
    for contender in CONTENDERS:
        row = by_key.get(contender.key)
        if row is None:
            continue
        if "failed" in row:
            lines.append(
                f"| {contender.key} | {contender.label} | FAILED: {row['failed']} ||||||||"
            )
            continue
        in_flight = [_fmt(row[f"in_flight_{n}_s"], "s") for n in (small, large)]
        lines.append(
            f"| {contender.key} | {contender.label} | {_fmt(row['call_us'], 'µs')} "
            f"| {_fmt(row['burst_s'], 'ms')} | {_fmt(row['after_burst_us'], 'µs')} "
            f"| {' / '.join(in_flight)} "
            f"| {row['errors']} | {_fmt(row.get('fresh_loop_us'), 'µs')} "
            f"| {_fmt(row.get('new_connection_us'), 'µs')} | {_fmt(row['cpu_call_us'], 'µs')} |"
        )
    lines += ["", "Targets (issue 14), ratios from this run:", ""]
    lines += ["| target | ratio | wanted | verdict |", "|---|---:|---|---|"]
    lines += _targets(by_key, plan)
    errors = [f"{k}: {r['first_error']}" for k, r in by_key.items() if r.get("first_error")]
    if errors:
        lines += ["", "First errors: " + "; ".join(errors)]
    return "\n".join(lines) + "\n"


def _get(by_key: dict[str, Any], key: str, field: str) -> float | None:
    row = by_key.get(key)
    if row is None or "failed" in row:
        return None
    value = row.get(field)
    return None if value is None else float(value)


def _targets(by_key: dict[str, Any], plan: ConcurrencyPlan) -> list[str]:
    small, large = plan.in_flight
    b, raw = f"{plan.burst} concurrent", "raw aiohttp"
    core_burst = _ratio(_get(by_key, "core", "burst_s"), _get(by_key, "aiohttp", "burst_s"))
    lines = [_check(f"{b}: core ÷ {raw}", core_burst, "≤ 2×", _le(core_burst, 2))]
    pairs = (("langchain", "langchain-openai"), ("llamaindex", "llamaindex-openai"))
    for ours, anchor in pairs:
        faster = _ratio(_get(by_key, anchor, "burst_s"), _get(by_key, ours, "burst_s"))
        lines.append(_check(f"{b}: {anchor} ÷ {ours}", faster, "≥ 3×", _ge(faster, 3)))
    for ours in ("core", "langchain", "llamaindex"):
        field = f"in_flight_{small}_s"
        vs_raw = _ratio(_get(by_key, ours, field), _get(by_key, "aiohttp", field))
        lines.append(_check(f"{small} in flight: {ours} ÷ {raw}", vs_raw, "≤ 2×", _le(vs_raw, 2)))
        growth = _ratio(_get(by_key, ours, f"in_flight_{large}_s"), _get(by_key, ours, field))
        errors = _get(by_key, ours, "errors")
        ok = None if growth is None else growth <= large / small and errors == 0
        lines.append(
            _check(
                f"{large} ÷ {small} in flight: {ours} (errors: {errors:g})"
                if errors is not None
                else f"{large} ÷ {small} in flight: {ours}",
                growth,
                f"≤ {large / small:g}× (linear), no error",
                ok,
            )
        )
        after = _get(by_key, ours, "after_ratio")
        lines.append(
            _check(f"call after a burst ÷ before: {ours}", after, "≤ 1.2×", _le(after, 1.2))
        )
        fresh = _get(by_key, ours, "fresh_ratio")
        lines.append(
            _check(
                f"first call in a fresh loop ÷ call on a new connection: {ours}",
                fresh,
                "≤ 2×",
                _le(fresh, 2),
            )
        )
    for ours, anchor in pairs:
        cpu = _ratio(_get(by_key, anchor, "cpu_call_us"), _get(by_key, ours, "cpu_call_us"))
        lines.append(
            _check(f"CPU per call: {anchor} ÷ {ours} (see also the main table)", cpu, "≥ 2.5×",
                   _ge(cpu, 2.5))
        )  # fmt: skip
    return lines


def _le(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def _ge(value: float | None, limit: float) -> bool | None:
    return None if value is None else value >= limit


def main() -> int:
    """``--worker KEY PORT``: measure one contender; otherwise the whole table."""
    parser = argparse.ArgumentParser(prog="python benchmarks/concurrency.py")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", nargs=2, metavar=("KEY", "PORT"))
    parser.add_argument("--only", metavar="KEYS", help=", ".join(c.key for c in CONTENDERS))
    parser.add_argument(
        "--transports", action="store_true", help="also the core on the transports compared"
    )
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    if args.worker:
        key, port = args.worker
        print(json.dumps(_worker(key, int(port), plan)), flush=True)
        return 0
    keys = args.only.split(",") if args.only else None
    rows = measure_all(plan, keys, transports=args.transports)
    print(render(rows, plan))
    return 1 if any("failed" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
