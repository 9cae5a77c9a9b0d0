"""When to retry, and how long to wait: pure decisions shared by the sync and async client.

Retried: connection errors and timeouts before a response, 408, 409, 429 and 5xx (including
529), unless the server says ``x-should-retry: false``; other 4xx only when it says ``true``; 402
never. Nothing is retried once a stream has delivered its first byte (the client never asks).
Backoff is exponential from 0.5 s, capped at 8 s, with up to 25% jitter; ``retry-after-ms`` or
``Retry-After`` (seconds or an HTTP date) is honored up to 60 s, and beyond that the error is
raised at once with ``retry_after`` set.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

from tokenhub_core.errors import APIConnectionError, APIStatusError, TokenHubError

__all__ = ["MAX_RETRY_AFTER_S", "parse_retry_after", "retry_delay", "status_is_retryable"]

MAX_RETRY_AFTER_S = 60.0
INITIAL_BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0
_RETRYABLE_STATUSES = frozenset({408, 409, 429})


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the server asks us to wait (``retry-after-ms``, ``Retry-After``), or None."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return float(millis) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when.timestamp() - (time.time() if now is None else now)


def status_is_retryable(status_code: int, headers: Mapping[str, str]) -> bool:
    if status_code == 402:
        return False
    should_retry = headers.get("x-should-retry")
    if should_retry == "true":
        return True
    if should_retry == "false":
        return False
    return status_code in _RETRYABLE_STATUSES or status_code >= 500


def backoff(attempt: int) -> float:
    return min(INITIAL_BACKOFF_S * 2.0**attempt, MAX_BACKOFF_S) * (1 - 0.25 * random.random())


def retry_delay(
    error: TokenHubError, *, attempt: int, max_retries: int, retryable: bool
) -> float | None:
    """Seconds to wait before the next attempt, or None to raise ``error`` now.

    ``attempt`` counts from 0 for the first try; ``retryable`` is the status decision (ignored for
    connection errors, which are always retryable).
    """
    if attempt >= max_retries:
        return None
    if isinstance(error, APIConnectionError):
        return backoff(attempt)
    if not isinstance(error, APIStatusError) or not retryable:
        return None
    if error.retry_after is not None and error.retry_after > 0:
        return error.retry_after if error.retry_after <= MAX_RETRY_AFTER_S else None
    return backoff(attempt)
