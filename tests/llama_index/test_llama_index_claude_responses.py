"""Wire -> LlamaIndex for Claude's own features: thinking blocks, cache usage and cache prices."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from llama_index.core.base.llms.types import TextBlock, ThinkingBlock, ToolCallBlock
from llama_index.core.callbacks.token_counting import get_tokens_from_response

from llama_index_tokenhub.messages import to_wire_message
from llama_index_tokenhub.responses import ChunkConverter, response_from_completion, usage_kwargs
from tokenhub_core.catalog import price_usage
from tokenhub_core.stream import ChunkAccumulator
from tokenhub_core.wire import (
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChoiceDelta,
    ChunkChoice,
    FunctionCall,
    Message,
    PromptTokensDetails,
    ToolCall,
    Usage,
)

MODEL = "anthropic/claude-sonnet-4-6"
THINKING = [
    {"type": "thinking", "thinking": "2 plus 3 is 5.", "signature": "sig-a"},
    {"type": "redacted_thinking", "data": "ENCRYPTED"},
]


def _cached_usage() -> Usage:
    # 1,000 uncached + 4,000 read + 2,000 written (500 of them to the hour cache) = 7,000.
    return Usage(
        prompt_tokens=7_000,
        completion_tokens=100,
        total_tokens=7_100,
        prompt_tokens_details=PromptTokensDetails(
            cached_tokens=4_000, cache_creation_tokens=2_000, cache_creation_1h_tokens=500
        ),
    )


def _completion(**message: Any) -> ChatCompletion:
    return ChatCompletion(
        id="msg_1",
        model=MODEL,
        choices=[Choice(message=Message(**message), finish_reason="stop")],
        usage=_cached_usage(),
    )


def test_thinking_comes_first_as_thinking_blocks_with_signatures() -> None:
    completion = _completion(
        content="It is 5.",
        thinking_blocks=THINKING,
        tool_calls=[ToolCall(id="toolu_1", function=FunctionCall(name="add", arguments="{}"))],
    )
    blocks = response_from_completion(completion).message.blocks
    assert [type(b) for b in blocks] == [ThinkingBlock, ThinkingBlock, TextBlock, ToolCallBlock]
    thought, redacted = blocks[0], blocks[1]
    assert isinstance(thought, ThinkingBlock) and isinstance(redacted, ThinkingBlock)
    assert thought.content == "2 plus 3 is 5."
    assert thought.additional_information == {"type": "thinking", "signature": "sig-a"}
    assert redacted.additional_information == {"type": "redacted_thinking", "data": "ENCRYPTED"}
    response = response_from_completion(completion)
    assert response.message.content == "It is 5."


def test_a_reply_with_thinking_goes_back_as_it_came() -> None:
    completion = _completion(
        content="Adding.",
        thinking_blocks=THINKING,
        tool_calls=[ToolCall(id="toolu_1", function=FunctionCall(name="add", arguments="{}"))],
    )
    wire = to_wire_message(response_from_completion(completion).message)
    assert wire["content"][:2] == THINKING
    assert wire["content"][2] == {"type": "text", "text": "Adding."}
    assert wire["tool_calls"][0]["id"] == "toolu_1"


def test_cache_usage_is_reported_both_ways_and_priced_with_cache_prices() -> None:
    response = response_from_completion(_completion(content="ok"))
    extra = response.additional_kwargs
    assert extra["prompt_tokens"] == 7_000  # the whole prompt
    assert extra["cache_read_input_tokens"] == 4_000
    assert extra["cache_creation_input_tokens"] == 2_000
    details = response.raw["usage"]["prompt_tokens_details"]
    assert details["cached_tokens"] == 4_000
    assert details["cache_creation_tokens"] == 2_000
    # Sonnet 4.6: $3 in, $15 out per million; reads 0.1x, 5-minute writes 1.25x, hour writes 2x.
    expected = (
        1_000 * Decimal(3)
        + 4_000 * Decimal("0.3")
        + 1_500 * Decimal("3.75")
        + 500 * Decimal(6)
        + 100 * Decimal(15)
    ) / 1_000_000
    assert extra["cost_usd"] == float(expected)
    assert price_usage(MODEL, None, _cached_usage())[1] == expected


def test_token_counting_handler_counts_the_whole_prompt() -> None:
    response = response_from_completion(_completion(content="ok"))
    assert get_tokens_from_response(response) == (7_000, 100)


def test_usage_without_cache_reports_zero_cache_tokens() -> None:
    kwargs = usage_kwargs(Usage(prompt_tokens=10, completion_tokens=2), MODEL)
    assert (kwargs["cache_read_input_tokens"], kwargs["cache_creation_input_tokens"]) == (0, 0)


# Streaming.


def _thinking_chunk(index: int, **item: Any) -> ChatCompletionChunk:
    delta = ChoiceDelta(
        thinking_blocks=[
            {"index": index, "type": None, "thinking": None, "signature": None, "data": None} | item
        ]
    )
    return ChatCompletionChunk(choices=[ChunkChoice(delta=delta)])


def _text_chunk(text: str) -> ChatCompletionChunk:
    return ChatCompletionChunk(choices=[ChunkChoice(delta=ChoiceDelta(content=text))])


def test_streamed_thinking_grows_a_thinking_block_with_thinking_deltas() -> None:
    converter = ChunkConverter(model=MODEL)
    chunks = [
        _thinking_chunk(0, type="thinking", thinking="Let me "),
        _thinking_chunk(0, thinking="think."),
        _thinking_chunk(0, signature="sig-z"),
        _text_chunk("Answer"),
    ]
    responses = [converter.add(c) for c in chunks]
    assert all(r is not None for r in responses)
    first, second, signed, text = (r for r in responses if r is not None)
    assert first.additional_kwargs["thinking_delta"] == "Let me "
    assert first.message.additional_kwargs["thinking_delta"] == "Let me "
    assert second.additional_kwargs["thinking_delta"] == "think."
    assert first.delta == second.delta == ""
    block = second.message.blocks[0]
    assert isinstance(block, ThinkingBlock) and block.content == "Let me think."
    # Earlier responses keep what they showed.
    earlier = first.message.blocks[0]
    assert isinstance(earlier, ThinkingBlock) and earlier.content == "Let me "
    signed_block = signed.message.blocks[0]
    assert isinstance(signed_block, ThinkingBlock)
    assert signed_block.additional_information == {"type": "thinking", "signature": "sig-z"}
    assert text.delta == "Answer"
    assert "thinking_delta" not in text.additional_kwargs
    assert [type(b) for b in text.message.blocks] == [ThinkingBlock, TextBlock]
    assert text.message.content == "Answer"


def test_two_thinking_blocks_and_a_redacted_one_stay_in_order() -> None:
    converter = ChunkConverter(model=MODEL)
    for chunk in [
        _thinking_chunk(0, type="thinking", thinking="a"),
        _thinking_chunk(0, signature="s0"),
        _thinking_chunk(1, type="redacted_thinking", data="XX"),
        _thinking_chunk(2, type="thinking", thinking="b"),
    ]:
        last = converter.add(chunk)
    assert last is not None
    infos = [b.additional_information for b in last.message.blocks if isinstance(b, ThinkingBlock)]
    assert infos == [
        {"type": "thinking", "signature": "s0"},
        {"type": "redacted_thinking", "data": "XX"},
        {"type": "thinking", "signature": ""},
    ]


def test_stream_final_response_matches_the_accumulated_completion() -> None:
    accumulator = ChunkAccumulator()
    converter = ChunkConverter(model=MODEL)
    chunks = [
        _thinking_chunk(0, type="thinking", thinking="hmm"),
        _thinking_chunk(0, signature="sig"),
        _text_chunk("Done."),
    ]
    for chunk in chunks:
        accumulator.add(chunk)
        converter.add(chunk)
    final = converter.finish(accumulator.completion())
    thought = final.message.blocks[0]
    assert isinstance(thought, ThinkingBlock)
    assert (thought.content, thought.additional_information["signature"]) == ("hmm", "sig")
    assert final.message.content == "Done."
