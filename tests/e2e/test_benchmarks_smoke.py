"""The benchmark harness runs end to end (``--quick``) and reports every contender.

No timing is asserted: only that each row is there with numbers in it, that the report file is
written, and that the profile mode points at our own functions.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "benchmarks" / "run.py"

FRAMEWORK_ALONE = ["langchain-alone", "llamaindex-alone"]
SYNC_KEYS = ["httpx", "openai", "core", "langchain-openai", "langchain", "llamaindex-openai"]
SYNC_KEYS += ["llamaindex", "llamaindex-heard", *FRAMEWORK_ALONE]
CONTENDER_KEYS = SYNC_KEYS + [f"{key}-async" for key in SYNC_KEYS]
# Claude's native /v1/messages: its own section of the report, its own anchors and floor.
NATIVE_ALONE = ["native-langchain-alone", "native-llamaindex-alone"]
NATIVE_SYNC = ["native-httpx", "anthropic", "native-core", "langchain-anthropic"]
NATIVE_SYNC += ["native-langchain", "llamaindex-anthropic", "native-llamaindex"]
NATIVE_SYNC += ["native-llamaindex-heard", *NATIVE_ALONE]
NATIVE_KEYS = NATIVE_SYNC + [f"{key}-async" for key in NATIVE_SYNC]
NATIVE = "## Claude's native protocol"
RATIO_ROWS = ["LangChain (sync)", "LangChain (async)", "LlamaIndex (sync)", "LlamaIndex (async)"]
# TokenHub again with an instrumentation handler registered: LlamaIndex's per-response events on
RATIO_ROWS += ["LlamaIndex, a handler listening (sync)", "LlamaIndex, a handler listening (async)"]
# protocol -> (row keys, the rows without HTTP, the floor's key, per-call and per-chunk targets,
# the frameworks compared)
TABLES = {
    "chat/completions": (CONTENDER_KEYS, FRAMEWORK_ALONE, "httpx", "2.5", "4", RATIO_ROWS),
    "messages": (NATIVE_KEYS, NATIVE_ALONE, "native-httpx", "2", "2", RATIO_ROWS),
}
LOAD_KEYS = ["aiohttp", "httpx", "core", "langchain", "llamaindex"]
LOAD_KEYS += ["langchain-openai", "llamaindex-openai"]
OURS = ["core", "langchain", "llamaindex"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENHUB_")}
    return subprocess.run(
        [sys.executable, str(RUN), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _microseconds(cell: str) -> float:
    match = re.fullmatch(r"([\d,]+(?:\.\d+)?)(?: ±\d+%)?", cell)
    assert match, f"not a µs figure: {cell!r}"
    return float(match.group(1).replace(",", ""))


def _ratio(cell: str) -> float:
    match = re.fullmatch(r"(-?\d+\.\d+)×(?: ±\d+%)?", cell)
    assert match, f"not a ratio: {cell!r}"
    return float(match.group(1))


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    output = tmp_path_factory.mktemp("bench") / "results.md"
    result = _run("--quick", "--output", str(output))
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout, output


def _section(stdout: str, protocol: str) -> str:
    """The report's overhead section for ``protocol``."""
    main, native = stdout.split("## Concurrency", 1)[0].split(NATIVE, 1)
    return main if protocol == "chat/completions" else native


@pytest.mark.parametrize("protocol", TABLES)
def test_quick_run_reports_every_contender(quick_run: tuple[str, Path], protocol: str) -> None:
    keys, alone, floor, *_ = TABLES[protocol]
    overhead = _section(quick_run[0], protocol)
    rows = {cells[0]: cells for cells in map(_cells, overhead.splitlines()) if cells[0] in keys}
    assert sorted(rows) == sorted(keys)
    for key, cells in rows.items():
        assert len(cells) == 9, cells  # key, contender, timed, then (µs, × raw httpx) × 3
        figures, versus_httpx = cells[3::2], cells[4::2]
        assert all(_microseconds(cell) > 0 for cell in figures), key
        if key.removesuffix("-async") in alone:  # no HTTP: nothing to compare with
            assert versus_httpx == ["—"] * 3, key
        else:
            assert all(_ratio(cell) > 0 for cell in versus_httpx), key
    assert [_ratio(cell) for cell in rows[floor][4::2]] == [1.0] * 3
    assert [_ratio(cell) for cell in rows[f"{floor}-async"][4::2]] == [1.0] * 3


def test_the_native_section_names_its_anchors(quick_run: tuple[str, Path]) -> None:
    native = _section(quick_run[0], "messages")
    for pair in (
        'ChatAnthropic (langchain-anthropic) ÷ ChatTokenHub(protocol="messages") (ours)',
        'Anthropic (llama-index-llms-anthropic) ÷ TokenHub(protocol="messages") (ours)',
    ):
        assert native.count(f"{pair} |") == 2, pair  # sync and async
    assert "`/v1/messages`" in native


@pytest.mark.parametrize("protocol", TABLES)
def test_quick_run_reports_anchor_over_ours_ratios(
    quick_run: tuple[str, Path], protocol: str
) -> None:
    *_, call_wanted, chunk_wanted, names = TABLES[protocol]
    section = _section(quick_run[0], protocol)
    table = section.split("Anchor ÷ ours", 1)[1].split("The floor of an adapter", 1)[0]
    ratios = {cells[0]: cells for cells in map(_cells, table.splitlines())}
    for name in names:
        _name, _pair, per_call, call_target, per_chunk, chunk_target, per_read, read_target = (
            ratios[name]
        )
        assert _ratio(per_call) > 0 and _ratio(per_chunk) > 0 and _ratio(per_read) > 0, name
        assert call_target.startswith(f"≥ {call_wanted}×: "), name
        assert chunk_target.startswith(f"≥ {chunk_wanted}×: "), name
        assert read_target.startswith(f"≥ {chunk_wanted}×: "), name


@pytest.mark.parametrize("protocol", TABLES)
def test_quick_run_splits_our_cost_against_the_floor(
    quick_run: tuple[str, Path], protocol: str
) -> None:
    names = TABLES[protocol][-1]
    floors = _section(quick_run[0], protocol).split("The floor of an adapter", 1)[1]
    rows = {cells[0]: cells for cells in map(_cells, floors.splitlines()) if len(cells) == 10}
    for name in names:
        cells = rows[name][1:]  # (floor µs, ours − floor µs, best anchor ÷ ours) × 3
        assert all(_microseconds(floor) > 0 for floor in cells[0::3]), name
        for extra in cells[1::3]:  # may be negative: noise around a small number
            assert re.fullmatch(r"-?[\d,]+(?:\.\d+)?", extra), (name, extra)
        assert all(_ratio(best) > 0 for best in cells[2::3]), name


def test_quick_run_writes_the_report_with_machine_info(quick_run: tuple[str, Path]) -> None:
    stdout, output = quick_run
    report = output.read_text(encoding="utf-8")
    assert report in stdout
    assert "- CPU: " in report and "- Python 3." in report and "langchain-openai " in report


def test_quick_run_reports_the_concurrency_table_and_its_targets(
    quick_run: tuple[str, Path],
) -> None:
    stdout, _ = quick_run
    table, targets = stdout.split("## Concurrency", 1)[1].split("Targets (issue 14)", 1)
    rows = {cells[0]: cells for cells in map(_cells, table.splitlines()) if cells[0] in LOAD_KEYS}
    assert sorted(rows) == sorted(LOAD_KEYS)
    for key, cells in rows.items():
        # key, client, one call, burst, after a burst, in flight, errors, fresh loop, new
        # connection, CPU per call
        assert len(cells) == 10 and "FAILED" not in "".join(cells), cells
        assert cells[6] == "0", key  # no call failed
        assert re.fullmatch(r"[\d.]+ s / [\d.]+ s", cells[5]), key
        measured = [cells[2], cells[4], cells[9]] + (cells[7:9] if key in OURS else [])
        assert all(re.fullmatch(r"[\d,]+ µs", cell) for cell in measured), key
    verdicts = [_cells(line) for line in targets.splitlines() if line.startswith("| ")][1:]
    assert len(verdicts) == 1 + 2 + 4 * len(OURS) + 2
    for name, ratio, _wanted, verdict in verdicts:
        assert _ratio(ratio) > 0 and verdict in ("met", "missed"), name


@pytest.mark.parametrize("key", ["langchain", "native-langchain"])
def test_profile_mode_lists_our_adapter_functions(key: str) -> None:
    result = _run("--quick", "--profile", f"{key}-stream", "--ops", "1", "--top", "40")
    assert result.returncode == 0, result.stderr[-3000:]
    ours = result.stdout.split("## ours (", 1)[1]
    assert "langchain_tokenhub/" in ours and "tokenhub_core/sse.py" in ours


def test_unknown_contender_is_refused_before_anything_runs() -> None:
    result = _run("--only", "no-such-thing")
    assert result.returncode != 0
    assert "unknown contender" in result.stderr and "langchain-openai" in result.stderr
    assert "langchain-anthropic" in result.stderr
