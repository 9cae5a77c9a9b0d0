"""The messages of a native Messages request: each block checked, seen by the engine, priced.

Pure: `check_messages` walks Claude's ``messages`` (user and assistant turns of text, image,
document, tool_use, tool_result, thinking and redacted_thinking blocks), refusing what Claude
refuses with its wording, and returns the engine's chat-completions messages, the cache pieces
(one per block, with its tokens and breakpoint) and the documents of the last user turn.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from tokenhub_emulator.caching import Piece
from tokenhub_emulator.checks import IMAGE_TYPES, RequestError
from tokenhub_emulator.pdf import pdf_text
from tokenhub_emulator.replies import IMAGE_TOKENS

__all__ = [
    "MAX_BREAKPOINTS",
    "THINKING_DOCS",
    "Breakpoints",
    "DocumentRef",
    "bad",
    "canonical",
    "check_messages",
    "tokens_of",
]

MAX_BREAKPOINTS = 4
PDF_PAGE_TOKENS = 800  # each page is also read as an image, like an image block
THINKING_DOCS = "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"


def bad(message: str) -> RequestError:
    """A 400 ``invalid_request_error`` with ``message``."""
    return RequestError(400, message)


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


def tokens_of(chars: int) -> int:
    """The emulator's prompt tokens for ``chars`` characters (about four a token)."""
    return (chars + 3) // 4


def _without_cache_control(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_cache_control(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_without_cache_control(v) for v in value]
    return value


def canonical(value: Any) -> bytes:
    """The bytes a piece is hashed by: where its breakpoints sit does not change them."""
    return json.dumps(
        _without_cache_control(value), sort_keys=True, ensure_ascii=False, separators=(",", ":")
    ).encode()


class Breakpoints:
    """Collects ``cache_control`` marks: checks each, counts them, keeps 1h before 5m."""

    def __init__(self) -> None:
        self.count = 0
        self.seen_5m = False

    def ttl(self, block: dict[str, Any], where: str) -> str | None:
        control = block.get("cache_control")
        if control is None:
            return None
        if not isinstance(control, dict) or control.get("type") != "ephemeral":
            raise bad(f"{where}.cache_control.type: Input should be 'ephemeral'")
        ttl = control.get("ttl", "5m")
        if ttl not in ("5m", "1h"):
            raise bad(f"{where}.cache_control.ttl: Input should be '5m' or '1h'")
        if ttl == "1h" and self.seen_5m:
            raise bad(
                f"{where}.cache_control: a ttl='1h' cache_control block must not come after a "
                "ttl='5m' cache_control block (longer TTLs first: tools, system, then messages)"
            )
        self.seen_5m |= ttl == "5m"
        self.count += 1
        if self.count > MAX_BREAKPOINTS:
            raise bad(
                f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
                f"Found {self.count}."
            )
        return str(ttl)


class _Conversation:
    """Walks the native messages: checks each block, builds the engine's messages and pieces."""

    def __init__(
        self,
        marks: Breakpoints,
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
        self.pieces.append(Piece(canonical([role, block]), tokens + (4 if first else 0), ttl))


def check_messages(
    messages: list[Any],
    marks: Breakpoints,
    thinking: bool,
    claude_rules: bool,
    verify_signature: Callable[[str, str], bool],
) -> tuple[list[dict[str, Any]], list[Piece], tuple[DocumentRef, ...]]:
    """Check ``messages``; return the engine's messages, the cache pieces and the documents of
    the last user turn. ``thinking``: whether the request thinks (the tool-loop rule)."""
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
            raise bad(f"{where}: Input should be a valid dictionary")
        role = message.get("role")
        if role == "system":
            raise bad(
                'messages: Unexpected role "system". The Messages API accepts a top-level '
                '`system` parameter, not "system" as an input message role.'
            )
        if role not in ("user", "assistant"):
            raise bad(f"{where}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        if "content" not in message:
            raise bad(f"{where}.content: Field required")
        extra = sorted(set(message) - {"role", "content"})
        if extra:
            raise bad(f"{where}.{extra[0]}: Extra inputs are not permitted")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        elif not isinstance(content, list):
            raise bad(f"{where}.content: Input should be a valid string or list of blocks")
        if not content and not (role == "assistant" and i == last):
            raise bad(
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
        raise bad("messages: at least one message with the user role is required")
    return walk.chat, walk.pieces, walk.documents


def _tool_use_unanswered(index: int, ids: list[str]) -> RequestError:
    return bad(
        f"messages.{index}: `tool_use` ids were found without `tool_result` blocks immediately "
        f"after: {', '.join(ids)}. Each `tool_use` block must have a corresponding "
        "`tool_result` block in the next message."
    )


def _text_block(block: dict[str, Any], at: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise bad(f"{at}.text: Field required")
    if not text:
        raise bad("messages: text content blocks must be non-empty")
    if not text.strip():
        raise bad("messages: text content blocks must contain non-whitespace text")
    return text


def _image_url(block: dict[str, Any], at: str) -> str:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "url":
        url = source.get("url") if isinstance(source, dict) else None
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise bad(f"{at}.source.url: Input should be a valid http(s) URL")
        return url
    if kind != "base64" or not isinstance(source, dict):
        raise bad(f"{at}.source.type: Input should be 'base64' or 'url'")
    media_type = source.get("media_type")
    if media_type not in IMAGE_TYPES:
        raise bad(
            f"{at}.source.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' "
            "or 'image/webp'"
        )
    data = source.get("data")
    if not isinstance(data, str) or not _b64(data):
        raise bad(f"{at}.source.base64.data: The image data is not valid base64")
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
        raise bad(f"{at}.title: Input should be a valid string")
    for name in ("context",):
        if block.get(name) is not None and not isinstance(block[name], str):
            raise bad(f"{at}.{name}: Input should be a valid string")
    citations = block.get("citations")
    if citations is not None and not (
        isinstance(citations, dict) and isinstance(citations.get("enabled", False), bool)
    ):
        raise bad(f"{at}.citations.enabled: Input should be a valid boolean")
    if not isinstance(source, dict):
        raise bad(f"{at}.source: Field required")
    if kind == "url":
        url = source.get("url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise bad(f"{at}.source.url: Input should be a valid http(s) URL")
        return DocumentRef("url", title, "", 0, url)
    if kind == "text":
        if source.get("media_type", "text/plain") != "text/plain":
            raise bad(f"{at}.source.media_type: Input should be 'text/plain'")
        data = source.get("data")
        if not isinstance(data, str):
            raise bad(f"{at}.source.data: Field required")
        return DocumentRef("text", title, data, 1)
    if kind == "base64":
        if source.get("media_type") != "application/pdf":
            raise bad(f"{at}.source.media_type: Input should be 'application/pdf'")
        data = source.get("data")
        raw = _b64(data) if isinstance(data, str) else b""
        if not raw:
            raise bad(f"{at}.source.base64.data: The PDF data is not valid base64")
        if not raw.lstrip().startswith(b"%PDF-"):
            raise bad(f"{at}.source.base64.data: The PDF specified was not valid.")
        found = pdf_text(raw)
        return DocumentRef("pdf", title, found.text, max(1, found.pages))
    raise bad(f"{at}.source.type: Input should be 'base64', 'text' or 'url'")


def _document_tokens(doc: DocumentRef) -> int:
    if doc.kind == "url":
        return PDF_PAGE_TOKENS + tokens_of(len(doc.url or "") + len(doc.title or ""))
    pages = doc.pages * PDF_PAGE_TOKENS if doc.kind == "pdf" else 0
    return pages + tokens_of(len(doc.text) + len(doc.title or ""))


def _tool_result(
    walk: _Conversation, block: dict[str, Any], at: str
) -> tuple[str, list[dict[str, Any]], int, str | None]:
    """A tool_result block's id, its content as chat-completions parts, its tokens, and the
    TTL of a cache breakpoint inside its content."""
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str):
        raise bad(f"{at}.tool_use_id: Field required")
    if call_id not in walk.pending:
        raise bad(
            f"{at}: unexpected `tool_use_id` found in `tool_result` blocks: {call_id}. Each "
            "`tool_result` block must have a corresponding `tool_use` block in the previous "
            "message."
        )
    walk.pending.remove(call_id)
    content = block.get("content", "")
    if isinstance(content, str):
        content = [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise bad(f"{at}.content: Input should be a valid string or list of blocks")
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
            tokens += tokens_of(len(text))
        elif kind == "image" and isinstance(inner, dict):
            parts.append({"type": "image_url", "image_url": {"url": _image_url(inner, where)}})
            tokens += IMAGE_TOKENS
        elif kind == "document" and isinstance(inner, dict):
            doc = _document(inner, where)
            parts.append({"type": "text", "text": doc.text or f"[{doc.label()}]"})
            tokens += _document_tokens(doc)
        else:
            raise bad(f"{where}.type: Input should be 'text', 'image' or 'document'")
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
            raise bad(f"{at}: Input should be a valid dictionary")
        inner_ttl = None
        if kind == "text":
            text = _text_block(block, at)
            texts.append(text)
            parts.append({"type": "text", "text": text})
            tokens = tokens_of(len(text))
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
            raise bad(
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
            raise bad(f"{at}: Input should be a valid dictionary")
        kinds.append(str(kind))
        if kind == "text":
            text = block.get("text")
            if not isinstance(text, str):
                raise bad(f"{at}.text: Field required")
            texts.append(text)
            tokens = tokens_of(len(text))
        elif kind == "tool_use":
            call_id, name, arguments = block.get("id"), block.get("name"), block.get("input")
            if not isinstance(call_id, str) or not call_id:
                raise bad(f"{at}.id: Field required")
            if not isinstance(name, str) or not name:
                raise bad(f"{at}.name: Field required")
            if not isinstance(arguments, dict):
                raise bad(f"{at}.input: Input should be a valid dictionary")
            if call_id in walk.pending:
                raise bad(f"messages: `tool_use` ids must be unique, found duplicate {call_id}")
            walk.pending.append(call_id)
            encoded = json.dumps(arguments, ensure_ascii=False)
            calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": encoded},
                }
            )
            tokens = tokens_of(len(name) + len(encoded))
        elif kind == "thinking":
            thinking, signature = block.get("thinking"), block.get("signature")
            if not isinstance(thinking, str):
                raise bad(f"{at}.thinking: Field required")
            if not isinstance(signature, str):
                raise bad(f"{at}.signature: Field required")
            if not walk.verify(thinking, signature):
                raise bad(f"{at}: Invalid `signature` in `thinking` block")
            tokens = tokens_of(len(thinking))
        elif kind == "redacted_thinking":
            data = block.get("data")
            if not isinstance(data, str):
                raise bad(f"{at}.data: Field required")
            tokens = tokens_of(len(data))
        else:
            raise bad(
                f"{at}.type: Input should be 'text', 'tool_use', 'thinking' or "
                "'redacted_thinking' in an assistant message"
            )
        walk.piece("assistant", block, tokens, at, j == 0)
    if walk.thinking and loop_turn and kinds[0] not in ("thinking", "redacted_thinking"):
        raise bad(
            f"{where}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
            f"`{kinds[0]}`. When `thinking` is enabled, a final `assistant` message must start "
            "with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` "
            "blocks). We recommend you include thinking blocks from previous turns. To avoid "
            "this requirement, disable `thinking`. Please consult our documentation at "
            f"{THINKING_DOCS}"
        )
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""
    walk.chat.append(message)
