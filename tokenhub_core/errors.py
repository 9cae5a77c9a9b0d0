"""Everything that can go wrong when talking to TokenHub, as one tree.

::

    TokenHubError
    ├── InvalidParameterError (a ValueError too)    a parameter breaks Claude's rules; nothing sent
    ├── MissingAPIKeyError                          no key in the argument nor in TOKENHUB_API_KEY
    ├── BudgetExceededError                         a call could pass track_cost(budget_usd=...)
    ├── APIConnectionError                          no usable answer reached us
    │   ├── APITimeoutError
    │   └── StreamInterruptedError                  a stream ended early; carries what arrived
    ├── APIStatusError                              the server answered 4xx/5xx
    │   ├── BadRequestError          400, 422
    │   ├── AuthenticationError      401
    │   ├── PaymentRequiredError     402
    │   ├── PermissionDeniedError    403
    │   ├── NotFoundError            404
    │   ├── RateLimitError           429
    │   └── InternalServerError      5xx
    └── APIResponseError                            a 200 whose body breaks the API's promise:
                                                    truncated JSON, HTML from a proxy, SSE error

The API key never appears in a message or repr: messages are built from the server's words, and any
echo of the key in them is masked before the exception is made.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tokenhub_core.wire import ChatCompletion

__all__ = [
    "APIConnectionError",
    "APIResponseError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "InternalServerError",
    "InvalidParameterError",
    "MissingAPIKeyError",
    "NotFoundError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "RateLimitError",
    "StreamInterruptedError",
    "TokenHubError",
    "make_status_error",
]

_MAX_MESSAGE_CHARS = 500
_KEY_PATTERN = re.compile(r"th-[A-Za-z0-9_\-]{4,}")


def redact(text: str) -> str:
    """Mask anything shaped like a TokenHub key (``th-...``)."""
    return _KEY_PATTERN.sub("th-***", text)


class TokenHubError(Exception):
    """Base of every error this package raises."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take other arguments than their message: rebuild from args and fields, so
        # an error crosses a process boundary (multiprocessing, Ray) intact.
        return (_rebuild_error, (type(self), self.args, self.__dict__))


def _rebuild_error(
    cls: type[TokenHubError], args: tuple[Any, ...], fields: dict[str, Any]
) -> TokenHubError:
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(fields)
    return error


class InvalidParameterError(TokenHubError, ValueError):
    """A request parameter breaks TokenHub's (Claude's) rules. Raised before anything is sent."""

    def __init__(self, param: str, value: Any, allowed: str) -> None:
        self.param = param
        self.value = value
        self.allowed = allowed
        shown = redact(repr(value))
        if len(shown) > 200:
            shown = shown[:200] + "..."
        super().__init__(f"invalid {param}={shown}: {allowed}")


class MissingAPIKeyError(TokenHubError):
    """No API key was given and ``TOKENHUB_API_KEY`` is not set."""

    def __init__(self) -> None:
        super().__init__(
            "no TokenHub API key: pass api_key=... or set the TOKENHUB_API_KEY environment variable"
        )


class BudgetExceededError(TokenHubError):
    """A call's worst case would pass a `track_cost` budget; nothing was sent."""

    def __init__(self, message: str, *, budget_usd: float, spent_usd: float, worst_case_usd: float):
        self.budget_usd = budget_usd
        self.spent_usd = spent_usd
        self.worst_case_usd = worst_case_usd
        super().__init__(message)


class APIConnectionError(TokenHubError):
    """No usable answer arrived: network failure, refused or dropped connection."""

    def __init__(self, message: str = "connection to TokenHub failed") -> None:
        super().__init__(redact(message))


class APITimeoutError(APIConnectionError):
    """The request timed out."""

    def __init__(self, message: str = "request to TokenHub timed out") -> None:
        super().__init__(message)


class StreamInterruptedError(APIConnectionError):
    """A stream stopped before it finished; ``partial`` holds what arrived."""

    def __init__(
        self, message: str, *, partial: ChatCompletion | None = None, request_id: str | None = None
    ) -> None:
        self.partial = partial
        self.request_id = request_id
        suffix = f" (request_id: {request_id})" if request_id else ""
        super().__init__(message + suffix)


class APIResponseError(TokenHubError):
    """A 200 whose body breaks the API's promise, or an error event inside a stream."""

    def __init__(
        self,
        message: str,
        *,
        body: Any = None,
        request_id: str | None = None,
        error_type: str | None = None,
        code: str | None = None,
    ) -> None:
        self.body = body
        self.request_id = request_id
        self.error_type = error_type
        self.code = code
        suffix = f" (request_id: {request_id})" if request_id else ""
        super().__init__(redact(message) + suffix)


class APIStatusError(TokenHubError):
    """The server answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        request_id: str | None = None,
        body: Any = None,
        retry_after: float | None = None,
        param: str | None = None,
        error_type: str | None = None,
        code: str | None = None,
    ) -> None:
        self.message = redact(message)
        self.status_code = status_code
        self.request_id = request_id
        self.body = body
        self.retry_after = retry_after
        self.param = param
        self.error_type = error_type
        self.code = code
        suffix = f" (request_id: {request_id})" if request_id else ""
        super().__init__(f"Error code: {status_code} - {self.message}{suffix}")


class BadRequestError(APIStatusError):
    """400 or 422: the server refused the request's content."""


class AuthenticationError(APIStatusError):
    """401: the key is missing, malformed or revoked."""


class PaymentRequiredError(APIStatusError):
    """402: credit exhausted or a spend cap reached. Never retried."""


class PermissionDeniedError(APIStatusError):
    """403: the key may not use this model or feature."""


class NotFoundError(APIStatusError):
    """404: unknown model or path."""


class RateLimitError(APIStatusError):
    """429: too many requests. Retried with backoff, honoring Retry-After."""


class InternalServerError(APIStatusError):
    """5xx (including 529, overloaded)."""


_STATUS_CLASSES: Mapping[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: PaymentRequiredError,
    403: PermissionDeniedError,
    404: NotFoundError,
    422: BadRequestError,
    429: RateLimitError,
}


def status_error_class(status_code: int) -> type[APIStatusError]:
    if status_code >= 500:
        return InternalServerError
    return _STATUS_CLASSES.get(status_code, APIStatusError)


def request_id_from(headers: Mapping[str, str]) -> str | None:
    return headers.get("x-request-id") or headers.get("request-id")


def _message_from_text(text: str) -> str:
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    if title:
        return f"non-JSON error page: {title.group(1).strip()}"
    text = re.sub(r"<[^>]+>", " ", text)
    text = " ".join(text.split())
    return text or "(empty body)"


def parse_error_body(content: bytes) -> tuple[Any, dict[str, Any]]:
    """The parsed body (or text) and the OpenAI-shaped ``error`` object's fields, if any."""
    text = content.decode("utf-8", errors="replace")
    try:
        body: Any = json.loads(text)
    except ValueError:
        return text, {"message": _message_from_text(text)}
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return body, error
    if isinstance(error, str):
        return body, {"message": error}
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body, {"message": body["message"]}
    return body, {"message": text}


def make_status_error(
    status_code: int,
    headers: Mapping[str, str],
    content: bytes,
    *,
    retry_after: float | None = None,
    secret: str | None = None,
) -> APIStatusError:
    """Build the typed exception for an error response, in one place.

    ``secret`` (the API key) is masked wherever the server's message echoes it.
    """
    body, error = parse_error_body(content)
    message = str(error.get("message") or f"HTTP {status_code}")
    if secret:
        message = message.replace(secret, "***")
    if len(message) > _MAX_MESSAGE_CHARS:
        message = message[:_MAX_MESSAGE_CHARS] + "..."
    code = error.get("code")
    return status_error_class(status_code)(
        message,
        status_code=status_code,
        request_id=request_id_from(headers),
        body=body,
        retry_after=retry_after,
        param=error.get("param") if isinstance(error.get("param"), str) else None,
        error_type=error.get("type") if isinstance(error.get("type"), str) else None,
        code=str(code) if code is not None else None,
    )
