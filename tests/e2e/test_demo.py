"""`make demo` (examples/demo.py) in a subprocess, the way a newcomer runs it."""

from __future__ import annotations

import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tests.e2e.offline import offline_env
from tokenhub_emulator import TokenHubEmulator

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.py"


def _run_demo(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # -W default shows every warning once: a deprecation in the demo's path would land in stderr.
    return subprocess.run(
        [sys.executable, "-W", "default", str(DEMO)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )


def test_the_offline_guard_of_child_processes_works(tmp_path: Path) -> None:
    probe = "import socket; socket.create_connection(('192.0.2.1', 80), timeout=1)"
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env=offline_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert "offline test process tried to reach '192.0.2.1'" in result.stderr


def test_without_a_key_the_demo_runs_on_its_own_emulator_and_says_so(tmp_path: Path) -> None:
    result = _run_demo(offline_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    out = result.stdout
    first = out.splitlines()[0]
    assert "No TOKENHUB_API_KEY" in first and "emulator" in first and "[emulator]" in first

    # The agent called both tools and answered from their results.
    assert "tool call   -> crate_price(variety='Copperbell')" in out
    assert "tool call   -> harvest_month(variety='Copperbell')" in out
    assert "tool result <- crate_price: 18.50 USD per crate" in out
    assert "tool result <- harvest_month: late September" in out
    assert "A: [emulator] Tool results: crate_price returned 18.50 USD per crate" in out

    # The RAG answer came over a stream, in many pieces, from the shipped documents.
    assert "Indexed 4 documents with MockEmbedding" in out
    # The RAG answer is the documents' sentences about the festival, not a quote of the prompt.
    assert (
        "A: [emulator] The Lantern Harvest is Marrowfield's autumn festival. It is held every "
        "year on the first Saturday of October" in out
    )
    assert "Context information" not in out
    streamed = re.search(r"\(streamed in (\d+) chunks; sources: (.+)\)", out)
    assert streamed is not None and int(streamed[1]) > 10
    assert set(streamed[2].split(", ")) == {
        "about.md",
        "cider_rules.md",
        "lantern_festival.md",
        "varieties.md",
    }

    # The cost summary covers the whole run (2 agent calls + 1 RAG call) and matches the bill.
    row = re.search(r"anthropic/claude-sonnet-4-6\s+(\d+)\s+\d+\s+\d+\s+\$(\d+\.\d{6})", out)
    total = re.search(r"total\s+(\d+)\s+(\d+)\s+(\d+)\s+\$(\d+\.\d{6})", out)
    billed = re.search(r"The emulator billed (\d+) calls, \$(\d+\.\d{6})", out)
    assert row is not None and total is not None and billed is not None
    assert int(row[1]) == int(total[1]) == int(billed[1]) == 3
    assert int(total[2]) > 0 and int(total[3]) > 0
    assert Decimal(total[4]) == Decimal(billed[2]) == Decimal(row[2]) > 0


@pytest.fixture
def keyed_env(tokenhub_emulator: TokenHubEmulator, tmp_path: Path) -> dict[str, str]:
    """The environment of someone with a key: here the test session's emulator plays TokenHub."""
    env = offline_env(tmp_path)
    env["TOKENHUB_API_KEY"] = tokenhub_emulator.api_key
    env["TOKENHUB_BASE_URL"] = tokenhub_emulator.base_url
    return env


def test_with_a_key_the_demo_uses_the_configured_tokenhub(
    keyed_env: dict[str, str], tokenhub_emulator: TokenHubEmulator, tmp_path: Path
) -> None:
    result = _run_demo(keyed_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first == f"TOKENHUB_API_KEY is set: using TokenHub at {tokenhub_emulator.base_url}"
    assert "The emulator billed" not in result.stdout  # it started no emulator of its own
    ledger = tokenhub_emulator.ledger()
    assert ledger.calls == 3
    assert f"${ledger.total_usd:.6f}" in result.stdout
    streamed = [r.body for r in tokenhub_emulator.requests if r.body and r.body.get("stream")]
    assert len(streamed) == 1  # the RAG answer


def test_a_failure_exits_non_zero_with_one_clear_line(
    keyed_env: dict[str, str], tokenhub_emulator: TokenHubEmulator, tmp_path: Path
) -> None:
    tokenhub_emulator.fail_next(401, message="invalid api key")
    result = _run_demo(keyed_env, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("demo failed: AuthenticationError: Error code: 401")
    assert "Traceback" not in result.stderr
    assert tokenhub_emulator.api_key not in result.stdout + result.stderr
    assert len(tokenhub_emulator.requests) == 1  # a 401 is not retried
