"""Pure conversion from LlamaIndex chat objects to TokenHub's wire dicts.

The wire is the OpenAI chat-completions shape, extended for Claude's own features (document and
thinking parts, ``cache_control``); the core sends it as it is on ``protocol="chat/completions"``
and turns it into Claude's Messages body on ``protocol="messages"``. What each block becomes (in
`to_wire_message`):

- ``TextBlock``: text. A message of text only is sent as one string, its blocks joined with
  ``"\\n"`` exactly as ``ChatMessage.content`` joins them.
- ``ImageBlock`` (user messages and tool results): an ``image_url`` part. An http(s) URL is
  passed through for the gateway to fetch (never downloaded here); bytes and paths become base64
  ``data:`` URLs, their type read from the bytes' signature, else from ``image_mimetype``. Claude
  takes JPEG, PNG, GIF and WebP.
- ``DocumentBlock`` (user messages and tool results): a ``document`` part, a PDF or plain text,
  from bytes or a path (base64 for a PDF, the text itself for text) or an http(s) URL (passed
  through). The core refuses it on ``chat/completions``, which has no document parts.
- ``ThinkingBlock`` (assistant messages): Claude's ``thinking`` part (its text and the
  ``signature`` kept in ``additional_information``) or ``redacted_thinking`` part, first in the
  turn, so a tool loop with extended thinking sends its reasoning back as Claude requires. A
  thinking block without a signature (another provider's trace) cannot be verified by Claude and
  is dropped, as are thinking blocks in other roles.
- ``ToolCallBlock`` (assistant messages): a wire ``tool_calls`` entry. Without such blocks, an
  assistant's ``additional_kwargs["tool_calls"]`` (OpenAI-shaped dicts or SDK objects) is used.
- ``CachePoint``: a ``cache_control`` breakpoint on the block before it (as llama-index's
  Anthropic LLM places it); after a tool call, on the message (its last block). A ``CachePoint``
  first in its message marks the end of the message before. ``additional_kwargs["cache_control"]``
  on a message (what Anthropic's ``cache_idx`` sets) marks the message's last block.
- ``CitationBlock``: dropped (citation metadata, not conversation).
- ``AudioBlock``, ``VideoBlock``, ``CitableBlock``: `InvalidParameterError` before anything is
  sent.

Tool-call ids are passed through `normalize_tool_call_id` on both sides (the assistant's calls and
the ``role=tool`` results), so ids from other providers still pair up under Claude's id rules.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.types import (
    CachePoint,
    ChatMessage,
    CitationBlock,
    DocumentBlock,
    ImageBlock,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)

from tokenhub_core.errors import InvalidParameterError
from tokenhub_core.params import (
    SUPPORTED_IMAGE_TYPES,
    check_cache_control,
    check_image_url,
    normalize_tool_call_id,
)

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

__all__ = [
    "DOCUMENT_TYPES",
    "cache_control_of",
    "document_block_to_part",
    "image_block_to_part",
    "mark_cache",
    "sniff_image_type",
    "thinking_block_to_part",
    "to_wire_message",
    "to_wire_messages",
    "to_wire_tool_call",
    "to_wire_tool_choice",
    "to_wire_tools",
]

# Every MessageRole has a wire role: DEVELOPER is OpenAI's newer name for system; CHATBOT (Cohere)
# and MODEL (Gemini) are other providers' names for the assistant; FUNCTION is the legacy form of a
# tool result and, like TOOL, needs the id of the call it answers.
_WIRE_ROLES: Mapping[MessageRole, str] = {
    MessageRole.SYSTEM: "system",
    MessageRole.DEVELOPER: "system",
    MessageRole.USER: "user",
    MessageRole.ASSISTANT: "assistant",
    MessageRole.CHATBOT: "assistant",
    MessageRole.MODEL: "assistant",
    MessageRole.TOOL: "tool",
    MessageRole.FUNCTION: "tool",
}
DOCUMENT_TYPES = ("application/pdf", "text/plain")
"""The document types Claude reads."""
_DEFAULT_CACHE_TTL = "5m"
_DEFAULT_DOCUMENT_TITLE = "input_document"  # what DocumentBlock fills in when given no title
_TEXT_SUFFIXES = frozenset({".txt", ".text", ".md", ".markdown", ".csv", ".log"})
_MIME_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg"}
_TOOL_CHOICE_MODES = ("auto", "none", "required")


def to_wire_messages(
    messages: Sequence[ChatMessage], *, cache_idx: int | None = None
) -> list[dict[str, Any]]:
    """Convert a conversation to wire message dicts (the caller's objects are not modified).

    ``cache_idx`` (llama-index Anthropic's setting) puts a cache breakpoint at the end of the
    message at that index, ``-1`` the last: everything up to it is cached. One breakpoint covers
    the whole prefix, so it is set there only (Claude allows four per request).
    """
    wire: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        converted, leading = _convert(message, index)
        if leading is not None and wire:
            mark_cache(wire[-1], leading)
        wire.append(converted)
    if cache_idx is not None and wire:
        if not -len(wire) <= cache_idx < len(wire):
            raise InvalidParameterError(
                "cache_idx", cache_idx, f"a message index from {-len(wire)} to {len(wire) - 1}"
            )
        mark_cache(wire[cache_idx], {"type": "ephemeral"})
    return wire


def to_wire_message(message: ChatMessage, *, index: int = 0) -> dict[str, Any]:
    """Convert one message; ``index`` only names the message in error messages."""
    return _convert(message, index)[0]


def _convert(message: ChatMessage, index: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """One wire message, and the cache control of a CachePoint opening it (for the one before)."""
    where = f"messages[{index}]"
    role = _WIRE_ROLES.get(message.role)
    if role is None:
        raise InvalidParameterError(
            f"{where}.role", str(message.role), "system, user, assistant, tool"
        )
    texts: list[str] = []
    parts: list[dict[str, Any]] = []
    thinking: list[dict[str, Any]] = []
    tool_calls: list[dict[str, Any]] = []
    text_only = True
    leading: dict[str, Any] | None = None
    message_cache: dict[str, Any] | None = None
    last = ""  # what the last block was: "part", "call" or "" (nothing yet)
    for position, block in enumerate(message.blocks):
        if isinstance(block, CachePoint):
            control = cache_control_of(block)
            if last == "part":
                parts[-1]["cache_control"] = control
                text_only = False
            elif last == "call":
                message_cache = control
            else:
                leading = control
            continue
        if isinstance(block, TextBlock):
            texts.append(block.text)
            parts.append({"type": "text", "text": block.text})
        elif isinstance(block, (ImageBlock, DocumentBlock)):
            kind = type(block).__name__
            if role not in ("user", "tool"):
                raise InvalidParameterError(
                    f"{where}.blocks[{position}]",
                    kind,
                    f"{kind}s only in user messages and tool results, not {role}",
                )
            if isinstance(block, ImageBlock):
                parts.append(image_block_to_part(block))
            else:
                parts.append(document_block_to_part(block, where=f"{where}.blocks[{position}]"))
            text_only = False
        elif isinstance(block, ToolCallBlock):
            if role != "assistant":
                raise InvalidParameterError(
                    f"{where}.blocks[{position}]",
                    "ToolCallBlock",
                    f"tool calls only in assistant messages, not {role}",
                )
            tool_calls.append(to_wire_tool_call(block))
            last = "call"
            continue
        elif isinstance(block, ThinkingBlock):
            part = thinking_block_to_part(block) if role == "assistant" else None
            if part is not None:
                thinking.append(part)
            continue
        elif isinstance(block, CitationBlock):
            continue
        else:
            raise InvalidParameterError(
                f"{where}.blocks[{position}]",
                type(block).__name__,
                "text, image, document, thinking, tool-call and cache-point blocks",
            )
        last = "part"

    wire: dict[str, Any] = {"role": role}
    text = "\n".join(texts)
    if thinking:
        wire["content"] = thinking + [p for p in parts if p["type"] != "text" or p["text"]]
    else:
        wire["content"] = text if text_only else parts
    if role == "assistant":
        if not tool_calls:
            tool_calls = [
                to_wire_tool_call(c) for c in message.additional_kwargs.get("tool_calls") or ()
            ]
        if tool_calls:
            wire["tool_calls"] = tool_calls
            if not text and not thinking:
                # A call-only turn has no text; an empty text block is an error for Claude.
                wire["content"] = None
    elif role == "tool":
        call_id = message.additional_kwargs.get("tool_call_id")
        if not call_id:
            raise InvalidParameterError(
                f"{where}.additional_kwargs['tool_call_id']",
                call_id,
                "the id of the tool call this result answers",
            )
        wire["tool_call_id"] = normalize_tool_call_id(str(call_id))
    if message_cache is not None:
        wire["cache_control"] = message_cache
    requested = message.additional_kwargs.get("cache_control")
    if requested:
        check_cache_control(requested, f"{where}.additional_kwargs['cache_control']")
        mark_cache(wire, dict(requested))
    return wire, leading


def cache_control_of(block: CachePoint) -> dict[str, Any]:
    """The wire ``cache_control`` of a ``CachePoint`` (the default 5-minute TTL left implicit)."""
    control: dict[str, Any] = {"type": block.cache_control.type}
    if block.cache_control.ttl != _DEFAULT_CACHE_TTL:
        control["ttl"] = block.cache_control.ttl
    return control


def mark_cache(wire: dict[str, Any], control: dict[str, Any]) -> None:
    """Put a cache breakpoint at the end of a wire message (in place).

    On its last content part when that part ends the message, else (after tool calls, or a
    thinking part, which takes none) on the message itself, which the core applies to its last
    block.
    """
    content = wire.get("content")
    if isinstance(content, str) and content:
        wire["content"] = [{"type": "text", "text": content, "cache_control": control}]
    elif (
        isinstance(content, list)
        and content
        and not wire.get("tool_calls")
        and content[-1].get("type") not in ("thinking", "redacted_thinking")
    ):
        content[-1] = {**content[-1], "cache_control": control}
    else:
        wire["cache_control"] = control


def thinking_block_to_part(block: ThinkingBlock) -> dict[str, Any] | None:
    """Claude's ``thinking`` / ``redacted_thinking`` part for a ``ThinkingBlock``; None without a
    signature (it could not be verified)."""
    info = block.additional_information
    if info.get("type") == "redacted_thinking":
        data = info.get("data")
        return {"type": "redacted_thinking", "data": data} if data else None
    signature = info.get("signature")
    if not signature:
        return None
    return {"type": "thinking", "thinking": block.content or "", "signature": signature}


def _document_type(block: DocumentBlock, data: bytes) -> str | None:
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    declared = (block.document_mimetype or "").split(";")[0].strip().lower()
    if declared:
        return declared
    suffix = Path(str(block.path or block.url or "")).suffix.lower()
    if suffix in _TEXT_SUFFIXES:
        return "text/plain"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return "text/plain"


def document_block_to_part(block: DocumentBlock, *, where: str = "DocumentBlock") -> dict[str, Any]:
    """A ``document`` content part for a ``DocumentBlock``: a PDF or plain text.

    An http(s) URL is passed through (the server fetches it, as Claude does for PDFs); bytes, a
    path or a ``data:`` URL are read here. The type comes from the bytes when they are a PDF,
    else ``document_mimetype``, else the file suffix, else text when the bytes are UTF-8.
    """
    source: dict[str, Any]
    url = str(block.url) if block.url is not None else None
    if (
        block.data is None
        and block.path is None
        and url
        and url.startswith(("https://", "http://"))
    ):
        source = {"type": "url", "url": url}
    else:
        try:
            data = block.resolve_document().read()
        except ValueError:  # the framework's "resolve_document returned zero bytes"
            data = b""
        except (OSError, binascii.Error) as error:
            raise InvalidParameterError(
                where, "DocumentBlock", f"a readable document ({error})"
            ) from None
        if not data:
            raise InvalidParameterError(where, "an empty DocumentBlock", "a non-empty document")
        mime = _document_type(block, data)
        if mime == "application/pdf":
            encoded = base64.b64encode(data).decode("ascii")
            source = {"type": "base64", "media_type": mime, "data": encoded}
        elif mime == "text/plain":
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidParameterError(
                    f"{where}.data", "text/plain that is not UTF-8", "UTF-8 text"
                ) from None
            source = {"type": "text", "media_type": mime, "data": text}
        else:
            raise InvalidParameterError(
                f"{where}.document_mimetype",
                mime or "unknown (not UTF-8 text)",
                f"a document of type {' or '.join(DOCUMENT_TYPES)}",
            )
    part: dict[str, Any] = {"type": "document", "source": source}
    if block.title and block.title != _DEFAULT_DOCUMENT_TITLE:
        part["title"] = block.title
    return part


def to_wire_tool_call(call: ToolCallBlock | Mapping[str, Any] | Any) -> dict[str, Any]:
    """One wire tool call from a ``ToolCallBlock``, an OpenAI-shaped dict or an SDK object."""
    call_id: Any
    name: Any
    arguments: Any
    if isinstance(call, ToolCallBlock):
        call_id, name, arguments = call.tool_call_id, call.tool_name, call.tool_kwargs
    else:
        if not isinstance(call, Mapping) and hasattr(call, "model_dump"):
            call = call.model_dump()
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping):
            raise InvalidParameterError(
                "tool_calls", call, '{"id": ..., "function": {"name": ..., "arguments": ...}}'
            )
        call_id, name, arguments = call.get("id"), function.get("name"), function.get("arguments")
    if not call_id:
        raise InvalidParameterError("tool_call.id", call_id, f"an id for the call to {name!r}")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments if arguments is not None else {})
    return {
        "id": normalize_tool_call_id(str(call_id)),
        "type": "function",
        "function": {"name": name, "arguments": arguments or "{}"},
    }


def sniff_image_type(data: bytes) -> str | None:
    """The media type of a JPEG, PNG, GIF or WebP image from its leading bytes, else None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def image_block_to_part(block: ImageBlock) -> dict[str, Any]:
    """An ``image_url`` content part for an ``ImageBlock``."""
    if block.image is None and block.path is None:
        if block.url is None:
            raise InvalidParameterError("ImageBlock", "empty", "an image, a path or a url")
        url = str(block.url)
        check_image_url(url)
    else:
        try:
            data = block.resolve_image().read()
        except ValueError:  # the framework's "resolve_image returned zero bytes"
            data = b""
        if not data:
            raise InvalidParameterError("ImageBlock", "0 bytes", "a non-empty image")
        declared = block.image_mimetype
        if declared:
            declared = declared.strip().lower()
            declared = _MIME_ALIASES.get(declared, declared)
        # The bytes are the truth: a .png that is really a JPEG is sent as what it is.
        mime = sniff_image_type(data) or declared
        if mime not in SUPPORTED_IMAGE_TYPES:
            raise InvalidParameterError(
                "ImageBlock.image_mimetype",
                mime,
                f"an image of type {', '.join(SUPPORTED_IMAGE_TYPES)}",
            )
        url = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    image_url: dict[str, Any] = {"url": url}
    if block.detail:
        image_url["detail"] = block.detail
    return {"type": "image_url", "image_url": image_url}


def to_wire_tools(
    tools: Sequence[BaseTool], *, cache_control: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """OpenAI-shaped tool definitions (Claude has no 1024-character description limit).

    ``cache_control`` puts a cache breakpoint on the last tool (the tools are the start of
    Claude's prompt, so it caches them all).
    """
    wire = [tool.metadata.to_openai_tool(skip_length_check=True) for tool in tools]
    if cache_control and wire:
        wire[-1]["cache_control"] = dict(cache_control)
    return wire


def to_wire_tool_choice(
    tool_choice: str | Mapping[str, Any] | None,
    *,
    tool_required: bool = False,
    tool_names: Sequence[str] = (),
) -> str | dict[str, Any] | None:
    """The wire ``tool_choice``; None means leave it unset (the server's default, ``auto``).

    Accepts ``"auto"``, ``"none"``, ``"required"``, a tool's name, an OpenAI-shaped dict, or
    Anthropic's shapes (``{"type": "tool", "name": ...}``, ``{"type": "any"}``). An explicit choice
    wins over ``tool_required``; without one, ``tool_required`` asks for ``"required"``.
    """
    if tool_choice is None:
        return "required" if tool_required else None
    if isinstance(tool_choice, str):
        if tool_choice in _TOOL_CHOICE_MODES:
            return tool_choice
        if tool_choice in tool_names:
            return {"type": "function", "function": {"name": tool_choice}}
        raise InvalidParameterError(
            "tool_choice",
            tool_choice,
            f'"auto", "none", "required" or a tool among {list(tool_names)}',
        )
    if isinstance(tool_choice, Mapping):
        kind = tool_choice.get("type", "function")
        function = tool_choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else tool_choice.get("name")
        if kind in ("function", "tool") and isinstance(name, str):
            if tool_names and name not in tool_names:
                raise InvalidParameterError(
                    "tool_choice", tool_choice, f"a tool among {list(tool_names)}"
                )
            return {"type": "function", "function": {"name": name}}
        if kind == "any":
            return "required"
        if kind in _TOOL_CHOICE_MODES:
            return str(kind)
    raise InvalidParameterError(
        "tool_choice",
        tool_choice,
        '"auto", "none", "required", a tool name or {"type": "function", ...}',
    )
