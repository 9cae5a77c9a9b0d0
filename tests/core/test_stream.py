"""ChunkAccumulator and completion_to_chunks: streamed replies assembled like non-streamed ones."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tokenhub_core.stream import ChunkAccumulator, StreamPart, ToolCallPart, completion_to_chunks
from tokenhub_core.wire import (
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    FunctionCall,
    Message,
    PromptTokensDetails,
    ToolCall,
    Usage,
)

MODEL = "anthropic/claude-sonnet-4-6"


def chunk(
    delta: dict[str, Any] | None = None,
    *,
    finish_reason: str | None = None,
    index: int = 0,
    usage: dict[str, Any] | None = None,
    no_choices: bool = False,
) -> ChatCompletionChunk:
    """A chunk as it comes off the wire (JSON-shaped dict validated once, like the client does)."""
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": MODEL,
        "choices": []
        if no_choices
        else [{"index": index, "delta": delta or {}, "finish_reason": finish_reason}],
    }
    if usage is not None:
        body["usage"] = usage
    return ChatCompletionChunk.model_validate(body)


def tool(
    index: int | None = None,
    id: str | None = None,
    name: str | None = None,
    args: str | None = None,
    type: str | None = None,
) -> dict[str, Any]:
    delta: dict[str, Any] = {}
    if index is not None:
        delta["index"] = index
    if id is not None:
        delta["id"] = id
    if type is not None:
        delta["type"] = type
    function = {k: v for k, v in (("name", name), ("arguments", args)) if v is not None}
    if function:
        delta["function"] = function
    return delta


def tools_chunk(*deltas: dict[str, Any]) -> ChatCompletionChunk:
    return chunk({"tool_calls": list(deltas)})


def accumulate(chunks: list[ChatCompletionChunk]) -> ChatCompletion:
    acc = ChunkAccumulator()
    for c in chunks:
        acc.add(c)
    return acc.completion()


def calls_of(completion: ChatCompletion) -> list[tuple[str, str, str]]:
    return [
        (c.id, c.function.name, c.function.arguments)
        for c in completion.choices[0].message.tool_calls or []
    ]


# --- text, finish, usage -----------------------------------------------------------------------


def test_text_stream_with_usage_chunk_becomes_one_completion() -> None:
    acc = ChunkAccumulator()
    for c in [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hel"}),
        chunk({"content": "lo, 世界 😀"}),
        chunk({}, finish_reason="stop"),
        chunk(
            no_choices=True,
            usage={
                "prompt_tokens": 12,
                "completion_tokens": 5,
                "total_tokens": 17,
                "prompt_tokens_details": {"cached_tokens": 4},
            },
        ),
    ]:
        acc.add(c)
    completion = acc.completion()
    assert completion.object == "chat.completion"
    assert (completion.id, completion.model, completion.created) == ("chatcmpl-1", MODEL, 1.7e9)
    message = completion.choices[0].message
    assert (message.role, message.content, message.tool_calls) == (
        "assistant",
        "Hello, 世界 😀",
        None,
    )
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (12, 5)
    assert completion.usage.cached_tokens == 4
    assert (acc.text_length, acc.chunk_count, acc.tool_call_count) == (len("Hello, 世界 😀"), 5, 0)


def test_finish_and_usage_properties_follow_the_stream() -> None:
    acc = ChunkAccumulator()
    acc.add(chunk({"role": "assistant", "content": "Hi"}))
    assert (acc.finished, acc.finish_reason, acc.usage) == (False, None, None)
    assert (acc.id, acc.model) == ("chatcmpl-1", MODEL)
    acc.add(chunk({}, finish_reason="length"))
    assert (acc.finished, acc.finish_reason, acc.usage) == (True, "length", None)
    acc.add(chunk(no_choices=True, usage={"prompt_tokens": 3, "completion_tokens": 1}))
    assert acc.usage is not None
    assert acc.usage.completion_tokens == 1


def test_unknown_finish_reason_is_kept() -> None:
    assert accumulate([chunk({"content": "x"}, finish_reason="end_turn")]).choices[
        0
    ].finish_reason == ("end_turn")


def test_finish_reason_survives_later_chunks_without_one() -> None:
    completion = accumulate(
        [
            chunk({"content": "x"}, finish_reason="stop"),
            chunk({}),  # some gateways send an empty choice alongside the usage
            chunk(no_choices=True, usage={"prompt_tokens": 1}),
        ]
    )
    assert completion.choices[0].finish_reason == "stop"


def test_stream_without_usage_chunk_has_no_usage() -> None:
    assert accumulate([chunk({"content": "x"}, finish_reason="stop")]).usage is None


def test_metadata_from_first_chunks_that_carry_it() -> None:
    first = ChatCompletionChunk.model_validate(
        {"id": "", "model": "", "choices": [{"index": 0, "delta": {"role": "assistant"}}]}
    )
    later = chunk({"content": "x"})
    later.system_fingerprint = "fp_1"
    bare_usage = ChatCompletionChunk.model_validate({"usage": {"prompt_tokens": 1}})
    completion = accumulate([first, later, bare_usage])
    assert (completion.id, completion.model, completion.system_fingerprint) == (
        "chatcmpl-1",
        MODEL,
        "fp_1",
    )


def test_other_choices_are_ignored_without_crashing() -> None:
    completion = accumulate(
        [
            chunk({"role": "assistant", "content": "zero"}),
            chunk({"content": "one", "tool_calls": [tool(0, "c", "f", "{}")]}, index=1),
            chunk({}, finish_reason="length", index=1),
            chunk({}, finish_reason="stop"),
        ]
    )
    assert len(completion.choices) == 1
    assert completion.choices[0].message.content == "zero"
    assert completion.choices[0].message.tool_calls is None
    assert completion.choices[0].finish_reason == "stop"


def test_refusal_accumulates_and_content_is_none() -> None:
    completion = accumulate(
        [chunk({"role": "assistant", "refusal": "I can't "}), chunk({"refusal": "help."})]
    )
    message = completion.choices[0].message
    assert (message.refusal, message.content) == ("I can't help.", None)


def test_content_none_only_when_no_text_and_tool_calls() -> None:
    tool_only = accumulate(
        [chunk({"role": "assistant", "content": ""}), tools_chunk(tool(0, "c1", "f", "{}"))]
    )
    assert tool_only.choices[0].message.content is None
    both = accumulate([chunk({"content": "Let me check."}), tools_chunk(tool(0, "c1", "f", "{}"))])
    assert both.choices[0].message.content == "Let me check."
    nothing = accumulate([chunk({"role": "assistant"}), chunk({}, finish_reason="stop")])
    assert nothing.choices[0].message.content == ""


def test_partial_snapshot_then_more_chunks() -> None:
    acc = ChunkAccumulator()
    acc.add(chunk({"role": "assistant", "content": "Hello"}))
    acc.add(tools_chunk(tool(0, "c1", "get_weather", '{"city": ')))
    acc.add(chunk(no_choices=True, usage={"prompt_tokens": 1, "completion_tokens": 1}))
    early = acc.completion()
    assert early.choices[0].message.content == "Hello"
    assert calls_of(early) == [("c1", "get_weather", '{"city": ')]
    assert early.choices[0].finish_reason is None
    assert early.usage is not None
    early.usage.prompt_tokens = 999  # a snapshot is the caller's to mutate

    acc.add(chunk({"content": " there"}))
    acc.add(tools_chunk(tool(0, args='"Paris"}')))
    acc.add(chunk({}, finish_reason="tool_calls"))
    final = acc.completion()
    assert final.choices[0].message.content == "Hello there"
    assert calls_of(final) == [("c1", "get_weather", '{"city": "Paris"}')]
    assert final.choices[0].finish_reason == "tool_calls"
    assert final.usage is not None
    assert final.usage.prompt_tokens == 1
    # The earlier snapshot did not change under it.
    assert early.choices[0].message.content == "Hello"
    assert calls_of(early) == [("c1", "get_weather", '{"city": ')]


# --- tool calls --------------------------------------------------------------------------------


def test_openai_shaped_tool_calls() -> None:
    completion = accumulate(
        [
            chunk({"role": "assistant", "content": None}),
            tools_chunk(tool(0, "call_a", "get_weather", "", "function")),
            tools_chunk(tool(0, args='{"city":')),
            tools_chunk(tool(0, args=' "Paris"}')),
            tools_chunk(tool(1, "call_b", "get_time", "", "function")),
            tools_chunk(tool(1, args="{}")),
            chunk({}, finish_reason="tool_calls"),
        ]
    )
    assert calls_of(completion) == [
        ("call_a", "get_weather", '{"city": "Paris"}'),
        ("call_b", "get_time", "{}"),
    ]
    tool_calls = completion.choices[0].message.tool_calls
    assert tool_calls is not None
    assert {c.type for c in tool_calls} == {"function"}
    assert completion.choices[0].finish_reason == "tool_calls"


def test_indices_starting_at_one() -> None:
    completion = accumulate(
        [
            tools_chunk(tool(1, "a", "f", '{"x"')),
            tools_chunk(tool(1, args=": 1}")),
            tools_chunk(tool(2, "b", "g", "{}")),
        ]
    )
    assert calls_of(completion) == [("a", "f", '{"x": 1}'), ("b", "g", "{}")]


def test_index_minus_one_for_every_call_told_apart_by_id() -> None:
    completion = accumulate(
        [
            tools_chunk(tool(-1, "a", "f", '{"x":')),
            tools_chunk(tool(-1, args=" 1}")),
            tools_chunk(tool(-1, "b", "g", '{"y":')),
            tools_chunk(tool(-1, args=" 2}")),
        ]
    )
    assert calls_of(completion) == [("a", "f", '{"x": 1}'), ("b", "g", '{"y": 2}')]


def test_interleaved_calls() -> None:
    completion = accumulate(
        [
            tools_chunk(tool(0, "a", "f", "")),
            tools_chunk(tool(1, "b", "g", "")),
            tools_chunk(tool(0, args="[1,")),
            tools_chunk(tool(1, args="[3,")),
            tools_chunk(tool(0, args="2]")),
            tools_chunk(tool(1, args="4]")),
        ]
    )
    assert calls_of(completion) == [("a", "f", "[1,2]"), ("b", "g", "[3,4]")]


def test_deltas_out_of_order_are_ordered_by_index() -> None:
    completion = accumulate(
        [
            tools_chunk(tool(1, args='{"b"')),  # a fragment before its call's header
            tools_chunk(tool(0, "a", "f", "{}")),
            tools_chunk(tool(1, "b", "g")),
            tools_chunk(tool(1, args=": 2}")),
        ]
    )
    assert calls_of(completion) == [("a", "f", "{}"), ("b", "g", '{"b": 2}')]


def test_several_calls_in_one_chunk() -> None:
    completion = accumulate(
        [
            tools_chunk(tool(0, "a", "f", "{"), tool(1, "b", "g", "{"), tool(2, "c", "h", "{}")),
            tools_chunk(tool(1, args="}"), tool(0, args="}")),
        ]
    )
    assert calls_of(completion) == [("a", "f", "{}"), ("b", "g", "{}"), ("c", "h", "{}")]


def test_same_index_reused_for_parallel_calls_with_new_ids() -> None:
    completion = accumulate(
        [
            tools_chunk(tool(0, "a", "f", '{"n"')),
            tools_chunk(tool(0, args=": 1}")),
            tools_chunk(tool(0, "b", "g", '{"n"')),
            tools_chunk(tool(0, args=": 2}")),
            tools_chunk(tool(0, "c", "h", "{}")),
        ]
    )
    assert calls_of(completion) == [
        ("a", "f", '{"n": 1}'),
        ("b", "g", '{"n": 2}'),
        ("c", "h", "{}"),
    ]


def test_same_index_switching_back_to_an_earlier_id() -> None:
    completion = accumulate(
        [
            tools_chunk(tool(0, "a", "f", "[1")),
            tools_chunk(tool(0, "b", "g", "[2")),
            tools_chunk(tool(0, "a", args="]")),
            tools_chunk(tool(0, "b", args="]")),
        ]
    )
    assert calls_of(completion) == [("a", "f", "[1]"), ("b", "g", "[2]")]


def test_reused_or_negative_indices_keep_first_appearance_order() -> None:
    reused = accumulate(
        [
            tools_chunk(tool(1, "a", "f", "1")),
            tools_chunk(tool(1, "b", "g", "2")),
            tools_chunk(tool(0, "c", "h", "3")),
        ]
    )
    assert calls_of(reused) == [("a", "f", "1"), ("b", "g", "2"), ("c", "h", "3")]
    negative = accumulate(
        [tools_chunk(tool(0, "a", "f", "1")), tools_chunk(tool(-1, "b", "g", "2"))]
    )
    assert calls_of(negative) == [("a", "f", "1"), ("b", "g", "2")]


def test_repeated_id_type_and_name_do_not_duplicate() -> None:
    acc = ChunkAccumulator()
    for fragment in ['{"city"', ': "Paris"', "}"]:
        acc.add(tools_chunk(tool(0, "call_a", "get_weather", fragment, "function")))
    assert acc.tool_call_count == 1
    assert calls_of(acc.completion()) == [("call_a", "get_weather", '{"city": "Paris"}')]


def test_missing_index_falls_back_to_id() -> None:
    completion = accumulate(
        [
            tools_chunk(tool(id="a", name="f", args="{")),
            tools_chunk(tool(id="b", name="g", args="[")),
            tools_chunk(tool(id="a", args="}")),
            tools_chunk(tool(id="b", args="]")),
        ]
    )
    assert calls_of(completion) == [("a", "f", "{}"), ("b", "g", "[]")]


def test_delta_without_index_or_id_continues_the_last_call() -> None:
    completion = accumulate(
        [
            tools_chunk(tool(id="a", name="f", args="{")),
            tools_chunk(tool(args='"k": 1')),
            tools_chunk(tool(args="}")),
        ]
    )
    assert calls_of(completion) == [("a", "f", '{"k": 1}')]


def test_call_first_keyed_by_id_then_by_index_stays_one_call() -> None:
    completion = accumulate(
        [tools_chunk(tool(id="a", name="f", args="{")), tools_chunk(tool(3, "a", args="}"))]
    )
    assert calls_of(completion) == [("a", "f", "{}")]


def test_same_id_on_distinct_indices_stays_two_calls() -> None:
    completion = accumulate(
        [tools_chunk(tool(0, "x", "f", "1")), tools_chunk(tool(1, "x", "g", "2"))]
    )
    assert calls_of(completion) == [("x", "f", "1"), ("x", "g", "2")]


# --- completion_to_chunks ----------------------------------------------------------------------


def _completion(
    content: str | None,
    tool_calls: list[ToolCall] | None,
    finish_reason: str | None,
    usage: Usage | None,
    **top: Any,
) -> ChatCompletion:
    return ChatCompletion(
        id=top.get("id", "chatcmpl-9"),
        created=top.get("created", 1_700_000_001),
        model=top.get("model", MODEL),
        system_fingerprint=top.get("system_fingerprint"),
        choices=[
            Choice(
                index=0,
                message=Message(content=content, tool_calls=tool_calls),
                finish_reason=finish_reason,
            )
        ],
        usage=usage,
    )


def test_completion_to_chunks_has_the_wire_shape() -> None:
    completion = _completion(
        "Checking.",
        [
            ToolCall(id="a", function=FunctionCall(name="f", arguments='{"x": 1}')),
            ToolCall(id="b", function=FunctionCall(name="g", arguments="{}")),
        ],
        "tool_calls",
        Usage(prompt_tokens=9, completion_tokens=4, total_tokens=13),
    )
    chunks = completion_to_chunks(completion)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert {(c.id, c.model) for c in chunks} == {("chatcmpl-9", MODEL)}
    first = chunks[0].choices[0].delta
    assert (first.role, first.content) == ("assistant", "Checking.")
    tool_deltas = [d for c in chunks for ch in c.choices for d in ch.delta.tool_calls or []]
    assert [(d.index, d.id) for d in tool_deltas] == [(0, "a"), (1, "b")]
    assert [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason] == [
        "tool_calls"
    ]
    assert [c.usage is not None for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert chunks[-1].choices == []


def test_completion_without_usage_gives_no_usage_chunk() -> None:
    chunks = completion_to_chunks(_completion("hi", None, "stop", None))
    assert all(c.usage is None and c.choices for c in chunks)
    assert accumulate(chunks).choices[0].message.content == "hi"


_TEXT = st.text(st.characters(codec="utf-8"), max_size=30)
_TOOL_CALL = st.builds(
    lambda id, name, arguments: ToolCall(
        id=id, function=FunctionCall(name=name, arguments=arguments)
    ),
    st.text(max_size=8),
    st.text(max_size=12),
    st.one_of(_TEXT, st.sampled_from(['{"city": "Paris"}', "{}", '{"a": [1, 2, {"b": "中"}]}'])),
)
_USAGE = st.builds(
    Usage,
    prompt_tokens=st.integers(0, 10**6),
    completion_tokens=st.integers(0, 10**6),
    total_tokens=st.integers(0, 2 * 10**6),
    prompt_tokens_details=st.none()
    | st.builds(PromptTokensDetails, cached_tokens=st.integers(0, 100)),
)


@st.composite
def completions(draw: st.DrawFn) -> ChatCompletion:
    """Any completion in the form a non-streamed reply takes (content None only for tool calls)."""
    text = draw(_TEXT)
    tool_calls = draw(st.lists(_TOOL_CALL, max_size=4)) or None
    content = None if tool_calls and not text else text
    return _completion(
        content,
        tool_calls,
        draw(st.sampled_from([None, "stop", "length", "tool_calls", "content_filter", "end_turn"])),
        draw(st.none() | _USAGE),
        id=draw(st.text(max_size=10)),
        model=draw(st.sampled_from([MODEL, "claude-haiku-4-5", ""])),
        created=draw(st.integers(0, 2**40)),
        system_fingerprint=draw(st.none() | st.text(min_size=1, max_size=5)),
    )


@settings(max_examples=100, deadline=None)
@given(completions())
def test_round_trip_through_chunks(completion: ChatCompletion) -> None:
    assert accumulate(completion_to_chunks(completion)).model_dump() == completion.model_dump()


def _pieces(data: st.DataObject, text: str) -> list[str]:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=5)))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def resplit(chunks: list[ChatCompletionChunk], data: st.DataObject) -> list[ChatCompletionChunk]:
    """The same stream cut finer: text in pieces; each call's arguments in fragments, repeating the
    id and name on later deltas at random; the calls' deltas interleaved and packed up to three to
    a chunk at random. Keeps the order text, tool calls, finish, usage."""
    head: list[ChatCompletionChunk] = []
    tail: list[ChatCompletionChunk] = []
    pending: list[list[dict[str, Any]]] = []  # per call, its deltas in order
    for c in chunks:
        if not c.choices or c.choices[0].finish_reason is not None:
            tail.append(c)
            continue
        delta = c.choices[0].delta
        if delta.role is not None:
            texts = _pieces(data, delta.content) if delta.content else [delta.content]
            head.append(chunk({"role": delta.role, "content": texts[0]}))
            head += [chunk({"content": t}) for t in texts[1:]]
        for d in delta.tool_calls or []:
            assert d.function is not None
            fragments = _pieces(data, d.function.arguments or "")
            deltas = [tool(d.index, d.id, d.function.name, fragments[0], d.type)]
            for fragment in fragments[1:]:
                again = data.draw(st.booleans())
                deltas.append(
                    tool(
                        d.index,
                        d.id if again else None,
                        d.function.name if again else None,
                        fragment,
                    )
                )
            pending.append(deltas)
    tool_deltas: list[dict[str, Any]] = []
    while pending:
        queue = pending[data.draw(st.integers(0, len(pending) - 1))]
        tool_deltas.append(queue.pop(0))
        pending = [q for q in pending if q]
    packed: list[ChatCompletionChunk] = []
    while tool_deltas:
        size = data.draw(st.integers(1, 3))
        packed.append(tools_chunk(*tool_deltas[:size]))
        tool_deltas = tool_deltas[size:]
    meta = chunks[0].model_dump(include={"id", "model", "created", "system_fingerprint"})
    return [c if c in tail else c.model_copy(update=meta) for c in head + packed + tail]


@settings(max_examples=120, deadline=None)
@given(completions(), st.data())
def test_round_trip_survives_any_resplitting(
    completion: ChatCompletion, data: st.DataObject
) -> None:
    chunks = resplit(completion_to_chunks(completion), data)
    assert accumulate(chunks).model_dump() == completion.model_dump()


def test_tool_call_router_positions() -> None:
    from tokenhub_core.stream import ToolCallRouter

    router = ToolCallRouter()
    assert router.route(1, "a") == (0, True)  # index from 1: position 0
    assert router.route(1, None) == (0, False)  # a bare fragment continues it
    assert router.route(1, "a") == (0, False)  # the id repeated: same call
    assert router.route(1, "b") == (1, True)  # index reused with a new id: a new call
    assert router.route(None, None) == (1, False)  # neither: the last call
    assert router.route(None, "c") == (2, True)  # id only
    assert router.route(None, "c") == (2, False)
    assert router.route(-1, "d") == (3, True)
    assert router.ids == ["a", "b", "c", "d"]
    assert router.indexes == [1, 1, None, -1]


def test_a_part_made_from_a_chunk_keeps_it_and_reads_choice_zero() -> None:
    chunk = ChatCompletionChunk.model_validate(
        {
            "id": "c1",
            "model": "m",
            "choices": [
                {"index": 1, "delta": {"content": "other"}},
                {
                    "index": 0,
                    "delta": {
                        "content": "hi",
                        "tool_calls": [{"index": 0, "id": "t", "function": {"name": "f"}}],
                    },
                },
            ],
        }
    )
    part = StreamPart.from_chunk(chunk)
    assert part.chunk is chunk and part.raw is chunk
    assert part.content == "hi"
    [call] = part.tool_calls or []
    assert (call.index, call.id, call.name, call.arguments) == (0, "t", "f", None)
    usage_only = StreamPart.from_chunk(ChatCompletionChunk(id="c1", choices=[]))
    assert not usage_only.has_choice


def test_a_part_builds_its_chunk_when_asked() -> None:
    part = StreamPart("c1", "m", {"type": "content_block_delta"}, "hi")
    part.tool_calls = [ToolCallPart(0, "t", "f", "{}", "function")]
    part.finish_reason = "tool_calls"
    chunk = part.chunk
    assert chunk is part.chunk  # built once
    assert chunk.model_dump(exclude_none=True)["choices"] == [
        {
            "index": 0,
            "delta": {
                "content": "hi",
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "t",
                        "type": "function",
                        "function": {"name": "f", "arguments": "{}"},
                    }
                ],
            },
            "finish_reason": "tool_calls",
        }
    ]
    acc = ChunkAccumulator()
    acc.add_part(part)
    [call] = acc.completion().choices[0].message.tool_calls or []
    assert (call.id, call.function.name, call.function.arguments) == ("t", "f", "{}")


def _chat_reads(per_read: bool, events: list[bytes]) -> tuple[list[dict[str, Any]], str]:
    """``events`` through a stream reader as one read or one event per read: the parts'
    chunks, and the error that ended it (or "")."""
    from tokenhub_core._streams import _StreamReader
    from tokenhub_core.errors import APIResponseError

    reader = _StreamReader("req_1", "chat/completions")
    reads = events if per_read else [b"".join(events)]
    parts: list[StreamPart] = []
    error = ""
    try:
        for data in reads:
            parts += reader.feed(data)
        parts += reader.feed(b"")  # an error held back behind the parts before it
    except APIResponseError as exc:
        error = str(exc)
    return [p.chunk.model_dump() for p in parts], error


def test_a_chat_stream_read_one_event_at_a_time_is_the_same_stream() -> None:
    def event(delta: bytes) -> bytes:
        return (
            b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
            b'"choices":[{"index":0,"delta":' + delta + b',"finish_reason":null}]}\n\n'
        )

    events = [
        event(b'{"role":"assistant","content":""}'),
        event('{"content":"Vier · 四 🙂"}'.encode()),
        event(b'{"content":"bad \xff byte"}'),  # invalid UTF-8: U+FFFD, as the decoder gives it
        b": keep-alive\n\n",
        b"data: {not json\n\n",
    ]
    whole, per_event = _chat_reads(False, events), _chat_reads(True, events)
    assert whole == per_event
    assert [c["choices"][0]["delta"]["content"] for c in whole[0]] == [
        "",
        "Vier · 四 🙂",
        "bad \ufffd byte",
    ]
    assert "malformed stream event: '{not json'" in whole[1]
