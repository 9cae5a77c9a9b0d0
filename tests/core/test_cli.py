"""The ``tokenhub`` command: one clear line on failure, never a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tokenhub_core import MODELS
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
