"""Client overhead and concurrency of the TokenHub integrations, side by side with the anchors.

    python benchmarks/run.py                     # full run; writes benchmarks/results.md
    python benchmarks/run.py --quick             # a few iterations (smoke test)
    python benchmarks/run.py --only httpx,langchain,langchain-openai    # overhead rows only
    python benchmarks/run.py --table native --quick   # Claude's native protocol vs its anchors
    python benchmarks/run.py --table concurrency --transports
    python benchmarks/run.py --profile langchain-stream

See benchmarks/README.md for the method and how to read the numbers.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import concurrency
from benchserver import BenchServer
from contenders import CONTENDERS
from measure import FULL, QUICK, Plan, Row, Runner
from native import NATIVE_CONTENDERS, NativeServer
from ops import Contender
from profiling import parse_target, profile
from report import render, render_native

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results.md"
# The hand-written transport decision, kept with the numbers of each full run.
DECISION = Path(__file__).resolve().parent / "transport-decision.md"
# Tracing would send every run to LangSmith (and cost client CPU): never part of the measurement.
_TRACING_ENV = (
    "LANGSMITH_TRACING",
    "LANGSMITH_TRACING_V2",
    "LANGCHAIN_TRACING",
    "LANGCHAIN_TRACING_V2",
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/run.py",
        description="Client CPU per call and per streamed chunk: ours vs the anchors.",
    )
    parser.add_argument("--quick", action="store_true", help="a few iterations only (~40 s)")
    parser.add_argument(
        "--table",
        choices=("all", "overhead", "native", "concurrency"),
        default="all",
        help="client CPU per call and chunk on chat/completions (overhead) and on Claude's "
        "native /v1/messages (native), wall time under load (concurrency), or all (default; "
        "--only implies the overhead tables its keys belong to)",
    )
    parser.add_argument(
        "--transports",
        action="store_true",
        help="with --quick: also the core on the transports the async pool was chosen against "
        "(full runs always include them)",
    )
    parser.add_argument(
        "--only",
        metavar="KEYS",
        help="comma-separated contender keys: " + ", ".join(c.key for c in _ALL),
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="where to write the markdown report (default: benchmarks/results.md for a full "
        "run of every contender; not written otherwise)",
    )
    parser.add_argument(
        "--profile",
        metavar="KEY-call|KEY-stream|KEY-drip",
        help="cProfile one contender's calls, streams or dripped streams instead of benchmarking",
    )
    parser.add_argument(
        "--ops", type=int, help="operations to profile (default: the plan's calls, 2x streams)"
    )
    parser.add_argument("--top", type=int, default=25, help="rows per profile table (25)")
    parser.add_argument(
        "--callers",
        metavar="REGEX",
        help="with --profile: also print who calls the functions matching REGEX",
    )
    return parser


_ALL = CONTENDERS + NATIVE_CONTENDERS


def _select(only: str | None) -> tuple[Contender, ...]:
    if not only:
        return _ALL
    keys = [k.strip() for k in only.split(",") if k.strip()]
    known = {c.key for c in _ALL}
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise SystemExit(f"unknown contender(s) {unknown}; known: {', '.join(sorted(known))}")
    return tuple(c for c in _ALL if c.key in keys)


def _measure(runner: Runner, contenders: tuple[Contender, ...]) -> list[Row]:
    rows = []
    for contender in contenders:
        print(f"preparing {contender.key}", file=sys.stderr, flush=True)
        rows.append(runner.prepare(contender))
    runner.measure(rows)
    return rows


def _native(plan: Plan, contenders: tuple[Contender, ...]) -> tuple[list[Row], str]:
    """The native-protocol rows, measured against the pre-encoded server, and their section."""
    with NativeServer(long_words=plan.long_words, drip_words=plan.drip_words) as server:
        runner = Runner(server, plan)
        try:
            rows = _measure(runner, contenders)
        finally:
            runner.close()
    return rows, render_native(rows, plan, server.long.deltas, server.drip.deltas)


def _kept_batch_section(output: Path) -> str:
    """The batch section of an existing report (benchmarks/batch.py writes it; kept here)."""
    if not output.exists():
        return ""
    old = output.read_text(encoding="utf-8")
    begin, end = old.find("<!-- batch:begin -->"), old.find("<!-- batch:end -->")
    if begin < 0 or end < begin:
        return ""
    return "\n" + old[begin : end + len("<!-- batch:end -->")] + "\n"


_NATIVE_BEGIN, _NATIVE_END = "<!-- native:begin -->\n", "<!-- native:end -->\n"


def _with_native_section(report: str, section: str) -> str:
    """``report`` with its native section replaced by ``section`` (inserted before the
    concurrency table if it has none), so ``--table native`` refreshes only its own part."""
    begin, end = report.find(_NATIVE_BEGIN), report.find(_NATIVE_END)
    if 0 <= begin < end:
        return report[:begin] + section + report[end + len(_NATIVE_END) :]
    at = report.find("## Concurrency")
    return report[:at] + section + "\n" + report[at:] if at >= 0 else report + "\n" + section


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (or a profile); returns 1 when a contender failed."""
    args = _parser().parse_args(argv)
    for name in _TRACING_ENV:
        os.environ.pop(name, None)
    plan = QUICK if args.quick else FULL
    target = parse_target(args.profile, _ALL) if args.profile else None
    if target is not None:
        native = target[0] in NATIVE_CONTENDERS
        server_cls = NativeServer if native else BenchServer
        with server_cls(long_words=plan.long_words, drip_words=plan.drip_words) as server:
            runner = Runner(server, plan)
            try:
                profile(runner, target[0], target[1], args.ops, args.top, args.callers)
            finally:
                runner.close()
        return 0
    selected = _select(args.only)
    main_keys = [c for c in selected if c in CONTENDERS]
    native_keys = [c for c in selected if c in NATIVE_CONTENDERS]
    overhead = args.table in ("all", "overhead") and bool(main_keys)
    on_native = args.table in ("all", "native") and bool(native_keys)
    under_load = args.table == "concurrency" or (args.table == "all" and not args.only)

    rows: list[Row] = []
    if overhead:
        with BenchServer(long_words=plan.long_words, drip_words=plan.drip_words) as server:
            runner = Runner(server, plan)
            try:
                rows = _measure(runner, tuple(main_keys))
            finally:
                runner.close()
        text = render(rows, plan, server.long.deltas, server.drip.deltas)
    else:
        text = "# TokenHub integrations: client overhead and concurrency\n"
    native_section = ""
    if on_native:
        native_rows, section = _native(plan, tuple(native_keys))
        rows += native_rows
        native_section = _NATIVE_BEGIN + section + _NATIVE_END
        text += "\n" + native_section
    load_rows: list[dict[str, object]] = []
    if under_load:
        load_plan = concurrency.QUICK if args.quick else concurrency.FULL
        # Full runs keep the rows behind the transport decision; quick ones skip them.
        transports = args.transports or not args.quick
        load_rows = concurrency.measure_all(load_plan, transports=transports)
        text += "\n" + concurrency.render(load_rows, load_plan)
    print(text)
    output = args.output
    if output is None and not args.quick and not args.only and args.table == "all":
        output = DEFAULT_OUTPUT
        text += "\n" + DECISION.read_text(encoding="utf-8")
    if output is not None:
        output.write_text(text + _kept_batch_section(output), encoding="utf-8")
        print(f"written to {output}", file=sys.stderr)
    elif args.table == "native" and not args.quick and not args.only and DEFAULT_OUTPUT.exists():
        old = DEFAULT_OUTPUT.read_text(encoding="utf-8")
        DEFAULT_OUTPUT.write_text(_with_native_section(old, native_section), encoding="utf-8")
        print(f"native section written to {DEFAULT_OUTPUT}", file=sys.stderr)
    failed = [row.contender.key for row in rows if row.error is not None]
    failed += [str(row["key"]) for row in load_rows if "failed" in row]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
