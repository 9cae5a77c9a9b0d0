"""Request parameters: Claude's rules, checked before anything is sent, and the request body.

Pure functions. Every violation raises `InvalidParameterError` (a ``ValueError``) naming the
parameter, the value and what is allowed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tokenhub_core.errors import InvalidParameterError

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "MAX_STOP_SEQUENCES",
    "REQUEST_PARAMS",
    "ROLES",
    "SUPPORTED_IMAGE_TYPES",
    "build_body",
    "check_image_url",
    "check_sampling_params",
    "estimate_tokens",
    "normalize_stop",
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
    }
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


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, (list, tuple)) or not messages:
        raise InvalidParameterError("messages", messages, "a non-empty list of messages")
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise InvalidParameterError(f"messages[{index}]", message, "a {role, content} mapping")
        role = message.get("role")
        if role not in ROLES:
            raise InvalidParameterError(
                f"messages[{index}].role", role, f"one of {', '.join(sorted(ROLES))}"
            )
        if role == "tool" and not message.get("tool_call_id"):
            raise InvalidParameterError(
                f"messages[{index}].tool_call_id",
                message.get("tool_call_id"),
                "the id of the tool call this result answers",
            )
        _check_content_images(message.get("content"), index)


def build_body(
    model: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    stream: bool,
    extra_body: Mapping[str, Any] | None = None,
    **params: Any,
) -> dict[str, Any]:
    """The request body as a plain dict: only what was set, validated, max_tokens defaulted."""
    unknown = params.keys() - REQUEST_PARAMS
    if unknown:
        raise TypeError(
            f"unexpected parameter(s) {sorted(unknown)}; "
            "pass provider-specific fields in extra_body"
        )
    if not isinstance(model, str) or not model:
        raise InvalidParameterError(
            "model", model, "a model id such as anthropic/claude-sonnet-4-6"
        )
    body: dict[str, Any] = {
        "model": model,
        "messages": list(messages) if isinstance(messages, (list, tuple)) else messages,
    }
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
    _check_messages(body["messages"])
    _check_tool_choice(body.get("tool_choice"), body.get("tools"))
    if stream:
        body["stream"] = True
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
                text = part.get("text")
                if isinstance(text, str):
                    yield text


def _image_count(content: Any) -> int:
    if not isinstance(content, list):
        return 0
    return sum(1 for p in content if isinstance(p, Mapping) and p.get("type") == "image_url")


def estimate_tokens(
    messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None
) -> int:
    """An offline estimate of a prompt's tokens: about 4 characters a token, 1600 per image.

    Claude's tokenizer is not public; this errs on the high side, which is what a budget needs.
    """
    chars = 0
    images = 0
    for message in messages:
        content = message.get("content")
        chars += sum(len(text) for text in _text_of(content))
        images += _image_count(content)
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            chars += len(function.get("name") or "") + len(function.get("arguments") or "")
    if tools:
        chars += len(json.dumps(list(tools), separators=(",", ":")))
    return -(-chars // 4) + 4 * len(messages) + 3 + images * _IMAGE_TOKENS
