"""Stream state as a reducer: ``chat.completion.chunk``s in, one ``chat.completion`` out.

`ChunkAccumulator` is pure (no I/O) and shared by the sync and async stream loops and both
adapters. Each `ChunkAccumulator.add` costs O(size of the chunk): text and argument fragments are
kept in lists and joined only by `ChunkAccumulator.completion`. `completion_to_chunks` goes the
other way, for a ``stream=true`` request that the server answered with a plain JSON body.
"""

from __future__ import annotations

from typing import Any

from tokenhub_core.wire import (
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
    ChunkChoice,
    FunctionCall,
    Message,
    ToolCall,
    Usage,
)

__all__ = [
    "ChunkAccumulator",
    "StreamPart",
    "ToolCallPart",
    "ToolCallRouter",
    "completion_to_chunks",
]


class ToolCallPart:
    """One streamed tool-call fragment: ``ChoiceDeltaToolCall``'s fields, flat."""

    __slots__ = ("arguments", "id", "index", "name", "type")

    def __init__(
        self,
        index: int | None,
        id: str | None = None,
        name: str | None = None,
        arguments: str | None = None,
        type: str | None = None,
    ) -> None:
        self.index = index
        self.id = id
        self.name = name
        self.arguments = arguments
        self.type = type

    def wire(self) -> dict[str, Any]:
        """The fragment as a ``chat.completion.chunk`` carries it."""
        fragment: dict[str, Any] = {"index": self.index}
        if self.id is not None:
            fragment["id"] = self.id
        if self.type is not None:
            fragment["type"] = self.type
        function: dict[str, Any] = {}
        if self.name is not None:
            function["name"] = self.name
        if self.arguments is not None:
            function["arguments"] = self.arguments
        if function:
            fragment["function"] = function
        return fragment


class StreamPart:
    """One streamed delta of choice 0, whichever protocol carried it: what the accumulator and
    the adapters read.

    A few attribute writes instead of a ``ChatCompletionChunk``'s three pydantic models: on
    Claude's protocol, where each event would otherwise be rebuilt as a chunk, that was the
    largest cost per streamed token. The chunk is built only when asked for (`chunk`: a core
    stream iterated directly); a part made from a ``chat.completion.chunk`` keeps that chunk.
    ``raw`` is what the wire carried: the chunk, or Claude's event as a dict. ``has_choice`` is
    False for a chunk without choice 0 (the usage-only chunk).
    """

    # Class-level defaults, no __slots__: a part sets only what it carries (a text delta: four
    # attributes), which costs a third of filling every slot.
    role: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCallPart] | None = None
    thinking: list[dict[str, Any]] | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    created: int = 0
    system_fingerprint: str | None = None
    has_choice: bool = True
    text_only: bool = False  # nothing but a text fragment, after the stream's first part
    _chunk: ChatCompletionChunk | None = None

    def __init__(self, id: str, model: str, raw: Any, content: str | None = None) -> None:
        self.id = id
        self.model = model
        self.raw = raw
        self.content = content

    @classmethod
    def from_chunk(cls, chunk: ChatCompletionChunk) -> StreamPart:
        """The part for a ``chat.completion.chunk`` (its choice 0; other choices are ignored)."""
        part = cls(chunk.id, chunk.model, chunk)
        part._chunk = chunk
        part.usage = chunk.usage
        part.created = chunk.created
        part.system_fingerprint = chunk.system_fingerprint
        choice = next((c for c in chunk.choices if c.index == 0), None)
        if choice is None:
            part.has_choice = False
            return part
        delta = choice.delta
        part.role = delta.role
        part.content = delta.content
        part.refusal = delta.refusal
        part.thinking = delta.thinking_blocks
        part.finish_reason = choice.finish_reason
        if delta.tool_calls:
            part.tool_calls = [
                ToolCallPart(
                    d.index,
                    d.id,
                    d.function.name if d.function is not None else None,
                    d.function.arguments if d.function is not None else None,
                    d.type,
                )
                for d in delta.tool_calls
            ]
        return part

    @property
    def chunk(self) -> ChatCompletionChunk:
        """This part as a ``chat.completion.chunk`` (built once, on first use)."""
        if self._chunk is None:
            self._chunk = self._build_chunk()
        return self._chunk

    def _build_chunk(self) -> ChatCompletionChunk:
        fields: dict[str, Any] = {"id": self.id, "model": self.model}
        if self.created:
            fields["created"] = self.created
        if self.system_fingerprint is not None:
            fields["system_fingerprint"] = self.system_fingerprint
        if self.usage is not None:
            fields["usage"] = self.usage
        if self.has_choice:
            delta: dict[str, Any] = {}
            for name in ("role", "content", "refusal"):
                value = getattr(self, name)
                if value is not None:
                    delta[name] = value
            if self.tool_calls is not None:
                delta["tool_calls"] = [call.wire() for call in self.tool_calls]
            if self.thinking is not None:
                delta["thinking_blocks"] = self.thinking
            choice = {"index": 0, "delta": delta, "finish_reason": self.finish_reason}
            fields["choices"] = [choice]
        return ChatCompletionChunk.model_validate(fields)


class ToolCallRouter:
    """Which tool call a streamed tool-call delta belongs to: the one rule, shared by
    `ChunkAccumulator` and both adapters' chunk converters.

    Calls are keyed by the delta's ``index``, falling back to its ``id`` when the index is
    missing. A delta whose new ``id`` differs from the one its index already holds starts a new
    call (servers that reuse index 0 for parallel calls); a known id continues its call only under
    the same index or under none; a delta with neither index nor id continues the last call.
    Calls are numbered 0, 1, 2... in order of first appearance: a stable position, whatever
    indexes the server uses (1-based, -1, reused).
    """

    __slots__ = ("_by_id", "_by_index", "_last", "ids", "indexes")

    def __init__(self) -> None:
        self.ids: list[str] = []  # per position: the call's id, once known
        self.indexes: list[int | None] = []  # per position: the wire index it was last under
        self._by_index: dict[int, int] = {}
        self._by_id: dict[str, int] = {}
        self._last = -1

    def route(self, index: int | None, call_id: str | None) -> tuple[int, bool]:
        """The position of the delta's call, and whether the delta starts it."""
        call_id = call_id or ""
        new = False
        if index is not None:
            position = self._by_index.get(index, -1)
            if position < 0 or (call_id and self.ids[position] and call_id != self.ids[position]):
                position = self._by_id.get(call_id, -1) if call_id else -1
                if position < 0 or self.indexes[position] not in (None, index):
                    position, new = self._new(call_id), True
                self.indexes[position] = index
                self._by_index[index] = position
        elif call_id:
            position = self._by_id.get(call_id, -1)
            if position < 0:
                position, new = self._new(call_id), True
        else:
            position = self._last
            if position < 0:
                position, new = self._new(""), True
        if call_id and not self.ids[position]:
            self.ids[position] = call_id
            self._by_id[call_id] = position
        self._last = position
        return position, new

    def _new(self, call_id: str) -> int:
        self.ids.append(call_id)
        self.indexes.append(None)
        if call_id:
            self._by_id[call_id] = len(self.ids) - 1
        return len(self.ids) - 1


class _ToolCallState:
    __slots__ = ("arguments", "name", "type")

    def __init__(self) -> None:
        self.type = ""
        self.name = ""
        self.arguments: list[str] = []


class _ThinkingState:
    __slots__ = ("data", "signature", "thinking", "type")

    def __init__(self) -> None:
        self.type = ""
        self.thinking: list[str] = []
        self.signature: list[str] = []
        self.data: list[str] = []

    def block(self) -> dict[str, Any]:
        if self.type == "redacted_thinking":
            return {"type": "redacted_thinking", "data": "".join(self.data)}
        return {
            "type": "thinking",
            "thinking": "".join(self.thinking),
            "signature": "".join(self.signature),
        }


class ChunkAccumulator:
    """Accumulate a streamed reply (choice 0 only; other choices are ignored).

    Tool-call deltas find their call through `ToolCallRouter` (by index, falling back to id;
    see there). The first non-empty ``name`` of a call wins, so a name repeated on later deltas
    is not doubled.
    Top-level fields (id, model, created, system_fingerprint) come from the first chunk carrying
    them, usage and finish_reason from the last one seen. (The request id belongs to the HTTP
    response, not to chunks: the client sets it on the completion.)
    """

    def __init__(self) -> None:
        self._id = ""
        self._model = ""
        self._created = 0
        self._system_fingerprint: str | None = None
        self._role = ""
        self._text: list[str] = []
        self._text_length = 0
        self._refusal: list[str] = []
        self._finish_reason: str | None = None
        self._usage: Usage | None = None
        self._chunks = 0
        self._calls: list[_ToolCallState] = []
        self._router = ToolCallRouter()
        self._thinking: dict[int, _ThinkingState] = {}

    def add(self, chunk: ChatCompletionChunk) -> None:
        """Fold one chunk into the state."""
        self.add_part(StreamPart.from_chunk(chunk))

    def add_part(self, part: StreamPart) -> None:
        """Fold one streamed part into the state."""
        self._chunks += 1
        if part.text_only:
            self._text.append(part.content)  # type: ignore[arg-type]
            self._text_length += len(part.content)  # type: ignore[arg-type]
            return
        if not self._id and part.id:
            self._id = part.id
        if not self._model and part.model:
            self._model = part.model
        if not self._created and part.created:
            self._created = part.created
        if self._system_fingerprint is None and part.system_fingerprint:
            self._system_fingerprint = part.system_fingerprint
        if part.usage is not None:
            self._usage = part.usage
        if not part.has_choice:
            return
        if part.role and not self._role:
            self._role = part.role
        if part.content:
            self._text.append(part.content)
            self._text_length += len(part.content)
        if part.refusal:
            self._refusal.append(part.refusal)
        if part.tool_calls:
            for tool_delta in part.tool_calls:
                self._add_tool_delta(tool_delta)
        if part.thinking:
            for thinking_delta in part.thinking:
                self._add_thinking_delta(thinking_delta)
        if part.finish_reason is not None:
            self._finish_reason = part.finish_reason

    def _add_tool_delta(self, delta: ToolCallPart) -> None:
        position, new = self._router.route(delta.index, delta.id)
        if new:
            self._calls.append(_ToolCallState())
        call = self._calls[position]
        if delta.type and not call.type:
            call.type = delta.type
        if delta.name and not call.name:
            call.name = delta.name
        if delta.arguments:
            call.arguments.append(delta.arguments)

    def _add_thinking_delta(self, delta: dict[str, Any]) -> None:
        index = delta.get("index")
        if not isinstance(index, int):
            index = max(self._thinking, default=0)
        state = self._thinking.get(index)
        if state is None:
            state = self._thinking[index] = _ThinkingState()
        kind = delta.get("type")
        if kind and not state.type:
            state.type = kind
        for field in ("thinking", "signature", "data"):
            fragment = delta.get(field)
            if isinstance(fragment, str) and fragment:
                getattr(state, field).append(fragment)

    @property
    def id(self) -> str:
        """The completion id (first non-empty one seen)."""
        return self._id

    @property
    def model(self) -> str:
        """The model the server reported (first non-empty one seen)."""
        return self._model

    @property
    def finish_reason(self) -> str | None:
        """The last finish_reason seen for choice 0, or None."""
        return self._finish_reason

    @property
    def finished(self) -> bool:
        """Whether a finish_reason was seen."""
        return self._finish_reason is not None

    @property
    def usage(self) -> Usage | None:
        """The usage reported so far (the usage-only chunk before ``[DONE]``), or None."""
        return self._usage

    @property
    def tool_call_count(self) -> int:
        """How many distinct tool calls have started."""
        return len(self._calls)

    @property
    def text_length(self) -> int:
        """Characters of content text received so far."""
        return self._text_length

    @property
    def chunk_count(self) -> int:
        """Chunks added so far."""
        return self._chunks

    def completion(self) -> ChatCompletion:
        """The reply so far as a ``chat.completion``; a fresh object on every call.

        ``content`` is None when no text arrived and there are tool calls or a refusal (as in a
        non-streamed reply); otherwise it is the joined text, possibly "".
        """
        indexes, ids = self._router.indexes, self._router.ids
        order = list(range(len(self._calls)))
        if all(i is not None and i >= 0 for i in indexes) and len(set(indexes)) == len(order):
            order.sort(key=lambda position: indexes[position] or 0)
        tool_calls = [
            ToolCall(
                id=ids[position],
                type=self._calls[position].type or "function",
                function=FunctionCall(
                    name=self._calls[position].name,
                    arguments="".join(self._calls[position].arguments),
                ),
            )
            for position in order
        ]
        text = "".join(self._text)
        refusal = "".join(self._refusal) or None
        thinking = [self._thinking[i].block() for i in sorted(self._thinking)]
        content = None if not text and (tool_calls or refusal) else text
        return ChatCompletion(
            id=self._id,
            created=self._created,
            model=self._model,
            system_fingerprint=self._system_fingerprint,
            usage=self._usage.model_copy(deep=True) if self._usage is not None else None,
            choices=[
                Choice(
                    index=0,
                    message=Message(
                        role=self._role or "assistant",
                        content=content,
                        tool_calls=tool_calls or None,
                        refusal=refusal,
                        thinking_blocks=thinking or None,
                    ),
                    finish_reason=self._finish_reason,
                )
            ],
        )


def completion_to_chunks(completion: ChatCompletion) -> list[ChatCompletionChunk]:
    """The chunks a stream would have carried for ``completion``, in wire order.

    Per choice: one delta with role, content and refusal; one delta per tool call (with ``index``,
    ``id``, ``type``, name and the whole arguments); one empty delta with the finish_reason, if any.
    Then, if the completion has usage, a usage-only chunk with ``choices=[]`` (as ``include_usage``
    gives). Accumulating the result with `ChunkAccumulator` gives back an equal completion.
    """
    chunks: list[ChatCompletionChunk] = []

    def chunk(choices: list[ChunkChoice], usage: Usage | None = None) -> None:
        new = ChatCompletionChunk(
            id=completion.id,
            created=completion.created,
            model=completion.model,
            system_fingerprint=completion.system_fingerprint,
            choices=choices,
            usage=usage,
        )
        chunks.append(new)

    for choice in completion.choices:
        message = choice.message
        if message.thinking_blocks:
            thinking = [{"index": i, **b} for i, b in enumerate(message.thinking_blocks)]
            chunk([ChunkChoice(index=choice.index, delta=ChoiceDelta(thinking_blocks=thinking))])
        chunk(
            [
                ChunkChoice(
                    index=choice.index,
                    delta=ChoiceDelta(
                        role=message.role, content=message.content, refusal=message.refusal
                    ),
                )
            ]
        )
        for position, call in enumerate(message.tool_calls or ()):
            tool_delta = ChoiceDeltaToolCall(
                index=position,
                id=call.id,
                type=call.type,
                function=ChoiceDeltaToolCallFunction(
                    name=call.function.name, arguments=call.function.arguments
                ),
            )
            chunk([ChunkChoice(index=choice.index, delta=ChoiceDelta(tool_calls=[tool_delta]))])
        if choice.finish_reason is not None:
            chunk([ChunkChoice(index=choice.index, finish_reason=choice.finish_reason)])
    if completion.usage is not None:
        chunk([], completion.usage.model_copy(deep=True))
    return chunks
