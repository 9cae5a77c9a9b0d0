"""The ``tokenhub`` command: one clear line on failure, never a traceback."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tokenhub_core import MODELS
from tokenhub_core.batch import BatchProgress
from tokenhub_core.batch.progress import ProgressPrinter
from tokenhub_core.cli import main
from tokenhub_emulator import TokenHubEmulator


def test_models_prints_the_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for model in MODELS.values():
        assert model.id in out and model.short_id in out and model.tier in out
    assert "Sonnet 4.6 *" in out and "* recommended default" in out
    assert "15.00" in out and "1,000,000" in out


def test_chat_streams_then_reports_tokens_and_cost(
    tokenhub_emulator: TokenHubEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["chat", "What is a pool?", "--model", "claude-haiku-4-5", "--system", "Be brief."])
        == 0
    )
    captured = capsys.readouterr()
    assert captured.out.startswith("[emulator]")
    usage = tokenhub_emulator.ledger()
    assert f"{usage.prompt_tokens} input + {usage.completion_tokens} output tokens" in captured.err
    assert f"${usage.total_usd:.6f}" in captured.err
    body = tokenhub_emulator.requests[0].body
    assert body is not None and body["stream"] is True
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}


def test_chat_without_streaming(
    tokenhub_emulator: TokenHubEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["chat", "hello", "--no-stream", "--max-tokens", "50"]) == 0
    assert capsys.readouterr().out.startswith("[emulator]")
    body = tokenhub_emulator.requests[0].body
    assert body is not None and "stream" not in body and body["max_tokens"] == 50


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["chat", "hi"], 1, "TOKENHUB_API_KEY"),
        (["chat", "hi", "--temperature", "3"], 1, "temperature"),
        (["chat"], 2, "prompt"),
        (["fly"], 2, "invalid choice"),
        (["chat", "hi", "--max-tokens", "lots"], 2, "invalid int value"),
    ],
)
def test_failures_are_one_line_and_non_zero(
    argv: list[str], code: int, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if code == 2:
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == code
    else:
        assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("tokenhub") and "error:" in err and message in err
    assert "Traceback" not in err


def test_server_errors_are_one_line(
    tokenhub_emulator: TokenHubEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["chat", "hi", "--model", "claude-sonnet-9"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "404" in err


def test_emulator_subcommand_serves_and_announces_itself() -> None:
    command = shutil.which("tokenhub", path=os.path.dirname(sys.executable))
    assert command is not None, "the console script is installed with the package"
    with subprocess.Popen(
        [command, "emulator", "--port", "0"], stdout=subprocess.PIPE, text=True
    ) as server:
        try:
            assert server.stdout is not None
            first = server.stdout.readline()
            assert first.startswith("TOKENHUB_BASE_URL=http://127.0.0.1:")
            assert "TOKENHUB_API_KEY=th-" in first
        finally:
            server.terminate()
            server.wait(timeout=10)


# tokenhub batch


def _batch_file(path: Path, rows: int) -> Path:
    lines = [
        {
            "custom_id": f"t{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"messages": [{"role": "user", "content": f"ticket {i}"}], "max_tokens": 16},
        }
        for i in range(rows)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_batch_answers_every_row_and_prints_a_summary(
    tokenhub_emulator: TokenHubEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, output = _batch_file(tmp_path / "in.jsonl", 12), tmp_path / "out.jsonl"
    argv = ["batch", str(source), "-o", str(output), "--model", "claude-haiku-4-5", "--rpm", "6000"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert sorted(line["custom_id"] for line in lines) == sorted(f"t{i}" for i in range(12))
    assert {r.body["model"] for r in tokenhub_emulator.requests if r.body} == {"claude-haiku-4-5"}
    assert "12 answered, 0 failed, 0 skipped" in captured.out
    assert f"${tokenhub_emulator.ledger().total_usd:.6f}" in captured.out
    progress = captured.err.splitlines()  # not a terminal: plain lines, the last one final
    assert progress and progress[-1].startswith("batch: 12/12 rows (100%), 0 failed")
    assert "\r" not in captured.err
    assert main(argv) == 0  # again: everything is skipped, nothing is sent
    assert "0 answered, 0 failed, 12 skipped" in capsys.readouterr().out
    assert tokenhub_emulator.ledger().calls == 12


def test_batch_stopped_by_the_budget_says_to_rerun(
    tokenhub_emulator: TokenHubEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _batch_file(tmp_path / "in.jsonl", 30)
    argv = ["batch", str(source), "-o", str(tmp_path / "out.jsonl"), "--quiet"]
    assert main([*argv, "--budget-usd", "0.0008", "--model", "claude-haiku-4-5"]) == 3
    captured = capsys.readouterr()
    assert "stopped early: the budget is spent" in captured.out
    assert "rows left: rerun the same command to continue" in captured.out
    assert captured.err == ""
    assert 0 < tokenhub_emulator.ledger().total_usd <= Decimal("0.0008")


@pytest.mark.parametrize(
    ("content", "code", "message"),
    [
        ('{"custom_id": "a", "messages": []}\n', 1, "in.jsonl:1: invalid messages=[]"),
        ("{oops\n", 1, "in.jsonl:1: invalid line="),
        (None, 1, "cannot read"),
    ],
)
def test_batch_input_problems_are_one_line_before_anything_is_sent(
    content: str | None,
    code: int,
    message: str,
    tokenhub_emulator: TokenHubEmulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "in.jsonl"
    if content is not None:
        source.write_text(content)
    assert main(["batch", str(source), "-o", str(tmp_path / "out.jsonl")]) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("tokenhub: error:") and message in err
    assert tokenhub_emulator.requests == []


def test_batch_caps_must_be_positive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["batch", "in.jsonl", "-o", "out.jsonl", "--rpm", "0"])
    assert exited.value.code == 2
    assert "argument --rpm: must be > 0, got 0" in capsys.readouterr().err


def test_batch_progress_is_a_bar_on_a_terminal() -> None:
    screen = io.StringIO()
    printer = ProgressPrinter(screen, tty=True, every_s=0)
    printer(BatchProgress(total=200, succeeded=50, skipped=50, cost_usd=0.0125, elapsed_s=10))
    printer.finish()
    first, second = screen.getvalue().split("\r")[1:]
    assert first.startswith("[############............] 100/200 rows (50%), 0 failed, 5.0 rows/s")
    assert "ETA 20s, $0.012500" in first and second.endswith("\n")


def test_chat_over_claudes_protocol_streams_thinking_to_stderr(
    tokenhub_emulator: TokenHubEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["chat", "Is 1009 prime?", "--protocol", "messages", "--thinking", "2048"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    request = tokenhub_emulator.requests[-1]
    assert request.path.endswith("/messages")
    assert request.body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert captured.out.strip()
    thinking, summary = captured.err.rsplit("\n[", 1)
    assert thinking.strip() and thinking.strip() not in captured.out
    assert "input" in summary and "$" in summary


def test_batch_over_claudes_protocol_reads_a_shared_prefix_from_the_cache(
    tokenhub_emulator: TokenHubEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manual = "Refunds are accepted within thirty days of purchase with a receipt. " * 120
    system = [{"type": "text", "text": manual, "cache_control": {"type": "ephemeral"}}]
    rows = [
        {
            "custom_id": f"q{i}",
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": f"Question {i}: how long is the refund window?"},
            ],
        }
        for i in range(5)
    ]
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    argv = ["batch", str(source), "-o", str(output), "--protocol", "messages"]
    assert main([*argv, "--model", "claude-sonnet-4-6", "--max-concurrency", "1"]) == 0
    usages = [
        json.loads(line)["response"]["body"]["usage"] for line in output.read_text().splitlines()
    ]
    reads = [u["prompt_tokens_details"]["cached_tokens"] for u in usages]
    writes = [u["prompt_tokens_details"]["cache_creation_tokens"] for u in usages]
    assert sorted(reads) == [0, *[reads[-1]] * 4] and reads[-1] > 1000
    assert sum(1 for w in writes if w) == 1
    ledger = tokenhub_emulator.ledger()
    assert {r.path.rsplit("/", 1)[-1] for r in tokenhub_emulator.requests} == {"messages"}
    assert f"${ledger.total_usd:.6f}" in capsys.readouterr().out
