"""An independent client: the official ``anthropic`` SDK parses everything ``/v1/messages`` sends."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import pytest

from tests.emulator.native_helpers import MODEL, PNG_B64, WEATHER
from tokenhub_emulator import TokenHubEmulator
from tokenhub_emulator.pdf import simple_pdf

THINKING: Any = {"type": "enabled", "budget_tokens": 1024}
LONG = "The Orin valley keeps its own calendar of harvests and feasts. " * 190


@pytest.fixture(scope="module")
def _sdk_module(tokenhub_emulator_session: TokenHubEmulator) -> Iterator[anthropic.Anthropic]:
    # Built once: each SDK client builds an HTTP client and its TLS context.
    with anthropic.Anthropic(
        base_url=tokenhub_emulator_session.url,
        api_key=tokenhub_emulator_session.api_key,
        max_retries=0,
    ) as client:
        yield client


@pytest.fixture
def sdk(
    tokenhub_emulator: TokenHubEmulator, _sdk_module: anthropic.Anthropic
) -> anthropic.Anthropic:
    """The sync SDK client, pointed at the freshly reset emulator's root."""
    return _sdk_module


@pytest.fixture
async def async_sdk(tokenhub_emulator: TokenHubEmulator) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=tokenhub_emulator.url, api_key=tokenhub_emulator.api_key, max_retries=0
    ) as client:
        yield client


def _user(content: Any) -> Any:
    return [{"role": "user", "content": content}]


def test_create(sdk: anthropic.Anthropic) -> None:
    message = sdk.messages.create(model=MODEL, max_tokens=100, messages=_user("Hi SDK"))
    assert isinstance(message.content[0], anthropic.types.TextBlock)
    assert message.content[0].text == "[emulator] You said: Hi SDK"
    assert (message.model, message.stop_reason) == (MODEL, "end_turn")
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    raw = sdk.messages.with_raw_response.create(model=MODEL, max_tokens=10, messages=_user("x"))
    assert raw.headers["request-id"].startswith("req_")


def test_the_sdk_also_works_against_the_api_base(tokenhub_emulator: TokenHubEmulator) -> None:
    root = tokenhub_emulator.base_url.removesuffix("/v1")  # ".../api", as for tokenhub.store
    with anthropic.Anthropic(base_url=root, api_key=tokenhub_emulator.api_key) as client:
        message = client.messages.create(model=MODEL, max_tokens=3, messages=_user("Hi"))
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 3


def test_stream_and_get_final_message(sdk: anthropic.Anthropic) -> None:
    with sdk.messages.stream(model=MODEL, max_tokens=200, messages=_user("Stream me")) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "[emulator] You said: Stream me"
    assert final.content[0].type == "text" and final.content[0].text == text
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 5


async def test_async_stream(async_sdk: anthropic.AsyncAnthropic) -> None:
    async with async_sdk.messages.stream(
        model=MODEL, max_tokens=200, messages=_user("Async stream")
    ) as stream:
        parts = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert len(parts) > 3 and "".join(parts) == "[emulator] You said: Async stream"
    assert final.usage.input_tokens > 0


@pytest.mark.parametrize("streamed", [False, True])
def test_tools(sdk: anthropic.Anthropic, streamed: bool) -> None:
    params: Any = {
        "model": MODEL,
        "max_tokens": 200,
        "tools": [WEATHER],
        "messages": _user("What's the weather in Paris?"),
    }
    if streamed:
        with sdk.messages.stream(**params) as stream:
            message = stream.get_final_message()
    else:
        message = sdk.messages.create(**params)
    [call] = message.content
    assert isinstance(call, anthropic.types.ToolUseBlock)
    assert (call.name, call.input) == ("get_weather", {"location": "Paris"})
    assert message.stop_reason == "tool_use"
    params["messages"] += [
        {"role": "assistant", "content": message.content},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "Sunny"}],
        },
    ]
    answer = sdk.messages.create(**params)
    assert answer.content[0].type == "text"
    assert answer.content[0].text == "[emulator] Tool results: get_weather returned Sunny"


async def test_a_tool_loop_with_thinking(async_sdk: anthropic.AsyncAnthropic) -> None:
    messages: Any = _user("What's the weather in Paris?")
    params: Any = {"model": MODEL, "max_tokens": 2000, "tools": [WEATHER], "thinking": THINKING}
    async with async_sdk.messages.stream(messages=messages, **params) as stream:
        thinking = [e.thinking async for e in stream if e.type == "thinking"]
        first = await stream.get_final_message()
    block, call = first.content
    assert isinstance(block, anthropic.types.ThinkingBlock) and block.signature
    assert "".join(thinking) == block.thinking
    assert first.usage.output_tokens_details is not None
    assert first.usage.output_tokens_details.thinking_tokens > 0
    assert isinstance(call, anthropic.types.ToolUseBlock)
    messages += [
        {"role": "assistant", "content": first.content},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "21C"}],
        },
    ]
    final = await async_sdk.messages.create(messages=messages, **params)
    assert [b.type for b in final.content] == ["thinking", "text"]
    messages[1]["content"] = first.content[1:]  # the thinking block left out
    with pytest.raises(anthropic.BadRequestError, match="must start with a thinking block"):
        await async_sdk.messages.create(messages=messages, **params)


def test_cache_usage(sdk: anthropic.Anthropic) -> None:
    system: Any = [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}]
    first = sdk.messages.create(model=MODEL, max_tokens=20, system=system, messages=_user("Hi"))
    assert (
        first.usage.cache_creation_input_tokens and first.usage.cache_creation_input_tokens > 2048
    )
    assert first.usage.cache_creation is not None
    assert (
        first.usage.cache_creation.ephemeral_5m_input_tokens
        == first.usage.cache_creation_input_tokens
    )
    with sdk.messages.stream(model=MODEL, max_tokens=20, system=system, messages=_user("Hi")) as s:
        second = s.get_final_message()
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert second.usage.cache_creation_input_tokens == 0


def test_documents_images_and_structured_output(sdk: anthropic.Anthropic) -> None:
    pdf = base64.b64encode(simple_pdf("Orin has 4200 people.")).decode()
    content: Any = [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": pdf},
        },
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
        {"type": "text", "text": "How many people does Orin have?"},
    ]
    message = sdk.messages.create(model=MODEL, max_tokens=100, messages=_user(content))
    assert message.content[0].type == "text"
    assert message.content[0].text.startswith("[emulator] Orin has 4200 people.")
    schema = {"type": "object", "properties": {"count": {"type": "integer"}}, "required": ["count"]}
    structured = sdk.messages.create(
        model=MODEL,
        max_tokens=100,
        messages=_user("Count 3 apples"),
        output_config={"format": {"type": "json_schema", "schema": schema}},
    )
    assert structured.content[0].type == "text" and '"count"' in structured.content[0].text


def test_count_tokens(sdk: anthropic.Anthropic) -> None:
    counted = sdk.messages.count_tokens(model=MODEL, messages=_user("Count me"))
    message = sdk.messages.create(model=MODEL, max_tokens=5, messages=_user("Count me"))
    assert counted.input_tokens == message.usage.input_tokens


ERRORS: list[tuple[int, type[anthropic.APIStatusError]]] = [
    (400, anthropic.BadRequestError),
    (401, anthropic.AuthenticationError),
    (402, anthropic.PaymentRequiredError),
    (403, anthropic.PermissionDeniedError),
    (404, anthropic.NotFoundError),
    (413, anthropic.ContentTooLargeError),
    (429, anthropic.RateLimitError),
    (500, anthropic.InternalServerError),
    (529, anthropic.OverloadedError),
]


@pytest.mark.parametrize(("status", "error"), ERRORS)
def test_every_injected_error_is_the_sdks_typed_exception(
    tokenhub_emulator: TokenHubEmulator,
    sdk: anthropic.Anthropic,
    status: int,
    error: type[anthropic.APIStatusError],
) -> None:
    tokenhub_emulator.fail_next(status, message="scripted failure")
    with pytest.raises(error) as caught:
        sdk.messages.create(model=MODEL, max_tokens=10, messages=_user("Hi"))
    assert caught.value.status_code == status
    assert caught.value.body == {
        "type": "error",
        "error": {"type": caught.value.body["error"]["type"], "message": "scripted failure"},  # type: ignore[index]
        "request_id": caught.value.request_id,
    }


def test_the_emulators_own_refusals_are_typed_too(
    tokenhub_emulator: TokenHubEmulator, sdk: anthropic.Anthropic
) -> None:
    with pytest.raises(anthropic.BadRequestError, match="temperature"):
        sdk.messages.create(
            model=MODEL, max_tokens=10, messages=_user("Hi"), extra_body={"temperature": 2}
        )
    with pytest.raises(anthropic.NotFoundError, match="model: claude-nope"):
        sdk.messages.create(model="claude-nope", max_tokens=10, messages=_user("Hi"))
    with (
        anthropic.Anthropic(base_url=tokenhub_emulator.url, api_key="sk-wrong") as wrong,
        pytest.raises(anthropic.AuthenticationError, match="invalid x-api-key"),
    ):
        wrong.messages.create(model=MODEL, max_tokens=10, messages=_user("Hi"))
    tokenhub_emulator.configure(rpm=1)
    sdk.messages.create(model=MODEL, max_tokens=10, messages=_user("Hi"))
    with pytest.raises(anthropic.RateLimitError):
        sdk.messages.create(model=MODEL, max_tokens=10, messages=_user("Hi"))


def test_an_overloaded_error_inside_a_stream(
    tokenhub_emulator: TokenHubEmulator, sdk: anthropic.Anthropic
) -> None:
    tokenhub_emulator.sse_error_after(5)
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        sdk.messages.stream(model=MODEL, max_tokens=100, messages=_user("Hi there")) as stream,
    ):
        stream.get_final_message()
    assert caught.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


def test_the_sdk_retries_an_overloaded_529(tokenhub_emulator: TokenHubEmulator) -> None:
    tokenhub_emulator.fail_next(529, headers={"retry-after-ms": "1"})
    with anthropic.Anthropic(
        base_url=tokenhub_emulator.url, api_key=tokenhub_emulator.api_key, max_retries=1
    ) as client:
        message = client.messages.create(model=MODEL, max_tokens=10, messages=_user("Hi"))
    assert message.content[0].type == "text"
    assert [r.status for r in tokenhub_emulator.requests] == [529, 200]
