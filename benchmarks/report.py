"""The markdown report: machine, method in one line, the table, the anchor ÷ ours ratios."""

from __future__ import annotations

import datetime
import math
import os
import platform
import statistics
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from benchserver import DRIP_GAP_S
from measure import Plan, Row

__all__ = ["machine_info", "render", "render_native"]

PACKAGES = (
    "tokenhub-integrations",
    "httpx",
    "pydantic",
    "openai",
    "langchain-core",
    "langchain-openai",
    "llama-index-core",
    "llama-index-llms-openai",
    "anthropic",
    "langchain-anthropic",
    "llama-index-llms-anthropic",
)
CALL_TARGET = 2.5  # anchor ÷ ours, per call
CHUNK_TARGET = 4.0  # anchor ÷ ours, per streamed chunk
NATIVE_TARGET = 2.0  # anchor ÷ ours on Claude's native protocol, per call and per chunk (issue 13)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> list[str]:
    """Lines describing where and with what the numbers were taken."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    versions = ", ".join(f"{p} {_version(p)}" for p in PACKAGES)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return [
        f"- date: {now}",
        f"- CPU: {_cpu_model()}, {os.cpu_count()} logical CPUs; load average at start: {load}",
        f"- Python {platform.python_version()} ({platform.python_implementation()}) "
        f"on {platform.platform()}",
        f"- packages: {versions}",
    ]


def _us(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _spread(values: list[float], median: float | None) -> str:
    """± half the interquartile range, relative to the median."""
    if median is None or len(values) < 2 or median <= 0:
        return ""
    q1, _, q3 = statistics.quantiles(values, n=4)
    return f" ±{(q3 - q1) / 2 / median * 100:.0f}%"


def _values(row: Row | None, kind: str) -> list[float] | None:
    if row is None or row.error is not None:
        return None
    return row.values(kind)


def _per_round(
    combine: Callable[..., float], *rows: Row | None, kind: str
) -> tuple[float | None, list[float]]:
    """``combine`` applied round by round to the rows' values, and the median of that.

    Values of one round were taken seconds apart, so a ratio of two of them cancels most of the
    machine's drift; the median of those ratios is steadier than a ratio of two medians.
    """
    columns = [_values(row, kind) for row in rows]
    present = [c for c in columns if c is not None]
    if len(present) < len(columns):
        return None, []
    per_round = [combine(*values) for values in zip(*present, strict=True)]
    return (statistics.median(per_round) if per_round else None), per_round


def _ratio_of(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


def _fmt_ratio(value: float | None, spread: list[float] | None = None) -> str:
    if value is None or math.isnan(value):
        return "—"
    return f"{value:.2f}×{_spread(spread or [], value)}"


def _find(rows: list[Row], family: str, role: str, is_async: bool) -> Row | None:
    for row in rows:
        c = row.contender
        if c.family == family and c.role == role and c.is_async == is_async:
            return row
    return None


def _floor(rows: list[Row], is_async: bool) -> Row | None:
    return _find(rows, "floor", "floor", is_async)


def _table(rows: list[Row]) -> list[str]:
    lines = [
        "| key | contender | timed | µs CPU / call | × raw httpx | µs CPU / chunk | × raw httpx "
        "| µs CPU / chunk, 1 event per read | × raw httpx |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        c = row.contender
        mode = "async" if c.is_async else "sync"
        head = f"| {c.key} | {c.label} | {mode}: {c.api} |"
        if row.error is not None:
            lines.append(f"{head} FAILED: {row.error} | | | | | |")
            continue
        cells = []
        for kind, median in (("call", row.call), ("chunk", row.chunk), ("drip", row.drip)):
            values = row.values(kind)
            versus = "—"  # the frameworks alone make no HTTP call: no floor to compare with
            if c.role != "framework":
                ratio, _ = _per_round(_ratio_of, row, _floor(rows, c.is_async), kind=kind)
                versus = _fmt_ratio(ratio)
            cells.append(f"{_us(median)}{_spread(values, median)} | {versus}")
        lines.append(f"{head} {' | '.join(cells)} |")
    return lines


def _verdict(ratio: float | None, target: float) -> str:
    if ratio is None or math.isnan(ratio):
        return "—"
    return f"≥ {target:g}×: {'met' if ratio >= target else 'missed'}"


def _pairs(rows: list[Row]) -> list[tuple[str, bool, Row, Row, Row | None]]:
    """(framework name, async, anchor, ours, framework alone) for each pair present."""
    pairs = []
    for family, role, name in (
        ("langchain", "ours", "LangChain"),
        ("llamaindex", "ours", "LlamaIndex"),
        ("llamaindex", "ours-heard", "LlamaIndex, a handler listening"),
    ):
        for is_async in (False, True):
            anchor = _find(rows, family, "anchor", is_async)
            ours = _find(rows, family, role, is_async)
            if anchor is not None and ours is not None:
                alone = _find(rows, family, "framework", is_async)
                pairs.append((name, is_async, anchor, ours, alone))
    return pairs


def _ratios(rows: list[Row], call_target: float, chunk_target: float) -> list[str]:
    lines = [
        "| framework | anchor ÷ ours | per call | target | per chunk | target "
        "| per chunk, 1 event per read | target |",
        "|---|---|---:|---|---:|---|---:|---|",
    ]
    for name, is_async, anchor, ours, _alone in _pairs(rows):
        cells = []
        for kind, target in (
            ("call", call_target),
            ("chunk", chunk_target),
            ("drip", chunk_target),
        ):
            ratio, per_round = _per_round(_ratio_of, anchor, ours, kind=kind)
            cells.append(f"{_fmt_ratio(ratio, per_round)} | {_verdict(ratio, target)}")
        lines.append(
            f"| {name} ({'async' if is_async else 'sync'}) "
            f"| {anchor.contender.label} ÷ {ours.contender.label} | {' | '.join(cells)} |"
        )
    return lines if len(lines) > 2 else []


def _floors(rows: list[Row]) -> list[str]:
    lines = [
        "| framework | per call: floor µs | ours − floor | best anchor ÷ ours "
        "| per chunk: floor µs | ours − floor | best anchor ÷ ours "
        "| 1 event per read: floor µs | ours − floor | best anchor ÷ ours |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, is_async, anchor, ours, alone in _pairs(rows):
        floor = _floor(rows, is_async)
        if alone is None or floor is None:
            continue
        cells = []
        for kind in ("call", "chunk", "drip"):
            base, _ = _per_round(lambda h, f: h + f, floor, alone, kind=kind)
            extra, _ = _per_round(lambda o, h, f: o - h - f, ours, floor, alone, kind=kind)
            best, _ = _per_round(lambda a, h, f: a / (h + f), anchor, floor, alone, kind=kind)
            cells.append(f"{_us(base)} | {_us(extra)} | {_fmt_ratio(best)}")
        lines.append(f"| {name} ({'async' if is_async else 'sync'}) | {' | '.join(cells)} |")
    return lines if len(lines) > 2 else []


def _method(plan: Plan, deltas: int, drip_deltas: int) -> str:
    return (
        f"Mode {plan.name}: per contender {plan.rounds} round(s) of {plan.calls} calls, "
        f"{plan.streams} stream(s) of {deltas} content deltas sent in ~4 KiB batches and "
        f"{plan.drips} stream(s) of {drip_deltas} deltas sent one event at a time "
        f"({DRIP_GAP_S * 1000:g} ms apart), after {plan.warmup_calls} calls and "
        f"{plan.warmup_streams} stream(s) of warm-up. Client CPU time (process_time) of the "
        f"benchmark process; the server runs in another process. µs: median over rounds, "
        f"± half the interquartile range; ratios: median of the per-round ratios. A chunk is "
        f"one content delta of the stream. Method and how to read this: benchmarks/README.md."
    )


def render(rows: list[Row], plan: Plan, deltas: int, drip_deltas: int) -> str:
    """The whole report as markdown."""
    parts = [
        "# Client overhead: TokenHub integrations vs langchain-openai and llama-index-llms-openai",
        "",
        *machine_info(),
        "",
        _method(plan, deltas, drip_deltas),
        "",
        *_table(rows),
        *_comparisons(rows, CALL_TARGET, CHUNK_TARGET),
    ]
    return "\n".join(parts) + "\n"


def render_native(rows: list[Row], plan: Plan, deltas: int, drip_deltas: int) -> str:
    """The native-protocol section (ours on ``/v1/messages`` vs the Anthropic anchors)."""
    parts = [
        "## Claude's native protocol: vs ChatAnthropic and llama-index-llms-anthropic",
        "",
        *machine_info(),
        "",
        "Every contender posts to the same `/v1/messages` of a pre-encoded server "
        "(benchmarks/loadserver.py, in its own process: a `message` body for calls, the native "
        'SSE event sequence for streams); ours with `protocol="messages"`. '
        + _method(plan, deltas, drip_deltas),
        "",
        *_table(rows),
        *_comparisons(rows, NATIVE_TARGET, NATIVE_TARGET),
    ]
    return "\n".join(parts) + "\n"


def _comparisons(rows: list[Row], call_target: float, chunk_target: float) -> list[str]:
    """The anchor ÷ ours table and the floor table, each with its lead-in."""
    parts: list[str] = []
    ratios = _ratios(rows, call_target, chunk_target)
    if ratios:
        parts += ["", "Anchor ÷ ours (higher is better for us; the targets are from the issues):"]
        parts += ["", *ratios]
    floors = _floors(rows)
    if floors:
        parts += [
            "",
            "The floor of an adapter on httpx.Client: raw httpx + the framework alone (a canned "
            "model, no HTTP). Ours − floor is what our adapter and core add on top of it (the "
            "core skips httpx.Client's layers, so this can be small or negative); anchor ÷ floor "
            "is the best ratio an adapter on httpx.Client could reach in that framework:",
            "",
            *floors,
        ]
    return parts
