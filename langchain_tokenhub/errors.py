"""Core errors, re-raised as instances of both the core class and langchain-core's class.

``except tokenhub_core.errors.RateLimitError`` and ``except langchain_core.exceptions.
ModelRateLimitError`` both catch a 429, so LangChain's retry and fallback logic (which reads
``ModelError.is_retryable``) recognizes TokenHub's failures. The bridged instance keeps the
original's message, attributes, cause and traceback.

=========================  ==============================================
core class                 also an instance of (langchain_core.exceptions)
=========================  ==============================================
InvalidParameterError      ModelInvalidRequestError
MissingAPIKeyError         ModelAuthenticationError
BadRequestError            ModelInvalidRequestError (ContextOverflowError
                           too when the prompt is too long)
AuthenticationError        ModelAuthenticationError
PermissionDeniedError      ModelPermissionDeniedError
NotFoundError              ModelNotFoundError
RateLimitError             ModelRateLimitError
InternalServerError        ModelAPIError
APIResponseError           ModelAPIError (a broken 200, an SSE error event)
APIConnectionError         ModelConnectionError
StreamInterruptedError     ModelConnectionError
APITimeoutError            ModelTimeoutError
PaymentRequiredError       ModelError (402: not retryable)
BudgetExceededError        ModelError (not retryable)
UnknownParameterError      ModelInvalidRequestError
APIStatusError (others)    ModelError, retryable for 408 and 409
=========================  ==============================================

LangChain's ``ModelRetryMiddleware`` retries by ``ModelError.is_retryable`` (any other exception
is retried): a 402, a budget or a bad parameter is never retried there. Bridged errors pickle as
their bridged class, with their attributes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from langchain_core.exceptions import (
    ContextOverflowError,
    ModelAPIError,
    ModelAuthenticationError,
    ModelConnectionError,
    ModelError,
    ModelInvalidRequestError,
    ModelNotFoundError,
    ModelPermissionDeniedError,
    ModelRateLimitError,
    ModelTimeoutError,
)

from tokenhub_core import errors as core

__all__ = ["bridge", "translate_errors"]

_PAIRS: tuple[tuple[type[core.TokenHubError], type[ModelError]], ...] = (
    (core.InvalidParameterError, ModelInvalidRequestError),
    (core.MissingAPIKeyError, ModelAuthenticationError),
    (core.BadRequestError, ModelInvalidRequestError),
    (core.AuthenticationError, ModelAuthenticationError),
    (core.PermissionDeniedError, ModelPermissionDeniedError),
    (core.NotFoundError, ModelNotFoundError),
    (core.RateLimitError, ModelRateLimitError),
    (core.InternalServerError, ModelAPIError),
    (core.APIResponseError, ModelAPIError),
    (core.APIConnectionError, ModelConnectionError),
    (core.StreamInterruptedError, ModelConnectionError),
    (core.APITimeoutError, ModelTimeoutError),
    (core.PaymentRequiredError, ModelError),
    (core.BudgetExceededError, ModelError),
    (core.UnknownParameterError, ModelInvalidRequestError),
    (core.APIStatusError, ModelError),
)


def _rebuild_bridged(
    core_class: type[core.TokenHubError],
    overflow: bool,
    args: tuple[Any, ...],
    state: dict[str, Any],
) -> core.TokenHubError:
    """Unpickle a bridged error: its class is found again from the core class it bridges."""
    cls = _CONTEXT_OVERFLOW if overflow else _BRIDGED[core_class]
    error: core.TokenHubError = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


def _reduce(self: core.TokenHubError) -> tuple[Any, ...]:
    core_class = next(c for c in type(self).__mro__ if c.__module__ == core.__name__)
    overflow = isinstance(self, ContextOverflowError)
    return _rebuild_bridged, (core_class, overflow, self.args, dict(self.__dict__))


def _status_is_retryable(self: core.APIStatusError) -> bool:
    return self.status_code in (408, 409) or self.status_code >= 500


def _make(core_class: type[core.TokenHubError], *lc_classes: type[ModelError]) -> type:
    namespace: dict[str, Any] = {
        "__module__": __name__,
        "__doc__": f"{core_class.__doc__} Also a LangChain {lc_classes[0].__name__}.",
        "__reduce__": _reduce,
    }
    if core_class is core.APIStatusError:
        namespace["is_retryable"] = property(_status_is_retryable)
    return type(core_class.__name__, (core_class, *lc_classes), namespace)


# Built once; keyed by the exact core class.
_BRIDGED: dict[type[core.TokenHubError], type] = {c: _make(c, lc) for c, lc in _PAIRS}
_CONTEXT_OVERFLOW = _make(core.BadRequestError, ModelInvalidRequestError, ContextOverflowError)
_OVERFLOW_WORDS = re.compile(
    r"prompt is too long|context (length|window)|context_length_exceeded|too many (input )?tokens",
    re.IGNORECASE,
)


def bridge(exc: core.TokenHubError) -> core.TokenHubError:
    """The same error as an instance of its bridged class; ``exc`` itself when there is none."""
    if isinstance(exc, ModelError):
        return exc
    cls = _BRIDGED.get(type(exc))
    if isinstance(exc, core.BadRequestError) and _OVERFLOW_WORDS.search(str(exc)):
        cls = _CONTEXT_OVERFLOW
    if cls is None:
        return exc
    bridged: core.TokenHubError = cls.__new__(cls, *exc.args)
    bridged.args = exc.args
    bridged.__dict__.update(exc.__dict__)
    bridged.__cause__ = exc.__cause__
    bridged.__suppress_context__ = exc.__suppress_context__
    return bridged.with_traceback(exc.__traceback__)


@contextmanager
def translate_errors() -> Iterator[None]:
    """Re-raise core errors raised inside the block as their bridged classes."""
    try:
        yield
    except core.TokenHubError as exc:
        bridged = bridge(exc)
        if bridged is exc:
            raise
        raise bridged from exc.__cause__
