"""Request parameters: Claude's rules, checked before anything is sent, and the request body.

Pure functions. Every violation raises `InvalidParameterError` (a ``ValueError``) naming the
parameter, the value and what is allowed; a field nobody knows raises `UnknownParameterError`
(a ``TypeError``, as for any unexpected keyword argument).

Claude's message rules, applied by `build_body` whichever adapter built the messages, so that one
conversation always gives one request:

- system messages, wherever they are, become one leading system message (texts joined with
  ``"\n"``; kept as parts when a part carries ``cache_control``);
- blank text parts are dropped, and an assistant turn left with neither text nor tool calls is
  dropped (an assistant turn with tool calls and no text is sent with ``content: null``);
- a user message with no content (empty or only blank text) is refused, naming it;
- text with a lone surrogate (``"\ud800"``, which no UTF-8 request can carry) is refused, naming
  where it is, rather than silently replaced: the caller decides what the text should be;
- ``cache_control`` on a text part is passed through (OpenAI-compatible gateways for Claude honor
  it as a prompt-cache breakpoint).

Claude's own parts ride in the same OpenAI-shaped messages, in Anthropic's shapes: ``document``
parts (PDF or plain text; base64, URL or text source) in user and tool content, and ``thinking`` /
``redacted_thinking`` parts at the head of an assistant turn. On ``protocol="messages"`` they are
sent as they are (`tokenhub_core.native`); on ``chat/completions``, which has no place for them, a
document is refused (naming ``protocol="messages"``) and thinking parts are left out.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import httpx

from tokenhub_core.errors import InvalidParameterError, UnknownParameterError

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "MAX_STOP_SEQUENCES",
    "PARAMETER_ALIASES",
    "PROTOCOLS",
    "REQUEST_PARAMS",
    "ROLES",
    "SUPPORTED_IMAGE_TYPES",
    "apply_aliases",
    "build_body",
    "cache_write_ttl",
    "check_image_url",
    "check_known",
    "check_max_retries",
    "check_no_secrets",
    "check_sampling_params",
    "estimate_tokens",
    "normalize_messages",
    "normalize_protocol",
    "normalize_stop",
    "normalize_thinking",
    "normalize_timeout",
    "normalize_tool_call_id",
]

DEFAULT_MAX_TOKENS = 1024
MAX_STOP_SEQUENCES = 4
ROLES = frozenset({"system", "user", "assistant", "tool"})
SUPPORTED_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
TOOL_CHOICE_STRINGS = ("auto", "none", "required")

# Keyword arguments the client accepts, under their OpenAI names. Anything else goes in extra_body.
REQUEST_PARAMS = frozenset(
    {
        "max_tokens",
        "temperature",
        "top_p",
        "stop",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "user",
        "n",
        "seed",
        "metadata",
        "stream_options",
        "thinking",
        "top_k",
        "cache_control",
    }
)

CHAT_COMPLETIONS = "chat/completions"
MESSAGES = "messages"
PROTOCOLS = (CHAT_COMPLETIONS, MESSAGES)
_PROTOCOL_SPELLINGS = {"chat/completions": CHAT_COMPLETIONS, "chat_completions": CHAT_COMPLETIONS,
                       "messages": MESSAGES}  # fmt: skip
DOCUMENT_MEDIA_TYPES = ("application/pdf", "text/plain")
MIN_THINKING_BUDGET = 1024
_CACHE_TTLS = ("5m", "1h")
_THINKING_PARTS = ("thinking", "redacted_thinking")

# The names a ChatOpenAI / OpenAILike user brings, accepted by both adapters for ours.
PARAMETER_ALIASES: Mapping[str, str] = {
    "openai_api_key": "api_key",
    "openai_api_base": "base_url",
    "api_base": "base_url",
    "request_timeout": "timeout",
    "max_completion_tokens": "max_tokens",
    "model_name": "model",
}

# A field whose name says it holds a credential is never sent in a request body.
_SECRET_NAME = re.compile(
    r"api[_-]?key|secret|password|passwd|authori[sz]ation|bearer|credential|"
    r"access[_-]?token|auth[_-]?token|private[_-]?key",
    re.IGNORECASE,
)

_TOOL_CALL_ID_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")
_DATA_URL = re.compile(r"data:(?P<mime>[^;,]*)(?P<params>(?:;[^;,]*)*),(?P<data>.*)", re.DOTALL)
_IMAGE_TOKENS = 1600  # Claude's cost of a full-size image (~1.15 megapixels / 750 px per token)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def normalize_stop(stop: str | Sequence[str] | None) -> list[str] | None:
    """A single string becomes a one-item list; at most 4 non-empty strings are allowed."""
    if stop is None:
        return None
    items = [stop] if isinstance(stop, str) else stop
    if not isinstance(items, (list, tuple)) or not all(isinstance(s, str) for s in items):
        raise InvalidParameterError("stop", stop, "a string or a list of strings")
    if len(items) > MAX_STOP_SEQUENCES:
        raise InvalidParameterError(
            "stop", stop, f"at most {MAX_STOP_SEQUENCES} stop sequences (got {len(items)})"
        )
    if any(not s for s in items):
        raise InvalidParameterError("stop", stop, "stop sequences must be non-empty strings")
    return list(items)


def apply_aliases(values: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    """``values`` with ChatOpenAI / OpenAILike names (`PARAMETER_ALIASES`) renamed to ours.

    Raises:
        InvalidParameterError: a name and its alias both given, with different values.
    """
    out = dict(values)
    for alias, name in PARAMETER_ALIASES.items():
        if alias not in out:
            continue
        value = out.pop(alias)
        if name in out and out[name] is not value and out[name] != value:
            shown = "***" if name == "api_key" else out[name]
            raise InvalidParameterError(
                alias, "***" if name == "api_key" else value, f"{where} also got {name}={shown!r}"
            )
        out[name] = value
    return out


def check_known(names: Iterable[str], known: Iterable[str], *, where: str) -> None:
    """Refuse a name outside ``known``, suggesting the closest one (a typo is loud).

    Raises:
        UnknownParameterError: naming the first unknown field.
    """
    known_set = known if isinstance(known, (set, frozenset)) else frozenset(known)
    for name in names:
        if name in known_set:
            continue
        close = difflib.get_close_matches(name, sorted(known_set), n=1, cutoff=0.75)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UnknownParameterError(
            name, where, f"{hint}pass provider-specific request fields in extra_body"
        )


def check_no_secrets(fields: Mapping[str, Any], *, param: str) -> None:
    """Refuse a request-body field whose name says it holds a credential.

    Raises:
        InvalidParameterError: naming the field; its value is never shown.
    """
    for name in fields:
        if isinstance(name, str) and _SECRET_NAME.search(name):
            raise InvalidParameterError(
                f"{param}[{name!r}]",
                "***",
                "credentials are never sent in the request body; pass the key as api_key",
            )


def _seconds(value: Any) -> bool:
    return value is None or (_is_number(value) and value > 0 and math.isfinite(value))


def normalize_timeout(timeout: Any, *, param: str = "timeout") -> httpx.Timeout:
    """A timeout as ``httpx.Timeout``: seconds (None waits forever), an ``httpx.Timeout``, a
    ``(connect, read)`` pair or httpx's ``(connect, read, write, pool)`` tuple.

    Raises:
        InvalidParameterError: anything else, or a number that is not positive.
    """
    if isinstance(timeout, httpx.Timeout):
        return timeout
    if _seconds(timeout):
        return httpx.Timeout(timeout)
    if (
        isinstance(timeout, (tuple, list))
        and len(timeout) in (2, 4)
        and all(_seconds(v) for v in timeout)
    ):
        if len(timeout) == 2:
            connect, read = timeout
            return httpx.Timeout(read, connect=connect)
        return httpx.Timeout(tuple(timeout))
    raise InvalidParameterError(
        param,
        timeout,
        "seconds > 0 (None waits forever), an httpx.Timeout, a (connect, read) pair "
        "or a (connect, read, write, pool) tuple",
    )


def check_max_retries(max_retries: Any) -> int:
    """``max_retries`` must be a non-negative integer."""
    if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
        raise InvalidParameterError("max_retries", max_retries, "an integer >= 0")
    return max_retries


def check_sampling_params(
    *,
    temperature: Any = None,
    top_p: Any = None,
    stop: Any = None,
    max_tokens: Any = None,
) -> None:
    """Claude's rules for the sampling parameters; None means unset."""
    if temperature is not None and (not _is_number(temperature) or not 0 <= temperature <= 1):
        raise InvalidParameterError("temperature", temperature, "a number from 0.0 to 1.0")
    if top_p is not None and (not _is_number(top_p) or not 0 <= top_p <= 1):
        raise InvalidParameterError("top_p", top_p, "a number from 0.0 to 1.0")
    if temperature is not None and top_p is not None:
        raise InvalidParameterError(
            "top_p", top_p, f"set temperature or top_p, not both (temperature={temperature!r})"
        )
    if max_tokens is not None and (
        not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
    ):
        raise InvalidParameterError("max_tokens", max_tokens, "a positive integer")
    normalize_stop(stop)


def check_image_url(url: Any) -> None:
    """Claude accepts an http(s) URL or a base64 data URL of a supported image type."""
    if not isinstance(url, str):
        raise InvalidParameterError("image_url", url, "a URL string")
    if url.startswith(("https://", "http://")):
        return
    match = _DATA_URL.fullmatch(url)
    if match is None:
        shown = url[:40] + "..." if len(url) > 40 else url
        raise InvalidParameterError(
            "image_url", shown, "an https:// URL or a data:<media type>;base64,<data> URL"
        )
    mime = match["mime"].strip().lower()
    if mime not in SUPPORTED_IMAGE_TYPES:
        raise InvalidParameterError(
            "image_url", f"data:{mime}", f"an image of type {', '.join(SUPPORTED_IMAGE_TYPES)}"
        )
    if ";base64" not in match["params"].lower() or not match["data"]:
        raise InvalidParameterError("image_url", f"data:{mime}", "base64-encoded image data")
    try:
        base64.b64decode(match["data"].encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise InvalidParameterError(
            "image_url", f"data:{mime};base64,...", "valid base64 image data"
        ) from None


def normalize_protocol(protocol: Any) -> str:
    """``"chat/completions"`` (also spelled ``"chat_completions"``) or ``"messages"``.

    Raises:
        InvalidParameterError: anything else.
    """
    if isinstance(protocol, str) and protocol in _PROTOCOL_SPELLINGS:
        return _PROTOCOL_SPELLINGS[protocol]
    raise InvalidParameterError(
        "protocol",
        protocol,
        '"chat/completions" (OpenAI-compatible, the default) or "messages" (Claude\'s own)',
    )


def check_cache_control(value: Any, where: str) -> None:
    """A prompt-cache breakpoint: ``{"type": "ephemeral"}``, optionally with ``"ttl"``."""
    if (
        not isinstance(value, Mapping)
        or value.get("type") != "ephemeral"
        or value.get("ttl", "5m") not in _CACHE_TTLS
        or set(value) - {"type", "ttl"}
    ):
        raise InvalidParameterError(
            where, value, '{"type": "ephemeral"}, optionally with "ttl": "5m" or "1h"'
        )


def normalize_thinking(thinking: Any) -> dict[str, Any] | None:
    """The ``thinking`` setting as Claude's dict, or None when thinking is off.

    Accepts None, an int budget (``{"type": "enabled", "budget_tokens": N}``), ``"adaptive"``,
    ``"disabled"``, or the dict itself.

    Raises:
        InvalidParameterError: any other value, or a budget below 1024 tokens.
    """
    allowed = (
        'None, a token budget >= 1024, "adaptive", or {"type": "enabled", "budget_tokens": N} /'
        ' {"type": "adaptive"} / {"type": "disabled"}'
    )
    if thinking is None:
        return None
    if isinstance(thinking, int) and not isinstance(thinking, bool):
        thinking = {"type": "enabled", "budget_tokens": thinking}
    elif isinstance(thinking, str) and thinking in ("adaptive", "disabled", "enabled"):
        if thinking == "enabled":
            raise InvalidParameterError(
                "thinking", thinking, "a budget: thinking=N or {'type': 'enabled', ...}"
            )
        thinking = {"type": thinking}
    if not isinstance(thinking, Mapping) or thinking.get("type") not in (
        "enabled",
        "adaptive",
        "disabled",
    ):
        raise InvalidParameterError("thinking", thinking, allowed)
    out = dict(thinking)
    if out["type"] == "enabled":
        budget = out.get("budget_tokens")
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < MIN_THINKING_BUDGET:
            raise InvalidParameterError(
                "thinking.budget_tokens", budget, f"an integer >= {MIN_THINKING_BUDGET}"
            )
    if out.get("display") not in (None, "summarized", "omitted"):
        raise InvalidParameterError("thinking.display", out["display"], '"summarized" or "omitted"')
    return out


def _check_thinking_rules(body: Mapping[str, Any], thinking: Mapping[str, Any]) -> None:
    """Claude's rules for a request that thinks, checked before sending."""
    from tokenhub_core.catalog import resolve_model

    mode = thinking["type"]
    if mode == "disabled":
        return
    info = resolve_model(body["model"])
    if info is not None and mode not in info.thinking_modes:
        takes = (
            " or ".join(f'"{m}"' for m in sorted(info.thinking_modes))
            if info.thinking_modes
            else "no extended thinking (leave thinking unset)"
        )
        raise InvalidParameterError(
            "thinking", dict(thinking), f"{info.short_id} takes thinking type {takes}"
        )
    budget = thinking.get("budget_tokens")
    if budget is not None and budget >= body["max_tokens"]:
        raise InvalidParameterError(
            "thinking.budget_tokens",
            budget,
            f"less than max_tokens ({body['max_tokens']}): thinking counts toward max_tokens",
        )
    temperature = body.get("temperature")
    if temperature is not None and temperature != 1:
        raise InvalidParameterError(
            "temperature", temperature, "unset (or 1) when thinking is on: Claude samples itself"
        )
    top_p = body.get("top_p")
    if top_p is not None and not 0.95 <= top_p <= 1:
        raise InvalidParameterError("top_p", top_p, "from 0.95 to 1 when thinking is on")
    if body.get("top_k") is not None:
        raise InvalidParameterError("top_k", body["top_k"], "unset when thinking is on")
    tool_choice = body.get("tool_choice")
    if tool_choice is not None and tool_choice not in ("auto", "none"):
        raise InvalidParameterError(
            "tool_choice",
            tool_choice,
            '"auto" or "none" when thinking is on (Claude cannot think and be forced to a tool)',
        )


def _check_document(part: Mapping[str, Any], where: str) -> None:
    source = part.get("source")
    kind = source.get("type") if isinstance(source, Mapping) else None
    shape = (
        '{"type": "document", "source": {"type": "base64", "media_type": "application/pdf", '
        '"data": ...} | {"type": "url", "url": "https://..."} | {"type": "text", '
        '"media_type": "text/plain", "data": ...}}'
    )
    if not isinstance(source, Mapping) or kind not in ("base64", "url", "text"):
        raise InvalidParameterError(f"{where}.source", source, shape)
    if kind == "url":
        url = source.get("url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise InvalidParameterError(f"{where}.source.url", url, "an http(s) URL of a PDF")
        return
    media_type = source.get("media_type")
    data = source.get("data")
    if kind == "text":
        if media_type not in (None, "text/plain") or not isinstance(data, str):
            raise InvalidParameterError(f"{where}.source", kind, 'text/plain "data" as a string')
        return
    if media_type != "application/pdf":
        raise InvalidParameterError(
            f"{where}.source.media_type",
            media_type,
            "application/pdf (send plain text with a text source)",
        )
    if not isinstance(data, str) or not data:
        raise InvalidParameterError(f"{where}.source.data", "(empty)", "base64-encoded PDF data")
    try:
        head = base64.b64decode(data[:64].encode("ascii") + b"==", validate=False)
        base64.b64decode(data.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise InvalidParameterError(
            f"{where}.source.data", data[:20] + "...", "valid base64 PDF data"
        ) from None
    if not head.startswith(b"%PDF"):
        raise InvalidParameterError(
            f"{where}.source.data", data[:20] + "...", "a PDF file (it starts with %PDF)"
        )


def _check_parts(content: Any, where: str, *, protocol: str, role: str) -> Any:
    """Check Claude's own parts and cache breakpoints; drop thinking on chat/completions."""
    if not isinstance(content, list):
        return content
    kept = []
    for j, part in enumerate(content):
        if not isinstance(part, Mapping):
            kept.append(part)
            continue
        at = f"{where}.content[{j}]"
        if "cache_control" in part:
            check_cache_control(part["cache_control"], f"{at}.cache_control")
        kind = part.get("type")
        if kind == "document":
            if protocol != MESSAGES:
                raise InvalidParameterError(
                    at,
                    "document",
                    'a text or image part: documents (PDFs) need protocol="messages"',
                )
            if role not in ("user", "tool"):
                raise InvalidParameterError(at, "document", "documents go in user messages")
            _check_document(part, at)
        elif kind in _THINKING_PARTS:
            if role != "assistant":
                raise InvalidParameterError(at, kind, "thinking parts go in assistant messages")
            if protocol != MESSAGES:
                continue  # chat/completions has no place for them
            needed = "data" if kind == "redacted_thinking" else "signature"
            if not isinstance(part.get(needed), str) or not part[needed]:
                raise InvalidParameterError(
                    f"{at}.{needed}",
                    part.get(needed),
                    "the value Claude returned with the block (thinking is sent back verbatim)",
                )
        kept.append(part)
    return kept


def normalize_tool_call_id(tool_call_id: str) -> str:
    """Make a tool-call id safe for Claude (``[a-zA-Z0-9_-]``), stably and without collisions."""
    if tool_call_id and not _TOOL_CALL_ID_UNSAFE.search(tool_call_id):
        return tool_call_id
    digest = hashlib.sha256(tool_call_id.encode()).hexdigest()[:8]
    cleaned = _TOOL_CALL_ID_UNSAFE.sub("_", tool_call_id)
    return f"{cleaned}_{digest}" if cleaned else f"call_{digest}"


def _tool_names(tools: Any) -> list[str]:
    if tools is None:
        return []
    if not isinstance(tools, (list, tuple)):
        raise InvalidParameterError("tools", tools, "a list of tool definitions")
    names = []
    for tool in tools:
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise InvalidParameterError(
                "tools", tool, '{"type": "function", "function": {"name": ..., "parameters": ...}}'
            )
        names.append(function["name"])
    return names


def _check_tool_choice(tool_choice: Any, tools: Any) -> None:
    names = _tool_names(tools)
    if tool_choice is None:
        return
    if isinstance(tool_choice, str):
        if tool_choice not in TOOL_CHOICE_STRINGS:
            raise InvalidParameterError(
                "tool_choice",
                tool_choice,
                'one of "auto", "none", "required" or '
                '{"type": "function", "function": {"name": ...}}',
            )
        if tool_choice == "required" and not names:
            raise InvalidParameterError("tool_choice", tool_choice, "requires at least one tool")
        return
    function = tool_choice.get("function") if isinstance(tool_choice, Mapping) else None
    name = function.get("name") if isinstance(function, Mapping) else None
    if not isinstance(name, str) or tool_choice.get("type", "function") != "function":
        raise InvalidParameterError(
            "tool_choice", tool_choice, '{"type": "function", "function": {"name": ...}}'
        )
    if name not in names:
        raise InvalidParameterError("tool_choice", tool_choice, f"a tool among {names}")


def _check_content_images(content: Any, index: int) -> None:
    if not isinstance(content, list):
        return
    for part in content:
        if isinstance(part, Mapping) and part.get("type") == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else image
            try:
                check_image_url(url)
            except InvalidParameterError as exc:
                raise InvalidParameterError(
                    f"messages[{index}].content.image_url", exc.value, exc.allowed
                ) from None


def _is_blank_text_part(part: Any) -> bool:
    return (
        isinstance(part, Mapping)
        and part.get("type") == "text"
        and (not isinstance(part.get("text"), str) or not part["text"].strip())
    )


def _without_blank_parts(content: Any) -> Any:
    if not isinstance(content, list):
        return content
    return [part for part in content if not _is_blank_text_part(part)]


def _is_empty(content: Any) -> bool:
    if content is None:
        return True
    if isinstance(content, str):
        return not content.strip()
    return isinstance(content, list) and not content


def _system_parts(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content.strip() else []
    if content is None:
        return []
    if not isinstance(content, list):
        raise InvalidParameterError(f"{where}.content", content, "a string or a list of text parts")
    parts = []
    for j, part in enumerate(content):
        if not isinstance(part, Mapping) or part.get("type") != "text":
            kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
            raise InvalidParameterError(
                f"{where}.content[{j}].type", kind, "system messages take text parts only"
            )
        if not _is_blank_text_part(part):
            parts.append(dict(part))
    return parts


def _check_message(message: Any, where: str) -> str:
    if not isinstance(message, Mapping):
        raise InvalidParameterError(where, message, "a {role, content} mapping")
    role = message.get("role")
    if role not in ROLES:
        raise InvalidParameterError(f"{where}.role", role, f"one of {', '.join(sorted(ROLES))}")
    if role == "tool" and not message.get("tool_call_id"):
        raise InvalidParameterError(
            f"{where}.tool_call_id",
            message.get("tool_call_id"),
            "the id of the tool call this result answers",
        )
    content = message.get("content")
    if content is not None and not isinstance(content, (str, list)):
        raise InvalidParameterError(f"{where}.content", content, "a string or a list of parts")
    return str(role)


def normalize_messages(messages: Any, *, protocol: str = CHAT_COMPLETIONS) -> list[dict[str, Any]]:
    """The messages Claude will accept, by the rules in this module's docstring.

    Returns new dicts; the caller's are not changed. Messages are named by their position in
    the list given.

    Raises:
        InvalidParameterError: a message Claude would reject, naming it.
    """
    if not isinstance(messages, (list, tuple)) or not messages:
        raise InvalidParameterError("messages", messages, "a non-empty list of messages")
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        role = _check_message(message, where)
        content = message.get("content")
        if role == "system":
            parts = _system_parts(content, where)
            if message.get("cache_control") is not None and parts:
                check_cache_control(message["cache_control"], f"{where}.cache_control")
                parts[-1]["cache_control"] = dict(message["cache_control"])
            for j, part in enumerate(parts):
                if "cache_control" in part:
                    check_cache_control(
                        part["cache_control"], f"{where}.content[{j}].cache_control"
                    )
            system += parts
            continue
        _check_content_images(content, index)
        if "cache_control" in message:
            check_cache_control(message["cache_control"], f"{where}.cache_control")
        if role == "assistant" and message.get("thinking_blocks"):
            # A reply message dumped back into the history: its thinking leads the turn.
            message = {k: v for k, v in message.items() if k != "thinking_blocks"}
            text = [{"type": "text", "text": content}] if isinstance(content, str) else content
            content = [*message_thinking(messages[index]), *(text or [])]
        content = _check_parts(content, where, protocol=protocol, role=role)
        content = _without_blank_parts(content)
        if role == "user" and _is_empty(content):
            raise InvalidParameterError(
                f"{where}.content",
                message.get("content"),
                "non-empty text, an image or a document (Claude rejects an empty user message)",
            )
        if role == "assistant" and _is_empty(content):
            if not message.get("tool_calls"):
                continue  # nothing said and nothing called: Claude rejects the empty turn
            content = None
        if content is message.get("content"):
            out.append(dict(message))
        else:
            out.append({**message, "content": content})
    if not out:
        raise InvalidParameterError(
            "messages", "(system messages only)", "at least one user message besides the system"
        )
    if system:
        cached = any("cache_control" in part for part in system)
        joined: Any = system if cached else "\n".join(part["text"] for part in system)
        out.insert(0, {"role": "system", "content": joined})
    return out


def message_thinking(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``thinking_blocks`` of a reply message given back in a history, as content parts."""
    blocks = message.get("thinking_blocks")
    if not isinstance(blocks, list):
        raise InvalidParameterError(
            "thinking_blocks", blocks, "the list of thinking blocks a reply carried"
        )
    return [dict(block) for block in blocks]


def _surrogate_at(text: str) -> int | None:
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def _check_text(value: Any, path: str = "body") -> None:
    """Refuse a lone surrogate anywhere in the body, naming where it is."""
    found = _surrogate_in(value)
    if found is None:
        return
    steps, text, position = found
    name = (path + "".join(reversed(steps))).removeprefix("body.")
    raise InvalidParameterError(
        name,
        text[max(0, position - 20) : position + 20],
        f"valid Unicode text: a lone surrogate {text[position]!r} at character "
        f"{position} cannot be sent (fix the text, or clean it with "
        "text.encode('utf-8', 'replace').decode())",
    )


def _surrogate_in(value: Any) -> tuple[list[str], str, int] | None:
    """The first lone surrogate in ``value``: the path to it (innermost step first), the text
    and the position; the path is built only when one is found (this runs on every request)."""
    if isinstance(value, str):
        position = _surrogate_at(value)
        return None if position is None else ([], value, position)
    if isinstance(value, Mapping):
        for key, item in value.items():
            if (found := _surrogate_in(item)) is not None:
                found[0].append(f".{key}")
                return found
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            if (found := _surrogate_in(item)) is not None:
                found[0].append(f"[{i}]")
                return found
    return None


def _mark_last_block(messages: list[dict[str, Any]], cache_control: Mapping[str, Any]) -> None:
    """Put a request-level ``cache_control`` on the last block of the last message."""
    last = messages[-1]
    content = last.get("content")
    if isinstance(content, str):
        last["content"] = [{"type": "text", "text": content, "cache_control": dict(cache_control)}]
    elif isinstance(content, list) and content:
        content = list(content)
        content[-1] = {**content[-1], "cache_control": dict(cache_control)}
        last["content"] = content
    else:  # an assistant turn of tool calls only
        last["cache_control"] = dict(cache_control)


def cache_write_ttl(body: Mapping[str, Any]) -> str | None:
    """The longest TTL among the request's cache breakpoints ("1h", "5m"), or None."""
    found: set[str] = set()
    _find_cache_ttls(body.get("messages"), found)
    _find_cache_ttls(body.get("tools"), found)
    return "1h" if "1h" in found else "5m" if found else None


def _find_cache_ttls(value: Any, found: set[str]) -> None:
    # Module-level, not a closure: a recursive closure is a reference cycle, left for the
    # garbage collector on every call.
    if isinstance(value, Mapping):
        control = value.get("cache_control")
        if isinstance(control, Mapping):
            found.add(str(control.get("ttl", "5m")))
        for item in value.values():
            if isinstance(item, (list, Mapping)):
                _find_cache_ttls(item, found)
    elif isinstance(value, list):
        for item in value:
            _find_cache_ttls(item, found)


def build_body(
    model: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    stream: bool,
    protocol: str = CHAT_COMPLETIONS,
    extra_body: Mapping[str, Any] | None = None,
    **params: Any,
) -> dict[str, Any]:
    """The request body as a plain dict: only what was set, validated, max_tokens defaulted.

    The body is OpenAI-shaped on both protocols; `tokenhub_core.native.to_messages_body` turns
    it into Claude's own for ``protocol="messages"``.
    """
    check_known(params, REQUEST_PARAMS, where="the request")
    if extra_body:
        check_no_secrets(extra_body, param="extra_body")
    if not isinstance(model, str) or not model:
        raise InvalidParameterError(
            "model", model, "a model id such as anthropic/claude-sonnet-4-6"
        )
    body: dict[str, Any] = {"model": model, "messages": messages}
    for key, value in params.items():
        if value is not None:
            body[key] = value
    if extra_body:
        body.update(extra_body)
    if body.get("max_tokens") is None:
        body["max_tokens"] = DEFAULT_MAX_TOKENS
    check_sampling_params(
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        stop=body.get("stop"),
        max_tokens=body["max_tokens"],
    )
    if "stop" in body:
        body["stop"] = normalize_stop(body["stop"])
    n = body.get("n")
    if n is not None and n != 1:
        raise InvalidParameterError("n", n, "1 (Claude returns one choice)")
    # top_k is Claude's own; chat/completions gateways that know it honor it, so it goes on both.
    # thinking given in extra_body on chat/completions is the caller's deliberate extra.
    top_k = body.get("top_k")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
        raise InvalidParameterError("top_k", top_k, "a positive integer")
    thinking = None
    if protocol == MESSAGES or params.get("thinking") is not None:
        thinking = normalize_thinking(body.pop("thinking", None))
    if thinking is not None:
        if protocol != MESSAGES and thinking["type"] != "disabled":
            raise InvalidParameterError(
                "thinking",
                thinking,
                'unset: extended thinking needs protocol="messages" (the OpenAI-compatible'
                " endpoint does not return thinking)",
            )
        if protocol == MESSAGES:
            body["thinking"] = thinking
    body["messages"] = normalize_messages(body["messages"], protocol=protocol)
    cache_control = body.pop("cache_control", None)
    if cache_control is not None:
        check_cache_control(cache_control, "cache_control")
        _mark_last_block(body["messages"], cache_control)
    for i, tool in enumerate(body.get("tools") or ()):
        if isinstance(tool, Mapping) and "cache_control" in tool:
            check_cache_control(tool["cache_control"], f"tools[{i}].cache_control")
    _check_tool_choice(body.get("tool_choice"), body.get("tools"))
    if thinking is not None and protocol == MESSAGES:
        _check_thinking_rules(body, thinking)
    _check_text(body)
    if stream:
        body["stream"] = True
        if protocol != MESSAGES:
            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    else:
        body.pop("stream", None)
        body.pop("stream_options", None)
    return body


def _text_of(content: Any) -> Iterable[str]:
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, Mapping):
                text = part.get("text", part.get("thinking"))
                if isinstance(text, str):
                    yield text


def _image_count(content: Any) -> int:
    if not isinstance(content, list):
        return 0
    return sum(1 for p in content if isinstance(p, Mapping) and p.get("type") == "image_url")


_PDF_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")
_PDF_PAGE_TOKENS = 3000  # a page's text plus the page image Claude also reads
_URL_DOCUMENT_TOKENS = 100 * _PDF_PAGE_TOKENS  # unknown until fetched: Claude's 100-page limit


def _document_tokens(content: Any) -> int:
    """A high estimate of the tokens of the documents in ``content``."""
    if not isinstance(content, list):
        return 0
    tokens = 0
    for part in content:
        if not isinstance(part, Mapping) or part.get("type") != "document":
            continue
        source = part.get("source") or {}
        data = source.get("data")
        if source.get("type") == "url":
            tokens += _URL_DOCUMENT_TOKENS
        elif source.get("type") == "text" and isinstance(data, str):
            tokens += -(-len(data) // 4)
        elif isinstance(data, str):
            try:
                pages = len(_PDF_PAGE.findall(base64.b64decode(data)))
            except (binascii.Error, ValueError):
                pages = 0
            tokens += max(1, pages) * _PDF_PAGE_TOKENS
    return tokens


def estimate_tokens(
    messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None
) -> int:
    """An offline estimate of a prompt's tokens: about 4 characters a token, 1600 per image,
    3000 per PDF page (a URL document counts as Claude's 100-page maximum).

    Claude's tokenizer is not public; this errs on the high side, which is what a budget needs.
    """
    chars = 0
    images = 0
    documents = 0
    for message in messages:
        content = message.get("content")
        chars += sum(len(text) for text in _text_of(content))
        images += _image_count(content)
        documents += _document_tokens(content)
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            chars += len(function.get("name") or "") + len(function.get("arguments") or "")
    if tools:
        chars += len(json.dumps(list(tools), separators=(",", ":")))
    return -(-chars // 4) + 4 * len(messages) + 3 + images * _IMAGE_TOKENS + documents
