"""Pure conversion for Claude's native protocol (issue 13): documents, thinking, cache_control.

Every form ChatAnthropic reads goes in; the core's internal request format comes out.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool

from langchain_tokenhub.messages import (
    StreamConverter,
    cache_creation_by_ttl,
    completion_to_message,
    convert_messages,
    convert_tools,
    usage_to_metadata,
)
from tokenhub_core.errors import InvalidParameterError
from tokenhub_core.wire import ChatCompletion, ChatCompletionChunk, FunctionCall, ToolCall, Usage

PDF = base64.b64encode(b"%PDF-1.4\n%%EOF\n").decode()
EPHEMERAL = {"type": "ephemeral"}
PDF_PART = {
    "type": "document",
    "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
}


def _user(*blocks: Any) -> list[dict[str, Any]]:
    return convert_messages([HumanMessage(list(blocks))], protocol="messages")


# --- documents --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "block",
    [
        {"type": "file", "base64": PDF, "mime_type": "application/pdf"},
        {"type": "file", "base64": PDF},  # ChatAnthropic's default media type
        {"type": "file", "source_type": "base64", "data": PDF, "mime_type": "application/pdf"},
        {
            "type": "file",
            "file": {"filename": "a.pdf", "file_data": f"data:application/pdf;base64,{PDF}"},
        },
        PDF_PART,
    ],
    ids=["v1", "v1-no-mime", "v0", "openai", "anthropic"],
)
def test_every_pdf_form_becomes_one_document_part(block: dict[str, Any]) -> None:
    wire = _user({"type": "text", "text": "Summarize:"}, block)
    assert wire == [{"role": "user", "content": [{"type": "text", "text": "Summarize:"}, PDF_PART]}]


def test_pdf_urls_and_plain_text_documents() -> None:
    text = "Plain words."
    wire = _user(
        {"type": "file", "url": "https://example.com/a.pdf", "mime_type": "application/pdf"},
        {"type": "file", "source_type": "url", "url": "https://example.com/b.pdf"},
        {"type": "text-plain", "text": text, "mime_type": "text/plain"},
        {"type": "file", "source_type": "text", "text": text},
        {
            "type": "file",
            "base64": base64.b64encode(text.encode()).decode(),
            "mime_type": "text/plain",
        },
    )
    plain = {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": text},
    }
    assert wire[0]["content"] == [
        {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}},
        {"type": "document", "source": {"type": "url", "url": "https://example.com/b.pdf"}},
        plain,
        plain,
        plain,
    ]


def test_document_options_are_kept_from_the_block_or_its_extras() -> None:
    block = {
        "type": "file",
        "base64": PDF,
        "mime_type": "application/pdf",
        "extras": {"title": "Report", "citations": {"enabled": True}},
        "cache_control": EPHEMERAL,
        "id": "lc-block-id",  # LangChain's own field: not for the wire
    }
    part = _user(block)[0]["content"][0]
    assert part == {
        **PDF_PART,
        "title": "Report",
        "citations": {"enabled": True},
        "cache_control": EPHEMERAL,
    }


@pytest.mark.parametrize(
    ("block", "param", "allowed"),
    [
        (
            {"type": "file", "base64": PDF, "mime_type": "application/msword"},
            "mime_type",
            "application/pdf",
        ),
        ({"type": "file", "file_id": "file-123"}, "file_id", "file ids are not supported"),
        (
            {"type": "file", "url": "https://x/a.docx", "mime_type": "text/csv"},
            "mime_type",
            "application/pdf",
        ),
        ({"type": "file", "base64": "%%%", "mime_type": "text/plain"}, "base64", "UTF-8 text"),
        (
            {"type": "document", "source": {"type": "file", "file_id": "f"}},
            "source.type",
            "base64, url or text",
        ),
    ],
)
def test_a_document_claude_cannot_take_is_refused_naming_where(
    block: dict[str, Any], param: str, allowed: str
) -> None:
    with pytest.raises(InvalidParameterError, match=allowed) as caught:
        _user({"type": "text", "text": "read"}, block)
    assert caught.value.param == f"messages[0].content[1].{param}"


def test_documents_on_chat_completions_are_refused_before_sending() -> None:
    message = HumanMessage([{"type": "text", "text": "read"}, {"type": "file", "base64": PDF}])
    with pytest.raises(InvalidParameterError, match="protocol='messages'") as caught:
        convert_messages([message])
    assert caught.value.param == "messages[0].content[1]"


def test_tool_results_carry_documents_and_images_as_parts_on_messages() -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()
    result = ToolMessage(
        [
            {"type": "text", "text": "the report", "cache_control": EPHEMERAL},
            {"type": "file", "base64": PDF, "mime_type": "application/pdf"},
            {"type": "image", "base64": png, "mime_type": "image/png"},
        ],
        tool_call_id="call_1",
    )
    call = {"name": "fetch", "args": {}, "id": "call_1"}
    wire = convert_messages([AIMessage("", tool_calls=[call]), result], protocol="messages")
    assert wire[1] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": [
            {"type": "text", "text": "the report", "cache_control": EPHEMERAL},
            PDF_PART,
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
        ],
    }
    # chat/completions keeps today's shape: text in the tool message, images after it
    old = convert_messages(
        [AIMessage("", tool_calls=[call]), result.model_copy(update={"content": "ok"})]
    )
    assert old[1] == {"role": "tool", "tool_call_id": "call_1", "content": "ok"}


# --- cache_control --------------------------------------------------------------------------------


def test_cache_control_is_kept_on_images_system_and_assistant_text() -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()
    wire = convert_messages(
        [
            SystemMessage([{"type": "text", "text": "rules", "cache_control": EPHEMERAL}]),
            HumanMessage(
                [
                    {
                        "type": "image",
                        "base64": png,
                        "mime_type": "image/png",
                        "cache_control": EPHEMERAL,
                    }
                ]
            ),
            AIMessage([{"type": "text", "text": "seen", "cache_control": EPHEMERAL}]),
        ],
        protocol="messages",
    )
    assert wire[0]["content"] == [{"type": "text", "text": "rules", "cache_control": EPHEMERAL}]
    assert wire[1]["content"][0]["cache_control"] == EPHEMERAL
    assert wire[2]["content"] == [{"type": "text", "text": "seen", "cache_control": EPHEMERAL}]


def test_tools_keep_cache_control_in_every_form_chat_anthropic_reads() -> None:
    @tool(extras={"cache_control": EPHEMERAL})
    def lookup(city: str) -> str:
        """Look a city up."""
        return city

    anthropic_form = {
        "name": "weather",
        "description": "The weather.",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        "cache_control": {"type": "ephemeral", "ttl": "1h"},
    }
    openai_form = {
        "type": "function",
        "function": {"name": "time", "description": "The time.", "parameters": {"type": "object"}},
        "cache_control": EPHEMERAL,
    }
    wire = convert_tools(
        [
            lookup,
            anthropic_form,
            openai_form,
            {"name": "plain", "input_schema": {"type": "object"}, "description": "x"},
        ]
    )
    assert [t.get("cache_control") for t in wire] == [
        EPHEMERAL,
        {"type": "ephemeral", "ttl": "1h"},
        EPHEMERAL,
        None,
    ]
    assert wire[1]["function"]["parameters"] == anthropic_form["input_schema"]


# --- thinking sent back ---------------------------------------------------------------------------

THOUGHT = {"type": "thinking", "thinking": "Let me see.", "signature": "sig-1"}
REDACTED = {"type": "redacted_thinking", "data": "opaque"}
CALL = {"name": "get_weather", "args": {"city": "Oslo"}, "id": "toolu_1"}
WIRE_CALL = {
    "id": "toolu_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
}


def test_thinking_goes_back_first_with_its_signature_then_text_and_tool_calls() -> None:
    message = AIMessage(
        [
            THOUGHT,
            REDACTED,
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
        ],
        tool_calls=[CALL],
        response_metadata={"model_provider": "anthropic"},
    )
    assert convert_messages([message], protocol="messages") == [
        {
            "role": "assistant",
            "content": [THOUGHT, REDACTED, {"type": "text", "text": "Checking."}],
            "tool_calls": [WIRE_CALL],
        }
    ]
    # on chat/completions thinking cannot travel: the turn is what it always was
    assert convert_messages([message]) == [
        {"role": "assistant", "content": "Checking.", "tool_calls": [WIRE_CALL]}
    ]


def test_streamed_and_standard_v1_thinking_blocks_are_sent_back_alike() -> None:
    streamed = AIMessage(
        [{**THOUGHT, "index": 0}, {"type": "text", "text": "Done.", "index": 1}],
        response_metadata={"model_provider": "tokenhub"},
    )
    v1 = AIMessage(
        [
            {"type": "reasoning", "reasoning": "Let me see.", "extras": {"signature": "sig-1"}},
            {"type": "non_standard", "value": REDACTED},
            {"type": "text", "text": "Done."},
        ],
        response_metadata={"output_version": "v1", "model_provider": "anthropic"},
    )
    text = {"type": "text", "text": "Done."}
    assert convert_messages([streamed], protocol="messages")[0]["content"] == [THOUGHT, text]
    assert convert_messages([v1], protocol="messages")[0]["content"] == [THOUGHT, REDACTED, text]


def test_unsigned_reasoning_from_other_models_is_not_sent_to_claude() -> None:
    other = AIMessage(
        [{"type": "reasoning", "reasoning": "o1 thoughts"}, {"type": "text", "text": "Hi."}],
        response_metadata={"model_provider": "openai"},
    )
    assert convert_messages([other], protocol="messages") == [
        {"role": "assistant", "content": "Hi."}
    ]


def test_a_thinking_only_turn_with_tool_calls_keeps_its_thinking() -> None:
    message = AIMessage([THOUGHT], tool_calls=[CALL])
    assert convert_messages([message], protocol="messages") == [
        {"role": "assistant", "content": [THOUGHT], "tool_calls": [WIRE_CALL]}
    ]


# --- replies: thinking, cache usage, cost -----------------------------------------------------


def _native_completion(
    *, thinking: list[dict[str, Any]] | None, text: str, **usage: Any
) -> ChatCompletion:
    body = {
        "id": "msg_1",
        "model": "claude-sonnet-4-6",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "thinking_blocks": thinking},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 100, "completion_tokens": 40, "total_tokens": 140, **usage},
    }
    return ChatCompletion.model_validate(body)


def test_a_reply_with_thinking_is_shaped_as_chat_anthropic_shapes_it() -> None:
    completion = _native_completion(thinking=[THOUGHT, REDACTED], text="Oslo is cold.")
    message = completion_to_message(completion, model="claude-sonnet-4-6")
    assert message.content == [THOUGHT, REDACTED, {"type": "text", "text": "Oslo is cold."}]
    assert message.text == "Oslo is cold."
    assert message.content_blocks == [
        {"type": "reasoning", "reasoning": "Let me see.", "extras": {"signature": "sig-1"}},
        {"type": "non_standard", "value": REDACTED},
        {"type": "text", "text": "Oslo is cold."},
    ]
    # ... and goes back as it came
    assert convert_messages([message], protocol="messages")[0]["content"] == message.content


def test_a_reply_with_thinking_and_tool_calls_lists_both_in_content_blocks() -> None:
    completion = _native_completion(thinking=[THOUGHT], text="")
    completion.choices[0].message.tool_calls = [
        ToolCall(
            id="toolu_1", function=FunctionCall(name="get_weather", arguments='{"city": "Oslo"}')
        )
    ]
    message = completion_to_message(completion, model="claude-sonnet-4-6")
    assert message.content == [THOUGHT]
    assert message.tool_calls == [{**CALL, "type": "tool_call"}]
    assert [b["type"] for b in message.content_blocks] == ["reasoning", "tool_call"]


def test_cache_usage_is_reported_once_with_its_ttl_split_and_priced() -> None:
    usage = Usage.model_validate(
        {
            "prompt_tokens": 3000,
            "completion_tokens": 10,
            "prompt_tokens_details": {
                "cached_tokens": 1000,
                "cache_creation_tokens": 1500,
                "cache_creation_1h_tokens": 500,
            },
            "completion_tokens_details": {"reasoning_tokens": 6},
        }
    )
    assert usage_to_metadata(usage) == {
        "input_tokens": 3000,  # the whole prompt, each token once
        "output_tokens": 10,
        "total_tokens": 3010,
        "input_token_details": {
            "cache_read": 1000,
            "cache_creation": 1500,  # all writes: ChatAnthropic would say 0 and split them
        },
        "output_token_details": {"reasoning": 6},
    }
    assert cache_creation_by_ttl(usage) == {
        "ephemeral_5m_input_tokens": 1000,
        "ephemeral_1h_input_tokens": 500,
    }
    unsplit = Usage.model_validate(
        {"prompt_tokens": 2000, "prompt_tokens_details": {"cache_creation_tokens": 1500}}
    )
    assert usage_to_metadata(unsplit)["input_token_details"] == {
        "cache_read": 0,
        "cache_creation": 1500,
    }

    completion = _native_completion(thinking=None, text="ok", **usage.model_dump())
    message = completion_to_message(completion, model="claude-sonnet-4-6")
    # Sonnet 4.6: $3 in, $15 out; reads 0.1x, 5-minute writes 1.25x, 1-hour writes 2x
    expected = (500 * 3 + 1000 * 0.3 + 1000 * 3.75 + 500 * 6 + 10 * 15) / 1e6
    assert message.response_metadata["cost_usd"] == pytest.approx(expected)
    assert message.content == "ok"


def _delta_chunk(**delta: Any) -> ChatCompletionChunk:
    finish = delta.pop("finish_reason", None)
    return ChatCompletionChunk.model_validate(
        {
            "id": "msg_1",
            "model": "claude-sonnet-4-6",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
    )


def _fragment(k: int, kind: str | None, **fields: Any) -> dict[str, Any]:
    base = {"index": k, "type": kind, "thinking": None, "signature": None, "data": None}
    return {**base, **fields}


THINKING_STREAM = [
    _delta_chunk(role="assistant"),
    _delta_chunk(thinking_blocks=[_fragment(0, "thinking", thinking="Let ")]),
    _delta_chunk(thinking_blocks=[_fragment(0, None, thinking="me see.")]),
    _delta_chunk(thinking_blocks=[_fragment(0, None, signature="sig-1")]),
    _delta_chunk(thinking_blocks=[_fragment(1, "redacted_thinking", data="opaque")]),
    _delta_chunk(content="Oslo "),
    _delta_chunk(content="is cold."),
    _delta_chunk(finish_reason="stop"),
]


@pytest.mark.parametrize("asked", [True, False], ids=["thinking-asked", "thinking-unasked"])
def test_a_streamed_reply_with_thinking_merges_into_the_invoked_one(asked: bool) -> None:
    converter = StreamConverter("claude-sonnet-4-6", blocks=asked)
    chunks = [c for c in (converter.convert(chunk) for chunk in THINKING_STREAM) if c is not None]
    chunks.append(converter.finish(Usage(prompt_tokens=10, completion_tokens=5)))
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    reasoning = [b for b in chunks[1].content_blocks if b["type"] == "reasoning"]
    assert reasoning == [{"type": "reasoning", "reasoning": "Let ", "index": 0}]
    assert merged.text == "Oslo is cold."
    assert [{k: v for k, v in b.items() if k != "index"} for b in merged.content] == [
        THOUGHT,
        REDACTED,
        {"type": "text", "text": "Oslo is cold."},
    ]
    assert [b["type"] for b in merged.content_blocks] == ["reasoning", "non_standard", "text"]
    assert merged.content_blocks[0]["extras"] == {"signature": "sig-1"}
    # the merged message is sent back with its signature, like the invoked one
    assert convert_messages([merged], protocol="messages")[0]["content"] == [
        THOUGHT,
        REDACTED,
        {"type": "text", "text": "Oslo is cold."},
    ]


def test_a_stream_asked_to_think_streams_text_as_blocks_from_the_start() -> None:
    converter = StreamConverter("claude-sonnet-4-6", blocks=True)
    first = converter.convert(_delta_chunk(role="assistant"))
    text = converter.convert(_delta_chunk(content="Hi"))
    assert first is not None and first.content == []
    assert text is not None and text.content == [{"type": "text", "text": "Hi", "index": 0}]
    assert converter.finish(None).content == []
    plain = StreamConverter("claude-sonnet-4-6")
    chunk = plain.convert(_delta_chunk(content="Hi"))
    assert chunk is not None and chunk.content == "Hi"
