"""Claude's native features in LangChain's conventions: documents, thinking, prompt caching.

Pure conversion, no I/O, in both directions, into and out of the core's internal request format
(the OpenAI chat-completions shape extended with Anthropic's ``document`` and ``thinking`` parts,
see ``tokenhub_core``). The forms accepted are those ``ChatAnthropic`` reads, so its users'
messages work unchanged:

- PDF and plain-text files: standard v1 ``file`` / ``text-plain`` blocks, the v0 ``source_type``
  forms, OpenAI's ``{"type": "file", "file": {"file_data": ...}}`` and Anthropic's own
  ``document`` blocks; ``cache_control``, ``title``, ``context`` and ``citations`` are kept,
  also from a block's ``extras``.
- Thinking in assistant turns: Anthropic ``thinking`` / ``redacted_thinking`` blocks (ours and
  ChatAnthropic's, streamed ones with their ``index`` too) and standard v1 ``reasoning`` blocks
  with a ``signature`` in ``extras``. A thinking block without a signature is dropped: Claude
  refuses unsigned thinking, and only Claude's own blocks carry one.
- ``cache_control`` on a tool: a tool dict carrying it (OpenAI or Anthropic form) or a
  ``BaseTool`` with ``extras["cache_control"]`` (how ChatAnthropic's ``bind_tools`` and
  ``AnthropicPromptCachingMiddleware`` mark one).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from typing import Any

from tokenhub_core.errors import InvalidParameterError

__all__ = [
    "DOCUMENT_TYPES",
    "MESSAGES",
    "NEEDS_MESSAGES",
    "BlockStream",
    "document_part",
    "is_document_block",
    "reply_content",
    "thinking_is_on",
    "thinking_parts",
    "tool_cache_control",
]

MESSAGES = "messages"
NEEDS_MESSAGES = "Claude's native protocol: use protocol='messages'"
DOCUMENT_TYPES = ("application/pdf", "text/plain")
_DOCUMENT_FIELDS = ("cache_control", "title", "context", "citations")
_BY_VALUE = "a PDF or text file given by base64 data or by URL (file ids are not supported)"
_DATA_URL = re.compile(r"data:(?P<mime>[^;,]*)(?:;[^;,]*)*;base64,(?P<data>.*)", re.DOTALL)


# ---------------------------------------------------------------------------------------------
# documents
# ---------------------------------------------------------------------------------------------


def is_document_block(block: Mapping[str, Any]) -> bool:
    """Whether a content block is a file (PDF or text) rather than text or an image."""
    kind = block.get("type")
    if kind in ("document", "text-plain"):
        return True
    if kind != "file":
        return False
    mime = block.get("mime_type")
    return not (isinstance(mime, str) and mime.startswith(("image/", "audio/", "video/")))


def document_part(block: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A file block in any form LangChain users write, as a contract ``document`` part.

    Raises:
        InvalidParameterError: a media type other than PDF or plain text, a file given by id,
            or a block with neither data nor a URL.
    """
    if block.get("type") == "document":
        source = block.get("source")
        if not isinstance(source, Mapping) or source.get("type") not in ("base64", "url", "text"):
            kind = source.get("type") if isinstance(source, Mapping) else source
            raise InvalidParameterError(f"{where}.source.type", kind, "base64, url or text")
        part: dict[str, Any] = {"type": "document", "source": dict(source)}
    else:
        part = {"type": "document", "source": _document_source(block, where)}
    for key in _DOCUMENT_FIELDS:
        for origin in (block, _mapping(block, "extras"), _mapping(block, "metadata")):
            if origin.get(key) is not None:
                part[key] = origin[key]
                break
    return part


def _mapping(block: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = block.get(key)
    return value if isinstance(value, Mapping) else {}


def _document_source(block: Mapping[str, Any], where: str) -> dict[str, Any]:
    if block.get("type") == "text-plain" or block.get("source_type") == "text":
        return _text_source(block.get("text"), where)
    if block.get("file_id") is not None or block.get("source_type") == "id":
        raise InvalidParameterError(
            f"{where}.file_id", block.get("file_id") or block.get("id"), _BY_VALUE
        )
    openai_file = block.get("file")
    if isinstance(openai_file, Mapping):  # OpenAI chat-completions form
        data_url = openai_file.get("file_data")
        match = _DATA_URL.fullmatch(data_url) if isinstance(data_url, str) else None
        if match is None:
            raise InvalidParameterError(f"{where}.file", _summary(openai_file), _BY_VALUE)
        return _base64_source(match["mime"] or None, match["data"], where)
    mime = block.get("mime_type")
    if block.get("base64") is not None or block.get("source_type") == "base64":
        data = block["base64"] if block.get("base64") is not None else block.get("data")
        return _base64_source(mime, data, where)
    url = block.get("url")
    if url is None and block.get("source_type") == "url":
        url = block.get("data")
    if isinstance(url, str) and url:
        if mime is not None and mime != "application/pdf":
            raise InvalidParameterError(f"{where}.mime_type", mime, "application/pdf for a URL")
        return {"type": "url", "url": url}
    raise InvalidParameterError(where, _summary(block), _BY_VALUE)


def _summary(block: Mapping[str, Any]) -> dict[str, Any]:
    keep = ("type", "source_type", "mime_type", "file_id", "id", "filename")
    return {k: v for k, v in block.items() if k in keep}


def _base64_source(mime: Any, data: Any, where: str) -> dict[str, Any]:
    mime = mime or "application/pdf"  # ChatAnthropic's default for a file block
    if mime not in DOCUMENT_TYPES:
        raise InvalidParameterError(f"{where}.mime_type", mime, " or ".join(DOCUMENT_TYPES))
    if not isinstance(data, str) or not data:
        raise InvalidParameterError(f"{where}.base64", type(data).__name__, "base64 text")
    if mime == "application/pdf":
        return {"type": "base64", "media_type": mime, "data": data}
    try:  # Claude takes plain text as text, not as base64
        text = base64.b64decode(data, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise InvalidParameterError(f"{where}.base64", data[:20], "base64 of UTF-8 text") from None
    return _text_source(text, where)


def _text_source(text: Any, where: str) -> dict[str, Any]:
    if not isinstance(text, str):
        raise InvalidParameterError(f"{where}.text", type(text).__name__, "the document's text")
    return {"type": "text", "media_type": "text/plain", "data": text}


# ---------------------------------------------------------------------------------------------
# thinking
# ---------------------------------------------------------------------------------------------


def thinking_is_on(thinking: Any) -> bool:
    """Whether a ``thinking`` setting asks for thinking (None and ``disabled`` do not)."""
    if thinking is None or thinking is False:
        return False
    if isinstance(thinking, Mapping):
        return bool(thinking.get("type") != "disabled")
    return bool(thinking != "disabled")


def thinking_parts(content: str | Sequence[str | dict[str, Any]]) -> list[dict[str, Any]]:
    """The signed thinking blocks of an assistant message's content, in order, as wire parts."""
    if isinstance(content, str):
        return []
    parts: list[dict[str, Any]] = []
    for block in content:
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        if kind == "non_standard" and isinstance(block.get("value"), Mapping):
            block, kind = block["value"], block["value"].get("type")
        extras = _mapping(block, "extras")
        part: dict[str, Any] | None = None
        if kind in ("thinking", "reasoning"):
            signature = block.get("signature") or extras.get("signature")
            text = block.get("thinking" if kind == "thinking" else "reasoning") or ""
            if isinstance(signature, str) and signature:
                part = {"type": "thinking", "thinking": text, "signature": signature}
        elif kind == "redacted_thinking":
            data = block.get("data") or extras.get("data")
            if isinstance(data, str) and data:
                part = {"type": "redacted_thinking", "data": data}
        if part is not None:
            if block.get("cache_control") is not None:
                part["cache_control"] = block["cache_control"]
            parts.append(part)
    return parts


# ---------------------------------------------------------------------------------------------
# tools
# ---------------------------------------------------------------------------------------------


def tool_cache_control(tool: Any) -> Any:
    """The ``cache_control`` a tool carries (dict key or ``BaseTool.extras``), else None."""
    if isinstance(tool, Mapping):
        return tool.get("cache_control")
    extras = getattr(tool, "extras", None)
    return extras.get("cache_control") if isinstance(extras, Mapping) else None


# ---------------------------------------------------------------------------------------------
# replies
# ---------------------------------------------------------------------------------------------


def reply_content(
    text: str, thinking_blocks: Sequence[Mapping[str, Any]] | None
) -> str | list[str | dict[str, Any]]:
    """A reply's ``content``: the text, or, when Claude thought, ChatAnthropic's list of blocks.

    The list holds the thinking blocks first (with their signatures, so the message can be sent
    back as it is), then the text as a ``text`` block; ``.text`` gives only the text and
    ``.content_blocks`` standard ``reasoning`` blocks.
    """
    if not thinking_blocks:
        return text
    blocks: list[str | dict[str, Any]] = [dict(block) for block in thinking_blocks]
    if text:
        blocks.append({"type": "text", "text": text})
    return blocks


class BlockStream:
    """Numbers a stream's thinking and text fragments as ChatAnthropic numbers content blocks.

    Once the stream is in block form (asked up front when thinking is on, or at the first
    thinking fragment), each fragment is a ``{"type", ..., "index"}`` block; fragments of one
    block share its index, so LangChain's ``+`` merges them into the message `reply_content`
    gives. Before that, text stays a plain string, as for any reply without thinking.
    """

    __slots__ = ("_kinds", "_next", "_text_at", "_thinking_at", "on")

    def __init__(self, *, on: bool) -> None:
        """Args: on: start in block form (thinking was asked for)."""
        self.on = on
        self._next = 0
        self._text_at: int | None = None
        self._thinking_at: dict[int, int] = {}
        self._kinds: dict[int, str] = {}

    def content(
        self, text: str | None, thinking: Sequence[Mapping[str, Any]] | None
    ) -> str | list[str | dict[str, Any]]:
        """The ``content`` of the chunk carrying these fragments."""
        blocks: list[str | dict[str, Any]] = []
        for fragment in thinking or ():
            self.on = True
            blocks.append(self._thinking_block(fragment))
        if not self.on:
            return text or ""
        if text:
            if self._text_at is None:
                self._text_at, self._next = self._next, self._next + 1
            blocks.append({"type": "text", "text": text, "index": self._text_at})
        return blocks

    def _thinking_block(self, fragment: Mapping[str, Any]) -> dict[str, Any]:
        k = fragment.get("index") or 0
        if k not in self._thinking_at:
            self._thinking_at[k], self._next = self._next, self._next + 1
            self._text_at = None  # text after a thinking block is a new text block
        kind = fragment.get("type") or self._kinds.get(k, "thinking")
        self._kinds[k] = kind
        block: dict[str, Any] = {"type": kind, "index": self._thinking_at[k]}
        if kind == "redacted_thinking":
            block["data"] = fragment.get("data") or ""
        else:
            block["thinking"] = fragment.get("thinking") or ""
            if fragment.get("signature"):
                block["signature"] = fragment["signature"]
        return block
