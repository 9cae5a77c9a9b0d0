"""Claude's native Messages API (``POST /v1/messages``): the request checked as Claude checks it.

Pure: `check_messages_request` turns a parsed body into a `MessagesRequest` or raises
`RequestError` with Claude's wording (fields named by path: ``messages.1.content.0``). The
request carries the engine's view of itself (a `ChatRequest` in the chat-completions shape, so
one reply engine answers both endpoints), its cache pieces (tools, system, message blocks, each
with its tokens and breakpoint) and its thinking settings.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from tokenhub_core.catalog import ModelInfo, resolve_model
from tokenhub_emulator.caching import Piece
from tokenhub_emulator.checks import (
    IMAGE_TYPES,
    MAX_STOP_SEQUENCES,
    ChatRequest,
    RequestError,
    ResponseFormat,
    ToolChoice,
    ToolSpec,
)
from tokenhub_emulator.pdf import pdf_text
from tokenhub_emulator.replies import IMAGE_TOKENS

__all__ = [
    "MAX_REQUEST_BYTES",
    "DocumentRef",
    "MessagesRequest",
    "ThinkingConfig",
    "check_messages_request",
    "check_native_key",
    "thinking_modes",
]

MAX_REQUEST_BYTES = 32 << 20  # Claude's limit for a Messages request
MAX_BREAKPOINTS = 4
PDF_PAGE_TOKENS = 800  # each page is also read as an image, like an image block
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_DOCS = "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
_TOP_LEVEL = frozenset(
    {
        *("model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream"),
        *("temperature", "top_p", "top_k", "tools", "tool_choice", "thinking", "output_config"),
        *("cache_control", "service_tier", "container", "context_management", "mcp_servers"),
        "inference_geo",
    }
)
# Which thinking types each model takes (until the catalog's ModelInfo.thinking_modes lands).
_THINKING_MODES: dict[str, frozenset[str]] = {
    "anthropic/claude-opus-4-7": frozenset({"adaptive"}),
    "anthropic/claude-opus-4-6": frozenset({"enabled", "adaptive"}),
    "anthropic/claude-sonnet-4-6": frozenset({"enabled", "adaptive"}),
    "anthropic/claude-haiku-4-5": frozenset({"enabled"}),
    "anthropic/claude-sonnet-4-5": frozenset({"enabled"}),
    "anthropic/claude-opus-4-5": frozenset({"enabled"}),
    "anthropic/claude-4-sonnet": frozenset({"enabled"}),
    "anthropic/claude-4-opus": frozenset({"enabled"}),
}
# A system prompt asking for one JSON object (as a client turns JSON mode into one).
_JSON_INSTRUCTION = re.compile(
    r"\b(?:answer|respond|reply|output)\b[^.\n]{0,60}\bJSON object\b", re.IGNORECASE
)


def thinking_modes(info: ModelInfo) -> frozenset[str]:
    """The thinking types (``enabled``, ``adaptive``) ``info``'s model takes."""
    modes = getattr(info, "thinking_modes", None)
    if isinstance(modes, frozenset):
        return modes
    return _THINKING_MODES.get(info.id, frozenset())


@dataclass(frozen=True)
class ThinkingConfig:
    """Thinking as the request sets it; ``budget_tokens`` is the most the emulator thinks."""

    mode: Literal["enabled", "adaptive"]
    budget_tokens: int
    display: Literal["summarized", "omitted"]


@dataclass(frozen=True)
class DocumentRef:
    """One document block: its kind, title, the text read from it, and its page count."""

    kind: Literal["pdf", "text", "url"]
    title: str | None
    text: str
    pages: int
    url: str | None = None

    def label(self) -> str:
        """How the answer acknowledges it: ``PDF "Report", 2 pages``."""
        name = f' "{self.title}"' if self.title else ""
        if self.kind == "url":
            return f"PDF at {self.url}{name} (not fetched)"
        if self.kind == "text":
            return f"text document{name}"
        found = "" if self.text else ", no text found"
        return f"PDF{name}, {self.pages} page{'s' if self.pages != 1 else ''}{found}"


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


def _bad(message: str) -> RequestError:
    return RequestError(400, message)


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


def _tokens(chars: int) -> int:
    return (chars + 3) // 4


def _without_cache_control(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_cache_control(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_without_cache_control(v) for v in value]
    return value


def _canonical(value: Any) -> bytes:
    """The bytes a piece is hashed by: where its breakpoints sit does not change them."""
    return json.dumps(
        _without_cache_control(value), sort_keys=True, ensure_ascii=False, separators=(",", ":")
    ).encode()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _Breakpoints:
    """Collects ``cache_control`` marks: checks each, counts them, keeps 1h before 5m."""

    def __init__(self) -> None:
        self.count = 0
        self.seen_5m = False

    def ttl(self, block: dict[str, Any], where: str) -> str | None:
        control = block.get("cache_control")
        if control is None:
            return None
        if not isinstance(control, dict) or control.get("type") != "ephemeral":
            raise _bad(f"{where}.cache_control.type: Input should be 'ephemeral'")
        ttl = control.get("ttl", "5m")
        if ttl not in ("5m", "1h"):
            raise _bad(f"{where}.cache_control.ttl: Input should be '5m' or '1h'")
        if ttl == "1h" and self.seen_5m:
            raise _bad(
                f"{where}.cache_control: a ttl='1h' cache_control block must not come after a "
                "ttl='5m' cache_control block (longer TTLs first: tools, system, then messages)"
            )
        self.seen_5m |= ttl == "5m"
        self.count += 1
        if self.count > MAX_BREAKPOINTS:
            raise _bad(
                f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
                f"Found {self.count}."
            )
        return str(ttl)


def check_messages_request(
    body: Any,
    *,
    claude_rules: bool = True,
    verify_signature: Callable[[str, str], bool] = lambda text, signature: True,
) -> MessagesRequest:
    """Validate a parsed Messages body the way Claude does."""
    if not isinstance(body, dict):
        raise _bad("The request body must be a JSON object.")
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            raise _bad(f"{name}: Field required")
    extra = sorted(set(body) - _TOP_LEVEL)
    if extra:
        raise _bad(f"{extra[0]}: Extra inputs are not permitted")
    model = body["model"]
    if not isinstance(model, str) or not model:
        raise _bad("model: Input should be a valid string")
    info = resolve_model(model)
    if info is None:
        raise RequestError(404, f"model: {model}", type="not_found_error")
    max_tokens = body["max_tokens"]
    if not _is_int(max_tokens) or max_tokens < 1:
        raise _bad("max_tokens: Input should be greater than or equal to 1")
    if max_tokens > info.max_output_tokens:
        raise _bad(
            f"max_tokens: {max_tokens} > {info.max_output_tokens}, which is the maximum allowed "
            f"number of output tokens for {info.short_id}"
        )
    messages = body["messages"]
    if not isinstance(messages, list):
        raise _bad("messages: Input should be a valid list")
    if not messages:
        raise _bad("messages: at least one message is required")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad("stream: Input should be a valid boolean")
    _check_sampling(body)
    stop = _check_stop(body.get("stop_sequences"))
    metadata = body.get("metadata")
    if metadata is not None and (
        not isinstance(metadata, dict)
        or not isinstance(metadata.get("user_id", ""), (str, type(None)))
    ):
        raise _bad("metadata.user_id: Input should be a valid string")
    marks = _Breakpoints()
    tools, tool_pieces = _check_tools(body.get("tools"), marks)
    tool_choice, forced, parallel = _check_tool_choice(body.get("tool_choice"), tools)
    system_text, system_pieces = _check_system(body.get("system"), marks)
    fmt, schema = _check_output_config(body.get("output_config"))
    if fmt == "text" and _JSON_INSTRUCTION.search(system_text):
        fmt = "json_object"
    thinking = _check_thinking(body.get("thinking"), info, max_tokens)
    if thinking is not None:
        _check_thinking_rules(body, tool_choice)
    chat_messages, message_pieces, documents = _check_messages(
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
        raise _bad("temperature: Input should be less than or equal to 1")
    top_p = body.get("top_p")
    if top_p is not None and (not _is_number(top_p) or not 0 <= top_p <= 1):
        raise _bad("top_p: Input should be less than or equal to 1")
    if temperature is not None and top_p is not None:
        raise _bad(
            "`temperature` and `top_p` cannot both be specified for this model. Please use "
            "only one."
        )
    top_k = body.get("top_k")
    if top_k is not None and (not _is_int(top_k) or top_k < 0):
        raise _bad("top_k: Input should be greater than or equal to 0")


def _check_stop(stop: Any) -> tuple[str, ...]:
    if stop is None:
        return ()
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise _bad("stop_sequences: Input should be a valid list of strings")
    if len(stop) > MAX_STOP_SEQUENCES:
        raise _bad(f"stop_sequences: TokenHub allows at most {MAX_STOP_SEQUENCES} sequences")
    if any(not s.strip() for s in stop):
        raise _bad("stop_sequences: each stop sequence must contain non-whitespace")
    return tuple(stop)


def _check_tools(tools: Any, marks: _Breakpoints) -> tuple[tuple[ToolSpec, ...], list[Piece]]:
    if tools is None:
        return (), []
    if not isinstance(tools, list):
        raise _bad("tools: Input should be a valid list")
    specs: list[ToolSpec] = []
    pieces: list[Piece] = []
    for i, tool in enumerate(tools):
        at = f"tools.{i}"
        if not isinstance(tool, dict):
            raise _bad(f"{at}: Input should be a valid dictionary")
        if tool.get("type", "custom") != "custom":
            raise _bad(f"{at}.type: the emulator serves custom tools only, not {tool['type']!r}")
        name = tool.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise _bad(f"{at}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
        if any(spec.name == name for spec in specs):
            raise _bad(f"tools: Tool names must be unique. Duplicate: {name!r}")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise _bad(f"{at}.input_schema: Field required")
        if schema.get("type") != "object":
            raise _bad(f"{at}.input_schema.type: Input should be 'object'")
        description = tool.get("description", "")
        if not isinstance(description, str):
            raise _bad(f"{at}.description: Input should be a valid string")
        specs.append(ToolSpec(name, description, schema))
        chars = len(name) + len(description) + len(json.dumps(schema))
        key = _canonical(tool)
        pieces.append(Piece(key, 8 + _tokens(chars), marks.ttl(tool, at)))
    return tuple(specs), pieces


def _check_tool_choice(
    choice: Any, tools: tuple[ToolSpec, ...]
) -> tuple[ToolChoice, str | None, bool]:
    if choice is None:
        return "auto", None, True
    if not isinstance(choice, dict):
        raise _bad("tool_choice: Input should be a valid dictionary")
    kind = choice.get("type")
    parallel = choice.get("disable_parallel_tool_use", False)
    if not isinstance(parallel, bool):
        raise _bad("tool_choice.disable_parallel_tool_use: Input should be a valid boolean")
    if kind == "auto":
        return "auto", None, not parallel
    if kind == "none":
        return "none", None, True
    if kind in ("any", "tool") and not tools:
        raise _bad(f"tool_choice: tool_choice.type {kind!r} requires tools to be provided")
    if kind == "any":
        return "required", None, not parallel
    if kind == "tool":
        name = choice.get("name")
        if not isinstance(name, str):
            raise _bad("tool_choice.tool.name: Field required")
        if all(tool.name != name for tool in tools):
            raise _bad(f"tool_choice: Tool '{name}' not found in provided tools")
        return "function", name, not parallel
    raise _bad(
        "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'"
        if kind is not None
        else "tool_choice.type: Field required"
    )


def _check_system(system: Any, marks: _Breakpoints) -> tuple[str, list[Piece]]:
    if system is None:
        return "", []
    if isinstance(system, str):
        return system, [
            Piece(_canonical(["system", system]), _tokens(len(system)))
        ] if system else []
    if not isinstance(system, list):
        raise _bad("system: Input should be a valid string or list of text blocks")
    texts: list[str] = []
    pieces: list[Piece] = []
    for i, block in enumerate(system):
        at = f"system.{i}"
        if not isinstance(block, dict) or block.get("type") != "text":
            raise _bad(f"{at}.type: Input should be 'text'")
        text = block.get("text")
        if not isinstance(text, str):
            raise _bad(f"{at}.text: Field required")
        if not text:
            raise _bad("system: text content blocks must be non-empty")
        texts.append(text)
        key = _canonical(["system", block])
        pieces.append(Piece(key, _tokens(len(text)), marks.ttl(block, at)))
    return "\n".join(texts), pieces


def _check_output_config(config: Any) -> tuple[ResponseFormat, dict[str, Any] | None]:
    if config is None:
        return "text", None
    if not isinstance(config, dict):
        raise _bad("output_config: Input should be a valid dictionary")
    effort = config.get("effort")
    if effort is not None and effort not in ("low", "medium", "high", "xhigh", "max"):
        raise _bad(
            "output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'"
        )
    fmt = config.get("format")
    if fmt is None:
        return "text", None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        raise _bad("output_config.format.type: Input should be 'json_schema'")
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        raise _bad("output_config.format.schema: Field required")
    return "json_schema", schema


def _check_thinking(thinking: Any, info: ModelInfo, max_tokens: int) -> ThinkingConfig | None:
    if thinking is None:
        return None
    if not isinstance(thinking, dict):
        raise _bad("thinking: Input should be a valid dictionary")
    kind = thinking.get("type")
    if kind == "disabled":
        return None
    if kind not in ("enabled", "adaptive"):
        raise _bad("thinking.type: Input should be 'enabled', 'adaptive' or 'disabled'")
    display: Literal["summarized", "omitted"] = "summarized"
    if thinking.get("display") == "omitted":
        display = "omitted"
    elif thinking.get("display") not in (None, "summarized"):
        raise _bad(f"thinking.{kind}.display: Input should be 'summarized' or 'omitted'")
    modes = thinking_modes(info)
    if kind not in modes:
        if not modes:
            raise _bad(f"thinking: {info.short_id} does not support extended thinking")
        use = " or ".join(f"'{m}'" for m in sorted(modes))
        raise _bad(
            f"thinking.type: '{kind}' is not supported for {info.short_id}; use {use} instead"
        )
    if kind == "adaptive":
        return ThinkingConfig("adaptive", max(1, max_tokens // 2), display)
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or isinstance(budget, bool):
        raise _bad("thinking.enabled.budget_tokens: Field required")
    if budget < 1024:
        raise _bad("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
    if budget >= max_tokens:
        raise _bad(
            "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
            f"documentation at {_DOCS}#max-tokens-and-context-window-size"
        )
    return ThinkingConfig("enabled", budget, display)


def _check_thinking_rules(body: dict[str, Any], tool_choice: ToolChoice) -> None:
    temperature = body.get("temperature")
    if temperature is not None and temperature != 1:
        raise _bad(
            "`temperature` may only be set to 1 when thinking is enabled. Please consult our "
            f"documentation at {_DOCS}#feature-compatibility"
        )
    top_p = body.get("top_p")
    if top_p is not None and not 0.95 <= top_p <= 1:
        raise _bad(
            "`top_p` must be between 0.95 and 1 when thinking is enabled. Please consult our "
            f"documentation at {_DOCS}#feature-compatibility"
        )
    if body.get("top_k") is not None:
        raise _bad(
            "`top_k` may not be set when thinking is enabled. Please consult our documentation "
            f"at {_DOCS}#feature-compatibility"
        )
    if tool_choice in ("required", "function"):
        raise _bad("Thinking may not be enabled when tool_choice forces tool use.")


class _Conversation:
    """Walks the native messages: checks each block, builds the engine's messages and pieces."""

    def __init__(
        self,
        marks: _Breakpoints,
        thinking: bool,
        verify_signature: Callable[[str, str], bool],
    ) -> None:
        self.marks = marks
        self.thinking = thinking
        self.verify = verify_signature
        self.chat: list[dict[str, Any]] = []
        self.pieces: list[Piece] = []
        self.documents: tuple[DocumentRef, ...] = ()
        self.pending: list[str] = []  # tool_use ids the next user turn must answer

    def piece(
        self,
        role: str,
        block: dict[str, Any],
        tokens: int,
        where: str,
        first: bool,
        inner_ttl: str | None = None,
    ) -> None:
        """Add a message block as a cache piece (``inner_ttl``: a mark inside a tool result)."""
        ttl = self.marks.ttl(block, where) or inner_ttl
        self.pieces.append(Piece(_canonical([role, block]), tokens + (4 if first else 0), ttl))


def _check_messages(
    messages: list[Any],
    marks: _Breakpoints,
    thinking: bool,
    claude_rules: bool,
    verify_signature: Callable[[str, str], bool],
) -> tuple[list[dict[str, Any]], list[Piece], tuple[DocumentRef, ...]]:
    walk = _Conversation(marks, thinking, verify_signature)
    last = len(messages) - 1
    # The assistant turn of the tool loop the conversation ends in (its results come last).
    loop_turn = -1
    final = messages[last]
    if (
        last >= 1
        and isinstance(final, dict)
        and final.get("role") == "user"
        and isinstance(final.get("content"), list)
        and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in final["content"])
    ):
        loop_turn = last - 1
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(message, dict):
            raise _bad(f"{where}: Input should be a valid dictionary")
        role = message.get("role")
        if role == "system":
            raise _bad(
                'messages: Unexpected role "system". The Messages API accepts a top-level '
                '`system` parameter, not "system" as an input message role.'
            )
        if role not in ("user", "assistant"):
            raise _bad(f"{where}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        if "content" not in message:
            raise _bad(f"{where}.content: Field required")
        extra = sorted(set(message) - {"role", "content"})
        if extra:
            raise _bad(f"{where}.{extra[0]}: Extra inputs are not permitted")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        elif not isinstance(content, list):
            raise _bad(f"{where}.content: Input should be a valid string or list of blocks")
        if not content and not (role == "assistant" and i == last):
            raise _bad(
                f"{where}: all messages must have non-empty content except for the optional "
                "final assistant message"
            )
        if walk.pending and role != "user":
            raise _tool_use_unanswered(i - 1, walk.pending)
        if role == "user":
            _user_turn(walk, content, i)
        else:
            _assistant_turn(walk, content, where, i == loop_turn)
    if walk.pending:
        raise _tool_use_unanswered(last, walk.pending)
    if claude_rules and not any(isinstance(m, dict) and m.get("role") == "user" for m in messages):
        raise _bad("messages: at least one message with the user role is required")
    return walk.chat, walk.pieces, walk.documents


def _tool_use_unanswered(index: int, ids: list[str]) -> RequestError:
    return _bad(
        f"messages.{index}: `tool_use` ids were found without `tool_result` blocks immediately "
        f"after: {', '.join(ids)}. Each `tool_use` block must have a corresponding "
        "`tool_result` block in the next message."
    )


def _text_block(block: dict[str, Any], at: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise _bad(f"{at}.text: Field required")
    if not text:
        raise _bad("messages: text content blocks must be non-empty")
    if not text.strip():
        raise _bad("messages: text content blocks must contain non-whitespace text")
    return text


def _image_url(block: dict[str, Any], at: str) -> str:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "url":
        url = source.get("url") if isinstance(source, dict) else None
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise _bad(f"{at}.source.url: Input should be a valid http(s) URL")
        return url
    if kind != "base64" or not isinstance(source, dict):
        raise _bad(f"{at}.source.type: Input should be 'base64' or 'url'")
    media_type = source.get("media_type")
    if media_type not in IMAGE_TYPES:
        raise _bad(
            f"{at}.source.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' "
            "or 'image/webp'"
        )
    data = source.get("data")
    if not isinstance(data, str) or not _b64(data):
        raise _bad(f"{at}.source.base64.data: The image data is not valid base64")
    return f"data:{media_type};base64,{data}"


def _b64(data: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return b""


def _document(block: dict[str, Any], at: str) -> DocumentRef:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    title = block.get("title")
    if title is not None and not isinstance(title, str):
        raise _bad(f"{at}.title: Input should be a valid string")
    for name in ("context",):
        if block.get(name) is not None and not isinstance(block[name], str):
            raise _bad(f"{at}.{name}: Input should be a valid string")
    citations = block.get("citations")
    if citations is not None and not (
        isinstance(citations, dict) and isinstance(citations.get("enabled", False), bool)
    ):
        raise _bad(f"{at}.citations.enabled: Input should be a valid boolean")
    if not isinstance(source, dict):
        raise _bad(f"{at}.source: Field required")
    if kind == "url":
        url = source.get("url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise _bad(f"{at}.source.url: Input should be a valid http(s) URL")
        return DocumentRef("url", title, "", 0, url)
    if kind == "text":
        if source.get("media_type", "text/plain") != "text/plain":
            raise _bad(f"{at}.source.media_type: Input should be 'text/plain'")
        data = source.get("data")
        if not isinstance(data, str):
            raise _bad(f"{at}.source.data: Field required")
        return DocumentRef("text", title, data, 1)
    if kind == "base64":
        if source.get("media_type") != "application/pdf":
            raise _bad(f"{at}.source.media_type: Input should be 'application/pdf'")
        data = source.get("data")
        raw = _b64(data) if isinstance(data, str) else b""
        if not raw:
            raise _bad(f"{at}.source.base64.data: The PDF data is not valid base64")
        if not raw.lstrip().startswith(b"%PDF-"):
            raise _bad(f"{at}.source.base64.data: The PDF specified was not valid.")
        found = pdf_text(raw)
        return DocumentRef("pdf", title, found.text, max(1, found.pages))
    raise _bad(f"{at}.source.type: Input should be 'base64', 'text' or 'url'")


def _document_tokens(doc: DocumentRef) -> int:
    if doc.kind == "url":
        return PDF_PAGE_TOKENS + _tokens(len(doc.url or "") + len(doc.title or ""))
    pages = doc.pages * PDF_PAGE_TOKENS if doc.kind == "pdf" else 0
    return pages + _tokens(len(doc.text) + len(doc.title or ""))


def _tool_result(
    walk: _Conversation, block: dict[str, Any], at: str
) -> tuple[str, list[dict[str, Any]], int, str | None]:
    """A tool_result block's id, its content as chat-completions parts, its tokens, and the
    TTL of a cache breakpoint inside its content."""
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str):
        raise _bad(f"{at}.tool_use_id: Field required")
    if call_id not in walk.pending:
        raise _bad(
            f"{at}: unexpected `tool_use_id` found in `tool_result` blocks: {call_id}. Each "
            "`tool_result` block must have a corresponding `tool_use` block in the previous "
            "message."
        )
    walk.pending.remove(call_id)
    content = block.get("content", "")
    if isinstance(content, str):
        content = [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise _bad(f"{at}.content: Input should be a valid string or list of blocks")
    parts: list[dict[str, Any]] = []
    tokens = 0
    inner_ttl = None
    for k, inner in enumerate(content):
        where = f"{at}.content.{k}"
        kind = inner.get("type") if isinstance(inner, dict) else None
        if isinstance(inner, dict):
            inner_ttl = walk.marks.ttl(inner, where) or inner_ttl
        if kind == "text" and isinstance(inner, dict):
            text = _text_block(inner, where)
            parts.append({"type": "text", "text": text})
            tokens += _tokens(len(text))
        elif kind == "image" and isinstance(inner, dict):
            parts.append({"type": "image_url", "image_url": {"url": _image_url(inner, where)}})
            tokens += IMAGE_TOKENS
        elif kind == "document" and isinstance(inner, dict):
            doc = _document(inner, where)
            parts.append({"type": "text", "text": doc.text or f"[{doc.label()}]"})
            tokens += _document_tokens(doc)
        else:
            raise _bad(f"{where}.type: Input should be 'text', 'image' or 'document'")
    if block.get("is_error"):
        parts.insert(0, {"type": "text", "text": "[error]"})
    return call_id, parts, tokens, inner_ttl


def _user_turn(walk: _Conversation, content: list[Any], index: int) -> None:
    where = f"messages.{index}"
    parts: list[dict[str, Any]] = []
    texts: list[str] = []
    documents: list[DocumentRef] = []
    answered = bool(walk.pending)
    for j, block in enumerate(content):
        at = f"{where}.content.{j}"
        kind = block.get("type") if isinstance(block, dict) else None
        if not isinstance(block, dict):
            raise _bad(f"{at}: Input should be a valid dictionary")
        inner_ttl = None
        if kind == "text":
            text = _text_block(block, at)
            texts.append(text)
            parts.append({"type": "text", "text": text})
            tokens = _tokens(len(text))
        elif kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block, at)}})
            tokens = IMAGE_TOKENS
        elif kind == "document":
            doc = _document(block, at)
            documents.append(doc)
            tokens = _document_tokens(doc)
        elif kind == "tool_result":
            call_id, result, tokens, inner_ttl = _tool_result(walk, block, at)
            walk.chat.append({"role": "tool", "tool_call_id": call_id, "content": result})
        else:
            raise _bad(
                f"{at}.type: Input should be 'text', 'image', 'document' or 'tool_result' in a "
                "user message"
            )
        walk.piece("user", block, tokens, at, j == 0, inner_ttl)
    if answered and walk.pending:
        raise _tool_use_unanswered(index - 1, walk.pending)
    read = [d for d in documents if d.text]
    if read:
        context = "\n\n".join((f"# {d.title}\n" if d.title else "") + d.text for d in read)
        question = "\n".join(texts)
        merged = f"Context information is below.\n----------\n{context}\n----------\n"
        merged += f"Question: {question}" if question else ""
        parts = [p for p in parts if p["type"] != "text"] + [{"type": "text", "text": merged}]
    elif documents and not texts:
        parts.append({"type": "text", "text": " ".join(f"[{d.label()}]" for d in documents)})
    if parts:
        walk.chat.append({"role": "user", "content": parts})
    walk.documents = tuple(documents)


def _assistant_turn(walk: _Conversation, content: list[Any], where: str, loop_turn: bool) -> None:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    kinds: list[str] = []
    for j, block in enumerate(content):
        at = f"{where}.content.{j}"
        kind = block.get("type") if isinstance(block, dict) else None
        if not isinstance(block, dict):
            raise _bad(f"{at}: Input should be a valid dictionary")
        kinds.append(str(kind))
        if kind == "text":
            text = block.get("text")
            if not isinstance(text, str):
                raise _bad(f"{at}.text: Field required")
            texts.append(text)
            tokens = _tokens(len(text))
        elif kind == "tool_use":
            call_id, name, arguments = block.get("id"), block.get("name"), block.get("input")
            if not isinstance(call_id, str) or not call_id:
                raise _bad(f"{at}.id: Field required")
            if not isinstance(name, str) or not name:
                raise _bad(f"{at}.name: Field required")
            if not isinstance(arguments, dict):
                raise _bad(f"{at}.input: Input should be a valid dictionary")
            if call_id in walk.pending:
                raise _bad(f"messages: `tool_use` ids must be unique, found duplicate {call_id}")
            walk.pending.append(call_id)
            encoded = json.dumps(arguments, ensure_ascii=False)
            calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": encoded},
                }
            )
            tokens = _tokens(len(name) + len(encoded))
        elif kind == "thinking":
            thinking, signature = block.get("thinking"), block.get("signature")
            if not isinstance(thinking, str):
                raise _bad(f"{at}.thinking: Field required")
            if not isinstance(signature, str):
                raise _bad(f"{at}.signature: Field required")
            if not walk.verify(thinking, signature):
                raise _bad(f"{at}: Invalid `signature` in `thinking` block")
            tokens = _tokens(len(thinking))
        elif kind == "redacted_thinking":
            data = block.get("data")
            if not isinstance(data, str):
                raise _bad(f"{at}.data: Field required")
            tokens = _tokens(len(data))
        else:
            raise _bad(
                f"{at}.type: Input should be 'text', 'tool_use', 'thinking' or "
                "'redacted_thinking' in an assistant message"
            )
        walk.piece("assistant", block, tokens, at, j == 0)
    if walk.thinking and loop_turn and kinds[0] not in ("thinking", "redacted_thinking"):
        raise _bad(
            f"{where}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
            f"`{kinds[0]}`. When `thinking` is enabled, a final `assistant` message must start "
            "with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` "
            "blocks). We recommend you include thinking blocks from previous turns. To avoid "
            f"this requirement, disable `thinking`. Please consult our documentation at {_DOCS}"
        )
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""
    walk.chat.append(message)
