"""Stream state as a reducer: ``chat.completion.chunk``s in, one ``chat.completion`` out.

`ChunkAccumulator` is pure (no I/O) and shared by the sync and async stream loops and both
adapters. Each `ChunkAccumulator.add` costs O(size of the chunk): text and argument fragments are
kept in lists and joined only by `ChunkAccumulator.completion`. `completion_to_chunks` goes the
other way, for a ``stream=true`` request that the server answered with a plain JSON body.
"""

from __future__ import annotations

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

__all__ = ["ChunkAccumulator", "completion_to_chunks"]


class _ToolCallState:
    __slots__ = ("arguments", "id", "index", "name", "type")

    def __init__(self, index: int | None, call_id: str) -> None:
        self.index = index
        self.id = call_id
        self.type = ""
        self.name = ""
        self.arguments: list[str] = []


class ChunkAccumulator:
    """Accumulate a streamed reply (choice 0 only; other choices are ignored).

    Tool calls are keyed by ``index``, falling back to ``id`` when a delta has no index. A delta
    whose new ``id`` differs from the one its index already holds starts a new call (servers that
    reuse index 0 for parallel calls); a delta with neither index nor id continues the last call.
    The first non-empty ``name`` of a call wins, so a name repeated on later deltas is not doubled.
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
        self._by_index: dict[int, _ToolCallState] = {}
        self._by_id: dict[str, _ToolCallState] = {}
        self._last_call: _ToolCallState | None = None

    def add(self, chunk: ChatCompletionChunk) -> None:
        """Fold one chunk into the state."""
        self._chunks += 1
        if not self._id and chunk.id:
            self._id = chunk.id
        if not self._model and chunk.model:
            self._model = chunk.model
        if not self._created and chunk.created:
            self._created = chunk.created
        if self._system_fingerprint is None and chunk.system_fingerprint:
            self._system_fingerprint = chunk.system_fingerprint
        if chunk.usage is not None:
            self._usage = chunk.usage
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            delta = choice.delta
            if delta.role and not self._role:
                self._role = delta.role
            if delta.content:
                self._text.append(delta.content)
                self._text_length += len(delta.content)
            if delta.refusal:
                self._refusal.append(delta.refusal)
            if delta.tool_calls:
                for tool_delta in delta.tool_calls:
                    self._add_tool_delta(tool_delta)
            if choice.finish_reason is not None:
                self._finish_reason = choice.finish_reason

    def _add_tool_delta(self, delta: ChoiceDeltaToolCall) -> None:
        index = delta.index
        call_id = delta.id or ""
        call: _ToolCallState | None
        if index is not None:
            call = self._by_index.get(index)
            if call is None or (call_id and call.id and call_id != call.id):
                # Unknown index, or a new id on a taken index: the call is one known by this id
                # (under this index, or under none yet), or it is a new one.
                call = self._by_id.get(call_id) if call_id else None
                if call is None or call.index not in (None, index):
                    call = self._new_call(index, call_id)
                call.index = index
                self._by_index[index] = call
        elif call_id:
            call = self._by_id.get(call_id)
            if call is None:
                call = self._new_call(None, call_id)
        else:
            call = self._last_call
            if call is None:
                call = self._new_call(None, "")
        if call_id and not call.id:
            call.id = call_id
            self._by_id[call_id] = call
        if delta.type and not call.type:
            call.type = delta.type
        function = delta.function
        if function is not None:
            if function.name and not call.name:
                call.name = function.name
            if function.arguments:
                call.arguments.append(function.arguments)
        self._last_call = call

    def _new_call(self, index: int | None, call_id: str) -> _ToolCallState:
        call = _ToolCallState(index, call_id)
        self._calls.append(call)
        if call_id:
            self._by_id[call_id] = call
        return call

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
        calls = self._calls
        if all(c.index is not None and c.index >= 0 for c in calls) and len(
            {c.index for c in calls}
        ) == len(calls):
            calls = sorted(calls, key=lambda c: c.index or 0)
        tool_calls = [
            ToolCall(
                id=c.id,
                type=c.type or "function",
                function=FunctionCall(name=c.name, arguments="".join(c.arguments)),
            )
            for c in calls
        ]
        text = "".join(self._text)
        refusal = "".join(self._refusal) or None
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
