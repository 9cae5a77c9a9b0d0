"""The shared TokenHub request core: catalog, wire models, client, streaming, cost metering.

Imports no framework and not the emulator.
"""

from tokenhub_core._version import __version__
from tokenhub_core.catalog import (
    DEFAULT_MODEL,
    MODELS,
    ModelInfo,
    cost_usd,
    price_call,
    price_usage,
    resolve_model,
    set_cache_pricing,
)
from tokenhub_core.client import DEFAULT_BASE_URL, AsyncChatStream, ChatStream, TokenHubClient
from tokenhub_core.cost import CostMeter, track_cost
from tokenhub_core.errors import (
    APIConnectionError,
    APIResponseError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    IncompleteToolCallError,
    InternalServerError,
    InvalidParameterError,
    MissingAPIKeyError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    StreamInterruptedError,
    TokenHubError,
    UnknownParameterError,
)
from tokenhub_core.wire import ChatCompletion, ChatCompletionChunk, Usage

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    "MODELS",
    "APIConnectionError",
    "APIResponseError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncChatStream",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatStream",
    "CostMeter",
    "IncompleteToolCallError",
    "InternalServerError",
    "InvalidParameterError",
    "MissingAPIKeyError",
    "ModelInfo",
    "NotFoundError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "RateLimitError",
    "StreamInterruptedError",
    "TokenHubClient",
    "TokenHubError",
    "UnknownParameterError",
    "Usage",
    "__version__",
    "cost_usd",
    "price_call",
    "price_usage",
    "resolve_model",
    "set_cache_pricing",
    "track_cost",
]
