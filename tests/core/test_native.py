"""Claude's Messages protocol in the core: the request translation, the reply and event decoding,
cache usage and prices, thinking rules, and errors inside a 200 stream (pure decisions, over
httpx.MockTransport; the loopback suite is tests/protocols)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

import tokenhub_core.client as client_module
from tokenhub_core import TokenHubClient, track_cost
from tokenhub_core.catalog import MODELS, price_call, set_cache_pricing
from tokenhub_core.errors import (
    APIResponseError,
    BadRequestError,
    BudgetExceededError,
    InternalServerError,
    InvalidParameterError,
    StreamInterruptedError,
)
from tokenhub_core.native import MessagesEventReader, native_usage, to_messages_body
from tokenhub_core.params import build_body, estimate_tokens

SONNET = "anthropic/claude-sonnet-4-6"
USER = [{"role": "user", "content": "hello"}]
PDF = base64.b64encode(b"%PDF-1.4\n1 0 obj << /Type /Page >> endobj\n%%EOF").decode()


def native(messages: list[dict[str, Any]], **params: Any) -> dict[str, Any]:
    params.setdefault("model", SONNET)
    model = params.pop("model")
    return to_messages_body(
        build_body(model, messages, stream=False, protocol="messages", **params)
    )


# The request


def test_system_tools_and_tool_results_take_claudes_shape() -> None:
    body = native(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}},
                    {"id": "c2", "type": "function", "function": {"name": "w", "arguments": "{}"}},
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "c2", "content": "rain"},
            {"role": "user", "content": "thanks; and tomorrow?"},
        ],
        tools=[{"type": "function", "function": {"name": "w", "description": "weather"}}],
        tool_choice="required",
        parallel_tool_calls=False,
        stop="END",
        user="u-1",
        seed=3,
    )
    assert body["model"] == "claude-sonnet-4-6"
    assert body["system"] == "Be brief."
    assert [turn["role"] for turn in body["messages"]] == ["user", "assistant", "user"]
    results = body["messages"][2]["content"]
    assert [block["type"] for block in results] == ["tool_result", "tool_result", "text"]
    assert [block.get("tool_use_id") for block in results[:2]] == ["c1", "c2"]
    assert body["tools"] == [
        {
            "name": "w",
            "description": "weather",
            "input_schema": {"type": "object", "properties": {}},
        }
    ]
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "u-1"}
    assert "seed" not in body and "stop" not in body and "user" not in body


def test_cache_breakpoints_reach_system_tools_and_blocks() -> None:
    body = native(
        [
            {
                "role": "system",
                "content": [
                    {"type": "text", "text": "long manual", "cache_control": {"type": "ephemeral"}}
                ],
            },
            {"role": "user", "content": "q1", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        ],
        tools=[
            {
                "type": "function",
                "function": {"name": "f", "parameters": {"type": "object"}},
                "cache_control": {"type": "ephemeral"},
            }
        ],
    )
    assert body["system"] == [
        {"type": "text", "text": "long manual", "cache_control": {"type": "ephemeral"}}
    ]
    assert body["tools"][0]["cache_control"] == {"type": "ephemeral"}
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "q1", "cache_control": {"type": "ephemeral", "ttl": "1h"}}
    ]


def test_request_level_cache_control_marks_the_last_block() -> None:
    body = native(USER * 1, cache_control={"type": "ephemeral"})
    assert body["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    with pytest.raises(InvalidParameterError, match="cache_control"):
        native(USER, cache_control={"type": "persistent"})


def test_thinking_blocks_go_back_first_and_verbatim() -> None:
    thinking = {"type": "thinking", "thinking": "hmm", "signature": "sig"}
    body = native(
        [
            *USER,
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "ok"}, thinking],
                "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c", "content": "1"},
        ],
        tools=[{"type": "function", "function": {"name": "f"}}],
        thinking=2048,
        max_tokens=4096,
    )
    assistant = body["messages"][1]["content"]
    assert assistant[0] == thinking
    assert [block["type"] for block in assistant] == ["thinking", "text", "tool_use"]
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}


def test_chat_completions_drops_thinking_and_refuses_documents() -> None:
    history: list[dict[str, Any]] = [
        *USER,
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "s"},
                {"type": "text", "text": "hi"},
            ],
        },
        {"role": "user", "content": "more"},
    ]
    body = build_body(SONNET, history, stream=False)
    assert body["messages"][1]["content"] == [{"type": "text", "text": "hi"}]
    document = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                               "data": PDF}}  # fmt: skip
    with pytest.raises(InvalidParameterError, match='protocol="messages"'):
        build_body(SONNET, [{"role": "user", "content": [document]}], stream=False)
    sent = native([{"role": "user", "content": [document, {"type": "text", "text": "sum up"}]}])
    assert sent["messages"][0]["content"][0] == document


@pytest.mark.parametrize(
    ("source", "complaint"),
    [
        ({"type": "base64", "media_type": "application/pdf", "data": "not base64!"}, "base64"),
        ({"type": "base64", "media_type": "application/pdf", "data": "aGVsbG8="}, "%PDF"),
        ({"type": "base64", "media_type": "image/png", "data": PDF}, "application/pdf"),
        ({"type": "url", "url": "file:///etc/passwd"}, "http"),
        ({"type": "file", "file_id": "f"}, "source"),
    ],
)
def test_a_bad_document_is_refused_naming_it(source: dict[str, Any], complaint: str) -> None:
    message = {"role": "user", "content": [{"type": "document", "source": source}]}
    with pytest.raises(InvalidParameterError, match=complaint) as caught:
        native([message])
    assert caught.value.param.startswith("messages[0].content[0]")


def test_response_format_becomes_output_config_or_an_instruction() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    body = native(
        USER,
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    )
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    body = native(USER, response_format={"type": "json_object"})
    assert "JSON object" in body["system"]


# Thinking rules, before sending


@pytest.mark.parametrize(
    ("model", "params", "param"),
    [
        ("claude-opus-4-7", {"thinking": 2048, "max_tokens": 4096}, "thinking"),
        ("claude-3-5-haiku-latest", {"thinking": 2048, "max_tokens": 4096}, "thinking"),
        ("claude-haiku-4-5", {"thinking": "adaptive"}, "thinking"),
        (SONNET, {"thinking": 500}, "thinking.budget_tokens"),
        (SONNET, {"thinking": 4096, "max_tokens": 4096}, "thinking.budget_tokens"),
        (SONNET, {"thinking": 2048, "max_tokens": 4096, "temperature": 0.2}, "temperature"),
        (SONNET, {"thinking": 2048, "max_tokens": 4096, "top_p": 0.5}, "top_p"),
        (SONNET, {"thinking": 2048, "max_tokens": 4096, "top_k": 5}, "top_k"),
        (SONNET, {"thinking": "sometimes"}, "thinking"),
    ],
)
def test_claudes_thinking_rules_are_checked_before_sending(
    model: str, params: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidParameterError) as caught:
        native(USER, model=model, **params)
    assert caught.value.param == param


def test_thinking_cannot_be_forced_to_a_tool() -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    with pytest.raises(InvalidParameterError, match="tool_choice"):
        native(USER, tools=tools, tool_choice="required", thinking=2048, max_tokens=4096)
    assert native(USER, tools=tools, tool_choice="auto", thinking="adaptive")["thinking"] == {
        "type": "adaptive"
    }


def test_thinking_needs_the_messages_protocol() -> None:
    with pytest.raises(InvalidParameterError, match='protocol="messages"'):
        build_body(SONNET, USER, stream=False, thinking=2048, max_tokens=4096)
    with pytest.raises(InvalidParameterError, match="positive integer"):
        build_body(SONNET, USER, stream=False, top_k=0)


# Replies and usage


def test_native_usage_counts_the_whole_prompt_once() -> None:
    usage = native_usage(
        {
            "input_tokens": 12,
            "cache_read_input_tokens": 3000,
            "cache_creation_input_tokens": 500,
            "cache_creation": {"ephemeral_5m_input_tokens": 200, "ephemeral_1h_input_tokens": 300},
            "output_tokens": 40,
        }
    )
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (3512, 40, 3552)
    assert (usage.cache_read_tokens, usage.cache_creation_tokens) == (3000, 500)
    assert (usage.cache_creation_5m_tokens, usage.cache_creation_1h_tokens) == (200, 300)


def test_cache_prices_use_the_documented_multipliers_and_can_be_overridden() -> None:
    _, plain = price_call(SONNET, None, 1_000_000, 0)
    _, reads = price_call(SONNET, None, 1_000_000, 0, cache_read_tokens=1_000_000)
    _, writes = price_call(SONNET, None, 1_000_000, 0, cache_write_5m_tokens=1_000_000)
    _, hour = price_call(SONNET, None, 1_000_000, 0, cache_write_1h_tokens=1_000_000)
    assert (plain, reads, writes, hour) == (
        Decimal("3"),
        Decimal("0.3"),
        Decimal("3.75"),
        Decimal("6"),
    )
    original = MODELS[SONNET]
    try:
        set_cache_pricing("claude-sonnet-4-6", read="0.25")
        assert price_call(SONNET, None, 1_000_000, 0, cache_read_tokens=1_000_000)[1] == Decimal(
            "0.75"
        )
    finally:
        MODELS._by_id[original.id] = original
    with pytest.raises(ValueError, match="cache_read_multiplier"):
        set_cache_pricing(SONNET, read=-1)
    with pytest.raises(KeyError):
        set_cache_pricing("gpt-4o", read=0.1)


def events(*pairs: tuple[str, dict[str, Any]]) -> bytes:
    return "".join(f"event: {n}\ndata: {json.dumps(d)}\n\n" for n, d in pairs).encode()


START = (
    "message_start",
    {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "model": "claude-sonnet-4-6",
            "role": "assistant",
            "content": [],
            "usage": {"input_tokens": 9, "cache_read_input_tokens": 2000, "output_tokens": 1},
        },
    },
)


def delta(index: int, **fields: Any) -> tuple[str, dict[str, Any]]:
    return ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": fields})


def block(index: int, **fields: Any) -> tuple[str, dict[str, Any]]:
    payload = {"type": "content_block_start", "index": index, "content_block": fields}
    return ("content_block_start", payload)


END: list[tuple[str, dict[str, Any]]] = [
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 7},
        },
    ),
    ("message_stop", {"type": "message_stop"}),
]
TEXT_STREAM = events(
    START,
    ("ping", {"type": "ping"}),
    block(0, type="thinking", thinking="", signature=""),
    delta(0, type="thinking_delta", thinking="Two "),
    delta(0, type="thinking_delta", thinking="plus two."),
    delta(0, type="signature_delta", signature="c2ln"),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    block(1, type="text", text=""),
    delta(1, type="text_delta", text="Four"),
    delta(1, type="text_delta", text="."),
    *END,
)


def client_for(
    replies: list[httpx.Response] | Callable[[httpx.Request], httpx.Response],
    **options: Any,
) -> tuple[TokenHubClient, list[httpx.Request]]:
    sent: list[httpx.Request] = []
    queue: Iterator[httpx.Response] | None = iter(replies) if isinstance(replies, list) else None

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if queue is not None:
            return next(queue)
        assert callable(replies)
        return replies(request)

    client = TokenHubClient(
        api_key="th-unit-key-1234",
        base_url="https://th.test/api/v1",
        protocol="messages",
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
        **options,
    )
    return client, sent


def sse(content: bytes) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=content)


def test_a_stream_decodes_into_text_thinking_and_usage() -> None:
    client, sent = client_for([sse(TEXT_STREAM)])
    with client.stream(model=SONNET, messages=USER, thinking="adaptive") as stream:
        chunks = list(stream)
    request = sent[0]
    assert request.url == "https://th.test/api/v1/messages"
    assert request.headers["x-api-key"] == "th-unit-key-1234"
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert "stream_options" not in json.loads(request.content)
    assert chunks[0].choices[0].delta.role == "assistant"
    message = stream.completion().choices[0].message
    assert message.content == "Four."
    assert message.reasoning_content == "Two plus two."
    assert message.thinking_blocks == [
        {"type": "thinking", "thinking": "Two plus two.", "signature": "c2ln"}
    ]
    assert [c.usage is not None for c in chunks].count(True) == 1
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cache_read_tokens) == (
        2009,
        7,
        2000,
    )
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_tool_use_streams_as_tool_calls_numbered_in_order() -> None:
    stream_bytes = events(
        START,
        block(0, type="text", text=""),
        delta(0, type="text_delta", text="Checking."),
        block(1, type="tool_use", id="toolu_a", name="w", input={}),
        delta(1, type="input_json_delta", partial_json='{"city": '),
        delta(1, type="input_json_delta", partial_json='"Paris"}'),
        block(2, type="tool_use", id="toolu_b", name="w", input={}),
        delta(2, type="input_json_delta", partial_json='{"city": "Rome"}'),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use"},
                "usage": {"output_tokens": 30},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    )
    client, _ = client_for([sse(stream_bytes)])
    stream = client.stream(
        model=SONNET, messages=USER, tools=[{"type": "function", "function": {"name": "w"}}]
    )
    indexes = [call.index for chunk in stream for call in (chunk.choices[0].delta.tool_calls or [])]
    assert indexes == [0, 0, 0, 1, 1]
    completion = stream.completion()
    calls = completion.choices[0].message.tool_calls or []
    assert [(c.id, json.loads(c.function.arguments)) for c in calls] == [
        ("toolu_a", {"city": "Paris"}),
        ("toolu_b", {"city": "Rome"}),
    ]
    assert completion.choices[0].finish_reason == "tool_calls"


def test_a_stream_without_message_stop_or_stop_reason_is_interrupted() -> None:
    client, _ = client_for(
        [
            sse(
                events(
                    START, block(0, type="text", text=""), delta(0, type="text_delta", text="Hal")
                )
            )
        ]
    )
    with pytest.raises(StreamInterruptedError, match="message_stop") as caught:
        list(client.stream(model=SONNET, messages=USER))
    assert caught.value.partial is not None
    assert caught.value.partial.choices[0].message.content == "Hal"


OVERLOADED = events(
    START,
    ("ping", {"type": "ping"}),
    ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
)


def test_overloaded_inside_a_200_stream_is_retried_before_anything_was_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(client_module, "_sleep", lambda seconds: None)
    client, sent = client_for([sse(OVERLOADED), sse(TEXT_STREAM)])
    with track_cost() as meter:
        text = "".join(
            c.choices[0].delta.content or "" for c in client.stream(model=SONNET, messages=USER)
        )
    assert text == "Four." and len(sent) == 2
    assert meter.calls == 1 and meter.estimated_calls == 0


def test_overloaded_after_text_raises_the_typed_error_with_the_text_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(client_module, "_sleep", lambda seconds: None)
    late = events(
        START,
        block(0, type="text", text=""),
        delta(0, type="text_delta", text="Par"),
        (
            "error",
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        ),
    )
    client, sent = client_for([sse(late), sse(TEXT_STREAM)])
    stream = client.stream(model=SONNET, messages=USER)
    got = [next(stream).choices[0].delta.content]
    with pytest.raises(InternalServerError) as caught:
        next(stream)
    assert caught.value.status_code == 529 and caught.value.error_type == "overloaded_error"
    assert got == ["Par"] and len(sent) == 1


async def test_async_streams_retry_an_early_overload_too(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_wait(seconds: float) -> None:
        return None

    monkeypatch.setattr(client_module, "_asleep", no_wait)
    replies = iter([sse(OVERLOADED), sse(TEXT_STREAM)])
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return next(replies)

    client = TokenHubClient(
        api_key="th-unit-key-1234",
        base_url="https://th.test/api/v1",
        protocol="messages",
        http_async_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
    )
    text = [
        c.choices[0].delta.content or "" async for c in client.astream(model=SONNET, messages=USER)
    ]
    assert "".join(text) == "Four." and len(sent) == 2


def test_native_error_bodies_map_to_the_typed_errors_without_the_key() -> None:
    body = {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "bad key th-unit-key-1234 here"},
        "request_id": "req_9",
    }
    client, _ = client_for([httpx.Response(400, json=body, headers={"request-id": "req_9"})])
    with pytest.raises(BadRequestError) as caught:
        client.chat(model=SONNET, messages=USER)
    assert caught.value.request_id == "req_9"
    assert caught.value.error_type == "invalid_request_error"
    assert "th-unit-key-1234" not in str(caught.value) and "th-unit" not in repr(caught.value.body)


def test_a_non_stream_reply_and_a_garbled_one() -> None:
    message = {
        "id": "msg_2",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": [
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "text", "text": "Hello"},
        ],
        "stop_reason": "max_tokens",
        "usage": {"input_tokens": 5, "output_tokens": 3},
    }
    client, _ = client_for([httpx.Response(200, json=message), httpx.Response(200, text="<html>")])
    completion = client.chat(model=SONNET, messages=USER)
    assert completion.choices[0].finish_reason == "length"
    assert completion.choices[0].message.thinking_blocks == [
        {"type": "redacted_thinking", "data": "opaque"}
    ]
    with pytest.raises(APIResponseError, match="message"):
        client.chat(model=SONNET, messages=USER)


def test_base_urls_in_either_style_reach_the_messages_endpoint() -> None:
    for base, url in [
        ("https://tokenhub.store/api/v1", "https://tokenhub.store/api/v1/messages"),
        ("https://tokenhub.store/api", "https://tokenhub.store/api/v1/messages"),
        ("http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000/v1/messages"),
    ]:
        client = TokenHubClient(api_key="th-x1234", base_url=base, protocol="messages")
        assert str(client._url()[1]) == url
    with pytest.raises(InvalidParameterError, match="protocol"):
        TokenHubClient(protocol="anthropic")


def test_the_meter_shows_what_caching_saved() -> None:
    first = {"input_tokens": 10, "cache_creation_input_tokens": 4000, "output_tokens": 10}
    second = {"input_tokens": 10, "cache_read_input_tokens": 4000, "output_tokens": 10}

    def reply(usage: dict[str, Any]) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "type": "message",
                "model": "claude-sonnet-4-6",
                "content": [{"type": "text", "text": "ok"}],
                "stop_reason": "end_turn",
                "usage": usage,
            },
        )

    client, _ = client_for([reply(first), reply(second)])
    with track_cost() as meter:
        client.chat(model=SONNET, messages=USER)
        after_write = meter.cache_saved_usd
        client.chat(model=SONNET, messages=USER)
    assert after_write < 0 < meter.cache_saved_usd
    # 4000 tokens written at 1.25x then read at 0.1x instead of 2 x 4000 at 1x: 0.65 x 4000 saved.
    assert meter.cache_saved_usd == pytest.approx(0.65 * 4000 * 3 / 1e6)
    assert (meter.cache_read_tokens, meter.cache_write_tokens, meter.input_tokens) == (
        4000,
        4000,
        8020,
    )
    assert "cache_saved_usd" in repr(meter) and "saved" in meter._repr_html_()


def test_worst_case_holds_price_cache_writes_and_documents() -> None:
    text = {"type": "text", "text": "x" * 4000}
    cached = [
        {"role": "user", "content": [{**text, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}
    ]
    reply = {"type": "message", "content": [], "stop_reason": "end_turn",
             "usage": {"input_tokens": 1007, "output_tokens": 1}}  # fmt: skip
    # ~1007 prompt tokens: $0.0032 at the input price, $0.0062 if all written to the 1-hour cache.
    client, sent = client_for([httpx.Response(200, json=reply)])
    with track_cost(budget_usd=0.005) as meter:
        with pytest.raises(BudgetExceededError):
            client.chat(model=SONNET, messages=cached, max_tokens=10)
        assert not sent
        client.chat(model=SONNET, messages=[{"role": "user", "content": [text]}], max_tokens=10)
    assert meter.calls == 1
    pdf = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
    }
    assert estimate_tokens([{"role": "user", "content": [pdf]}]) >= 3000


def test_event_reader_ignores_pings_and_unknown_events() -> None:
    reader = MessagesEventReader("req")
    assert reader.event("ping", '{"type": "ping"}') is None
    assert reader.event("future_event", '{"type": "future_event"}') is None
    with pytest.raises(APIResponseError, match="malformed"):
        reader.event("content_block_delta", "{not json")


def test_a_reply_message_dumped_into_the_history_keeps_its_thinking() -> None:
    client, sent = client_for([sse(TEXT_STREAM), sse(TEXT_STREAM)])
    stream = client.stream(model=SONNET, messages=USER, thinking="adaptive")
    for _ in stream:
        pass
    reply = stream.completion().choices[0].message.model_dump(exclude_none=True)
    history = [*USER, reply, {"role": "user", "content": "and times three?"}]
    list(client.stream(model=SONNET, messages=history, thinking="adaptive"))
    assistant = json.loads(sent[1].content)["messages"][1]
    assert assistant["content"] == [
        {"type": "thinking", "thinking": "Two plus two.", "signature": "c2ln"},
        {"type": "text", "text": "Four."},
    ]
    plain = build_body(SONNET, history, stream=False)["messages"][1]
    assert "thinking_blocks" not in plain and plain["content"] == [
        {"type": "text", "text": "Four."}
    ]


def test_a_json_answer_to_a_stream_and_an_error_inside_a_200_body(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(client_module, "_sleep", lambda seconds: None)
    message = {
        "type": "message",
        "model": "claude-sonnet-4-6",
        "content": [{"type": "text", "text": "Whole."}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 4, "output_tokens": 2},
    }
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    client, sent = client_for(
        [
            httpx.Response(200, json=message),
            httpx.Response(200, json=overloaded),
            httpx.Response(200, json=message),
        ]
    )
    chunks = list(client.stream(model=SONNET, messages=USER))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Whole."
    assert client.chat(model=SONNET, messages=USER).choices[0].message.content == "Whole."
    assert len(sent) == 3  # the overloaded 200 was retried like a 529


def test_a_stream_whose_final_usage_never_comes_is_charged_its_worst_case() -> None:
    no_final_usage = events(
        START,
        block(0, type="text", text=""),
        delta(0, type="text_delta", text="Hi"),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}}),
        ("message_stop", {"type": "message_stop"}),
    )
    client, _ = client_for([sse(no_final_usage)])
    with track_cost() as meter:
        list(client.stream(model=SONNET, messages=USER, max_tokens=100))
    assert meter.calls == 1 and meter.estimated_calls == 1 and meter.output_tokens == 100


def _chunk_dumps(chunks: list[Any]) -> list[dict[str, Any]]:
    return [c.model_dump(exclude_none=True) for c in chunks]


def test_parts_and_chunks_are_one_stream_and_agree() -> None:
    client, _ = client_for([sse(TEXT_STREAM), sse(TEXT_STREAM)])
    whole = list(client.stream(model=SONNET, messages=USER, thinking="adaptive"))
    stream = client.stream(model=SONNET, messages=USER, thinking="adaptive")
    first = next(stream)  # one chunk read as a chunk, the rest as parts: one iteration
    parts = list(stream.parts())
    assert _chunk_dumps([first] + [p.chunk for p in parts]) == _chunk_dumps(whole)
    assert [p.raw["type"] for p in parts][-2:] == ["content_block_delta", "message_delta"]
    assert parts[-2].raw["delta"] == {"type": "text_delta", "text": "."}
    assert stream.completion().choices[0].message.content == "Four."


async def test_async_parts_are_the_same_stream() -> None:
    async def reply(request: httpx.Request) -> httpx.Response:
        return sse(TEXT_STREAM)

    client = TokenHubClient(
        api_key="th-unit-key-1234",
        base_url="https://th.test/api/v1",
        protocol="messages",
        http_async_client=httpx.AsyncClient(transport=httpx.MockTransport(reply)),
    )
    stream = client.astream(model=SONNET, messages=USER, thinking="adaptive")
    first = await stream.__anext__()
    texts = [p.content async for p in stream.parts() if p.content]
    assert first.choices[0].delta.role == "assistant"
    assert "".join(texts) == "Four."
    assert stream.usage is not None and stream.usage.completion_tokens == 7


def _reads(content: bytes, per_read: bool) -> httpx.Response:
    """``content`` as one read, or one event per read (as a live stream arrives)."""
    pieces = [p + b"\n\n" for p in content.split(b"\n\n") if p] if per_read else [content]
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=iter(pieces))


@pytest.mark.parametrize(
    "fragments",
    [
        [b'"Four"', b'"."'],
        ['"Vier · 四 🙂"'.encode(), b'"\\u00e9t\\u00e9"'],  # raw UTF-8 and JSON escapes
        [b'"bad \xff byte"', b'" ok"'],  # invalid UTF-8: U+FFFD, as the decoder gives it
        [b'"a"', b"", b'"b"'],  # an empty data line
    ],
)
def test_a_stream_read_one_event_at_a_time_is_the_same_stream(fragments: list[bytes]) -> None:
    deltas = b"".join(
        b"event: content_block_delta\ndata: "
        + (
            b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":'
            + fragment
            + b"}}"
            if fragment
            else b""
        )
        + b"\n\n"
        for fragment in fragments
    )
    content = events(START, block(0, type="text", text="")) + deltas + events(*END)
    results = []
    for per_read in (False, True):
        client, _ = client_for([_reads(content, per_read)])
        with client.stream(model=SONNET, messages=USER) as stream:
            chunks = [c.model_dump() for c in stream]
        results.append((chunks, stream.completion().choices[0].message.content))
    assert results[0] == results[1]
    expected = "".join(json.loads(f.decode("utf-8", "replace")) for f in fragments if f)
    assert results[1][1] == expected
