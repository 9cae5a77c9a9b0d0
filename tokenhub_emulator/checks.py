"""What TokenHub checks before answering: the key, the model and the request body.

Pure: `check_request` turns a parsed body into a `ChatRequest` or raises `RequestError`, which
carries the HTTP status and the OpenAI-shaped error fields (``param`` names the offending field).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any, Literal

from tokenhub_core.catalog import ModelInfo, resolve_model

__all__ = [
    "ROLES",
    "ChatRequest",
    "ImageRef",
    "RequestError",
    "ToolSpec",
    "check_api_key",
    "check_context_window",
    "check_request",
]

ROLES = frozenset({"system", "user", "assistant", "tool"})
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
MAX_STOP_SEQUENCES = 4
DEFAULT_MAX_TOKENS = 1024
_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+);base64,(.*)$", re.DOTALL)
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")


class RequestError(Exception):
    """A request TokenHub refuses: HTTP ``status`` and the OpenAI error object's fields."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type

    def body(self) -> dict[str, Any]:
        """The error body: ``{"error": {"message", "type", "param", "code"}}``."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


@dataclass(frozen=True)
class ToolSpec:
    """A function tool the request offers."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class ImageRef:
    """One image in the request: ``kind`` is ``"url"`` or ``"base64"``."""

    kind: Literal["url", "base64"]
    media_type: str | None


ToolChoice = Literal["auto", "none", "required", "function"]
ResponseFormat = Literal["text", "json_object", "json_schema"]


@dataclass(frozen=True)
class ChatRequest:
    """A validated chat-completions request, with the defaults applied."""

    model: str  # as sent; echoed in the response
    info: ModelInfo
    messages: list[dict[str, Any]]
    max_tokens: int
    max_tokens_given: bool  # False when the default applies
    stop: tuple[str, ...]
    stream: bool
    include_usage: bool
    tools: tuple[ToolSpec, ...]
    tool_choice: ToolChoice
    forced_tool: str | None  # the name when tool_choice names one
    parallel_tool_calls: bool
    response_format: ResponseFormat
    json_schema: dict[str, Any] | None


def check_api_key(authorization: str | None) -> str:
    """The bearer key from an ``Authorization`` header; 401 unless it starts with ``th-``."""
    if not authorization:
        raise _auth("Missing API key: send 'Authorization: Bearer th-...'.")
    scheme, _, key = authorization.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise _auth("Malformed Authorization header: expected 'Bearer th-...'.")
    if not key.startswith("th-") or len(key) < 4:
        raise _auth("Invalid API key: TokenHub keys start with 'th-'.")
    return key


def _auth(message: str) -> RequestError:
    return RequestError(401, message, code="invalid_api_key", type="authentication_error")


def _bad(message: str, param: str | None, code: str = "invalid_value") -> RequestError:
    return RequestError(400, message, param=param, code=code)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_request(body: Any, *, claude_rules: bool = True) -> ChatRequest:
    """Validate a parsed chat-completions body the way TokenHub does.

    With ``claude_rules`` it also refuses the conversations Claude refuses (see
    `check_conversation`).
    """
    if not isinstance(body, dict):
        raise _bad("The request body must be a JSON object.", None, "invalid_json")
    model = body.get("model")
    if model is None:
        raise _bad("Missing required parameter: 'model'.", "model", "missing_required_parameter")
    if not isinstance(model, str) or not model:
        raise _bad("'model' must be a non-empty string.", "model")
    messages = body.get("messages")
    if messages is None:
        raise _bad(
            "Missing required parameter: 'messages'.", "messages", "missing_required_parameter"
        )
    if not isinstance(messages, list) or not messages:
        raise _bad("'messages' must be a non-empty array.", "messages")
    info = resolve_model(model)
    if info is None:
        raise RequestError(
            404,
            f"The model '{model}' does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
            type="not_found_error",
        )
    _check_messages(messages)
    if claude_rules:
        check_conversation(messages)
    max_tokens, given = _check_sampling(body, info)
    stop = _check_stop(body.get("stop"))
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _bad("'stream' must be a boolean.", "stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise _bad("'stream_options' must be an object.", "stream_options")
    include_usage = bool(options and options.get("include_usage"))
    tools = _check_tools(body.get("tools"))
    tool_choice, forced = _check_tool_choice(body.get("tool_choice"), tools)
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise _bad("'parallel_tool_calls' must be a boolean.", "parallel_tool_calls")
    fmt, schema = _check_response_format(body.get("response_format"))
    if body.get("n") not in (None, 1):
        raise _bad("Only n=1 is supported.", "n")
    return ChatRequest(
        model=model,
        info=info,
        messages=messages,
        max_tokens=max_tokens,
        max_tokens_given=given,
        stop=stop,
        stream=bool(stream),
        include_usage=include_usage,
        tools=tools,
        tool_choice=tool_choice,
        forced_tool=forced,
        parallel_tool_calls=parallel is not False,
        response_format=fmt,
        json_schema=schema,
    )


def _check_sampling(body: dict[str, Any], info: ModelInfo) -> tuple[int, bool]:
    temperature = body.get("temperature")
    if temperature is not None and (not _is_number(temperature) or not 0 <= temperature <= 1):
        raise _bad(f"temperature: {temperature!r} is not a number between 0 and 1.", "temperature")
    top_p = body.get("top_p")
    if top_p is not None and (not _is_number(top_p) or not 0 <= top_p <= 1):
        raise _bad(f"top_p: {top_p!r} is not a number between 0 and 1.", "top_p")
    if temperature is not None and top_p is not None:
        raise _bad("temperature and top_p cannot both be specified; use one.", "top_p")
    limit = info.max_output_tokens
    max_tokens, given = min(limit, DEFAULT_MAX_TOKENS), False
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if not _is_int(value) or value < 1:
            raise _bad(f"{name}: {value!r} is not an integer >= 1.", name)
        if value > limit:
            raise _bad(
                f"{name}: {value} > {limit}, which is the maximum allowed number of output "
                f"tokens for {info.id}",
                name,
            )
        max_tokens, given = value, True
    return max_tokens, given


def check_context_window(request: ChatRequest, prompt_tokens: int) -> None:
    """Claude's context-window rule: the prompt, and the prompt plus an explicit ``max_tokens``."""
    window = request.info.context_window
    if prompt_tokens > window:
        raise _bad(
            f"prompt is too long: {prompt_tokens} tokens > {window} maximum",
            "messages",
            "context_length_exceeded",
        )
    if request.max_tokens_given and prompt_tokens + request.max_tokens > window:
        raise _bad(
            f"input length and `max_tokens` exceed context limit: {prompt_tokens} + "
            f"{request.max_tokens} > {window}, decrease input length or `max_tokens` and try again",
            "max_tokens",
            "context_length_exceeded",
        )


def check_conversation(messages: list[dict[str, Any]]) -> None:
    """Claude's conversation rules, on messages already checked for shape.

    A user turn is required; user messages need non-whitespace text or an image; an assistant
    message without tool calls needs content unless it is the last one; every tool call needs its
    result right after the assistant message that made it.
    """
    if not any(m["role"] == "user" for m in messages):
        raise _bad(
            "messages: at least one message with the user role is required; this conversation "
            "has none",
            "messages",
        )
    last = len(messages) - 1
    pending: list[str] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        role, content = message["role"], message.get("content")
        if pending and role != "tool":
            raise _bad(
                f"{where}: tool call ids were found without a tool result right after them: "
                f"{', '.join(pending)}. Each tool call needs a tool message with its "
                "tool_call_id immediately after the assistant message.",
                where,
            )
        if role == "tool":
            pending = [p for p in pending if p != message.get("tool_call_id")]
        elif role == "assistant":
            pending = [c["id"] for c in message.get("tool_calls") or ()]
            if not pending and i != last and not _has_text(content):
                raise _bad(
                    f"{where}.content: all messages must have non-empty content except for the "
                    "optional final assistant message",
                    f"{where}.content",
                )
        elif role == "user" and not _has_text(content) and not _has_image(content):
            empty = all(t == "" for t in _texts(content))
            detail = "must be non-empty" if empty else "must contain non-whitespace text"
            raise _bad(f"{where}.content: text content blocks {detail}", f"{where}.content")
    if pending:
        raise _bad(
            f"messages: tool call ids were found without a tool result after them: "
            f"{', '.join(pending)}",
            "messages",
        )


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [p["text"] for p in content if isinstance(p, dict) and p.get("type") == "text"]
    return []


def _has_text(content: Any) -> bool:
    return any(t.strip() for t in _texts(content))


def _has_image(content: Any) -> bool:
    return isinstance(content, list) and any(
        isinstance(p, dict) and p.get("type") == "image_url" for p in content
    )


def _check_stop(stop: Any) -> tuple[str, ...]:
    if stop is None:
        return ()
    if isinstance(stop, str):
        return (stop,) if stop else ()
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise _bad("'stop' must be a string or an array of strings.", "stop")
    if len(stop) > MAX_STOP_SEQUENCES:
        raise _bad(f"'stop' allows at most {MAX_STOP_SEQUENCES} sequences.", "stop")
    return tuple(s for s in stop if s)


def _check_messages(messages: list[Any]) -> None:
    pending_calls: set[str] = set()
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise _bad(f"{where} must be an object.", where)
        role = message.get("role")
        if role not in ROLES:
            raise _bad(
                f"{where}.role: {role!r} is not one of {', '.join(sorted(ROLES))}.",
                f"{where}.role",
            )
        content = message.get("content")
        if role == "assistant":
            calls = _check_assistant_tool_calls(message.get("tool_calls"), where)
            if content is None and not calls:
                raise _bad(f"{where}: an assistant message needs content or tool_calls.", where)
            pending_calls = set(calls)
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise _bad(
                    f"{where}.tool_call_id is required for a tool message.",
                    f"{where}.tool_call_id",
                    "missing_required_parameter",
                )
            if call_id not in pending_calls:
                raise _bad(
                    f"{where}.tool_call_id {call_id!r} answers no tool call of the preceding "
                    "assistant message.",
                    f"{where}.tool_call_id",
                )
        else:
            pending_calls = set()
        if content is None and role in ("system", "user", "tool"):
            raise _bad(f"{where}.content is required.", f"{where}.content")
        _check_content(content, role, where)


def _check_assistant_tool_calls(calls: Any, where: str) -> list[str]:
    if calls is None:
        return []
    if not isinstance(calls, list):
        raise _bad(f"{where}.tool_calls must be an array.", f"{where}.tool_calls")
    ids: list[str] = []
    for j, call in enumerate(calls):
        at = f"{where}.tool_calls[{j}]"
        function = call.get("function") if isinstance(call, dict) else None
        if (
            not isinstance(call, dict)
            or not isinstance(call.get("id"), str)
            or not isinstance(function, dict)
            or not isinstance(function.get("name"), str)
            or not isinstance(function.get("arguments"), str)
        ):
            raise _bad(f"{at} must have an id and a function with a name and arguments.", at)
        ids.append(call["id"])
    return ids


def _check_content(content: Any, role: str, where: str) -> None:
    if content is None or isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _bad(f"{where}.content must be a string or an array of parts.", f"{where}.content")
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise _bad(f"{at}.text must be a string.", f"{at}.text")
        elif kind == "image_url" and role in ("user", "tool"):
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else None
            if not isinstance(url, str):
                raise _bad(f"{at}.image_url.url must be a string.", f"{at}.image_url.url")
            image_ref(url, f"{at}.image_url.url")
        else:
            raise _bad(f"{at}.type: {kind!r} is not supported in a {role} message.", f"{at}.type")


def image_ref(url: str, param: str = "image_url.url") -> ImageRef:
    """Describe an image URL; 400 for a malformed data URL or an unsupported scheme/type."""
    if url.startswith(("https://", "http://")):
        return ImageRef("url", None)
    match = _DATA_URL.match(url)
    if match is None:
        raise _bad(
            "Invalid image URL: expected an http(s) URL or data:<media type>;base64,<data>.",
            param,
            "invalid_image_url",
        )
    media_type, data = match.group(1).lower(), match.group(2)
    if media_type not in IMAGE_TYPES:
        raise _bad(
            f"Unsupported image media type {media_type!r}; use one of {sorted(IMAGE_TYPES)}.",
            param,
            "invalid_image_format",
        )
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if not decoded:
        raise _bad("Invalid image data: not valid base64.", param, "invalid_image_url")
    return ImageRef("base64", media_type)


def _check_tools(tools: Any) -> tuple[ToolSpec, ...]:
    if tools is None:
        return ()
    if not isinstance(tools, list):
        raise _bad("'tools' must be an array.", "tools")
    specs: list[ToolSpec] = []
    for i, tool in enumerate(tools):
        at = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise _bad(f"{at} must be a function tool.", f"{at}.type")
        function = tool.get("function")
        if not isinstance(function, dict):
            raise _bad(f"{at}.function is required.", f"{at}.function")
        name = function.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise _bad(
                f"{at}.function.name must match ^[a-zA-Z0-9_-]{{1,128}}$.", f"{at}.function.name"
            )
        if any(spec.name == name for spec in specs):
            raise _bad(f"Duplicate tool name {name!r}.", f"{at}.function.name")
        parameters = function.get("parameters")
        if parameters is None:
            parameters = {"type": "object", "properties": {}}
        if not isinstance(parameters, dict):
            raise _bad(f"{at}.function.parameters must be an object.", f"{at}.function.parameters")
        description = function.get("description")
        specs.append(
            ToolSpec(name, description if isinstance(description, str) else "", parameters)
        )
    return tuple(specs)


def _check_tool_choice(choice: Any, tools: tuple[ToolSpec, ...]) -> tuple[ToolChoice, str | None]:
    if choice is None or choice == "auto":
        return "auto", None
    if choice == "none":
        return "none", None
    if choice == "required":
        if not tools:
            raise _bad("tool_choice 'required' needs at least one tool.", "tool_choice")
        return "required", None
    if isinstance(choice, dict) and choice.get("type") == "function":
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str):
            raise _bad("tool_choice.function.name is required.", "tool_choice")
        if all(tool.name != name for tool in tools):
            raise _bad(f"tool_choice names {name!r}, which is not in 'tools'.", "tool_choice")
        return "function", name
    raise _bad(
        "tool_choice must be 'auto', 'none', 'required' or {type: function, function: {name}}.",
        "tool_choice",
    )


def _check_response_format(fmt: Any) -> tuple[ResponseFormat, dict[str, Any] | None]:
    if fmt is None:
        return "text", None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return "text", None
    if kind == "json_object":
        return "json_object", None
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict):
            raise _bad("response_format.json_schema is required.", "response_format.json_schema")
        schema = spec.get("schema", {})
        if not isinstance(schema, dict):
            raise _bad(
                "response_format.json_schema.schema must be an object.",
                "response_format.json_schema.schema",
            )
        return "json_schema", schema
    raise _bad(
        f"response_format.type: {kind!r} is not one of text, json_object, json_schema.",
        "response_format.type",
    )
