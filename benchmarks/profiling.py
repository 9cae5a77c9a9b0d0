"""``--profile KEY-call|KEY-stream``: cProfile one contender, print where its CPU goes.

Numbers are µs of process CPU per operation (per call, or per content delta for streams), with
the profiler's own overhead included, so they are larger than the benchmark's: read them
relatively. C functions (builtins, pydantic-core) are shown with the first caller up the
heaviest path that is neither, so ``validate_json`` is charged to the code that asked for it.
"""

from __future__ import annotations

import cProfile
import gc
import os
import pstats
import sys
import time
from collections import defaultdict
from pathlib import Path

from measure import Runner
from ops import AsyncOps, Contender, SyncOps

__all__ = ["OURS", "parse_target", "profile"]

OURS = ("tokenhub_core", "langchain_tokenhub", "llama_index_tokenhub")
_ROOT = str(Path(__file__).resolve().parent.parent) + os.sep
_Key = tuple[str, int, str]
# pstats' table: function -> (primitive calls, calls, tottime, cumtime, callers)
_Stats = dict[_Key, tuple[int, int, float, float, dict[_Key, tuple[int, int, float, float]]]]


def parse_target(target: str, contenders: tuple[Contender, ...]) -> tuple[Contender, str]:
    """``langchain-stream`` -> (the ``langchain`` contender, ``"stream"``)."""
    key, _, op = target.rpartition("-")
    by_key = {c.key: c for c in contenders}
    if op not in ("call", "stream", "drip") or key not in by_key:
        raise SystemExit(
            f"--profile takes KEY-call, KEY-stream or KEY-drip; keys: {', '.join(by_key)}"
        )
    return by_key[key], op


def _where(key: _Key) -> tuple[str, str]:
    """(package, readable location) of a profiled function."""
    filename, line, name = key
    if filename == "~":
        return "(C builtins)", name
    for marker in ("site-packages" + os.sep, "dist-packages" + os.sep):
        if marker in filename:
            rel = filename.split(marker, 1)[1]
            package = rel.split(os.sep, 1)[0].removesuffix(".py")
            return package, f"{rel}:{line} {name}"
    if filename.startswith(_ROOT):
        rel = filename[len(_ROOT) :]
        return rel.split(os.sep, 1)[0], f"{rel}:{line} {name}"
    return "(stdlib)", f"{os.path.basename(filename)}:{line} {name}"


def _is_ours(package: str) -> bool:
    return package in OURS


_PASS_THROUGH = ("(C builtins)", "(stdlib)", "pydantic", "pydantic_core")


def _caller(stats: _Stats, key: _Key) -> str:
    """For C builtins, pydantic and the stdlib: the first caller up the heaviest path that is
    none of them, with the share of time that path carries at its weakest step.

    pstats records caller edges, not stacks, so this is a best guess when a function on the way
    has several callers (a low share says so); ``--callers`` shows the real edges.
    """
    share = 1.0
    for _ in range(4):
        if _where(key)[0] not in _PASS_THROUGH:
            break
        callers = stats[key][4]
        total = sum(edge[3] for edge in callers.values())
        if not callers or total <= 0:
            return ""
        caller = max(callers, key=lambda k: callers[k][3])
        share = min(share, callers[caller][3] / total)
        key = caller
    else:
        return ""
    return f"  <- {_where(key)[1]} ({share:.0%})"


def _rows(
    stats: _Stats,
    per: float,
    keys: list[_Key],
    top: int,
) -> list[str]:
    lines = [
        f"{'tottime µs':>10} {'cumtime µs':>10} {'calls':>8}  function",
    ]
    for key in keys[:top]:
        _cc, ncalls, tottime, cumtime, _callers = stats[key]
        package, where = _where(key)
        caller = _caller(stats, key) if package in _PASS_THROUGH else ""
        lines.append(
            f"{tottime / per * 1e6:>10.3f} {cumtime / per * 1e6:>10.3f} {ncalls / per:>8.2f}  "
            f"{where}{caller}"
        )
    return lines


def profile(
    runner: Runner,
    contender: Contender,
    op: str,
    n: int | None,
    top: int,
    callers: str | None = None,
) -> None:
    """Warm up, time unprofiled, then profile ``n`` operations and print the tables."""
    row = runner.prepare(contender)
    if row.ops is None or row.drip_ops is None:
        raise SystemExit(f"{contender.key} failed: {row.error}")
    ops: SyncOps | AsyncOps = row.drip_ops if op == "drip" else row.ops
    streams = op != "call"
    n = n or {"call": runner.plan.calls, "stream": 2 * runner.plan.streams}.get(op, 2)
    timer = {"call": runner.time_calls, "stream": runner.time_streams}.get(op, runner.time_drips)
    deltas = (runner.server.drip if op == "drip" else runner.server.long).deltas
    gc.collect()
    gc.freeze()  # as in the benchmark
    plain = timer(ops, n)
    # A CPU clock, as in the benchmark: the default wall clock would charge a blocking recv()
    # with the time spent waiting for the server.
    profiler = cProfile.Profile(time.process_time)
    gc.collect()
    profiler.enable()
    timer(ops, n, collect=False)
    profiler.disable()

    unit = "content delta" if streams else "call"
    per = float(n * deltas) if streams else float(n)
    stats: _Stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(s[2] for s in stats.values())
    out = [
        f"# profile: {contender.label} ({'async' if contender.is_async else 'sync'}: "
        f"{contender.api}), {op} x {n}",
        f"client CPU without the profiler: {plain:.2f} µs per {unit}; "
        f"under it: {total / per * 1e6:.2f} µs per {unit} (all figures below are per {unit})",
        "",
        "## by package (tottime)",
    ]
    by_package: defaultdict[str, float] = defaultdict(float)
    for key, s in stats.items():
        by_package[_where(key)[0]] += s[2]
    for package, spent in sorted(by_package.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"{spent / per * 1e6:>10.3f}  {spent / total * 100:5.1f}%  {package}")

    by_tottime = sorted(stats, key=lambda k: -stats[k][2])
    out += ["", f"## top {top} functions by tottime", *_rows(stats, per, by_tottime, top)]
    ours = [k for k in by_tottime if _is_ours(_where(k)[0])]
    ours_total = sum(stats[k][2] for k in ours)
    out += [
        "",
        f"## ours ({', '.join(OURS)}): {ours_total / per * 1e6:.3f} µs per {unit} tottime, "
        f"{ours_total / total * 100:.1f}% of the profile; top {top} by tottime",
        *_rows(stats, per, ours, top),
    ]
    by_cumtime = sorted(ours, key=lambda k: -stats[k][3])
    out += ["", f"## ours, top {top} by cumtime", *_rows(stats, per, by_cumtime, top)]
    print("\n".join(out))
    if callers:
        print(f"\n## callers of {callers!r} (pstats; seconds over the whole profile)")
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_callers(callers)
    sys.stdout.flush()
