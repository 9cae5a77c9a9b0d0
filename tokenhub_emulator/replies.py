"""Deterministic answers: text, tool calls and JSON, with a stable token estimate.

Pure: `answer` maps a validated `ChatRequest` to a `Reply`; `scripted_reply` turns a reply queued
with ``queue_reply`` into one. The same request always gets the same content. The rules are a
contract, written down in the README ("How the emulator answers"); `text_answer` applies them.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tokenhub_emulator.checks import ChatRequest, ImageRef, ToolSpec, image_ref
from tokenhub_emulator.formats import (
    condensed_question,
    focus_section,
    rag_answer,
    react_step,
    schema_program,
    selection,
)
from tokenhub_emulator.schema_values import PromptValues, generate, quoted_strings

__all__ = [
    "FINISH_REASONS",
    "IMAGE_TOKENS",
    "Reply",
    "ReplyToolCall",
    "ScriptedReply",
    "answer",
    "count_tokens",
    "prompt_tokens",
    "scripted_reply",
    "token_pieces",
]

IMAGE_TOKENS = 800  # a fixed charge per image, like a ~600k-pixel picture on Claude
_QUOTE_CHARS = 600
_RESULT_CHARS = 300
# One "token": a run of up to 6 word characters or one other character, with the whitespace before.
_PIECE = re.compile(r"\s*(?:\w{1,6}|[^\w\s])|\s+")
_IDENTIFIER = re.compile(r"^[A-Za-z_][\w-]{0,40}$")
# Words too generic to tell tools apart: `get_weather` is meant by "weather", not by "get".
_GENERIC_WORDS = (
    "get set fetch find lookup look search query run call make create update delete list "
    "read write compute calculate current info data value result tool tools function func "
    "api the for from with and of to by"
)
_GENERIC = frozenset(_GENERIC_WORDS.split())


@dataclass(frozen=True)
class ReplyToolCall:
    """One tool call in a reply; ``arguments`` is the JSON text sent on the wire."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Reply:
    """What the emulator answers to one call, streamed or not."""

    model: str
    content: str | None
    tool_calls: tuple[ReplyToolCall, ...]
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int | None = None

    def usage(self) -> dict[str, Any]:
        """The ``usage`` object of the response."""
        usage: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }
        if self.cached_tokens is not None:
            usage["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        return usage


@dataclass(frozen=True)
class ScriptedReply:
    """An exact reply queued with ``queue_reply``."""

    text: str | None = None
    tool_calls: tuple[dict[str, Any], ...] = ()
    usage: dict[str, int] | None = None
    finish_reason: str | None = None
    model: str | None = None
    content: tuple[dict[str, Any], ...] | None = None  # native content blocks
    stop_reason: str | None = None  # native
    thinking: str | None = None  # a thinking block's text (native replies only)


def token_pieces(text: str) -> list[str]:
    """The emulator's tokens of ``text`` (also its stream deltas); they join back to it."""
    return _PIECE.findall(text)


def count_tokens(text: str) -> int:
    """The emulator's token count of a completion text."""
    return len(_PIECE.findall(text))


def text_of(content: Any) -> str:
    """The text of a message content (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            p["text"] for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def images_of(content: Any) -> list[ImageRef]:
    """The images in a (validated) message content."""
    if not isinstance(content, list):
        return []
    return [
        image_ref(p["image_url"]["url"])
        for p in content
        if isinstance(p, dict) and p.get("type") == "image_url"
    ]


def prompt_tokens(request: ChatRequest) -> int:
    """A stable estimate: about four characters a token, plus a fixed charge per image."""
    chars = 0
    count = 3
    for message in request.messages:
        count += 4
        content = message.get("content")
        chars += len(text_of(content)) + len(message.get("name") or "")
        if isinstance(content, list):
            count += IMAGE_TOKENS * sum(
                1 for p in content if isinstance(p, dict) and p.get("type") == "image_url"
            )
        for call in message.get("tool_calls") or ():
            function = call["function"]
            chars += len(function["name"]) + len(function["arguments"])
    for tool in request.tools:
        count += 8
        chars += len(tool.name) + len(tool.description) + len(json.dumps(tool.parameters))
    if request.json_schema is not None:
        chars += len(json.dumps(request.json_schema))
    return count + (chars + 3) // 4


def _completion_tokens(content: str | None, calls: Sequence[ReplyToolCall]) -> int:
    tokens = count_tokens(content) if content else 0
    return tokens + sum(count_tokens(c.name) + count_tokens(c.arguments) for c in calls)


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > limit // 2 else limit] + "…"


def _last_user(messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((m for m in reversed(messages) if m["role"] == "user"), None)


def _tool_results(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(tool name, result text) for the tool messages that end the conversation."""
    tail: list[dict[str, Any]] = []
    for message in reversed(messages):
        if message["role"] != "tool":
            break
        tail.append(message)
    tail.reverse()
    names: dict[str, str] = {}
    for message in messages:
        for call in message.get("tool_calls") or ():
            names[call["id"]] = call["function"]["name"]
    results = []
    for message in tail:
        content = message["content"]
        text = text_of(content)
        for image in images_of(content):
            text += f" [image: {_image_label(image)}]"
        results.append((names.get(message["tool_call_id"], "tool"), _clip(text, _RESULT_CHARS)))
    return results


def _image_label(image: ImageRef) -> str:
    return "URL" if image.kind == "url" else f"base64 {image.media_type}"


def _image_note(images: list[ImageRef]) -> str:
    counts = Counter(_image_label(i) for i in images)
    kinds = ", ".join(f"{n} {label}" for label, n in counts.items())
    return f" [{len(images)} image{'s' if len(images) != 1 else ''}: {kinds}]"


def default_text(request: ChatRequest) -> str:
    """The plain-text answer: it quotes the last user message, or the tool results."""
    results = _tool_results(request.messages)
    if results:
        quoted = "; ".join(f"{name} returned {text}" for name, text in results)
        return f"[emulator] Tool results: {quoted}"
    user = _last_user(request.messages)
    content = user["content"] if user is not None else None
    said = _clip(text_of(content), _QUOTE_CHARS) or "(no text)"
    images = images_of(content)
    return f"[emulator] You said: {said}" + (_image_note(images) if images else "")


def _mention(text: str, name: str) -> int | None:
    """Where the prompt names a tool: its name, spaced words, or all its distinctive words."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    words = [w for w in re.split(r"[_\-\s]+", spaced.lower()) if w]
    positions = [
        m.start()
        for form in {name.lower(), " ".join(words)}
        if (m := re.search(rf"(?<!\w){re.escape(form)}(?!\w)", text))
    ]
    if positions:
        return min(positions)
    distinctive = [w for w in words if len(w) > 2 and w not in _GENERIC]
    if len(words) < 2 or not distinctive:
        return None
    found = [re.search(rf"(?<!\w){re.escape(w)}(?:e?s)?(?!\w)", text) for w in distinctive]
    if all(found):
        return min(m.start() for m in found if m is not None)
    return None


def _tools_to_call(request: ChatRequest, prompt: str) -> list[tuple[ToolSpec, str]]:
    """The tools this turn calls, each with the part of the prompt that concerns it."""
    if not request.tools or request.tool_choice == "none":
        return []
    lowered = prompt.lower()
    found = sorted(
        (pos, n)
        for n, tool in enumerate(request.tools)
        if (pos := _mention(lowered, tool.name)) is not None
    )
    segments = {
        request.tools[n].name: prompt[pos : found[k + 1][0] if k + 1 < len(found) else len(prompt)]
        for k, (pos, n) in enumerate(found)
    }
    if request.tool_choice == "function":
        name = request.forced_tool
        tool = next(t for t in request.tools if t.name == name)
        return [(tool, segments.get(tool.name, prompt))]
    if request.tool_choice == "auto" and request.messages[-1]["role"] != "user":
        return []
    chosen = [(request.tools[n], segments[request.tools[n].name]) for _, n in found]
    if not chosen and request.tool_choice == "required":
        chosen = [(request.tools[0], prompt)]
    return chosen if request.parallel_tool_calls else chosen[:1]


# fmt: off
_NUMERIC_NAMES = frozenset((
    "count", "age", "number", "price", "total", "amount", "quantity", "year", "score", "rating",
    "size", "length", "width", "height", "weight", "percent", "percentage", "rank", "index", "id",
    "num", "population", "distance", "duration",
))
# fmt: on
_TYPE_WORDS = {
    "integer": "integer",
    "int": "integer",
    "number": "number",
    "float": "number",
    "boolean": "boolean",
    "bool": "boolean",
    "string": "string",
    "str": "string",
    "list": "array",
    "array": "array",
}


def _key_schema(key: str, prompt: str) -> dict[str, Any]:
    """The type of a JSON-mode key: as the prompt states it next to the key, else by its name."""
    hint = re.search(
        rf"{re.escape(key)}[\"'`]?\s*(?:\(|:|-|as|is|should be|must be)?\s*(?:an?\s+)?"
        rf"({'|'.join(_TYPE_WORDS)})\b",
        prompt,
        re.IGNORECASE,
    )
    if hint:
        kind = _TYPE_WORDS[hint.group(1).lower()]
    else:
        words = set(re.split(r"[_\W]+", key.lower()))
        if key.lower().startswith(("is_", "has_", "can_")):
            kind = "boolean"
        elif words & _NUMERIC_NAMES:
            kind = "number"
        else:
            kind = "string"
    return {"type": kind, "items": {"type": "string"}} if kind == "array" else {"type": kind}


def _json_content(request: ChatRequest, prompt: str) -> str:
    if request.response_format == "json_schema":
        schema = request.json_schema or {}
        value = generate(schema, values=PromptValues(focus_section(prompt), prompt))
        return json.dumps(value, ensure_ascii=False)
    program = schema_program(request.messages, text_of)
    if program is not None:
        return program
    keys = list(dict.fromkeys(k for k in quoted_strings(prompt) if _IDENTIFIER.match(k)))
    if not keys:
        return json.dumps({"answer": default_text(request)}, ensure_ascii=False)
    schema = {
        "type": "object",
        "properties": {k: _key_schema(k, prompt) for k in keys},
        "required": keys,
    }
    values = PromptValues(focus_section(prompt), prompt, exclude=keys)
    return json.dumps(generate(schema, values=values), ensure_ascii=False)


def _pick_tool(names: list[str], prompt: str) -> str | None:
    lowered = prompt.lower()
    found = sorted((pos, name) for name in names if (pos := _mention(lowered, name)) is not None)
    return found[0][1] if found else None


def text_answer(request: ChatRequest) -> str:
    """The text reply: the first of these rules that applies to the conversation.

    Tool results ending the conversation are quoted; a ReAct prompt gets its next step; a
    selector prompt its choice; a prompt carrying a JSON schema a JSON object; a "standalone
    question" prompt the follow-up question; context plus a question the best context sentences;
    anything else a quote of the last user message.
    """
    messages = request.messages
    if _tool_results(messages):
        return default_text(request)
    for rule in (selection, schema_program, condensed_question, rag_answer):
        found = rule(messages, text_of)
        if found is not None:
            return found
    return react_step(messages, text_of, _pick_tool) or default_text(request)


def _cut(text: str, stop: Sequence[str], max_tokens: int) -> tuple[str, str]:
    """Apply stop sequences and ``max_tokens``: (content, finish_reason)."""
    finish = "stop"
    hits = [i for s in stop if (i := text.find(s)) >= 0]
    if hits:
        text = text[: min(hits)]
    pieces = _PIECE.findall(text)
    if len(pieces) > max_tokens:
        return "".join(pieces[:max_tokens]), "length"
    return text, finish


def answer(request: ChatRequest, call_id_prefix: str) -> Reply:
    """The deterministic reply to ``request``."""
    user = _last_user(request.messages)
    prompt = text_of(user["content"]) if user is not None else ""
    calls_for = _tools_to_call(request, prompt)
    if calls_for:
        names = [t.name for t in request.tools]
        exclude = names + [n.replace("_", " ") for n in names]
        focused = focus_section(prompt)  # "Extract the Duskwine variety from: <document>"
        calls = tuple(
            ReplyToolCall(
                id=f"{call_id_prefix}{i}",
                name=tool.name,
                arguments=json.dumps(
                    generate(
                        tool.parameters,
                        values=PromptValues(
                            focused if focused != prompt else segment, prompt, exclude=exclude
                        ),
                    ),
                    ensure_ascii=False,
                ),
            )
            for i, (tool, segment) in enumerate(calls_for)
        )
        return Reply(
            model=request.model,
            content=None,
            tool_calls=calls,
            finish_reason="tool_calls",
            prompt_tokens=prompt_tokens(request),
            completion_tokens=_completion_tokens(None, calls),
        )
    if request.response_format == "text":
        text = text_answer(request)
    else:
        results = " ".join(text for _, text in _tool_results(request.messages))
        text = _json_content(request, f"{results}\n{prompt}" if results else prompt)
    content, finish = _cut(text, request.stop, request.max_tokens)
    return Reply(
        model=request.model,
        content=content,
        tool_calls=(),
        finish_reason=finish,
        prompt_tokens=prompt_tokens(request),
        completion_tokens=_completion_tokens(content, ()),
    )


def scripted_reply(request: ChatRequest, scripted: ScriptedReply, call_id_prefix: str) -> Reply:
    """The exact reply queued by a test; usage numbers not given are estimated.

    A reply queued in the native shape (``content`` blocks, ``stop_reason``, native usage keys)
    is seen here as its chat-completions equivalent: text blocks joined, ``tool_use`` blocks as
    tool calls, thinking left out.
    """
    text, tool_calls = scripted.text, scripted.tool_calls
    if scripted.content is not None:
        texts = [b["text"] for b in scripted.content if b.get("type") == "text"]
        text = "".join(texts) if texts else None
        tool_calls = tuple(
            {"name": b["name"], "arguments": b.get("input") or {}, "id": b.get("id")}
            for b in scripted.content
            if b.get("type") == "tool_use"
        )
    calls = tuple(
        ReplyToolCall(
            id=str(call.get("id") or f"{call_id_prefix}{i}"),
            name=str(call["name"]),
            arguments=(
                call["arguments"]
                if isinstance(call.get("arguments"), str)
                else json.dumps(call.get("arguments") or {}, ensure_ascii=False)
            ),
        )
        for i, call in enumerate(tool_calls)
    )
    content = text if text is not None or calls else ""
    usage = _chat_usage(scripted.usage or {})
    finish = scripted.finish_reason
    if finish is None and scripted.stop_reason is not None:
        finish = FINISH_REASONS.get(scripted.stop_reason, scripted.stop_reason)
    return Reply(
        model=scripted.model or request.model,
        content=content,
        tool_calls=calls,
        finish_reason=finish or ("tool_calls" if calls else "stop"),
        prompt_tokens=int(usage.get("prompt_tokens", prompt_tokens(request))),
        completion_tokens=int(usage.get("completion_tokens", _completion_tokens(content, calls))),
        cached_tokens=int(usage["cached_tokens"]) if "cached_tokens" in usage else None,
    )


# Claude's stop reasons as chat-completions finish reasons.
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "model_context_window_exceeded": "length",
}


def _chat_usage(usage: dict[str, int]) -> dict[str, int]:
    """Scripted usage with native keys (``input_tokens``...) read as chat-completions ones."""
    native = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    out = dict(usage)
    if "prompt_tokens" not in out and any(k in usage for k in native):
        out["prompt_tokens"] = sum(usage.get(k, 0) for k in native)
    if "cached_tokens" not in out and "cache_read_input_tokens" in usage:
        out["cached_tokens"] = usage["cache_read_input_tokens"]
    if "completion_tokens" not in out and "output_tokens" in usage:
        out["completion_tokens"] = usage["output_tokens"]
    return out
