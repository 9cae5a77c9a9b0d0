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
=========================  ==============================================

402 (PaymentRequiredError), other statuses and BudgetExceededError have no langchain-core
counterpart and surface unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

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
)


def _make(core_class: type[core.TokenHubError], *lc_classes: type[ModelError]) -> type:
    return type(
        core_class.__name__,
        (core_class, *lc_classes),
        {
            "__module__": __name__,
            "__doc__": f"{core_class.__doc__} Also a LangChain {lc_classes[0].__name__}.",
        },
    )


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
