"""Claude's native Messages API (``POST /v1/messages``): the request checked as Claude checks it.

Pure: `check_messages_request` turns a parsed body into a `MessagesRequest` or raises
`RequestError` with Claude's wording (fields named by path: ``messages.1.content.0``). The
request carries the engine's view of itself (a `ChatRequest` in the chat-completions shape, so
one reply engine answers both endpoints), its cache pieces (tools, system, message blocks, each
with its tokens and breakpoint) and its thinking settings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from tokenhub_core.catalog import ModelInfo, resolve_model
from tokenhub_emulator.caching import Piece
from tokenhub_emulator.checks import (
    MAX_STOP_SEQUENCES,
    ChatRequest,
    RequestError,
    ResponseFormat,
    ToolChoice,
    ToolSpec,
)
from tokenhub_emulator.native_messages import (
    THINKING_DOCS,
    Breakpoints,
    DocumentRef,
    bad,
    canonical,
    check_messages,
    tokens_of,
)

__all__ = [
    "MAX_REQUEST_BYTES",
    "DocumentRef",
    "MessagesRequest",
    "ThinkingConfig",
    "check_messages_request",
    "check_native_key",
]

MAX_REQUEST_BYTES = 32 << 20  # Claude's limit for a Messages request
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_TOP_LEVEL = frozenset(
    {
        *("model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream"),
        *("temperature", "top_p", "top_k", "tools", "tool_choice", "thinking", "output_config"),
        *("cache_control", "service_tier", "container", "context_management", "mcp_servers"),
        "inference_geo",
    }
)
# A system prompt asking for one JSON object (as a client turns JSON mode into one).
_JSON_INSTRUCTION = re.compile(
    r"\b(?:answer|respond|reply|output)\b[^.\n]{0,60}\bJSON object\b", re.IGNORECASE
)


@dataclass(frozen=True)
class ThinkingConfig:
    """Thinking as the request sets it; ``budget_tokens`` is the most the emulator thinks."""

    mode: Literal["enabled", "adaptive"]
    budget_tokens: int
    display: Literal["summarized", "omitted"]


@dataclass(frozen=True)
class MessagesRequest:
    """A validated Messages request."""

    model: str  # as sent; echoed in the response
    info: ModelInfo
    chat: ChatRequest  # the engine's view: chat-completions messages, tools and choices
    max_tokens: int
    stop_sequences: tuple[str, ...]
    stream: bool
    thinking: ThinkingConfig | None
    pieces: tuple[Piece, ...]
    documents: tuple[DocumentRef, ...]  # those of the last user message

    @property
    def prompt_tokens(self) -> int:
        return sum(p.tokens for p in self.pieces)


def check_native_key(x_api_key: str | None, authorization: str | None) -> str:
    """The key from ``x-api-key`` or ``Authorization: Bearer``; 401 unless it is a ``th-`` key."""
    key = (x_api_key or "").strip()
    if not key and authorization:
        scheme, _, given = authorization.partition(" ")
        key = given.strip() if scheme.lower() == "bearer" else ""
    if not key:
        raise RequestError(401, "x-api-key header is required", type="authentication_error")
    if not key.startswith("th-") or len(key) < 4:
        raise RequestError(401, "invalid x-api-key", type="authentication_error")
    return key


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_messages_request(
    body: Any,
    *,
    claude_rules: bool = True,
    verify_signature: Callable[[str, str], bool] = lambda text, signature: True,
) -> MessagesRequest:
    """Validate a parsed Messages body the way Claude does."""
    if not isinstance(body, dict):
        raise bad("The request body must be a JSON object.")
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            raise bad(f"{name}: Field required")
    extra = sorted(set(body) - _TOP_LEVEL)
    if extra:
        raise bad(f"{extra[0]}: Extra inputs are not permitted")
    model = body["model"]
    if not isinstance(model, str) or not model:
        raise bad("model: Input should be a valid string")
    info = resolve_model(model)
    if info is None:
        raise RequestError(404, f"model: {model}", type="not_found_error")
    max_tokens = body["max_tokens"]
    if not _is_int(max_tokens) or max_tokens < 1:
        raise bad("max_tokens: Input should be greater than or equal to 1")
    if max_tokens > info.max_output_tokens:
        raise bad(
            f"max_tokens: {max_tokens} > {info.max_output_tokens}, which is the maximum allowed "
            f"number of output tokens for {info.short_id}"
        )
    messages = body["messages"]
    if not isinstance(messages, list):
        raise bad("messages: Input should be a valid list")
    if not messages:
        raise bad("messages: at least one message is required")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise bad("stream: Input should be a valid boolean")
    _check_sampling(body)
    stop = _check_stop(body.get("stop_sequences"))
    metadata = body.get("metadata")
    if metadata is not None and (
        not isinstance(metadata, dict)
        or not isinstance(metadata.get("user_id", ""), (str, type(None)))
    ):
        raise bad("metadata.user_id: Input should be a valid string")
    marks = Breakpoints()
    tools, tool_pieces = _check_tools(body.get("tools"), marks)
    tool_choice, forced, parallel = _check_tool_choice(body.get("tool_choice"), tools)
    system_text, system_pieces = _check_system(body.get("system"), marks)
    fmt, schema = _check_output_config(body.get("output_config"))
    if fmt == "text" and _JSON_INSTRUCTION.search(system_text):
        fmt = "json_object"
    thinking = _check_thinking(body.get("thinking"), info, max_tokens)
    if thinking is not None:
        _check_thinking_rules(body, tool_choice)
    chat_messages, message_pieces, documents = check_messages(
        messages, marks, thinking is not None, claude_rules, verify_signature
    )
    pieces = [Piece(b"", 3), *tool_pieces, *system_pieces, *message_pieces]
    automatic = body.get("cache_control")
    if automatic is not None:  # automatic caching: a breakpoint on the last cacheable block
        ttl = marks.ttl({"cache_control": automatic}, "cache_control")
        last = pieces[-1]
        pieces[-1] = Piece(last.key, last.tokens, ttl)
    if system_text:
        chat_messages.insert(0, {"role": "system", "content": system_text})
    chat = ChatRequest(
        model=model,
        info=info,
        messages=chat_messages,
        max_tokens=1 << 30,  # the native layer applies max_tokens and stop sequences itself
        max_tokens_given=True,
        stop=(),
        stream=stream,
        include_usage=False,
        tools=tools,
        tool_choice=tool_choice,
        forced_tool=forced,
        parallel_tool_calls=parallel,
        response_format=fmt,
        json_schema=schema,
    )
    return MessagesRequest(
        model=model,
        info=info,
        chat=chat,
        max_tokens=max_tokens,
        stop_sequences=stop,
        stream=stream,
        thinking=thinking,
        pieces=tuple(pieces),
        documents=documents,
    )


def _check_sampling(body: dict[str, Any]) -> None:
    temperature = body.get("temperature")
    if temperature is not None and (not _is_number(temperature) or not 0 <= temperature <= 1):
        raise bad("temperature: Input should be less than or equal to 1")
    top_p = body.get("top_p")
    if top_p is not None and (not _is_number(top_p) or not 0 <= top_p <= 1):
        raise bad("top_p: Input should be less than or equal to 1")
    if temperature is not None and top_p is not None:
        raise bad(
            "`temperature` and `top_p` cannot both be specified for this model. Please use "
            "only one."
        )
    top_k = body.get("top_k")
    if top_k is not None and (not _is_int(top_k) or top_k < 0):
        raise bad("top_k: Input should be greater than or equal to 0")


def _check_stop(stop: Any) -> tuple[str, ...]:
    if stop is None:
        return ()
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise bad("stop_sequences: Input should be a valid list of strings")
    if len(stop) > MAX_STOP_SEQUENCES:
        raise bad(f"stop_sequences: TokenHub allows at most {MAX_STOP_SEQUENCES} sequences")
    if any(not s.strip() for s in stop):
        raise bad("stop_sequences: each stop sequence must contain non-whitespace")
    return tuple(stop)


def _check_tools(tools: Any, marks: Breakpoints) -> tuple[tuple[ToolSpec, ...], list[Piece]]:
    if tools is None:
        return (), []
    if not isinstance(tools, list):
        raise bad("tools: Input should be a valid list")
    specs: list[ToolSpec] = []
    pieces: list[Piece] = []
    for i, tool in enumerate(tools):
        at = f"tools.{i}"
        if not isinstance(tool, dict):
            raise bad(f"{at}: Input should be a valid dictionary")
        if tool.get("type", "custom") != "custom":
            raise bad(f"{at}.type: the emulator serves custom tools only, not {tool['type']!r}")
        name = tool.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise bad(f"{at}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
        if any(spec.name == name for spec in specs):
            raise bad(f"tools: Tool names must be unique. Duplicate: {name!r}")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise bad(f"{at}.input_schema: Field required")
        if schema.get("type") != "object":
            raise bad(f"{at}.input_schema.type: Input should be 'object'")
        description = tool.get("description", "")
        if not isinstance(description, str):
            raise bad(f"{at}.description: Input should be a valid string")
        specs.append(ToolSpec(name, description, schema))
        chars = len(name) + len(description) + len(json.dumps(schema))
        key = canonical(tool)
        pieces.append(Piece(key, 8 + tokens_of(chars), marks.ttl(tool, at)))
    return tuple(specs), pieces


def _check_tool_choice(
    choice: Any, tools: tuple[ToolSpec, ...]
) -> tuple[ToolChoice, str | None, bool]:
    if choice is None:
        return "auto", None, True
    if not isinstance(choice, dict):
        raise bad("tool_choice: Input should be a valid dictionary")
    kind = choice.get("type")
    parallel = choice.get("disable_parallel_tool_use", False)
    if not isinstance(parallel, bool):
        raise bad("tool_choice.disable_parallel_tool_use: Input should be a valid boolean")
    if kind == "auto":
        return "auto", None, not parallel
    if kind == "none":
        return "none", None, True
    if kind in ("any", "tool") and not tools:
        raise bad(f"tool_choice: tool_choice.type {kind!r} requires tools to be provided")
    if kind == "any":
        return "required", None, not parallel
    if kind == "tool":
        name = choice.get("name")
        if not isinstance(name, str):
            raise bad("tool_choice.tool.name: Field required")
        if all(tool.name != name for tool in tools):
            raise bad(f"tool_choice: Tool '{name}' not found in provided tools")
        return "function", name, not parallel
    raise bad(
        "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'"
        if kind is not None
        else "tool_choice.type: Field required"
    )


def _check_system(system: Any, marks: Breakpoints) -> tuple[str, list[Piece]]:
    if system is None:
        return "", []
    if isinstance(system, str):
        return system, [
            Piece(canonical(["system", system]), tokens_of(len(system)))
        ] if system else []
    if not isinstance(system, list):
        raise bad("system: Input should be a valid string or list of text blocks")
    texts: list[str] = []
    pieces: list[Piece] = []
    for i, block in enumerate(system):
        at = f"system.{i}"
        if not isinstance(block, dict) or block.get("type") != "text":
            raise bad(f"{at}.type: Input should be 'text'")
        text = block.get("text")
        if not isinstance(text, str):
            raise bad(f"{at}.text: Field required")
        if not text:
            raise bad("system: text content blocks must be non-empty")
        texts.append(text)
        key = canonical(["system", block])
        pieces.append(Piece(key, tokens_of(len(text)), marks.ttl(block, at)))
    return "\n".join(texts), pieces


def _check_output_config(config: Any) -> tuple[ResponseFormat, dict[str, Any] | None]:
    if config is None:
        return "text", None
    if not isinstance(config, dict):
        raise bad("output_config: Input should be a valid dictionary")
    effort = config.get("effort")
    if effort is not None and effort not in ("low", "medium", "high", "xhigh", "max"):
        raise bad("output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'")
    fmt = config.get("format")
    if fmt is None:
        return "text", None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        raise bad("output_config.format.type: Input should be 'json_schema'")
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        raise bad("output_config.format.schema: Field required")
    return "json_schema", schema


def _check_thinking(thinking: Any, info: ModelInfo, max_tokens: int) -> ThinkingConfig | None:
    if thinking is None:
        return None
    if not isinstance(thinking, dict):
        raise bad("thinking: Input should be a valid dictionary")
    kind = thinking.get("type")
    if kind == "disabled":
        return None
    if kind not in ("enabled", "adaptive"):
        raise bad("thinking.type: Input should be 'enabled', 'adaptive' or 'disabled'")
    display: Literal["summarized", "omitted"] = "summarized"
    if thinking.get("display") == "omitted":
        display = "omitted"
    elif thinking.get("display") not in (None, "summarized"):
        raise bad(f"thinking.{kind}.display: Input should be 'summarized' or 'omitted'")
    modes = info.thinking_modes  # the catalog's: which of enabled / adaptive it takes
    if kind not in modes:
        if not modes:
            raise bad(f"thinking: {info.short_id} does not support extended thinking")
        use = " or ".join(f"'{m}'" for m in sorted(modes))
        raise bad(
            f"thinking.type: '{kind}' is not supported for {info.short_id}; use {use} instead"
        )
    if kind == "adaptive":
        return ThinkingConfig("adaptive", max(1, max_tokens // 2), display)
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or isinstance(budget, bool):
        raise bad("thinking.enabled.budget_tokens: Field required")
    if budget < 1024:
        raise bad("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
    if budget >= max_tokens:
        raise bad(
            "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
            f"documentation at {THINKING_DOCS}#max-tokens-and-context-window-size"
        )
    return ThinkingConfig("enabled", budget, display)


def _check_thinking_rules(body: dict[str, Any], tool_choice: ToolChoice) -> None:
    temperature = body.get("temperature")
    if temperature is not None and temperature != 1:
        raise bad(
            "`temperature` may only be set to 1 when thinking is enabled. Please consult our "
            f"documentation at {THINKING_DOCS}#feature-compatibility"
        )
    top_p = body.get("top_p")
    if top_p is not None and not 0.95 <= top_p <= 1:
        raise bad(
            "`top_p` must be between 0.95 and 1 when thinking is enabled. Please consult our "
            f"documentation at {THINKING_DOCS}#feature-compatibility"
        )
    if body.get("top_k") is not None:
        raise bad(
            "`top_k` may not be set when thinking is enabled. Please consult our documentation "
            f"at {THINKING_DOCS}#feature-compatibility"
        )
    if tool_choice in ("required", "function"):
        raise bad("Thinking may not be enabled when tool_choice forces tool use.")
