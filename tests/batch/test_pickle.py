"""What crosses a process boundary (multiprocessing, Ray) pickles and comes back the same."""

from __future__ import annotations

import pickle
from decimal import Decimal
from typing import Any

import pytest

from tokenhub_core import CostMeter, TokenHubClient
from tokenhub_core.batch import BatchGovernor, BatchInputError, BatchSummary, CostTally
from tokenhub_core.errors import (
    APIConnectionError,
    APIResponseError,
    APITimeoutError,
    BadRequestError,
    BudgetExceededError,
    InternalServerError,
    InvalidParameterError,
    MissingAPIKeyError,
    PaymentRequiredError,
    RateLimitError,
    StreamInterruptedError,
)


def _round_trip(value: Any) -> Any:
    return pickle.loads(pickle.dumps(value))


ERRORS = [
    InvalidParameterError("temperature", 3, "from 0 to 1"),
    MissingAPIKeyError(),
    BudgetExceededError("over", budget_usd=1.0, spent_usd=0.9, worst_case_usd=0.2),
    APIConnectionError("refused"),
    APITimeoutError(),
    StreamInterruptedError("cut", request_id="req_1"),
    APIResponseError("truncated", body={"a": 1}, request_id="req_2", code="x"),
    RateLimitError("slow down", status_code=429, retry_after=2.5, request_id="req_3"),
    InternalServerError("overloaded", status_code=529, body={"error": {"message": "busy"}}),
    BadRequestError("bad role", status_code=400, param="messages"),
    PaymentRequiredError("no credit", status_code=402),
    BatchInputError("in.jsonl:3", "custom_id", None, "a non-empty string"),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_errors_keep_their_type_message_and_fields(error: Exception) -> None:
    back = _round_trip(error)
    assert type(back) is type(error)
    assert str(back) == str(error) and back.args == error.args
    assert vars(back) == vars(error)


def test_a_client_pickles_without_showing_its_key() -> None:
    client = TokenHubClient(
        api_key="th-secret-123456", base_url="http://127.0.0.1:9/api/v1", max_retries=0
    )
    data = pickle.dumps(client)
    back = pickle.loads(data)
    assert back.api_key.get_secret_value() == "th-secret-123456"
    assert (back.base_url, back.max_retries, back.timeout) == (
        client.base_url,
        0,
        client.timeout,
    )
    assert "th-secret" not in repr(back)


def test_tallies_summaries_and_governors_pickle() -> None:
    tally = CostTally()
    tally.add("anthropic/claude-haiku-4-5", 100, 20, Decimal("0.0002"))
    assert _round_trip(tally) == tally
    summary = BatchSummary(10, 8, 1, 1, 0, 9, 0, cost=tally, elapsed_s=2.0)
    assert _round_trip(summary) == summary
    governor = BatchGovernor(rpm=60, budget_usd=1.0)
    governor.admit(10, Decimal("0.1"))
    back = _round_trip(governor)
    assert 0 < back.admit(10, Decimal("0.1")).delay <= 1.01  # the pacing state came along


def test_a_cost_meter_pickles_with_its_figures() -> None:
    meter = CostMeter(budget_usd=1.0)
    meter._settle(None, "anthropic/claude-haiku-4-5", 100, 10, Decimal("0.00015"), False)
    copy = _round_trip(meter)
    assert (copy.budget_usd, copy.calls, copy.total) == (1.0, 1, Decimal("0.00015"))
    assert copy.by_model["anthropic/claude-haiku-4-5"].calls == 1
    copy._settle(None, "anthropic/claude-haiku-4-5", 1, 1, Decimal("0.000006"), True)
    assert copy.estimated_calls == 1  # its lock works
