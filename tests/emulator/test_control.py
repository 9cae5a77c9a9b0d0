"""The HTTP control API (``/_emulator/<op>``): any process scripts the emulator and reads it back."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from decimal import Decimal

import httpx
import pytest
from starlette.testclient import TestClient

from tests.emulator.helpers import chat
from tokenhub_core import TokenHubClient
from tokenhub_core.errors import InternalServerError
from tokenhub_emulator import ControlError, RemoteEmulator, TokenHubEmulator
from tokenhub_emulator.app import create_app
from tokenhub_emulator.state import EmulatorState

# A second process, scripting with plain HTTP as a Node or shell client would: no project import.
SCRIPT_A_FAULT = """
import json, sys, httpx
control = sys.argv[1] + "/_emulator"
httpx.post(control + "/fail_next", json={"status": 503, "headers": {"Retry-After": "0"}}).raise_for_status()
httpx.post(control + "/queue_reply", json={"text": "scripted from another process"}).raise_for_status()
"""
# A third process reads the ledger and the request log back through RemoteEmulator.
READ_BACK = """
import json, sys
from tokenhub_emulator import RemoteEmulator
with RemoteEmulator(sys.argv[1]) as emu:
    ledger = emu.ledger()
    print(json.dumps({
        "calls": ledger.calls,
        "total_usd": str(ledger.total_usd),
        "statuses": [r.status for r in emu.requests],
        "authorization": [r.headers.get("authorization") for r in emu.requests],
    }))
"""


def _python(code: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_another_process_scripts_a_fault_and_reads_the_ledger(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    _python(SCRIPT_A_FAULT, tokenhub_emulator.url)

    client = TokenHubClient(max_retries=1)
    completion = client.chat(model="claude-haiku-4-5", messages=[{"role": "user", "content": "hi"}])
    assert completion.choices[0].message.content == "scripted from another process"

    seen = json.loads(_python(READ_BACK, tokenhub_emulator.base_url))
    assert seen["statuses"] == [503, 200]
    assert seen["calls"] == 1  # the 503 cost nothing
    assert Decimal(seen["total_usd"]) == tokenhub_emulator.ledger().total_usd > 0
    assert seen["authorization"] == ["Bearer th-***", "Bearer th-***"]


def test_remote_scripting_round_trips_every_operation(
    tokenhub_emulator: TokenHubEmulator, http: httpx.Client
) -> None:
    with RemoteEmulator(tokenhub_emulator.url) as remote:
        remote.queue_reply(json={"a": 1}, usage={"prompt_tokens": 10, "completion_tokens": 2})
        remote.fail_next(418, body=b"\x00teapot", headers={"x-why": "tea"})
        remote.fail_next_html(502)
        remote.sse_error_after(1, message="mid-stream")
        remote.latency_ms = 1
        assert remote.latency_ms == 1.0
        before = time.time()
        teapot = http.post("/chat/completions", json=chat("one"))
        html = http.post("/chat/completions", json=chat("two"))
        ok = http.post("/chat/completions", json=chat("three"))
        streamed = http.post("/chat/completions", json=chat("four", stream=True))
        after = time.time()

        assert (teapot.status_code, teapot.content, teapot.headers["x-why"]) == (
            418,
            b"\x00teapot",
            "tea",
        )
        assert html.status_code == 502 and "<html>" in html.text
        assert ok.json()["choices"][0]["message"]["content"] == '{"a": 1}'
        assert '"message": "mid-stream"' in streamed.text

        recorded = remote.requests
        assert [r.status for r in recorded] == [418, 502, 200, 200]
        assert json.loads(recorded[0].raw_body) == chat("one")
        assert all(before <= r.received_at <= after for r in recorded)
        assert [r.received_at for r in recorded] == sorted(r.received_at for r in recorded)
        ledger = remote.ledger()
        assert ledger.calls == 1 and ledger.prompt_tokens == 10
        assert ledger.total_usd == tokenhub_emulator.ledger().total_usd
        assert isinstance(ledger.total_usd, Decimal)
        assert remote.ledger("th-somebody-else").calls == 0

        remote.reset()
        assert tokenhub_emulator.requests == [] and tokenhub_emulator.latency_ms == 0.0


def test_bad_arguments_are_refused_with_the_parameter_named(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    control = tokenhub_emulator.control_url
    response = httpx.post(f"{control}/fail_next", json={"status": 99})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "status"
    assert "status=99" in response.json()["error"]["message"]
    unknown = httpx.post(f"{control}/explode", json={})
    assert unknown.status_code == 404 and "queue_reply" in unknown.json()["error"]["message"]
    extra = httpx.post(f"{control}/truncate_next", json={"times": 1, "colour": "red"})
    assert extra.status_code == 400 and "colour" in extra.json()["error"]["message"]
    assert httpx.post(f"{control}/reset", content=b"[1]").status_code == 400
    with RemoteEmulator(tokenhub_emulator.url) as remote, pytest.raises(ControlError, match="rpm"):
        remote.configure(rpm=0)


def test_reads_also_answer_plain_gets(tokenhub_emulator: TokenHubEmulator) -> None:
    tokenhub_emulator.queue_reply("x")
    TokenHubClient().chat(model="claude-haiku-4-5", messages=[{"role": "user", "content": "hi"}])
    control = tokenhub_emulator.control_url
    [entry] = httpx.get(f"{control}/ledger", params={"api_key": tokenhub_emulator.api_key}).json()
    assert entry["api_key"] == "th-***" and Decimal(entry["cost_usd"]) > 0
    assert httpx.get(f"{control}/requests").json()[0]["status"] == 200
    assert httpx.get(f"{control}/configure").json()["claude_rules"] is True
    assert httpx.get(f"{control}/reset").status_code == 400  # changes need a POST


def test_a_control_token_is_required_once_set() -> None:
    with TokenHubEmulator(control_token="s3cret") as emu:
        assert httpx.post(f"{emu.control_url}/reset").status_code == 401
        wrong = {"Authorization": "Bearer guess"}
        assert httpx.post(f"{emu.control_url}/reset", headers=wrong).status_code == 401
        with RemoteEmulator(emu.url, control_token="s3cret") as remote:
            remote.fail_next(500)
            client = TokenHubClient(base_url=emu.base_url, api_key=emu.api_key, max_retries=0)
            with pytest.raises(InternalServerError):
                client.chat(model="claude-haiku-4-5", messages=[{"role": "user", "content": "x"}])
            assert [r.status for r in remote.requests] == [500]


def test_without_a_token_only_loopback_clients_may_script() -> None:
    # TestClient reports its peer as "testclient", not a loopback address.
    with TestClient(create_app(EmulatorState())) as outsider:
        refused = outsider.post("/_emulator/reset")
        assert refused.status_code == 403
        assert "--control-token" in refused.json()["error"]["message"]
    with TestClient(create_app(EmulatorState(), control_token="t")) as outsider:
        assert outsider.post("/_emulator/reset", headers={"Authorization": "Bearer t"}).is_success


def test_control_calls_are_not_recorded_as_traffic(tokenhub_emulator: TokenHubEmulator) -> None:
    httpx.post(f"{tokenhub_emulator.control_url}/queue_reply", json={"text": "x"})
    httpx.get(f"{tokenhub_emulator.control_url}/requests")
    assert tokenhub_emulator.requests == []
