"""The engine end to end over loopback HTTP: the emulator, and a gateway that records arrivals."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from tokenhub_core import TokenHubClient, track_cost
from tokenhub_core.batch import (
    BatchGovernor,
    BatchProgress,
    BatchRunner,
    LocalGovernor,
    arun_batch,
    read_requests,
)
from tokenhub_emulator import TokenHubEmulator

from .gateway import Gateway
from .helpers import ids_once, openai_row, read_lines, write_batch, write_rows


def _client(server: TokenHubEmulator | Gateway) -> TokenHubClient:
    return TokenHubClient(api_key=server.api_key, base_url=server.base_url, max_retries=0)


async def test_every_row_is_answered_once_in_the_batch_output_shape(
    tokenhub_emulator: TokenHubEmulator, tmp_path: Path
) -> None:
    source = write_batch(tmp_path / "in.jsonl", 30)
    seen: list[int] = []
    summary = await arun_batch(
        source,
        tmp_path / "out.jsonl",
        max_concurrency=8,
        progress=lambda p: seen.append(p.finished),
    )
    lines = read_lines(tmp_path / "out.jsonl")
    assert ids_once(tmp_path / "out.jsonl") == {f"row-{i}": 1 for i in range(30)}
    line = next(x for x in lines if x["custom_id"] == "row-3")
    assert line["error"] is None and line["response"]["status_code"] == 200
    body = line["response"]["body"]
    assert body["choices"][0]["message"]["content"] == "[emulator] You said: Classify ticket 3"
    assert line["response"]["request_id"] == tokenhub_emulator.requests[0].headers.get(
        "x-request-id", line["response"]["request_id"]
    )
    assert (summary.succeeded, summary.failed, summary.skipped, summary.not_sent) == (30, 0, 0, 0)
    ledger = tokenhub_emulator.ledger()
    assert summary.cost.total == ledger.total_usd and summary.cost.calls == 30 == ledger.calls
    spend = summary.cost.by_model["anthropic/claude-haiku-4-5"]
    assert (spend.input_tokens, spend.output_tokens) == (
        ledger.prompt_tokens,
        ledger.completion_tokens,
    )
    assert sorted(seen) == list(range(1, 31))
    assert "30 answered, 0 failed" in str(
        summary
    ) and "anthropic/claude-haiku-4-5: 30 calls" in str(summary)


async def test_a_bad_row_is_recorded_and_the_batch_goes_on(
    tokenhub_emulator: TokenHubEmulator, tmp_path: Path
) -> None:
    rows = [openai_row(0), openai_row(1, temperature=3), openai_row(2)]
    rows[2]["body"]["messages"] = [{"role": "robot", "content": "hi"}]
    source = write_rows(tmp_path / "in.jsonl", rows)
    summary = await arun_batch(source, tmp_path / "out.jsonl")
    lines = {x["custom_id"]: x for x in read_lines(tmp_path / "out.jsonl")}
    assert lines["row-0"]["response"]["status_code"] == 200
    assert lines["row-1"]["error"]["type"] == "InvalidParameterError"  # refused before sending
    assert "invalid temperature=3" in lines["row-1"]["error"]["message"]
    assert lines["row-2"]["error"]["type"] in ("InvalidParameterError", "BadRequestError")
    assert (summary.succeeded, summary.failed) == (1, 2)


async def test_a_rerun_skips_answered_rows_and_redoes_retryable_failures(
    tokenhub_emulator: TokenHubEmulator, tmp_path: Path
) -> None:
    source = write_batch(tmp_path / "in.jsonl", 12)
    output = tmp_path / "out.jsonl"
    tokenhub_emulator.fail_next(500, times=100)  # persistent: rows 0..k end as 500s
    first = await arun_batch(source, output, max_concurrency=1, max_attempts=1)
    assert first.failed == 12 and tokenhub_emulator.ledger().calls == 0
    tokenhub_emulator.reset()
    second = await arun_batch(source, output, max_concurrency=4)
    assert (second.succeeded, second.skipped) == (12, 0)  # 500s are worth another try
    third = await arun_batch(source, output)
    assert (third.succeeded, third.skipped, third.requests) == (0, 12, 0)
    assert ids_once(output) == {f"row-{i}": 1 for i in range(12)}
    assert all(x["response"]["status_code"] == 200 for x in read_lines(output))


async def test_rate_limits_slow_everyone_down_and_every_row_finishes(
    tokenhub_emulator: TokenHubEmulator, tmp_path: Path
) -> None:
    source = write_batch(tmp_path / "in.jsonl", 20)
    tokenhub_emulator.fail_next(429, headers={"Retry-After": "0.3"}, times=3)
    tokenhub_emulator.fail_next(529, times=1)
    summary = await arun_batch(source, tmp_path / "out.jsonl", max_concurrency=8)
    assert summary.succeeded == 20 and summary.rate_limited == 4
    statuses = [r.status for r in tokenhub_emulator.requests]
    assert statuses.count(429) == 3 and statuses.count(529) == 1 and statuses.count(200) == 20
    assert ids_once(tmp_path / "out.jsonl") == {f"row-{i}": 1 for i in range(20)}


async def test_after_429s_the_concurrency_window_shrinks_then_recovers(tmp_path: Path) -> None:
    source = write_batch(tmp_path / "in.jsonl", 120)
    with Gateway(latency_s=0.01, retry_after_s=0.05) as gateway:
        gateway.fail_first = 12  # a storm of 429s, then none
        runner = BatchRunner(_client(gateway), LocalGovernor(BatchGovernor()), max_concurrency=8)
        runner.limit._cooldown_s = 0  # count every 429, to reach the floor quickly
        answered: list[str] = []
        await runner.run(
            read_requests(source),
            lambda outcome: answered.append(outcome.request.custom_id) if outcome.ok else None,
        )
    assert runner.rate_limited == 12 and runner.limit.lowest == 1  # down to one in flight...
    assert runner.limit.limit == 8  # ...and back to the maximum once the 429s stopped
    assert sorted(answered) == sorted(f"row-{i}" for i in range(120))


async def test_ten_percent_429s_never_push_the_gateway_past_the_rpm_cap(tmp_path: Path) -> None:
    rpm = 1200  # 20 a second: the run takes about 3 s
    source = write_batch(tmp_path / "in.jsonl", 50)
    with Gateway(latency_s=0.05, fault_rate=0.1, retry_after_s=0.2, seed=7) as gateway:
        summary = await arun_batch(source, tmp_path / "out.jsonl", rpm=rpm, client=_client(gateway))
    assert summary.succeeded == 50 and summary.rate_limited == gateway.statuses.count(429) > 0
    assert ids_once(tmp_path / "out.jsonl") == {f"row-{i}": 1 for i in range(50)}
    assert sorted(gateway.answered) == sorted(f"Classify ticket {i}" for i in range(50))
    # The cap scaled to a short run: a second's share of rpm in any second, give or take one
    # arrival of network and scheduling jitter (on a real minute the 1% headroom absorbs 600 ms).
    assert gateway.most_in_window(1.0) <= rpm // 60 + 1
    assert gateway.most_in_window(2.0) <= 2 * rpm // 60 + 1
    assert len(gateway.arrivals) == summary.requests


async def test_the_budget_stops_the_run_with_every_answer_saved(
    tokenhub_emulator: TokenHubEmulator, tmp_path: Path
) -> None:
    source = write_batch(tmp_path / "in.jsonl", 40)
    with track_cost() as meter:  # what one run of the whole batch costs
        await arun_batch(source, tmp_path / "all.jsonl")
    tokenhub_emulator.reset()
    budget = meter.total_usd / 2
    summary = await arun_batch(source, tmp_path / "out.jsonl", budget_usd=budget, max_concurrency=8)
    ledger = tokenhub_emulator.ledger()
    assert summary.stopped_by_budget and summary.not_sent > 0
    assert 0 < ledger.total_usd <= Decimal(str(budget)) and summary.cost.total == ledger.total_usd
    saved = read_lines(tmp_path / "out.jsonl")
    assert len(saved) == ledger.calls == summary.succeeded  # every answered row is in the file
    assert all(x["response"]["status_code"] == 200 for x in saved)
    rest = await arun_batch(source, tmp_path / "out.jsonl")  # a rerun without the cap finishes
    assert rest.skipped == summary.succeeded and rest.succeeded == summary.not_sent


async def test_no_key_stops_the_batch_and_writes_nothing(tmp_path: Path) -> None:
    source = write_batch(tmp_path / "in.jsonl", 5)
    client = TokenHubClient(base_url="http://127.0.0.1:9/api/v1", max_retries=0)
    summary = await arun_batch(source, tmp_path / "out.jsonl", client=client)
    assert summary.stopped is not None and "TOKENHUB_API_KEY" in summary.stopped
    assert summary.not_sent == 5 and (tmp_path / "out.jsonl").read_text() == ""


def test_progress_reports_eta_and_rate() -> None:
    progress = BatchProgress(total=100, succeeded=20, failed=5, skipped=25, elapsed_s=5.0)
    assert progress.rows_per_s == 5.0 and progress.eta_s == 10.0
    assert BatchProgress(total=3).eta_s is None
