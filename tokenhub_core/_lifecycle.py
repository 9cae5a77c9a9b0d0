"""One call's lifecycle, without I/O: prepare, attempt, classify, wait, record, release.

The sync and async shells in `tokenhub_core.client` only send, read and sleep; every decision
about a call is made here, once:

- an attempt holds the call's worst case in every active budget while it is in flight;
- a failure is classified (retry after a delay, or raise the typed error, chained to its cause);
- a call is settled exactly once, whatever ends it (a reply, an error, a cancelled task, a
  ``KeyboardInterrupt``, a stream closed early): with the usage the server reported when it is
  believable; at its worst case, marked as an estimate, when the server may have billed an attempt
  whose usage never arrived; or released when nothing can have been billed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import httpx

from tokenhub_core.cost import CallMeters
from tokenhub_core.errors import (
    APIConnectionError,
    APIResponseError,
    APIStatusError,
    APITimeoutError,
    TokenHubError,
    make_status_error,
)
from tokenhub_core.retry import parse_retry_after, retry_delay, status_is_retryable
from tokenhub_core.wire import Usage

__all__ = [
    "DEFAULT_DEADLINE_S",
    "MAX_ERROR_BODY_BYTES",
    "MAX_REPLY_BYTES",
    "AuthHeaders",
    "Call",
    "Lifecycle",
]

DEFAULT_DEADLINE_S = 300.0
"""Seconds one attempt may take in all: a 4,096-token answer at 15 tokens/s, plus its start."""

MAX_REPLY_BYTES = 64 << 20
"""The most a reply may decode to. The largest legal reply is the catalog's biggest max_tokens
(128k) of output: as one JSON body, at most ~6 bytes per character escaped and ~4 characters per
token, about 3 MB; streamed one token per event at ~250 bytes an event, about 32 MB. Tool calls
only add their argument text, and replies do not echo images. Twice the streamed figure."""

MAX_ERROR_BODY_BYTES = 1 << 20
"""The most of an error body read: the message is in its first bytes."""

# Transport failures after which the server may have received the whole request, answered it
# and billed it: the call then counts at its worst case. Failing to connect or to send the
# request cannot have been billed.
_MAYBE_BILLED = (httpx.ReadTimeout, httpx.ReadError, httpx.RemoteProtocolError)

_log = logging.getLogger("tokenhub")


class AuthHeaders(dict[str, str]):
    """Request headers whose repr hides the key's headers (tracebacks show locals)."""

    def __repr__(self) -> str:
        hidden = ("authorization", "x-api-key")
        shown = {k: ("***" if k.lower() in hidden else v) for k, v in self.items()}
        return f"AuthHeaders({shown!r})"


class Call:
    """Everything about one call that is decided before anything is sent."""

    __slots__ = ("content", "headers", "meters", "model", "protocol", "stream", "timeout")

    def __init__(
        self,
        model: str,
        content: bytes,
        stream: bool,
        meters: CallMeters,
        headers: AuthHeaders,
        protocol: str = "chat/completions",
    ) -> None:
        self.model = model
        self.protocol = protocol
        self.content = content
        self.stream = stream
        self.meters = meters
        self.headers = headers
        self.timeout: dict[str, Any] | None = None  # this call's own, when it has one


def transport_error(exc: httpx.TransportError, doing: str) -> APIConnectionError:
    """The core's error for an httpx transport failure while ``doing`` something; chained."""
    error = (
        APITimeoutError(f"{doing} timed out: {exc}")
        if isinstance(exc, httpx.TimeoutException)
        else APIConnectionError(f"{doing} failed: {exc}")
    )
    error.__cause__ = exc
    return error


def impossible_usage(usage: Usage, max_tokens: int) -> str | None:
    """Why ``usage`` cannot be true for a call capped at ``max_tokens``, or None."""
    counts = (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens)
    if any(count < 0 for count in counts):
        return f"negative token counts {counts}"
    limit = max_tokens + max(16, max_tokens // 20)
    if usage.completion_tokens > limit:
        return (
            f"{usage.completion_tokens} output tokens for a call capped at max_tokens={max_tokens}"
        )
    return None


class Lifecycle:
    """One call from its first attempt to its settlement. No I/O: the shells report to it."""

    __slots__ = (
        "_secret",
        "attempt",
        "call",
        "deadline",
        "deadline_s",
        "in_flight",
        "max_retries",
        "settled",
    )

    def __init__(
        self, call: Call, *, max_retries: int, deadline_s: float | None, secret: str
    ) -> None:
        self.call = call
        self.max_retries = max_retries
        self.deadline_s = deadline_s
        self.deadline: float | None = None
        self.attempt = 0
        self.in_flight = False  # an attempt was sent and may yet be billed
        self.settled = False
        self._secret = secret

    def start_attempt(self) -> None:
        """Hold the worst case (raises `BudgetExceededError`) and start the attempt's clock."""
        self.call.meters.hold()
        self.in_flight = True
        if self.deadline_s is not None:
            self.deadline = time.monotonic() + self.deadline_s

    def check_deadline(self) -> None:
        """Raise a read timeout once the attempt has run past its deadline."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise httpx.ReadTimeout(f"the attempt ran past its deadline of {self.deadline_s:g}s")

    def transport_failed(self, exc: httpx.TransportError, doing: str) -> float:
        """The delay before the next attempt; or raise the typed error (chained to ``exc``)."""
        error = transport_error(exc, doing)
        if self.in_flight and isinstance(exc, _MAYBE_BILLED):
            self.call.meters.charge_worst_case()
        self.in_flight = False
        return self._retry_or_raise(error, retryable=True)

    def refused(self, status_code: int, headers: Mapping[str, str], body: bytes) -> float:
        """An error status (never billed): the delay before the next attempt, or raise."""
        self.in_flight = False
        error = make_status_error(
            status_code,
            headers,
            body,
            retry_after=parse_retry_after(headers),
            secret=self._secret,
        )
        return self._retry_or_raise(error, retryable=status_is_retryable(status_code, headers))

    def stream_refused(self, error: APIStatusError) -> float:
        """An error event that ended a 200 stream before it produced anything (Claude's
        ``overloaded_error``): like an error status, the delay before the next attempt, or raise."""
        self.in_flight = False
        retryable = status_is_retryable(error.status_code, {})
        return self._retry_or_raise(error, retryable=retryable)

    def _retry_or_raise(self, error: TokenHubError, *, retryable: bool) -> float:
        delay = retry_delay(
            error, attempt=self.attempt, max_retries=self.max_retries, retryable=retryable
        )
        if delay is None:
            self.settle()
            raise error
        _log.info("TokenHub call failed (%s); retry %d in %.2fs", error, self.attempt + 1, delay)
        self.attempt += 1
        return delay

    def finish(self, served_model: str | None, usage: Usage | None, request_id: str | None) -> None:
        """Settle a completed reply; raise `APIResponseError` if its usage cannot be true."""
        if self.settled:
            return
        meters = self.call.meters
        if usage is None:
            self.settle()  # asked for, never came: the worst case, as an estimate
            return
        problem = impossible_usage(usage, meters.max_tokens)
        if problem is not None:
            self.settle()
            raise APIResponseError(
                f"TokenHub reported usage that cannot be true ({problem}); the call is metered"
                " at its worst case",
                body=usage.model_dump(),
                request_id=request_id,
            )
        self.in_flight = False
        self.settled = True
        meters.record(served_model, usage)

    def settle(self, usage: Usage | None = None, served_model: str | None = None) -> None:
        """End the call's account, once: the usage seen if believable, else the worst case if an
        attempt may have been billed, else nothing. Later calls do nothing."""
        if self.settled:
            return
        self.settled = True
        meters = self.call.meters
        if usage is not None and impossible_usage(usage, meters.max_tokens) is None:
            meters.record(served_model, usage)
        elif self.in_flight:
            meters.charge_worst_case()
        else:
            meters.release()
        self.in_flight = False
