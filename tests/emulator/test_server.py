"""The server's life: start/stop, the CLI, the pytest fixture, and cheap imports."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading

import httpx
import pytest

from tests.emulator.helpers import chat
from tokenhub_emulator import RemoteEmulator, TokenHubEmulator


def _threads() -> set[str]:
    return {t.name for t in threading.enumerate()}


def test_context_manager_serves_then_stops_cleanly() -> None:
    before = _threads()
    with TokenHubEmulator() as emu:
        assert emu.running
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/api/v1", emu.base_url)
        assert emu.api_key.startswith("th-")
        response = httpx.post(
            f"{emu.base_url}/chat/completions",
            json=chat(),
            headers={"Authorization": f"Bearer {emu.api_key}"},
        )
        assert response.status_code == 200
        base_url = emu.base_url
    assert not emu.running
    assert _threads() == before
    with pytest.raises(httpx.ConnectError):
        httpx.post(f"{base_url}/chat/completions", json=chat())


def test_start_stop_and_two_servers_side_by_side() -> None:
    first, second = TokenHubEmulator(), TokenHubEmulator(api_key="th-mine")
    with pytest.raises(RuntimeError, match="not running"):
        _ = first.base_url
    first.start()
    try:
        second.start()
        assert first.port != second.port
        assert second.api_key == "th-mine"
        assert "th-" not in repr(first)
        with pytest.raises(RuntimeError, match="already running"):
            first.start()
        first.queue_reply("only on the first")
        headers = {"Authorization": "Bearer th-x"}
        answer = httpx.post(f"{second.base_url}/chat/completions", json=chat(), headers=headers)
        assert "only on the first" not in answer.text
    finally:
        first.stop()
        second.stop()
    first.stop()  # idempotent
    first.start()  # and restartable
    first.stop()


def test_a_key_not_starting_with_th_is_refused() -> None:
    with pytest.raises(ValueError, match="th-"):
        TokenHubEmulator(api_key="sk-123")


def test_the_fixture_points_the_environment_at_the_emulator(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    assert os.environ["TOKENHUB_API_KEY"] == tokenhub_emulator.api_key
    assert os.environ["TOKENHUB_BASE_URL"] == tokenhub_emulator.base_url
    assert tokenhub_emulator.running


def test_the_fixture_resets_between_tests_part_one(tokenhub_emulator: TokenHubEmulator) -> None:
    tokenhub_emulator.queue_reply("left over")
    tokenhub_emulator.fail_next(500)


def test_the_fixture_resets_between_tests_part_two(tokenhub_emulator: TokenHubEmulator) -> None:
    response = httpx.post(
        f"{tokenhub_emulator.base_url}/chat/completions",
        json=chat(),
        headers={"Authorization": f"Bearer {tokenhub_emulator.api_key}"},
    )
    assert response.status_code == 200
    assert "left over" not in response.text


def test_python_m_emulator_prints_url_and_key_first_and_stops_on_ctrl_c() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tokenhub_emulator", "--port", "0", "--latency-ms", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        match = re.fullmatch(
            r"TOKENHUB_BASE_URL=(http://127\.0\.0\.1:\d+/api/v1) TOKENHUB_API_KEY=(th-\S+)\n",
            first_line,
        )
        assert match, first_line
        base_url, key = match.groups()
        response = httpx.post(
            f"{base_url}/chat/completions",
            json=chat("from the shell"),
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        assert response.status_code == 200
        assert "from the shell" in response.json()["choices"][0]["message"]["content"]
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=20)
        assert process.returncode == 0, stderr
        assert "Traceback" not in stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_python_m_emulator_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tokenhub_emulator", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    for flag in (
        "--host",
        "--port",
        "--latency-ms",
        "--keepalive",
        "--tokens-per-second",
        "--rpm",
        "--tpm",
        "--fault-rate",
        "--seed",
        "--no-claude-rules",
        "--control-token",
    ):
        assert flag in result.stdout


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "tokenhub_emulator"],
        [sys.executable, "-m", "tokenhub_core.cli", "emulator"],
    ],
    ids=["python -m tokenhub_emulator", "tokenhub emulator"],
)
def test_limits_and_the_control_token_are_flags_too(command: list[str]) -> None:
    process = subprocess.Popen(
        [*command, "--port", "0", "--rpm", "1", "--control-token", "tok"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        match = re.fullmatch(
            r"TOKENHUB_BASE_URL=(http://127\.0\.0\.1:\d+/api/v1) TOKENHUB_API_KEY=(th-\S+)\n",
            process.stdout.readline(),
        )
        assert match
        base_url, key = match.groups()
        process.stdout.readline()
        control = process.stdout.readline()
        assert control.startswith("Control API: http://127.0.0.1:") and "/_emulator" in control
        native = process.stdout.readline()
        assert f"ANTHROPIC_BASE_URL={base_url.removesuffix('/api/v1')} " in native
        headers = {"Authorization": f"Bearer {key}"}
        first = httpx.post(f"{base_url}/chat/completions", json=chat(), headers=headers)
        second = httpx.post(f"{base_url}/chat/completions", json=chat(), headers=headers)
        assert (first.status_code, second.status_code) == (200, 429)
        assert second.headers["retry-after"]
        root = base_url.removesuffix("/api/v1")
        assert httpx.get(f"{root}/_emulator/ledger").status_code == 401
        with RemoteEmulator(base_url, control_token="tok") as remote:
            assert remote.ledger().calls == 1
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=20)


def test_bad_flags_are_refused_by_name() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tokenhub_emulator", "--fault-rate", "2"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "--fault-rate" in result.stderr and "from 0 to 1" in result.stderr


def test_importing_the_core_or_the_plugin_does_not_import_the_server() -> None:
    code = (
        "import sys, tokenhub_core, tokenhub_emulator, tokenhub_emulator.pytest_plugin\n"
        "heavy = [m for m in ('starlette', 'uvicorn', 'tokenhub_emulator.server') "
        "if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "from tokenhub_emulator import TokenHubEmulator\n"
        "assert 'uvicorn' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_plugin_is_registered_through_the_entry_point(
    pytestconfig: pytest.Config,
) -> None:
    plugin = pytestconfig.pluginmanager.get_plugin("tokenhub_emulator")
    assert plugin is not None
    assert plugin.__name__ == "tokenhub_emulator.pytest_plugin"


def test_a_small_answer_arrives_in_one_segment(tokenhub_emulator: TokenHubEmulator) -> None:
    """Status line, headers and body leave together: one wake-up of the client, not two."""
    body = json.dumps(chat()).encode()
    request = (
        f"POST /api/v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {tokenhub_emulator.api_key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with socket.create_connection(("127.0.0.1", tokenhub_emulator.port), timeout=10) as sock:
        sock.sendall(request)
        first_read = sock.recv(65536)
    head, _, rest = first_read.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(rest)["object"] == "chat.completion"


def test_an_internal_error_is_still_an_openai_shaped_500(
    tokenhub_emulator: TokenHubEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("tokenhub_emulator.app.answer", broken)
    response = httpx.post(
        f"{tokenhub_emulator.base_url}/chat/completions",
        json=chat(),
        headers={"Authorization": f"Bearer {tokenhub_emulator.api_key}"},
    )
    assert response.status_code == 500
    assert response.headers["x-request-id"]
    assert "boom" in response.json()["error"]["message"]
