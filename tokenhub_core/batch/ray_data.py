"""The batch engine on Ray Data: one client per worker, one rate limit and budget per cluster.

    import ray
    from tokenhub_core.batch.ray_data import read_batch, run_on_ray, write_results

    results, summary = run_on_ray(read_batch("requests.jsonl"), rpm=5000, budget_usd=200)
    write_results(results, "results.jsonl")

Each worker of ``Dataset.map_batches`` is a `TokenHubBatchProcessor`: it owns one
`TokenHubClient` and runs the same `BatchRunner` as ``tokenhub batch``. Admission (RPM pacing, TPM,
Retry-After pauses, the budget) and the cost tally live in one `BatchGovernor` actor, so the caps
hold across the cluster. Ray is imported only here, and only when used (the ``ray`` extra).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from tokenhub_core.batch.engine import (
    DEFAULT_MAX_ATTEMPTS,
    BatchRunner,
    _Outcome,
)
from tokenhub_core.batch.limits import Admission, BatchGovernor, CostTally
from tokenhub_core.batch.rows import BatchRequest, parse_request
from tokenhub_core.client import API_KEY_ENV, BASE_URL_ENV, TokenHubClient
from tokenhub_core.params import normalize_protocol

if TYPE_CHECKING:
    import ray.data

__all__ = [
    "RayBatchSummary",
    "RemoteGovernor",
    "TokenHubBatchProcessor",
    "read_batch",
    "run_on_ray",
    "write_results",
]

OUTPUT_COLUMNS = ("id", "custom_id", "response", "error")


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ImportError(
            "the Ray batch runner needs the 'ray' extra: pip install 'tokenhub-integrations[ray]'"
        ) from exc
    return ray


class RemoteGovernor:
    """The `Governor` of a worker: every decision is the cluster's one `BatchGovernor` actor's."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    async def admit(self, tokens: int, worst_usd: Decimal | None) -> Admission:
        admission: Admission = await self.actor.admit.remote(tokens, worst_usd)
        # Wait until the slot itself (the actor's clock is this machine's wall clock, or an
        # NTP-synced one), not for a delay that would start late by the call's own latency.
        return replace(admission, delay=max(0.0, admission.at - time.time()))

    async def settle(
        self,
        ticket: int,
        *,
        model_id: str | None = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost: Decimal | None = None,
    ) -> None:
        await self.actor.settle.remote(
            ticket,
            model_id=model_id,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost=cost,
        )

    async def pause(self, seconds: float) -> None:
        await self.actor.pause.remote(seconds)


def _request(row: dict[str, Any]) -> BatchRequest:
    """A dataset row: a JSONL line (``read_text``'s ``text`` column) or the row's own fields."""
    if set(row) == {"text"}:
        text = row["text"]
        return parse_request(json.loads(text), f"line {text[:60]!r}")
    fields = {k: v for k, v in row.items() if v is not None}
    return parse_request(fields, f"row {fields.get('custom_id')!r}")


class TokenHubBatchProcessor:
    """A callable class for ``Dataset.map_batches(..., batch_format="pyarrow")``.

    Sends a batch's rows through the worker's own client and returns one output row per row
    that ended (``id``, ``custom_id``, and ``response`` / ``error`` as JSON text). Rows the budget
    leaves unsent return nothing.
    """

    def __init__(
        self,
        governor: Any,
        *,
        model: str | None = None,
        api_key: SecretStr | None = None,
        base_url: str | None = None,
        timeout: float = 60.0,
        max_concurrency: int = 16,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        protocol: str = "chat/completions",
    ) -> None:
        self.client = TokenHubClient(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0, protocol=protocol
        )
        self.governor = RemoteGovernor(governor)
        self.model = model
        self.max_concurrency = max_concurrency
        self.max_attempts = max_attempts
        self._loop = asyncio.new_event_loop()  # one per worker: its connections are reused

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        requests = [_request(row) for row in batch.to_pylist()]
        runner = BatchRunner(
            self.client,
            self.governor,
            model=self.model,
            max_concurrency=self.max_concurrency,
            max_attempts=self.max_attempts,
        )
        lines: list[dict[str, Any]] = []

        def sink(outcome: _Outcome) -> None:
            lines.append(outcome.line)

        self._loop.run_until_complete(runner.run(requests, sink))
        return pa.Table.from_pydict(
            {
                "id": [line["id"] for line in lines],
                "custom_id": [line["custom_id"] for line in lines],
                "response": [_json_or_none(line["response"]) for line in lines],
                "error": [_json_or_none(line["error"]) for line in lines],
            },
            schema=pa.schema([(name, pa.string()) for name in OUTPUT_COLUMNS]),
        )


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


@dataclass
class RayBatchSummary:
    """What a Ray run did, cluster-wide: requests sent, rows ended, spend per model."""

    rows: int
    failed: int
    requests: int
    cost: CostTally = field(default_factory=CostTally)

    @property
    def cost_usd(self) -> float:
        return self.cost.total_usd


def read_batch(paths: str | Sequence[str]) -> ray.data.Dataset:
    """A dataset of batch rows: JSONL files as lines (parsed by the workers), or Parquet."""
    ray = _ray()
    first = paths if isinstance(paths, str) else paths[0]
    if str(first).endswith(".parquet") or os.path.isdir(first):
        return ray.data.read_parquet(paths)
    return ray.data.read_text(paths)


def run_on_ray(
    dataset: ray.data.Dataset,
    *,
    model: str | None = None,
    rpm: float | None = None,
    tpm: float | None = None,
    budget_usd: float | None = None,
    workers: int = 2,
    batch_size: int = 64,
    max_concurrency: int = 16,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    api_key: str | SecretStr | None = None,
    base_url: str | None = None,
    timeout: float = 60.0,
    num_cpus: float = 0.5,
    protocol: str = "chat/completions",
) -> tuple[ray.data.Dataset, RayBatchSummary]:
    """Answer every row of ``dataset`` on the cluster; the materialized results and a summary.

    ``rpm``, ``tpm`` and ``budget_usd`` hold for the whole cluster; ``max_concurrency`` is per
    worker. The key and base URL default to this process's ``TOKENHUB_*`` environment. A worker
    mostly waits on the network: ``num_cpus`` (each) leaves room for Ray Data's reads.
    ``protocol="messages"`` sends the rows over Claude's own protocol (prompt caching: a shared
    prefix marked with ``cache_control`` is billed at a tenth after the first row).
    """
    ray = _ray()
    raw = api_key or os.environ.get(API_KEY_ENV)
    key = raw if isinstance(raw, SecretStr) or raw is None else SecretStr(raw)
    governor = ray.remote(num_cpus=0)(BatchGovernor).remote(rpm=rpm, tpm=tpm, budget_usd=budget_usd)
    results = dataset.map_batches(
        TokenHubBatchProcessor,
        fn_constructor_args=(governor,),
        fn_constructor_kwargs={
            "model": model,
            "api_key": key,
            "base_url": base_url or os.environ.get(BASE_URL_ENV),
            "timeout": timeout,
            "max_concurrency": max_concurrency,
            "max_attempts": max_attempts,
            "protocol": normalize_protocol(protocol),
        },
        batch_format="pyarrow",
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=num_cpus,
    ).materialize()
    _, tally, requests = ray.get(governor.state.remote())
    errors = results.select_columns(["error"]).iter_rows()
    failed = sum(1 for row in errors if row["error"] is not None)
    return results, RayBatchSummary(
        rows=results.count(), failed=failed, requests=requests, cost=tally
    )


def write_results(results: ray.data.Dataset, path: str) -> None:
    """Write results as one JSONL file in the Batch output shape, or as Parquet (``.parquet``)."""
    if path.endswith(".parquet"):
        results.write_parquet(path)
        return
    with open(path, "a", encoding="utf-8") as handle:
        for row in results.iter_rows():
            line = {
                "id": row["id"],
                "custom_id": row["custom_id"],
                "response": None if row["response"] is None else json.loads(row["response"]),
                "error": None if row["error"] is None else json.loads(row["error"]),
            }
            handle.write(json.dumps(line, separators=(",", ":"), ensure_ascii=False) + "\n")
