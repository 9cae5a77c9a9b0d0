"""The batch engine at scale: 10,000 rows against a loopback gateway with 200 ms latency.

    python benchmarks/batch.py                 # every scenario at 10,000 rows; writes the batch
                                               # section of benchmarks/results.md (~10 min)
    python benchmarks/batch.py --rows 1000     # smaller (figures printed, not written)
    python benchmarks/batch.py --only paced,kill

The gateway (tests/batch/gateway.py) runs in its own process and records when each request
arrived, so the per-minute counts are the server's. Scenarios (the issue's targets):

- paced: an RPM cap; throughput against the cap, rows lost or duplicated, the busiest minute;
- faults: the same with 10% of requests answered 429 + Retry-After;
- kill: ``tokenhub batch`` killed with SIGKILL at a random moment, then rerun to the end;
- budget: a budget that covers half the rows; the spend, and every answered row saved;
- ray: the Ray Data runner on a local 2-CPU cluster (2 workers), one RPM cap for both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.batch.gateway import most_in_window, usage_of  # noqa: E402
from tokenhub_core import TokenHubClient, resolve_model  # noqa: E402
from tokenhub_core.batch import arun_batch  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results.md"
BEGIN, END = "<!-- batch:begin -->", "<!-- batch:end -->"
MODEL = "claude-haiku-4-5"
LATENCY_S = 0.2
# 50 requests a second: what one process's client sustains on a shared 2-CPU machine (about
# 10 ms of CPU per call at this concurrency, most of it in httpcore's connection pool).
RPM = 3000
CONCURRENCY = 32
KEY = "th-gateway-key"


@contextmanager
def gateway(fault_rate: float = 0.0, retry_after_s: float = 1.0) -> Iterator[str]:
    """A gateway in its own process; yields its base URL."""
    command = [
        sys.executable,
        "-m",
        "tests.batch.gateway",
        f"--latency-s={LATENCY_S}",
        f"--fault-rate={fault_rate}",
        f"--retry-after-s={retry_after_s}",
        "--seed=1",
    ]
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        yield child.stdout.readline().strip()
    finally:
        child.send_signal(signal.SIGINT)
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def stats(base_url: str) -> dict[str, Any]:
    root = base_url.removesuffix("/api/v1")
    result: dict[str, Any] = httpx.get(f"{root}/stats", timeout=30).json()
    return result


def _messages(i: int) -> list[dict[str, Any]]:
    return [{"role": "user", "content": f"Classify ticket {i}"}]


def write_input(path: Path, rows: int) -> Path:
    with path.open("w") as handle:
        for i in range(rows):
            body = {
                "model": MODEL,
                "max_tokens": 5,
                "messages": _messages(i),
            }
            line = {"custom_id": f"row-{i}", "method": "POST", "url": "/v1/chat/completions"}
            handle.write(json.dumps({**line, "body": body}) + "\n")
    return path


def output_ids(path: Path) -> Counter[str]:
    return Counter(json.loads(line)["custom_id"] for line in path.read_text().splitlines())


def integrity(rows: int, ids: Counter[str]) -> dict[str, Any]:
    expected = {f"row-{i}" for i in range(rows)}
    return {
        "lost": len(expected - set(ids)),
        "duplicated": sum(n - 1 for n in ids.values() if n > 1),
    }


def rate_figures(arrivals: list[float], rows: int, rpm: float) -> dict[str, Any]:
    span = max(arrivals) - min(arrivals)
    rate = (len(arrivals) - 1) * 60 / span if span else 0.0
    return {
        "requests": len(arrivals),
        "rate_per_min": rate,
        "of_cap": rate / rpm,
        "busiest_minute": most_in_window(arrivals, 60.0) if span >= 60 else None,
        "busiest_second": most_in_window(arrivals, 1.0),
        "cap": rpm,
    }


def client(base_url: str) -> TokenHubClient:
    return TokenHubClient(api_key=KEY, base_url=base_url, max_retries=0)


def scenario_paced(rows: int, work: Path, fault_rate: float = 0.0) -> dict[str, Any]:
    source = write_input(work / "in.jsonl", rows)
    output = work / f"paced-{fault_rate}.jsonl"
    with gateway(fault_rate=fault_rate) as url:
        summary = asyncio.run(
            arun_batch(source, output, rpm=RPM, max_concurrency=CONCURRENCY, client=client(url))
        )
        seen = stats(url)
    figures = rate_figures(seen["arrivals"], rows, RPM)
    figures.update(integrity(rows, output_ids(output)))
    figures.update(
        elapsed_s=summary.elapsed_s,
        rows_per_min=summary.rows_per_minute,
        rate_limited=seen["statuses"].count(429),
        answered_twice=len(seen["answered"]) - len(set(seen["answered"])),
    )
    return figures


def scenario_kill(rows: int, work: Path) -> dict[str, Any]:
    source = write_input(work / "in.jsonl", rows)
    output = work / "killed.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENHUB_")}
    with gateway() as url:
        env.update(TOKENHUB_API_KEY=KEY, TOKENHUB_BASE_URL=url)
        command = [sys.executable, "-m", "tokenhub_core.cli", "batch", str(source)]
        command += ["-o", str(output), "--quiet", f"--rpm={RPM}"]
        command += [f"--max-concurrency={CONCURRENCY}"]
        expected_s = rows * 60 / RPM
        first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        while not (output.exists() and output.stat().st_size):  # answers are being written
            time.sleep(0.01)
        kill_after = random.uniform(0.1, 0.8) * expected_s
        time.sleep(kill_after)
        first.kill()
        first.wait()
        saved = output.read_text().count("\n")
        started = time.monotonic()
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
        rerun_s = time.monotonic() - started
        seen = stats(url)
    answered = len(seen["answered"])
    figures = integrity(rows, output_ids(output))
    figures.update(
        killed_after_s=kill_after,
        saved_at_kill=saved,
        redone=answered - rows,
        rerun_s=rerun_s,
        lines=sum(output_ids(output).values()),
    )
    return figures


def scenario_budget(rows: int, work: Path) -> dict[str, Any]:
    source = write_input(work / "in.jsonl", rows)
    output = work / "budget.jsonl"
    info = resolve_model(MODEL)
    assert info is not None
    costs = [info.cost_usd(*usage_of(_messages(i))) for i in range(rows)]
    budget = float(sum(costs, Decimal(0)) / 2)
    with gateway() as url:
        summary = asyncio.run(
            arun_batch(
                source,
                output,
                rpm=RPM,
                budget_usd=budget,
                max_concurrency=CONCURRENCY,
                client=client(url),
            )
        )
        seen = stats(url)
    billed = sum(
        (info.cost_usd(*usage_of([{"role": "user", "content": t}])) for t in seen["answered"]),
        Decimal(0),
    )
    saved = output.read_text().count("\n")
    return {
        "budget_usd": budget,
        "spent_usd": float(summary.cost.total),
        "billed_usd": float(billed),
        "answered": len(seen["answered"]),
        "saved": saved,
        "not_sent": summary.not_sent,
        "stopped": summary.stopped,
    }


def scenario_ray(rows: int, work: Path, reference: Path | None) -> dict[str, Any]:
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    # Off: on a shared machine, other processes' memory would make Ray kill our workers.
    os.environ["RAY_memory_monitor_refresh_ms"] = "0"  # noqa: SIM112 (Ray's spelling)
    import ray

    from tokenhub_core.batch.ray_data import read_batch, run_on_ray, write_results

    source = write_input(work / "in.jsonl", rows)
    output = work / "ray.jsonl"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        with gateway() as url:
            started = time.monotonic()
            results, summary = run_on_ray(
                read_batch(str(source)),
                rpm=RPM,
                workers=2,
                batch_size=500,
                max_concurrency=CONCURRENCY // 2,
                api_key=KEY,
                base_url=url,
            )
            elapsed = time.monotonic() - started
            write_results(results, str(output))
            seen = stats(url)
    finally:
        ray.shutdown()
    figures = rate_figures(seen["arrivals"], rows, RPM)
    figures.update(integrity(rows, output_ids(output)))
    figures.update(elapsed_s=elapsed, cost_usd=summary.cost_usd)
    if reference is not None:
        figures["same_as_local"] = _answers(output) == _answers(reference)
    return figures


def _answers(path: Path) -> dict[str, str]:
    answers = {}
    for text in path.read_text().splitlines():
        line = json.loads(text)
        answers[line["custom_id"]] = line["response"]["body"]["choices"][0]["message"]["content"]
    return answers


def render(rows: int, results: dict[str, dict[str, Any]]) -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    out = [
        BEGIN,
        "## Batch engine: 10,000-row targets" if rows == 10_000 else f"## Batch: {rows} rows",
        "",
        f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} CPUs, "
        f"load average at the end: {load}; Python {platform.python_version()}",
        f"- `python benchmarks/batch.py` (`make bench-batch`): {rows:,} rows against "
        f"tests/batch/gateway.py in its own process, {LATENCY_S * 1000:.0f} ms per answer, "
        f"RPM cap {RPM:,}; per-minute counts are the gateway's receive times.",
        "",
        "| scenario | figures |",
        "|---|---|",
    ]
    for name, figures in results.items():
        cells = "; ".join(f"{k} {_fmt(v)}" for k, v in figures.items() if v is not None)
        out.append(f"| {name} | {cells} |")
    out.append(END)
    return "\n".join(out) + "\n"


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.6f}" if value < 1 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def write_section(section: str) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else ""
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END) + "\n?", re.DOTALL)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text + "\n" + section
    RESULTS.write_text(text)


SCENARIOS: dict[str, Callable[[int, Path, dict[str, Path]], dict[str, Any]]] = {
    "paced": lambda rows, work, outs: scenario_paced(rows, work),
    "faults": lambda rows, work, outs: scenario_paced(rows, work, fault_rate=0.1),
    "kill": lambda rows, work, outs: scenario_kill(rows, work),
    "budget": lambda rows, work, outs: scenario_budget(rows, work),
    "ray": lambda rows, work, outs: scenario_ray(rows, work, outs.get("paced")),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/batch.py", description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--only", help="comma-separated: " + ", ".join(SCENARIOS))
    args = parser.parse_args(argv)
    chosen = args.only.split(",") if args.only else list(SCENARIOS)
    work = Path(tempfile.mkdtemp(prefix="tokenhub-batch-bench-"))
    outputs = {"paced": work / "paced-0.0.jsonl"}
    results = {}
    for name in chosen:
        print(f"{name}: {args.rows:,} rows ...", file=sys.stderr, flush=True)
        results[name] = SCENARIOS[name](args.rows, work, outputs)
        print(f"  {results[name]}", file=sys.stderr, flush=True)
    section = render(args.rows, results)
    print(section)
    if args.rows == 10_000 and not args.only:
        write_section(section)
        print(f"written to {RESULTS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
