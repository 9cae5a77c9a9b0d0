"""Pydantic models of the OpenAI chat-completions schema, as TokenHub speaks it.

Response models accept unknown fields and unknown enum values (``finish_reason`` is a plain string),
so a new server field never breaks a user. The client builds requests as plain dicts
(`tokenhub_core.params`); `ChatCompletionRequest` documents their shape (the tests check
the client's requests against it).
"""

from __future__ import annotations

import json
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

__all__ = [
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "Choice",
    "ChoiceDelta",
    "ChoiceDeltaToolCall",
    "ChoiceDeltaToolCallFunction",
    "ChunkChoice",
    "CompletionTokensDetails",
    "ErrorBody",
    "ErrorObject",
    "FunctionCall",
    "Message",
    "PromptTokensDetails",
    "ToolCall",
    "Usage",
    "loads",
    "parse_lenient",
]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Lean(BaseModel):
    # Containers decoded once per streamed chunk: unknown fields are tolerated but not kept,
    # which halves the cost of decoding a chunk. Objects users read keep theirs (`_Open`).
    model_config = ConfigDict(extra="ignore")


class PromptTokensDetails(_Open):
    """Parts of the prompt: ``cached_tokens`` read from the prompt cache; ``cache_creation_tokens``
    written to it (all TTLs), ``cache_creation_1h_tokens`` of them to the 1-hour cache."""

    cached_tokens: int | None = None
    cache_creation_tokens: int | None = None
    cache_creation_1h_tokens: int | None = None


class CompletionTokensDetails(_Open):
    reasoning_tokens: int | None = None


class Usage(_Open):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None

    @property
    def cached_tokens(self) -> int:
        """Prompt tokens read from the prompt cache (OpenAI's name)."""
        details = self.prompt_tokens_details
        return (details.cached_tokens or 0) if details is not None else 0

    @property
    def cache_read_tokens(self) -> int:
        """Prompt tokens read from the prompt cache."""
        return self.cached_tokens

    @property
    def cache_creation_tokens(self) -> int:
        """Prompt tokens written to the prompt cache, both TTLs."""
        details = self.prompt_tokens_details
        return (details.cache_creation_tokens or 0) if details is not None else 0

    @property
    def cache_creation_1h_tokens(self) -> int:
        """Prompt tokens written to the 1-hour cache."""
        details = self.prompt_tokens_details
        return (details.cache_creation_1h_tokens or 0) if details is not None else 0

    @property
    def cache_creation_5m_tokens(self) -> int:
        """Prompt tokens written to the 5-minute cache."""
        return max(0, self.cache_creation_tokens - self.cache_creation_1h_tokens)

    @property
    def reasoning_tokens(self) -> int:
        """Output tokens spent thinking, when the server reports them."""
        details = self.completion_tokens_details
        return (details.reasoning_tokens or 0) if details is not None else 0


class FunctionCall(_Open):
    name: str = ""
    arguments: str = ""


class ToolCall(_Open):
    id: str = ""
    type: str = "function"
    function: FunctionCall = Field(default_factory=FunctionCall)


class Message(_Open):
    """A reply message. ``thinking_blocks`` holds Claude's thinking (``{"type": "thinking",
    "thinking", "signature"}`` and ``{"type": "redacted_thinking", "data"}``) in order, in the
    shape a request takes them back."""

    role: str = "assistant"
    content: str | None = None
    tool_calls: list[ToolCall] | None = None
    refusal: str | None = None
    thinking_blocks: list[dict[str, Any]] | None = None

    @property
    def reasoning_content(self) -> str | None:
        """The thinking text, joined; None when there was none."""
        if not self.thinking_blocks:
            return None
        texts = [
            b.get("thinking") or "" for b in self.thinking_blocks if b.get("type") == "thinking"
        ]
        return "".join(texts) if texts else None


class Choice(_Open):
    index: int = 0
    message: Message = Field(default_factory=Message)
    finish_reason: str | None = None


class _WithRequestId(_Open):
    _request_id: str | None = PrivateAttr(default=None)

    @property
    def request_id(self) -> str | None:
        """The server's request id (``x-request-id`` header) for this response, if it sent one."""
        # Read from pydantic's private store directly: `self._request_id` goes through
        # BaseModel.__getattr__, several times slower, and this is read several times a call.
        private = self.__pydantic_private__
        return None if private is None else private.get("_request_id")


class ChatCompletion(_WithRequestId):
    id: str = ""
    object: str = "chat.completion"
    created: int = 0
    model: str = ""
    choices: list[Choice] = Field(default_factory=list)
    usage: Usage | None = None
    system_fingerprint: str | None = None


class ChoiceDeltaToolCallFunction(_Lean):
    name: str | None = None
    arguments: str | None = None


class ChoiceDeltaToolCall(_Lean):
    index: int | None = None
    id: str | None = None
    type: str | None = None
    function: ChoiceDeltaToolCallFunction | None = None


class ChoiceDelta(_Open):
    """A streamed delta. ``thinking_blocks`` items are ``{"index", "type", "thinking",
    "signature", "data"}`` fragments of the reply's thinking blocks (numbered 0, 1, ...)."""

    role: str | None = None
    content: str | None = None
    tool_calls: list[ChoiceDeltaToolCall] | None = None
    refusal: str | None = None
    thinking_blocks: list[dict[str, Any]] | None = None


class ChunkChoice(_Lean):
    index: int = 0
    delta: ChoiceDelta = ChoiceDelta()
    finish_reason: str | None = None


class ChatCompletionChunk(_Open):
    id: str = ""
    object: str = "chat.completion.chunk"
    created: int = 0
    model: str = ""
    choices: list[ChunkChoice] = Field(default_factory=list)
    usage: Usage | None = None
    system_fingerprint: str | None = None


class ErrorObject(_Open):
    message: str = ""
    type: str | None = None
    param: str | None = None
    code: str | int | None = None


class ErrorBody(_Open):
    error: ErrorObject


# Request side: strict about what TokenHub documents, open to extra fields (extra_body).


class FunctionDefinition(_Open):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDefinition(_Open):
    type: Literal["function"] = "function"
    function: FunctionDefinition


class RequestMessage(_Open):
    role: str
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class ChatCompletionRequest(_Open):
    model: str
    messages: list[RequestMessage]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    stop: str | list[str] | None = None
    tools: list[ToolDefinition] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    user: str | None = None


_Model = TypeVar("_Model", bound=BaseModel)


def _tidy(value: Any) -> Any:
    if isinstance(value, dict):
        tidy = {k: _tidy(v) for k, v in value.items() if v is not None}
        arguments = tidy.get("arguments")
        if isinstance(arguments, (dict, list)):
            tidy["arguments"] = json.dumps(arguments)
        return tidy
    if isinstance(value, list):
        return [_tidy(v) for v in value]
    return value


def parse_lenient(model: type[_Model], data: str | bytes) -> _Model:
    """Decode ``data`` as ``model``, forgiving what sloppy OpenAI-compatible servers send.

    The strict decode runs first, so well-formed replies pay nothing extra. If it fails, the
    JSON is decoded again with ``null``s dropped (so defaults apply: ``"id": null`` becomes
    ``""``, ``"prompt_tokens": null`` becomes 0) and tool-call arguments sent as a JSON object
    re-encoded as the string the schema promises. Raises `ValidationError` (or ``ValueError``
    for bytes that are not JSON) when even that is not a ``model``.
    """
    try:
        return model.model_validate_json(data)
    except ValidationError:
        loaded = loads(data)
        if not isinstance(loaded, dict):
            raise
        try:
            return model.model_validate(_tidy(loaded))
        except RecursionError:
            raise ValueError("JSON nested too deeply to decode") from None


def loads(data: str | bytes) -> Any:
    """``json.loads`` whose only failure is ``ValueError``: JSON nested deeper than Python can
    recurse (a hostile or broken server) is reported as not JSON instead of `RecursionError`."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply to decode") from None
