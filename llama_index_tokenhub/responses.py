"""Pure conversion from TokenHub's wire replies to LlamaIndex responses.

A reply's message holds, in order, its thinking as ``ThinkingBlock``s (the text in ``content``,
the ``signature`` in ``additional_information``, as llama-index's Anthropic keeps them, so they go
back as they came), its text, then its tool calls. The tool calls appear twice, as
``ToolCallBlock``s and as OpenAI-shaped dicts in ``additional_kwargs["tool_calls"]`` (LlamaIndex's
streaming structured output reads the latter). Every final response carries the completion as a
dict in ``raw`` (with ``raw["usage"]`` in the OpenAI shape, the whole prompt in ``prompt_tokens``,
which ``TokenCountingHandler`` reads) and, in ``additional_kwargs``, ``prompt_tokens``,
``completion_tokens``, ``total_tokens``, Anthropic's ``cache_read_input_tokens`` and
``cache_creation_input_tokens``, and ``cost_usd`` priced with cache prices. A streamed chunk that
carries thinking has the new thinking text in ``additional_kwargs["thinking_delta"]`` (where
LlamaIndex's agents read it) and in its message's ``additional_kwargs`` (where llama-index's
Anthropic puts it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)
from llama_index.core.llms.llm import ToolSelection

from tokenhub_core._templates import filled
from tokenhub_core.catalog import price_usage
from tokenhub_core.errors import IncompleteToolCallError, complete_json_object
from tokenhub_core.stream import StreamPart, ToolCallRouter
from tokenhub_core.wire import ChatCompletion, ChatCompletionChunk, ToolCall, Usage

__all__ = [
    "ChunkConverter",
    "close_partial_json",
    "keep_first_tool_call",
    "parse_tool_arguments",
    "response_from_completion",
    "thinking_blocks",
    "tool_selections",
    "usage_kwargs",
]


# A JSON token: a string (its closing quote in group 1, absent while it streams in), punctuation, a
# number or literal, or whitespace.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*(")?|[{}\[\]:,]|[^\s{}\[\]:,"]+|\s+', re.DOTALL)
_PARTIAL_ESCAPE = re.compile(r"\\u[0-9a-fA-F]{0,3}$")


def close_partial_json(text: str) -> str | None:
    """Complete a JSON object cut off mid-stream; None when ``text`` is not the start of an object.

    Keeps every finished member and a string value cut short (so partial objects show text as it
    arrives); drops a member whose key, colon or number/literal is still incomplete. LlamaIndex's
    ``parse_partial_json`` turns a partial string value into null, hence this small completer.
    """
    out: list[str] = []
    frames: list[list[Any]] = []  # per open container: [closer, committed length, expecting key]
    end = len(text.rstrip())
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token.isspace():
            continue
        if not frames:
            if out or token != "{":
                return None
            out.append(token)
            frames.append(["}", 1, True])
            continue
        frame = frames[-1]
        if token in ("{", "["):
            out.append(token)
            frames.append(["}" if token == "{" else "]", len(out), token == "{"])
        elif token in ("}", "]"):
            out.append(token)
            frames.pop()
            if not frames:
                break
            frames[-1][1] = len(out)
        elif token == ":":
            out.append(token)
        elif token == ",":
            out.append(token)
            frame[2] = frame[0] == "}"
        elif token[0] == '"':
            closed = match.group(1) is not None
            if frame[2]:
                if not closed:
                    break
                out.append(token)
                frame[2] = False
            elif closed:
                out.append(token)
                frame[1] = len(out)
            else:
                out.append('"' + _PARTIAL_ESCAPE.sub("", token[1:]) + '"')
                frame[1] = len(out)
                break
        else:
            if match.end() == end:
                try:  # "tru" or "1." may still be growing
                    json.loads(token)
                except ValueError:
                    break
            out.append(token)
            frame[1] = len(out)
    while frames:
        closer, committed, _ = frames.pop()
        del out[committed:]
        out.append(closer)
        if frames:
            frames[-1][1] = len(out)
    return "".join(out)


def parse_tool_arguments(arguments: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """Tool arguments as a dict, tolerating a stream's partial JSON ({} when there are none)."""
    if isinstance(arguments, Mapping):
        return dict(arguments)
    if not arguments:
        return {}
    try:
        value = json.loads(arguments)
    except (ValueError, RecursionError):
        completed = close_partial_json(arguments)
        if completed is None:
            return {}
        try:
            value = json.loads(completed)
        except (ValueError, RecursionError):
            return {}
    return value if isinstance(value, dict) else {}


def usage_kwargs(usage: Usage | None, model: str, served: str | None = None) -> dict[str, Any]:
    """Token counts and USD cost of a usage, by the core's one pricing rule (`price_usage`, cache
    reads and writes at their own prices): the model ``served`` when the catalog knows it, else
    the ``model`` requested, else None. ``prompt_tokens`` is the whole prompt, cache included."""
    if usage is None:
        return {}
    prompt, completion = usage.prompt_tokens, usage.completion_tokens
    _, cost = price_usage(model, served, usage)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": usage.total_tokens or prompt + completion,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "cache_creation_input_tokens": usage.cache_creation_tokens,
        "cost_usd": None if cost is None else float(cost),
    }


def _thinking_block(item: Mapping[str, Any]) -> ThinkingBlock:
    if item.get("type") == "redacted_thinking":
        return ThinkingBlock(
            additional_information={"type": "redacted_thinking", "data": item.get("data") or ""}
        )
    return ThinkingBlock(
        content=item.get("thinking") or "",
        additional_information={"type": "thinking", "signature": item.get("signature") or ""},
    )


def thinking_blocks(items: list[dict[str, Any]] | None) -> list[ThinkingBlock]:
    """``ThinkingBlock``s for a reply's thinking parts, in order."""
    return [_thinking_block(item) for item in items or ()]


def _tool_call_block(call: ToolCall) -> ToolCallBlock:
    arguments = call.function.arguments
    parsed = complete_json_object(arguments)
    return ToolCallBlock(
        tool_call_id=call.id,
        tool_name=call.function.name,
        # Arguments that are not a JSON object are kept verbatim, so nothing the model said is lost.
        tool_kwargs=parsed if parsed is not None else arguments,
    )


def _wire_tool_call(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": call.type or "function",
        "function": {"name": call.function.name, "arguments": call.function.arguments},
    }


def response_from_completion(completion: ChatCompletion, *, model: str = "") -> ChatResponse:
    """A ``ChatResponse`` for a ``chat.completion``; ``model`` prices it if the reply names none."""
    choice = completion.choices[0] if completion.choices else None
    message = choice.message if choice is not None else None
    text = message.content if message is not None else None
    calls = (message.tool_calls if message is not None else None) or []
    blocks: list[Any] = thinking_blocks(message.thinking_blocks if message is not None else None)
    if text or not calls:
        blocks.append(TextBlock(text=text or ""))
    blocks.extend(_tool_call_block(call) for call in calls)
    message_kwargs = {"tool_calls": [_wire_tool_call(call) for call in calls]} if calls else {}
    extra: dict[str, Any] = usage_kwargs(completion.usage, model, completion.model or None)
    if choice is not None and choice.finish_reason is not None:
        extra["finish_reason"] = choice.finish_reason
    if completion.request_id is not None:
        extra["request_id"] = completion.request_id
    return ChatResponse(
        message=ChatMessage(
            role=MessageRole.ASSISTANT, blocks=blocks, additional_kwargs=message_kwargs
        ),
        raw=completion.model_dump(exclude_none=True),
        delta="",
        additional_kwargs=extra,
    )


class _CallView:
    __slots__ = ("arguments", "block", "id", "name", "wire")

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.arguments = ""
        self.wire: dict[str, Any] = {}
        self.block: ToolCallBlock | None = None


class ChunkConverter:
    """Turns one stream's chunks into LlamaIndex chunk responses; shared by sync and async streams.

    `add` gives, per chunk that carries text, thinking or a tool-call delta, a ``ChatResponse``
    whose ``message`` is cumulative and whose ``delta`` is the new text only (new thinking text is
    in ``additional_kwargs["thinking_delta"]``); thinking blocks and tool calls are rebuilt only
    when a delta of theirs arrives, and only the ones it touched. `finish` gives the final response
    from the stream's accumulated completion (the core's, so it is authoritative): the full message
    with parsed tool arguments, ``raw`` with usage, and the usage and cost in ``additional_kwargs``.
    Partial views key tool calls with the core's `ToolCallRouter`, the rule its accumulator uses.
    """

    def __init__(self, *, model: str = "") -> None:
        self._model = model
        self._text = ""
        self._calls: list[_CallView] = []
        self._router = ToolCallRouter()
        self._blocks: list[ToolCallBlock] = []
        self._wire: list[dict[str, Any]] = []
        self._thinking: list[dict[str, Any]] = []  # per thinking block: its parts so far
        self._thinking_blocks: list[ThinkingBlock] = []

    def add(self, part: StreamPart | ChatCompletionChunk) -> ChatResponse | None:
        """The response for one streamed part (or wire chunk), or None when it changes nothing
        a user sees. Its ``raw`` is what the wire carried: the chunk, or Claude's event."""
        if not isinstance(part, StreamPart):
            part = StreamPart.from_chunk(part)
        delta_text = part.content or ""
        thinking_text = None
        if part.thinking:
            thinking_text = "".join([self._add_thinking_delta(item) for item in part.thinking])
        if part.tool_calls:
            for tool_delta in part.tool_calls:
                self._add_tool_delta(
                    tool_delta.index, tool_delta.id or "", tool_delta.name, tool_delta.arguments
                )
            self._blocks = [c.block for c in self._calls if c.block is not None]
            self._wire = [c.wire for c in self._calls]
        elif not delta_text and thinking_text is None:
            return None
        if delta_text:
            self._text += delta_text
        return self._response(delta_text, thinking_text, part.raw)

    def _add_thinking_delta(self, item: Mapping[str, Any]) -> str:
        """Grow thinking block ``item["index"]`` by one delta; the new thinking text."""
        index = item.get("index")
        position = (
            index if isinstance(index, int) and index >= 0 else max(len(self._thinking) - 1, 0)
        )
        while position >= len(self._thinking):
            self._thinking.append({"type": "thinking", "thinking": "", "signature": ""})
            self._thinking_blocks.append(ThinkingBlock(content=""))
        part = self._thinking[position]
        if item.get("type"):
            part["type"] = item["type"]
        fragment = item.get("thinking") or ""
        part["thinking"] += fragment
        if item.get("signature"):
            part["signature"] += item["signature"]
        if item.get("data"):
            part["data"] = part.get("data", "") + item["data"]
        # A new block object: responses already yielded keep what they showed.
        self._thinking_blocks[position] = _thinking_block(part)
        return fragment

    def _add_tool_delta(
        self, index: int | None, call_id: str, name: str | None, arguments: str | None
    ) -> None:
        position, new = self._router.route(index, call_id)
        if new:
            self._calls.append(_CallView())
        call = self._calls[position]
        call.id = self._router.ids[position]
        if name and not call.name:
            call.name = name
        if arguments:
            call.arguments += arguments
        call.wire = {
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": call.arguments},
        }
        call.block = ToolCallBlock(
            tool_call_id=call.id or None, tool_name=call.name, tool_kwargs=call.arguments
        )

    def _response(self, delta_text: str, thinking_delta: str | None, raw: Any) -> ChatResponse:
        if thinking_delta is None and not (self._thinking_blocks or self._blocks or self._wire):
            return text_response(self._text, delta_text, raw)  # the stream's bulk: text so far
        blocks: list[Any] = list(self._thinking_blocks)
        if self._text or not self._blocks:
            blocks.append(TextBlock(text=self._text))
        blocks.extend(self._blocks)
        message_kwargs: dict[str, Any] = {"tool_calls": list(self._wire)} if self._wire else {}
        extra: dict[str, Any] = {}
        if thinking_delta is not None:
            message_kwargs["thinking_delta"] = extra["thinking_delta"] = thinking_delta
        return ChatResponse(
            message=ChatMessage(
                role=MessageRole.ASSISTANT, blocks=blocks, additional_kwargs=message_kwargs
            ),
            delta=delta_text,
            raw=raw,
            additional_kwargs=extra,
        )

    def finish(self, completion: ChatCompletion) -> ChatResponse:
        """The final response, from the stream's accumulated completion."""
        return response_from_completion(completion, model=self._model)


def text_response(text: str, delta: str, raw: Any) -> ChatResponse:
    """The streamed response of a reply that so far holds only ``text``: as `ChatResponse`
    and `ChatMessage` would validate it, without validation (see `tokenhub_core._templates`)."""
    message = filled(_TEXT_MESSAGE, blocks=[filled(_EMPTY_TEXT, text=text)], additional_kwargs={})
    return filled(_TEXT_RESPONSE, message=message, delta=delta, raw=raw, additional_kwargs={})


_EMPTY_TEXT = TextBlock(text="")
_TEXT_MESSAGE = ChatMessage(role=MessageRole.ASSISTANT, blocks=[_EMPTY_TEXT], additional_kwargs={})
_TEXT_RESPONSE = ChatResponse(message=_TEXT_MESSAGE, delta="", raw=None, additional_kwargs={})


def keep_first_tool_call(response: ChatResponse) -> ChatResponse:
    """A copy of ``response`` keeping only the first tool call; the input is unchanged."""
    message = response.message
    calls = message.additional_kwargs.get("tool_calls") or []
    call_blocks = [b for b in message.blocks if isinstance(b, ToolCallBlock)]
    if len(calls) <= 1 and len(call_blocks) <= 1:
        return response
    first = call_blocks[0] if call_blocks else None
    blocks = [b for b in message.blocks if not isinstance(b, ToolCallBlock) or b is first]
    kwargs = {**message.additional_kwargs, "tool_calls": list(calls[:1])}
    new_message = message.model_copy(update={"blocks": blocks, "additional_kwargs": kwargs})
    return response.model_copy(update={"message": new_message})


def _selection(
    call_id: str, name: str, arguments: Any, final: bool, finish_reason: str | None
) -> ToolSelection:
    if final and not isinstance(arguments, Mapping):
        text = arguments if isinstance(arguments, str) else ""
        if complete_json_object(text) is None:
            raise IncompleteToolCallError(name, text, finish_reason)
    return ToolSelection(
        tool_id=call_id, tool_name=name, tool_kwargs=parse_tool_arguments(arguments)
    )


def tool_selections(
    message: ChatMessage,
    *,
    error_on_no_tool_call: bool = True,
    final: bool = False,
    finish_reason: str | None = None,
) -> list[ToolSelection]:
    """The tool calls in a message, from its ``ToolCallBlock``s or else its ``additional_kwargs``.

    Arguments still streaming in are parsed as far as they go. In a ``final`` response (the
    whole reply) arguments must be one complete JSON object.

    Raises:
        IncompleteToolCallError: a final response's call whose arguments are not complete JSON
            (cut off by ``max_tokens`` when ``finish_reason`` is ``"length"``).
    """
    selections: list[ToolSelection] = []
    blocks = [block for block in message.blocks if isinstance(block, ToolCallBlock)]
    if blocks:
        for block in blocks:
            selections.append(
                _selection(
                    block.tool_call_id or "",
                    block.tool_name,
                    block.tool_kwargs,
                    final,
                    finish_reason,
                )
            )
    else:
        for call in message.additional_kwargs.get("tool_calls") or ():
            if not isinstance(call, Mapping):
                call = call.model_dump() if hasattr(call, "model_dump") else {}
            function = call.get("function") or {}
            selections.append(
                _selection(
                    call.get("id") or "",
                    function.get("name") or "",
                    function.get("arguments"),
                    final,
                    finish_reason,
                )
            )
    if not selections and error_on_no_tool_call:
        raise ValueError("expected at least one tool call in the response, got none")
    return selections
