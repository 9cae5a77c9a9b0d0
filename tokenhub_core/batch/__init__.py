"""Batch jobs: thousands of prompts, resumable, within rate caps and a budget.

    from tokenhub_core.batch import run_batch

    summary = run_batch("requests.jsonl", "results.jsonl", rpm=500, budget_usd=20)

Input and output are the OpenAI Batch API's JSONL shapes. `tokenhub_core.batch.ray_data` runs the
same engine on a Ray cluster (the ``ray`` extra).
"""

from tokenhub_core.batch.engine import (
    BatchProgress,
    BatchRunner,
    BatchSummary,
    LocalGovernor,
    arun_batch,
    run_batch,
)
from tokenhub_core.batch.limits import AdaptiveLimit, Admission, BatchGovernor, CostTally
from tokenhub_core.batch.rows import (
    BatchInputError,
    BatchRequest,
    error_line,
    parse_request,
    read_requests,
    read_results,
    success_line,
)

__all__ = [
    "AdaptiveLimit",
    "Admission",
    "BatchGovernor",
    "BatchInputError",
    "BatchProgress",
    "BatchRequest",
    "BatchRunner",
    "BatchSummary",
    "CostTally",
    "LocalGovernor",
    "arun_batch",
    "error_line",
    "parse_request",
    "read_requests",
    "read_results",
    "run_batch",
    "success_line",
]
