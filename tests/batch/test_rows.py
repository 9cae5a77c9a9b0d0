"""Input rows in both formats, output lines in the Batch API's shape, resume reading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tokenhub_core.batch import (
    BatchInputError,
    BatchRequest,
    error_line,
    parse_request,
    read_requests,
    read_results,
)
from tokenhub_core.errors import (
    APITimeoutError,
    BadRequestError,
    InvalidParameterError,
    RateLimitError,
)

from .helpers import openai_row, write_rows


def test_an_openai_batch_line_and_a_plain_row_give_the_same_request() -> None:
    plain = {
        "custom_id": "row-7",
        "model": "claude-haiku-4-5",
        "messages": [{"role": "user", "content": "Classify ticket 7"}],
        "max_tokens": 20,
    }
    expected = BatchRequest(
        custom_id="row-7",
        messages=[{"role": "user", "content": "Classify ticket 7"}],
        model="claude-haiku-4-5",
        params={"max_tokens": 20},
    )
    assert parse_request(openai_row(7)) == expected
    assert parse_request(plain) == expected


@pytest.mark.parametrize(
    ("row", "field", "allowed"),
    [
        ([1, 2], "row", "a JSON object per line"),
        ({"messages": [{"role": "user", "content": "x"}]}, "custom_id", "a non-empty string"),
        ({**openai_row(1), "method": "GET"}, "method", "'POST'"),
        ({**openai_row(1), "url": "/v1/embeddings"}, "url", "chat completions only"),
        ({"custom_id": "a", "body": "text"}, "body", "the request body"),
        ({"custom_id": "a", "messages": []}, "messages", "a non-empty list"),
        (openai_row(1, stream=True), "stream", "batch rows are not streamed"),
        (openai_row(1, model=5), "model", "a model id string"),
    ],
)
def test_a_bad_row_names_the_field_the_value_and_what_is_allowed(
    row: object, field: str, allowed: str
) -> None:
    with pytest.raises(BatchInputError) as caught:
        parse_request(row, "in.jsonl:3")
    assert caught.value.field == field
    message = str(caught.value)
    assert message.startswith("in.jsonl:3") and f"invalid {field}=" in message
    assert allowed in message


def test_reading_a_file_checks_json_and_unique_ids_by_line(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "in.jsonl", [openai_row(1), openai_row(2)])
    path.write_text(path.read_text() + "\n" + json.dumps(openai_row(1)) + "\n")
    with pytest.raises(BatchInputError, match=r"in.jsonl:4: invalid custom_id='row-1'.*line 1"):
        list(read_requests(path))
    path.write_text("{not json\n")
    with pytest.raises(BatchInputError, match=r"in.jsonl:1: invalid line=.*JSON"):
        list(read_requests(path))


def test_error_lines_carry_the_typed_error_and_the_servers_answer() -> None:
    error = BadRequestError(
        "bad role", status_code=400, request_id="req_1", body={"error": {"message": "bad role"}}
    )
    line = error_line("row-1", error)
    assert line["custom_id"] == "row-1" and line["id"].startswith("batch_req_")
    assert line["response"] == {
        "status_code": 400,
        "request_id": "req_1",
        "body": {"error": {"message": "bad role"}},
    }
    assert line["error"]["type"] == "BadRequestError" and line["error"]["retryable"] is False
    timeout = error_line("row-2", APITimeoutError())["error"]
    assert timeout["type"] == "APITimeoutError" and timeout["retryable"] is True
    invalid = error_line("row-3", InvalidParameterError("temperature", 3, "0 to 1"))
    assert invalid["response"] is None and "invalid temperature=3" in invalid["error"]["message"]


def test_resume_keeps_final_lines_and_drops_what_a_rerun_should_redo(tmp_path: Path) -> None:
    answered = {"custom_id": "a", "response": {"status_code": 200, "body": {}}, "error": None}
    refused = error_line("b", BadRequestError("no", status_code=400))
    limited = error_line("c", RateLimitError("slow", status_code=429))
    text = "".join(json.dumps(line) + "\n" for line in (answered, refused, limited, answered))
    path = tmp_path / "out.jsonl"
    path.write_text(text + '{"custom_id": "d", "resp')  # killed mid-write
    kept, dropped = read_results(path)
    assert list(kept) == ["a", "b"] and dropped
    assert read_results(tmp_path / "missing.jsonl") == ({}, False)
