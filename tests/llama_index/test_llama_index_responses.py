"""Wire -> LlamaIndex conversion (`llama_index_tokenhub.responses`), on plain objects."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    MessageRole,
    TextBlock,
    ToolCallBlock,
)
from llama_index.core.callbacks.token_counting import get_tokens_from_response
from llama_index.core.program.utils import process_streaming_objects
from pydantic import BaseModel

from llama_index_tokenhub.messages import to_wire_message
from llama_index_tokenhub.responses import (
    ChunkConverter,
    close_partial_json,
    keep_first_tool_call,
    parse_tool_arguments,
    response_from_completion,
    text_response,
    tool_selections,
    usage_kwargs,
)
from tokenhub_core.stream import ChunkAccumulator, completion_to_chunks
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

MODEL = "anthropic/claude-sonnet-4-6"


def _completion(
    content: str | None = "Hello there.",
    tool_calls: list[ToolCall] | None = None,
    usage: Usage | None = None,
    model: str = MODEL,
    finish_reason: str = "stop",
) -> ChatCompletion:
    completion = ChatCompletion(
        id="chatcmpl-1",
        model=model,
        choices=[
            Choice(
                message=Message(content=content, tool_calls=tool_calls),
                finish_reason=finish_reason,
            )
        ],
        usage=usage or Usage(prompt_tokens=12, completion_tokens=5, total_tokens=17),
    )
    completion._request_id = "req-123"
    return completion


def _call(call_id: str, name: str, arguments: str) -> ToolCall:
    return ToolCall(id=call_id, function=FunctionCall(name=name, arguments=arguments))


def _text_chunk(text: str) -> ChatCompletionChunk:
    return ChatCompletionChunk(choices=[ChunkChoice(delta=ChoiceDelta(content=text))])


def _tool_chunk(
    index: int | None, call_id: str | None = None, name: str | None = None, args: str | None = None
) -> ChatCompletionChunk:
    delta = ChoiceDeltaToolCall(
        index=index,
        id=call_id,
        type="function" if call_id else None,
        function=ChoiceDeltaToolCallFunction(name=name, arguments=args),
    )
    return ChatCompletionChunk(choices=[ChunkChoice(delta=ChoiceDelta(tool_calls=[delta]))])


# Non-streamed replies.


def test_text_reply() -> None:
    response = response_from_completion(_completion())
    assert response.message.role == "assistant"
    assert response.message.content == "Hello there."
    assert response.message.additional_kwargs == {}
    assert response.raw["usage"] == {
        "prompt_tokens": 12,
        "completion_tokens": 5,
        "total_tokens": 17,
    }
    assert response.raw["choices"][0]["message"]["content"] == "Hello there."
    expected_cost = float((12 * Decimal(3) + 5 * Decimal(15)) / 1_000_000)
    assert response.additional_kwargs == {
        "prompt_tokens": 12,
        "completion_tokens": 5,
        "total_tokens": 17,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
        "cost_usd": expected_cost,
        "finish_reason": "stop",
        "request_id": "req-123",
    }


def test_token_counting_handler_reads_the_servers_usage() -> None:
    assert get_tokens_from_response(response_from_completion(_completion())) == (12, 5)


def test_raw_is_plain_json() -> None:
    json.dumps(response_from_completion(_completion()).raw)


def test_tool_call_reply_has_blocks_and_openai_shaped_kwargs() -> None:
    calls = [_call("call_a", "add", '{"a": 1, "b": 2}'), _call("call_b", "echo", '{"s": "hi"}')]
    response = response_from_completion(_completion(content=None, tool_calls=calls))
    blocks = response.message.blocks
    assert all(isinstance(b, ToolCallBlock) for b in blocks)
    assert [(b.tool_call_id, b.tool_name, b.tool_kwargs) for b in blocks] == [
        ("call_a", "add", {"a": 1, "b": 2}),
        ("call_b", "echo", {"s": "hi"}),
    ]
    assert response.message.additional_kwargs["tool_calls"] == [
        {
            "id": "call_a",
            "type": "function",
            "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'},
        },
        {
            "id": "call_b",
            "type": "function",
            "function": {"name": "echo", "arguments": '{"s": "hi"}'},
        },
    ]
    selections = tool_selections(response.message)
    assert [(s.tool_id, s.tool_name, s.tool_kwargs) for s in selections] == [
        ("call_a", "add", {"a": 1, "b": 2}),
        ("call_b", "echo", {"s": "hi"}),
    ]


def test_text_and_tool_call_together() -> None:
    response = response_from_completion(
        _completion(content="Adding.", tool_calls=[_call("c", "add", "{}")])
    )
    assert response.message.content == "Adding."
    assert len(tool_selections(response.message)) == 1


def test_invalid_json_arguments_are_kept_verbatim_and_select_as_empty() -> None:
    response = response_from_completion(
        _completion(content=None, tool_calls=[_call("c", "f", "{not json")])
    )
    block = response.message.blocks[0]
    assert isinstance(block, ToolCallBlock)
    assert block.tool_kwargs == "{not json"
    assert tool_selections(response.message)[0].tool_kwargs == {}


def test_a_reply_round_trips_onto_the_wire() -> None:
    calls = [_call("call_a", "add", '{"a": 1}')]
    response = response_from_completion(_completion(content="Sure.", tool_calls=calls))
    wire = to_wire_message(response.message)
    assert wire["content"] == "Sure."
    assert wire["tool_calls"][0]["id"] == "call_a"
    assert json.loads(wire["tool_calls"][0]["function"]["arguments"]) == {"a": 1}


def test_empty_reply_has_empty_text() -> None:
    response = response_from_completion(_completion(content=None))
    assert response.message.content == ""


@pytest.mark.parametrize("model", ["anthropic/claude-haiku-4-5", "claude-haiku-4-5"])
def test_cost_for_both_id_forms(model: str) -> None:
    kwargs = usage_kwargs(Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000), model)
    assert kwargs["cost_usd"] == 6.0
    assert kwargs["total_tokens"] == 2_000_000


def test_unknown_model_has_no_cost_but_keeps_tokens() -> None:
    response = response_from_completion(_completion(model="someone/else"))
    assert response.additional_kwargs["cost_usd"] is None
    assert response.additional_kwargs["prompt_tokens"] == 12


def test_reply_without_model_is_priced_by_the_requested_model() -> None:
    response = response_from_completion(_completion(model=""), model="claude-haiku-4-5")
    assert response.additional_kwargs["cost_usd"] == pytest.approx((12 * 1 + 5 * 5) / 1e6)


def test_keep_first_tool_call_copies_and_trims() -> None:
    calls = [_call("a", "f", "{}"), _call("b", "g", "{}")]
    response = response_from_completion(_completion(content="Both.", tool_calls=calls))
    single = keep_first_tool_call(response)
    assert [s.tool_id for s in tool_selections(single.message)] == ["a"]
    assert [c["id"] for c in single.message.additional_kwargs["tool_calls"]] == ["a"]
    assert single.message.content == "Both."
    assert [s.tool_id for s in tool_selections(response.message)] == ["a", "b"]
    assert len(response.message.additional_kwargs["tool_calls"]) == 2
    text_only = response_from_completion(_completion())
    assert keep_first_tool_call(text_only) is text_only


# Tool selections.


def test_no_tool_call_raises_only_when_asked() -> None:
    message = response_from_completion(_completion()).message
    with pytest.raises(ValueError, match="tool call"):
        tool_selections(message)
    assert tool_selections(message, error_on_no_tool_call=False) == []


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('{"city": "Par', {"city": "Par"}),
        ('{"a": 1, "b": ', {"a": 1}),
        ('{"a": 1, "b', {"a": 1}),
        ('{"a": tru', {}),
        ('{"a": true', {"a": True}),
        ('{"a": [1, {"b": "x\\u00', {"a": [1, {"b": "x"}]}),
        ('{"a": "line\\', {"a": "line"}),
        ('{"a": {"b": [1, 2', {"a": {"b": [1, 2]}}),
        ('{"a": "x"} trailing', {"a": "x"}),
        ("", {}),
        (None, {}),
        ("[1, 2]", {}),
        ("}{", {}),
        ({"x": 1}, {"x": 1}),
    ],
)
def test_parse_tool_arguments_tolerates_partial_json(arguments: Any, expected: Any) -> None:
    assert parse_tool_arguments(arguments) == expected


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(), _json_values, max_size=4), st.booleans())
def test_every_prefix_of_an_object_parses(obj: dict[str, Any], ascii_only: bool) -> None:
    text = json.dumps(obj, ensure_ascii=ascii_only)
    for cut in range(len(text) + 1):
        assert isinstance(parse_tool_arguments(text[:cut]), dict)
    assert parse_tool_arguments(text) == obj
    completed = close_partial_json(text[: len(text) - 1])
    assert completed is not None
    json.loads(completed)


def test_selections_from_additional_kwargs_alone() -> None:
    from llama_index.core.base.llms.types import ChatMessage

    calls = [{"id": "c9", "type": "function", "function": {"name": "f", "arguments": '{"q": "x'}}]
    message = ChatMessage(role="assistant", additional_kwargs={"tool_calls": calls})
    [selection] = tool_selections(message)
    assert (selection.tool_id, selection.tool_name, selection.tool_kwargs) == (
        "c9",
        "f",
        {"q": "x"},
    )


# Streams.


def test_text_stream_is_cumulative_with_new_text_deltas() -> None:
    converter = ChunkConverter(model=MODEL)
    role_only = ChatCompletionChunk(
        choices=[ChunkChoice(delta=ChoiceDelta(role="assistant", content=""))]
    )
    assert converter.add(role_only) is None
    responses = [converter.add(_text_chunk(t)) for t in ["Hel", "lo", " world"]]
    assert [r.delta for r in responses if r] == ["Hel", "lo", " world"]
    assert [r.message.content for r in responses if r] == ["Hel", "Hello", "Hello world"]
    finish = ChatCompletionChunk(choices=[ChunkChoice(finish_reason="stop")])
    assert converter.add(finish) is None
    usage_only = ChatCompletionChunk(choices=[], usage=Usage(prompt_tokens=3, completion_tokens=4))
    assert converter.add(usage_only) is None


def test_earlier_chunk_responses_are_not_changed_by_later_chunks() -> None:
    converter = ChunkConverter()
    first = converter.add(_text_chunk("a"))
    converter.add(_tool_chunk(0, "c1", "f", '{"x"'))
    converter.add(_tool_chunk(0, None, None, ": 1}"))
    assert first is not None
    assert first.message.content == "a"
    assert "tool_calls" not in first.message.additional_kwargs


def test_streamed_tool_call_arguments_accumulate() -> None:
    converter = ChunkConverter()
    pieces = ['{"ci', 'ty": "Pa', 'ris", "days": ', "3}"]
    first = converter.add(_tool_chunk(0, "call_1", "weather", ""))
    assert first is not None
    assert tool_selections(first.message)[0].tool_kwargs == {}
    seen = []
    for piece in pieces:
        response = converter.add(_tool_chunk(0, None, None, piece))
        assert response is not None
        assert response.delta == ""
        [selection] = tool_selections(response.message, error_on_no_tool_call=False)
        assert (selection.tool_id, selection.tool_name) == ("call_1", "weather")
        seen.append(selection.tool_kwargs)
        assert response.message.additional_kwargs["tool_calls"][0]["function"]["arguments"] == (
            "".join(pieces[: len(seen)])
        )
    assert seen == [
        {},
        {"city": "Pa"},
        {"city": "Paris"},
        {"city": "Paris", "days": 3},
    ]


def _chunks_for(completion: ChatCompletion, split: int) -> list[ChatCompletionChunk]:
    """The completion as a stream, each text and argument string cut into ``split``-char deltas."""
    chunks: list[ChatCompletionChunk] = []
    for chunk in completion_to_chunks(completion):
        if not chunk.choices:
            chunks.append(chunk)
            continue
        delta = chunk.choices[0].delta
        if delta.content:
            for i in range(0, len(delta.content), split):
                chunks.append(_text_chunk(delta.content[i : i + split]))
        elif delta.tool_calls:
            call = delta.tool_calls[0]
            assert call.function is not None
            args = call.function.arguments or ""
            chunks.append(_tool_chunk(call.index, call.id, call.function.name, ""))
            for i in range(0, len(args), split):
                chunks.append(_tool_chunk(call.index, None, None, args[i : i + split]))
        else:
            chunks.append(chunk)
    return chunks


@pytest.mark.parametrize("split", [1, 3, 1000])
def test_stream_views_agree_with_the_cores_accumulated_completion(split: int) -> None:
    completion = _completion(
        content="Let me check both.",
        tool_calls=[
            _call("call_a", "weather", '{"city": "Paris"}'),
            _call("call_b", "time", '{"tz": "CET"}'),
        ],
        finish_reason="tool_calls",
    )
    converter = ChunkConverter(model=MODEL)
    accumulator = ChunkAccumulator()
    responses: list[ChatResponse] = []
    for chunk in _chunks_for(completion, split):
        accumulator.add(chunk)
        response = converter.add(chunk)
        if response is not None:
            responses.append(response)
    final = converter.finish(accumulator.completion())
    last = responses[-1]
    assert "".join(r.delta or "" for r in responses) == "Let me check both."
    assert last.message.content == final.message.content == "Let me check both."
    assert last.message.additional_kwargs == final.message.additional_kwargs
    assert [s.model_dump() for s in tool_selections(last.message)] == [
        s.model_dump() for s in tool_selections(final.message)
    ]
    assert final.delta == ""
    assert final.raw["usage"]["prompt_tokens"] == 12
    assert final.additional_kwargs["completion_tokens"] == 5
    assert final.additional_kwargs["finish_reason"] == "tool_calls"


def test_parallel_calls_sharing_index_zero_are_told_apart_by_id() -> None:
    converter = ChunkConverter()
    accumulator = ChunkAccumulator()
    chunks = [
        _tool_chunk(0, "call_a", "f", '{"n": '),
        _tool_chunk(0, None, None, "1}"),
        _tool_chunk(0, "call_b", "g", '{"m": 2}'),
    ]
    response = None
    for chunk in chunks:
        accumulator.add(chunk)
        response = converter.add(chunk)
    assert response is not None
    got = [(s.tool_id, s.tool_name, s.tool_kwargs) for s in tool_selections(response.message)]
    assert got == [("call_a", "f", {"n": 1}), ("call_b", "g", {"m": 2})]
    final = converter.finish(accumulator.completion())
    assert [(s.tool_id, s.tool_kwargs) for s in tool_selections(final.message)] == [
        ("call_a", {"n": 1}),
        ("call_b", {"m": 2}),
    ]


def test_deltas_without_index_follow_the_id_or_the_last_call() -> None:
    converter = ChunkConverter()
    converter.add(_tool_chunk(None, "call_x", "f", '{"a"'))
    converter.add(_tool_chunk(None, None, None, ": 1"))
    response = converter.add(_tool_chunk(None, "call_x", None, "}"))
    assert response is not None
    [selection] = tool_selections(response.message)
    assert (selection.tool_id, selection.tool_kwargs) == ("call_x", {"a": 1})


def test_several_calls_in_one_chunk() -> None:
    deltas = [
        ChoiceDeltaToolCall(
            index=0, id="a", function=ChoiceDeltaToolCallFunction(name="f", arguments="{}")
        ),
        ChoiceDeltaToolCall(
            index=1, id="b", function=ChoiceDeltaToolCallFunction(name="g", arguments="{}")
        ),
    ]
    chunk = ChatCompletionChunk(choices=[ChunkChoice(delta=ChoiceDelta(tool_calls=deltas))])
    response = ChunkConverter().add(chunk)
    assert response is not None
    assert [s.tool_name for s in tool_selections(response.message)] == ["f", "g"]


class Album(BaseModel):
    title: str
    year: int


def test_framework_streaming_structured_output_sees_partial_objects() -> None:
    """LlamaIndex's own `process_streaming_objects` turns our chunks into growing objects."""
    from llama_index.core.llms.mock import MockFunctionCallingLLM

    class _LLM(MockFunctionCallingLLM):
        def get_tool_calls_from_response(
            self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
        ) -> Any:
            return tool_selections(response.message, error_on_no_tool_call=error_on_no_tool_call)

    llm = _LLM()
    converter = ChunkConverter()
    objects = []
    cur = None
    converter.add(_tool_chunk(0, "c", "Album", ""))
    for piece in ['{"title": "Blue', '", "ye', 'ar": 19', "71}"]:
        response = converter.add(_tool_chunk(0, None, None, piece))
        assert response is not None
        obj = process_streaming_objects(response, Album, cur_objects=cur, llm=llm)
        cur = [obj]
        objects.append(obj.model_dump())
    assert objects[0] == {"title": "Blue", "year": None}
    assert objects[-1] == {"title": "Blue", "year": 1971}
    assert isinstance(cur[0], Album)


def test_text_responses_built_without_validation_equal_validated_ones() -> None:
    raw = {"type": "content_block_delta", "index": 0}
    built = text_response("Hello there", " there", raw)
    validated = ChatResponse(
        message=ChatMessage(
            role=MessageRole.ASSISTANT, blocks=[TextBlock(text="Hello there")], additional_kwargs={}
        ),
        delta=" there",
        raw=raw,
        additional_kwargs={},
    )
    assert built == validated
    assert built.model_dump() == validated.model_dump()
    assert built.model_fields_set == validated.model_fields_set
    assert built.message.model_fields_set == validated.message.model_fields_set
    assert built.message.content == "Hello there"
    other = text_response("Hello", "Hello", None)
    assert other.message.blocks is not built.message.blocks
    assert other.message.additional_kwargs is not built.message.additional_kwargs
    assert other.additional_kwargs is not built.additional_kwargs
    built.message.additional_kwargs["seen"] = True
    assert "seen" not in text_response("x", "x", None).message.additional_kwargs


def test_a_streamed_text_reply_gives_the_same_responses_as_validation_would() -> None:
    converter = ChunkConverter(model="m")
    chunks = [_text_chunk("one"), _text_chunk(" two"), _text_chunk(" three")]
    responses = [r for r in map(converter.add, chunks) if r is not None]
    assert [r.delta for r in responses] == ["one", " two", " three"]
    assert [r.message.content for r in responses][-1] == "one two three"
    for response in responses:
        text = TextBlock(text=response.message.content or "")
        message = ChatMessage(role=MessageRole.ASSISTANT, blocks=[text], additional_kwargs={})
        validated = ChatResponse(
            message=message, delta=response.delta, raw=response.raw, additional_kwargs={}
        )
        assert response == validated
        assert response.model_fields_set == validated.model_fields_set
