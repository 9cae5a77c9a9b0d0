"""Batch rows in and out: the OpenAI Batch API's JSONL shapes, and reading an output to resume.

Input lines are either OpenAI Batch requests (``{"custom_id", "method", "url", "body"}``) or plain
rows (``{"custom_id", "messages", ...params}``). Output lines follow the Batch API's output shape:
``{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}``.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenhub_core.errors import (
    APIConnectionError,
    APIResponseError,
    APIStatusError,
    InternalServerError,
    RateLimitError,
    TokenHubError,
)
from tokenhub_core.wire import ChatCompletion

__all__ = [
    "BatchInputError",
    "BatchRequest",
    "error_line",
    "is_retryable",
    "parse_request",
    "read_requests",
    "read_results",
    "success_line",
]

ENDPOINT = "/v1/chat/completions"
_NOT_PARAMS = frozenset({"custom_id", "messages", "model", "stream", "stream_options"})


class BatchInputError(TokenHubError, ValueError):
    """A line of a batch input file is not a request we can send; nothing was sent."""

    def __init__(self, where: str, field: str, value: Any, allowed: str) -> None:
        self.where = where
        self.field = field
        self.value = value
        self.allowed = allowed
        shown = repr(value)
        if len(shown) > 120:
            shown = shown[:120] + "..."
        super().__init__(f"{where}: invalid {field}={shown}: {allowed}")


@dataclass(frozen=True)
class BatchRequest:
    """One row to send: its id, the model it names (if any), messages and parameters."""

    custom_id: str
    messages: list[dict[str, Any]]
    model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


def parse_request(row: Any, where: str = "row") -> BatchRequest:
    """A `BatchRequest` from one decoded input line; `BatchInputError` says what is wrong."""
    if not isinstance(row, Mapping):
        raise BatchInputError(where, "row", row, "a JSON object per line")
    custom_id = row.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        raise BatchInputError(where, "custom_id", custom_id, "a non-empty string")
    if "body" in row:
        method = row.get("method", "POST")
        if method != "POST":
            raise BatchInputError(where, "method", method, "'POST'")
        url = row.get("url", ENDPOINT)
        if not isinstance(url, str) or not url.endswith("/chat/completions"):
            raise BatchInputError(where, "url", url, f"{ENDPOINT!r} (chat completions only)")
        body = row["body"]
        if not isinstance(body, Mapping):
            raise BatchInputError(where, "body", body, "a JSON object: the request body")
        where_params = f"{where} body"
    else:
        body, where_params = row, where
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BatchInputError(where_params, "messages", messages, "a non-empty list of messages")
    if body.get("stream"):
        raise BatchInputError(where_params, "stream", body["stream"], "batch rows are not streamed")
    model = body.get("model")
    if model is not None and (not isinstance(model, str) or not model):
        raise BatchInputError(where_params, "model", model, "a model id string")
    params = {k: v for k, v in body.items() if k not in _NOT_PARAMS}
    return BatchRequest(custom_id=custom_id, messages=messages, model=model, params=params)


def read_requests(path: str | os.PathLike[str]) -> Iterator[BatchRequest]:
    """The requests of a JSONL file, in order; blank lines skipped, custom_ids unique."""
    seen: dict[str, int] = {}
    with Path(path).open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{os.fspath(path)}:{number}"
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise BatchInputError(where, "line", line.strip(), f"JSON ({exc})") from None
            request = parse_request(row, where)
            first = seen.setdefault(request.custom_id, number)
            if first != number:
                raise BatchInputError(
                    where, "custom_id", request.custom_id, f"unique (already on line {first})"
                )
            yield request


def _line_id() -> str:
    return f"batch_req_{uuid.uuid4().hex}"


def success_line(custom_id: str, completion: ChatCompletion) -> dict[str, Any]:
    """The output line of an answered row."""
    return {
        "id": _line_id(),
        "custom_id": custom_id,
        "response": {
            "status_code": 200,
            "request_id": completion.request_id,
            "body": completion.model_dump(mode="json"),
        },
        "error": None,
    }


def is_retryable(error: BaseException) -> bool:
    """Whether another attempt (now, or on a rerun) could answer a row that failed this way."""
    if isinstance(error, APIStatusError):
        return isinstance(error, (RateLimitError, InternalServerError)) or error.status_code in (
            408,
            409,
        )
    return isinstance(error, (APIConnectionError, APIResponseError))


def error_line(custom_id: str, error: TokenHubError) -> dict[str, Any]:
    """The output line of a row that failed: the typed error, and the server's answer if any."""
    status = error.status_code if isinstance(error, APIStatusError) else None
    request_id = getattr(error, "request_id", None)
    response = None
    if isinstance(error, APIStatusError):
        response = {"status_code": status, "request_id": request_id, "body": error.body}
    return {
        "id": _line_id(),
        "custom_id": custom_id,
        "response": response,
        "error": {
            "code": getattr(error, "code", None) or type(error).__name__,
            "message": str(error),
            "type": type(error).__name__,
            "status_code": status,
            "retryable": is_retryable(error),
        },
    }


def _final(line: Mapping[str, Any]) -> bool:
    """A line that ends its row: an answer, or an error another attempt would not change."""
    response = line.get("response")
    if isinstance(response, Mapping) and response.get("status_code") == 200:
        return True
    error = line.get("error")
    return isinstance(error, Mapping) and error.get("retryable") is False


def read_results(path: str | os.PathLike[str]) -> tuple[dict[str, str], bool]:
    """The final lines of an existing output, by custom_id, and whether anything was dropped.

    Dropped: a torn last line (the process died mid-write), lines of rows that failed in a way
    a rerun may fix, and all but the first final line of a custom_id.
    """
    kept: dict[str, str] = {}
    dropped = False
    if not Path(path).exists():
        return kept, False
    with Path(path).open(encoding="utf-8") as handle:
        for text in handle:
            try:
                line = json.loads(text)
                custom_id = line["custom_id"]
            except (ValueError, TypeError, KeyError):
                dropped = True
                continue
            if not text.endswith("\n") or not _final(line) or custom_id in kept:
                dropped = True
                continue
            kept[custom_id] = text
    return kept, dropped
