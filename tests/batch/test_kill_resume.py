"""``kill -9`` in the middle of ``tokenhub batch``, then the same command again: nothing lost.

The batch runs in a child process (with the suite's loopback guard) against the session's emulator;
it is killed at a random moment once answers are being written, and rerun to the end.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.offline import offline_env
from tokenhub_emulator import TokenHubEmulator

from .helpers import ids_once, read_lines, write_batch

ROWS = 150


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "tokenhub_core.cli", "batch", *args, "--quiet"]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_a_killed_run_resumes_with_every_row_exactly_once(
    tokenhub_emulator: TokenHubEmulator, tmp_path: Path
) -> None:
    tokenhub_emulator.latency_ms = 100
    source = write_batch(tmp_path / "in.jsonl", ROWS)
    output = tmp_path / "out.jsonl"
    env = offline_env(tmp_path)
    env["TOKENHUB_API_KEY"] = tokenhub_emulator.api_key
    env["TOKENHUB_BASE_URL"] = tokenhub_emulator.base_url
    args = [str(source), "-o", str(output), "--max-concurrency", "16"]

    child = _start(args, env)
    deadline = time.monotonic() + 30
    while not (output.exists() and output.stat().st_size) and time.monotonic() < deadline:
        time.sleep(0.01)
    delay = random.uniform(0.0, 0.4)
    time.sleep(delay)
    os.kill(child.pid, signal.SIGKILL)
    child.communicate(timeout=10)
    assert child.returncode == -signal.SIGKILL
    saved = len(read_lines(output)) if output.read_text().endswith("\n") else None
    assert saved is None or 0 < saved < ROWS, f"killed {delay:.2f}s in, {saved} rows saved"

    rerun = _start(args, env)
    out, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, err
    assert ids_once(output) == {f"row-{i}": 1 for i in range(ROWS)}
    assert all(line["response"]["status_code"] == 200 for line in read_lines(output))
    # Redone: at most the rows in flight at the kill (16), billed twice by the server.
    assert ROWS <= tokenhub_emulator.ledger().calls <= ROWS + 16
    assert " skipped (already in the output)" in out
