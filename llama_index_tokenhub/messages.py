"""Pure conversion from LlamaIndex chat objects to TokenHub's OpenAI-schema wire dicts.

What each block becomes (in `to_wire_message`):

- ``TextBlock``: text. A message of text only is sent as one string, its blocks joined with
  ``"\\n"`` exactly as ``ChatMessage.content`` joins them.
- ``ImageBlock`` (user messages and tool results): an ``image_url`` part. An http(s) URL is
  passed through for the gateway to fetch (never downloaded here); bytes and paths become base64
  ``data:`` URLs, their type read from the bytes' signature, else from ``image_mimetype``. Claude
  takes JPEG, PNG, GIF and WebP.
- ``ToolCallBlock`` (assistant messages): a wire ``tool_calls`` entry. Without such blocks, an
  assistant's ``additional_kwargs["tool_calls"]`` (OpenAI-shaped dicts or SDK objects) is used.
- ``CachePoint``: a ``cache_control`` marker on the text part before it (as llama-index's
  Anthropic LLM places it), which OpenAI-compatible gateways for Claude honor; the message then
  goes out as parts. A ``CachePoint`` with no text before it in its message is dropped.
- ``ThinkingBlock``, ``CitationBlock``: dropped. They are annotations other providers attach
  (reasoning traces, citation metadata) and have no place on the chat-completions wire; the
  conversation itself is unchanged without them.
- ``DocumentBlock``, ``AudioBlock``, ``VideoBlock``, ``CitableBlock``: `InvalidParameterError`
  before anything is sent; the endpoint takes text and images only.

Tool-call ids are passed through `normalize_tool_call_id` on both sides (the assistant's calls and
the ``role=tool`` results), so ids from other providers still pair up under Claude's id rules.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.types import (
    CachePoint,
    ChatMessage,
    CitationBlock,
    ImageBlock,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)

from tokenhub_core.errors import InvalidParameterError
from tokenhub_core.params import SUPPORTED_IMAGE_TYPES, check_image_url, normalize_tool_call_id

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

__all__ = [
    "image_block_to_part",
    "sniff_image_type",
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
_DROPPED_BLOCKS = (ThinkingBlock, CitationBlock)
_DEFAULT_CACHE_TTL = "5m"
_MIME_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg"}
_TOOL_CHOICE_MODES = ("auto", "none", "required")


def to_wire_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """Convert a conversation to wire message dicts (the caller's objects are not modified)."""
    return [to_wire_message(message, index=i) for i, message in enumerate(messages)]


def to_wire_message(message: ChatMessage, *, index: int = 0) -> dict[str, Any]:
    """Convert one message; ``index`` only names the message in error messages."""
    where = f"messages[{index}]"
    role = _WIRE_ROLES.get(message.role)
    if role is None:
        raise InvalidParameterError(
            f"{where}.role", str(message.role), "system, user, assistant, tool"
        )
    texts: list[str] = []
    parts: list[dict[str, Any]] = []
    has_image = False
    cached = False
    tool_calls: list[dict[str, Any]] = []
    for position, block in enumerate(message.blocks):
        if isinstance(block, CachePoint):
            if parts and parts[-1]["type"] == "text":
                parts[-1]["cache_control"] = _cache_control(block)
                cached = True
            continue
        if isinstance(block, TextBlock):
            texts.append(block.text)
            parts.append({"type": "text", "text": block.text})
        elif isinstance(block, ImageBlock):
            if role not in ("user", "tool"):
                raise InvalidParameterError(
                    f"{where}.blocks[{position}]",
                    "ImageBlock",
                    f"images only in user messages and tool results, not {role}",
                )
            parts.append(image_block_to_part(block))
            has_image = True
        elif isinstance(block, ToolCallBlock):
            if role != "assistant":
                raise InvalidParameterError(
                    f"{where}.blocks[{position}]",
                    "ToolCallBlock",
                    f"tool calls only in assistant messages, not {role}",
                )
            tool_calls.append(to_wire_tool_call(block))
        elif isinstance(block, _DROPPED_BLOCKS):
            continue
        else:
            raise InvalidParameterError(
                f"{where}.blocks[{position}]",
                type(block).__name__,
                "text and image blocks only; send a document's text as a TextBlock",
            )

    wire: dict[str, Any] = {"role": role}
    text = "\n".join(texts)
    wire["content"] = parts if has_image or cached else text
    if role == "assistant":
        if not tool_calls:
            tool_calls = [
                to_wire_tool_call(c) for c in message.additional_kwargs.get("tool_calls") or ()
            ]
        if tool_calls:
            wire["tool_calls"] = tool_calls
            if not text:
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
    return wire


def _cache_control(block: CachePoint) -> dict[str, Any]:
    control: dict[str, Any] = {"type": block.cache_control.type}
    if block.cache_control.ttl != _DEFAULT_CACHE_TTL:
        control["ttl"] = block.cache_control.ttl
    return control


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


def to_wire_tools(tools: Sequence[BaseTool]) -> list[dict[str, Any]]:
    """OpenAI-shaped tool definitions (Claude has no 1024-character description limit)."""
    return [tool.metadata.to_openai_tool(skip_length_check=True) for tool in tools]


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
