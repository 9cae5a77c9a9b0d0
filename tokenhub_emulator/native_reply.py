"""A reply in Claude's native shape: content blocks, stop reason and usage; its body and events.

Pure: `native_reply` turns the engine's `Reply` (or a queued one) into a `NativeReply`, adding
the thinking block and applying ``max_tokens`` (thinking included) and stop sequences;
`message_body` and `message_events` put it on the wire as Claude does (one JSON body, or the
``message_start`` ... ``message_stop`` Server-Sent Events).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any

from tokenhub_emulator.caching import CacheUsage
from tokenhub_emulator.native import MessagesRequest
from tokenhub_emulator.replies import Reply, ScriptedReply, count_tokens, token_pieces
from tokenhub_emulator.thinking import Signer, thinking_text

__all__ = [
    "STOP_REASONS",
    "NativeReply",
    "message_body",
    "message_events",
    "native_error_body",
    "native_error_event",
    "native_reply",
]

# Chat-completions finish reasons as Claude's stop reasons.
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_ARGUMENT_PIECE_CHARS = 8
_USAGE_KEYS = (
    "input_tokens",
    "output_tokens",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)


@dataclass(frozen=True)
class NativeReply:
    """What the emulator answers to one Messages call, streamed or not."""

    id: str
    model: str
    content: tuple[dict[str, Any], ...]
    stop_reason: str
    stop_sequence: str | None
    cache: CacheUsage
    output_tokens: int
    thinking_tokens: int = 0

    def usage(self) -> dict[str, Any]:
        """The native ``usage`` object."""
        usage: dict[str, Any] = {
            **self.cache.native(),
            "output_tokens": self.output_tokens,
            "service_tier": "standard",
        }
        if self.thinking_tokens:
            usage["output_tokens_details"] = {"thinking_tokens": self.thinking_tokens}
        return usage


def _cut(text: str, stop: Sequence[str], max_tokens: int) -> tuple[str, str, str | None]:
    """Stop sequences, then ``max_tokens``: (text, stop_reason, stop_sequence)."""
    hits = sorted((i, s) for s in stop if (i := text.find(s)) >= 0)
    reason, sequence = "end_turn", None
    if hits:
        text, reason, sequence = text[: hits[0][0]], "stop_sequence", hits[0][1]
    pieces = token_pieces(text)
    if len(pieces) > max_tokens:
        return "".join(pieces[: max(0, max_tokens)]), "max_tokens", None
    return text, reason, sequence


def _thinking_block(text: str, signer: Signer, omitted: bool) -> dict[str, Any]:
    shown = "" if omitted else text
    return {"type": "thinking", "thinking": shown, "signature": signer.sign(shown)}


def _tool_use(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    try:
        value: Any = json.loads(arguments)
    except ValueError:
        value = arguments  # a queued invalid argument text is sent as is
    return {"type": "tool_use", "id": call_id, "name": name, "input": value}


def native_reply(
    request: MessagesRequest,
    reply: Reply,
    cache: CacheUsage,
    signer: Signer,
    *,
    message_id: str,
    scripted: ScriptedReply | None = None,
) -> NativeReply:
    """The native reply: the engine's ``reply`` (or the queued ``scripted`` one) as blocks."""
    if scripted is not None:
        return _scripted(request, reply, cache, signer, message_id, scripted)
    blocks: list[dict[str, Any]] = []
    thinking_tokens = 0
    config = request.thinking
    if config is not None:
        thought = thinking_text(request.chat, reply, config.budget_tokens)
        thinking_tokens = count_tokens(thought)
        blocks.append(_thinking_block(thought, signer, config.display == "omitted"))
    reason, sequence = "end_turn", None
    output = thinking_tokens
    if reply.tool_calls:
        blocks.extend(_tool_use(c.id, c.name, c.arguments) for c in reply.tool_calls)
        reason = "tool_use"
        output += reply.completion_tokens
    else:
        text = reply.content or ""
        if request.documents and request.chat.response_format == "text":
            labels = "; ".join(d.label() for d in request.documents)
            count = len(request.documents)
            text += f" [{count} document{'s' if count != 1 else ''}: {labels}]"
        text, reason, sequence = _cut(
            text, request.stop_sequences, request.max_tokens - thinking_tokens
        )
        if text:
            blocks.append({"type": "text", "text": text})
        output += count_tokens(text)
    return NativeReply(
        id=message_id,
        model=request.model,
        content=tuple(blocks),
        stop_reason=reason,
        stop_sequence=sequence,
        cache=cache,
        output_tokens=output,
        thinking_tokens=thinking_tokens,
    )


def _scripted(
    request: MessagesRequest,
    reply: Reply,
    cache: CacheUsage,
    signer: Signer,
    message_id: str,
    scripted: ScriptedReply,
) -> NativeReply:
    blocks: list[dict[str, Any]] = []
    if scripted.thinking is not None:
        blocks.append(_thinking_block(scripted.thinking, signer, omitted=False))
    if scripted.content is not None:
        for i, block in enumerate(scripted.content):
            block = dict(block)
            kind = block.get("type")
            if kind == "thinking" and "signature" not in block:
                block["signature"] = signer.sign(str(block.get("thinking", "")))
            elif kind == "tool_use":
                block.setdefault("id", f"{message_id.replace('msg_', 'toolu_')}_{i}")
                block.setdefault("input", {})
            blocks.append(block)
    else:
        if reply.content:
            blocks.append({"type": "text", "text": reply.content})
        blocks.extend(_tool_use(c.id, c.name, c.arguments) for c in reply.tool_calls)
    thinking_tokens = sum(
        count_tokens(str(b.get("thinking", ""))) for b in blocks if b.get("type") == "thinking"
    )
    usage = scripted.usage or {}
    output = usage.get("output_tokens", usage.get("completion_tokens"))
    if output is None:
        output = thinking_tokens + reply.completion_tokens
    if any(k in usage for k in _USAGE_KEYS if k not in ("output_tokens", "completion_tokens")):
        read = usage.get("cache_read_input_tokens", usage.get("cached_tokens", 0))
        write = usage.get("cache_creation_input_tokens", 0)
        if "input_tokens" in usage:
            uncached = usage["input_tokens"]
        elif "prompt_tokens" in usage:
            uncached = max(0, usage["prompt_tokens"] - read - write)
        else:
            uncached = cache.input_tokens
        cache = CacheUsage(uncached, read, write, 0)
    reason = scripted.stop_reason or STOP_REASONS.get(reply.finish_reason, reply.finish_reason)
    return NativeReply(
        id=message_id,
        model=scripted.model or request.model,
        content=tuple(blocks),
        stop_reason=reason,
        stop_sequence=None,
        cache=cache,
        output_tokens=int(output),
        thinking_tokens=thinking_tokens,
    )


def message_body(reply: NativeReply) -> bytes:
    """The JSON body of a non-streamed ``message``."""
    body = {
        "id": reply.id,
        "type": "message",
        "role": "assistant",
        "model": reply.model,
        "content": list(reply.content),
        "stop_reason": reply.stop_reason,
        "stop_sequence": reply.stop_sequence,
        "usage": reply.usage(),
    }
    return _COMPACT.encode(body).encode()


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {_COMPACT.encode(data)}\n\n"


def _deltas(index: int, kind: str, field: str, pieces: Sequence[str]) -> list[str]:
    """``content_block_delta`` events, spliced: only each piece's text is escaped."""
    head = (
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
        f'{index},"delta":{{"type":"{kind}","{field}":'
    )
    return [f"{head}{encode_basestring(piece)}}}}}\n\n" for piece in pieces]


def message_events(reply: NativeReply) -> list[str]:
    """Every SSE event of the streamed reply, as Claude sends them, ``message_stop`` last."""
    usage = reply.usage()
    start_usage = {**usage, "output_tokens": 1}
    start_usage.pop("output_tokens_details", None)
    message: dict[str, Any] = {
        "id": reply.id,
        "type": "message",
        "role": "assistant",
        "model": reply.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": start_usage,
    }
    events = [_event("message_start", {"type": "message_start", "message": message})]
    for index, block in enumerate(reply.content):
        kind = block.get("type")
        if kind == "text":
            start: dict[str, Any] = {"type": "text", "text": ""}
        elif kind == "thinking":
            start = {"type": "thinking", "thinking": "", "signature": ""}
        elif kind == "tool_use":
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        else:
            start = block
        events.append(
            _event(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": start},
            )
        )
        if index == 0:
            events.append(_event("ping", {"type": "ping"}))
        if kind == "text":
            events += _deltas(index, "text_delta", "text", token_pieces(str(block["text"])))
        elif kind == "thinking":
            thought = token_pieces(str(block.get("thinking", "")))
            events += _deltas(index, "thinking_delta", "thinking", thought)
            signature = [str(block.get("signature", ""))]
            events += _deltas(index, "signature_delta", "signature", signature)
        elif kind == "tool_use":
            value = block.get("input")
            arguments = value if isinstance(value, str) else _COMPACT.encode(value)
            step = _ARGUMENT_PIECE_CHARS
            fragments = [""] + [arguments[i : i + step] for i in range(0, len(arguments), step)]
            events += _deltas(index, "input_json_delta", "partial_json", fragments)
        events.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
    final_usage = {k: v for k, v in usage.items() if k not in ("cache_creation", "service_tier")}
    events.append(
        _event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": reply.stop_reason, "stop_sequence": reply.stop_sequence},
                "usage": final_usage,
            },
        )
    )
    events.append(_event("message_stop", {"type": "message_stop"}))
    return events


def native_error_body(message: str, type: str, request_id: str) -> bytes:
    """Claude's error body: ``{"type": "error", "error": {"type", "message"}, "request_id"}``."""
    body = {"type": "error", "error": {"type": type, "message": message}, "request_id": request_id}
    return json.dumps(body, ensure_ascii=False).encode()


def native_error_event(message: str, type: str) -> str:
    """An ``event: error`` inside a stream, as Claude sends one (e.g. ``overloaded_error``)."""
    return _event("error", {"type": "error", "error": {"type": type, "message": message}})
