"""An independent client: the official ``openai`` SDK parses everything the emulator sends."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.emulator.helpers import ADD_TOOL, MODEL, WEATHER_TOOL
from tokenhub_emulator import TokenHubEmulator

PNG_URL = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 32).decode()


@pytest.fixture(scope="module")
def _sdk_module(tokenhub_emulator_session: TokenHubEmulator) -> Iterator[openai.OpenAI]:
    # Built once: each SDK client builds an httpx client and its TLS context (~0.1 s).
    with openai.OpenAI(
        api_key=tokenhub_emulator_session.api_key,
        base_url=tokenhub_emulator_session.base_url,
        max_retries=0,
    ) as client:
        yield client


@pytest.fixture
def sdk(tokenhub_emulator: TokenHubEmulator, _sdk_module: openai.OpenAI) -> openai.OpenAI:
    """The sync SDK client, pointed at the freshly reset emulator."""
    return _sdk_module


@pytest.fixture
async def async_sdk(tokenhub_emulator: TokenHubEmulator) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        api_key=tokenhub_emulator.api_key, base_url=tokenhub_emulator.base_url, max_retries=0
    ) as client:
        yield client


def _user(text: Any) -> list[Any]:
    return [{"role": "user", "content": text}]


def test_plain_chat(sdk: openai.OpenAI) -> None:
    completion = sdk.chat.completions.create(model=MODEL, messages=_user("Hi SDK"), max_tokens=50)
    assert completion.choices[0].message.content is not None
    assert completion.choices[0].message.content.startswith("[emulator]")
    assert "Hi SDK" in completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == MODEL
    assert completion.usage is not None and completion.usage.total_tokens > 0
    raw = sdk.chat.completions.with_raw_response.create(model=MODEL, messages=_user("x"))
    assert raw.headers["x-request-id"]


async def test_async_streaming_with_usage(async_sdk: openai.AsyncOpenAI) -> None:
    stream = await async_sdk.chat.completions.create(
        model=MODEL,
        messages=_user("Stream this to me, please"),
        stream=True,
        stream_options={"include_usage": True},
    )
    parts: list[str] = []
    usage = None
    finish = None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
            assert chunk.choices == []
        for choice in chunk.choices:
            parts.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert "".join(parts).startswith("[emulator] You said: Stream this")
    assert len(parts) > 5
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens > 0


def test_parallel_tool_calls_not_streamed(sdk: openai.OpenAI) -> None:
    completion = sdk.chat.completions.create(
        model=MODEL,
        messages=_user("Use get_weather for Paris and add 4 and 5"),
        tools=[WEATHER_TOOL, ADD_TOOL],
    )
    calls = completion.choices[0].message.tool_calls or []
    parsed = [(c.function.name, json.loads(c.function.arguments)) for c in calls]
    assert parsed == [("get_weather", {"location": "Paris"}), ("add", {"a": 4, "b": 5})]
    assert completion.choices[0].finish_reason == "tool_calls"


def test_parallel_tool_calls_streamed_with_the_stream_helper(sdk: openai.OpenAI) -> None:
    with sdk.chat.completions.stream(
        model=MODEL,
        messages=_user("Use get_weather for Paris and add 4 and 5"),
        tools=[WEATHER_TOOL, ADD_TOOL],
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("get_weather", {"location": "Paris"}),
        ("add", {"a": 4, "b": 5}),
    ]


async def test_async_tool_call_by_forced_choice(async_sdk: openai.AsyncOpenAI) -> None:
    completion = await async_sdk.chat.completions.create(
        model=MODEL,
        messages=_user("anything"),
        tools=[ADD_TOOL],
        tool_choice={"type": "function", "function": {"name": "add"}},
    )
    [call] = completion.choices[0].message.tool_calls or []
    assert call.function.name == "add"


def test_json_mode(sdk: openai.OpenAI) -> None:
    completion = sdk.chat.completions.create(
        model=MODEL,
        messages=_user("Give JSON with 'name' and 'age'"),
        response_format={"type": "json_object"},
    )
    assert set(json.loads(completion.choices[0].message.content or "")) == {"name", "age"}


def test_images(sdk: openai.OpenAI) -> None:
    completion = sdk.chat.completions.create(
        model=MODEL,
        messages=_user(
            [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": PNG_URL}},
            ]
        ),
    )
    assert "1 image: 1 base64 image/png" in (completion.choices[0].message.content or "")
    with pytest.raises(openai.BadRequestError):
        sdk.chat.completions.create(
            model=MODEL,
            messages=_user([{"type": "image_url", "image_url": {"url": "data:image/png;base64,"}}]),
        )


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (403, openai.PermissionDeniedError),
        (404, openai.NotFoundError),
        (409, openai.ConflictError),
        (422, openai.UnprocessableEntityError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
def test_each_injected_status_maps_to_the_sdk_exception(
    tokenhub_emulator: TokenHubEmulator,
    sdk: openai.OpenAI,
    status: int,
    error_class: type[openai.APIStatusError],
) -> None:
    tokenhub_emulator.fail_next(status, message=f"injected {status}")
    with pytest.raises(error_class) as caught:
        sdk.chat.completions.create(model=MODEL, messages=_user("hi"))
    assert caught.value.status_code == status
    assert f"injected {status}" in caught.value.message
    assert caught.value.request_id


def test_natural_errors_map_to_the_sdk_exceptions(
    tokenhub_emulator: TokenHubEmulator, sdk: openai.OpenAI
) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        sdk.chat.completions.create(model=MODEL, messages=_user("hi"), temperature=1.5)
    assert bad.value.param == "temperature"
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="claude-nope", messages=_user("hi"))
    wrong_key = openai.OpenAI(
        api_key="sk-wrong", base_url=tokenhub_emulator.base_url, max_retries=0
    )
    with wrong_key, pytest.raises(openai.AuthenticationError):
        wrong_key.chat.completions.create(model=MODEL, messages=_user("hi"))


def test_a_mid_stream_error_event_raises_in_the_sdk(
    tokenhub_emulator: TokenHubEmulator, sdk: openai.OpenAI
) -> None:
    tokenhub_emulator.sse_error_after(2, message="overloaded now")
    stream = sdk.chat.completions.create(model=MODEL, messages=_user("hi there"), stream=True)
    with pytest.raises(openai.APIError, match="overloaded now"):
        for _ in stream:
            pass


def test_a_dropped_stream_is_a_connection_error_in_the_sdk(
    tokenhub_emulator: TokenHubEmulator, sdk: openai.OpenAI
) -> None:
    tokenhub_emulator.drop_stream_after(2)
    stream = sdk.chat.completions.create(model=MODEL, messages=_user("hi there"), stream=True)
    received: list[Any] = []
    # openai 2.x lets httpx's error through mid-stream; 3.x wraps its own httpx fork's error.
    with pytest.raises((httpx.RemoteProtocolError, openai.APIConnectionError)) as caught:
        received.extend(stream)
    cause = caught.value if isinstance(caught.value, httpx.HTTPError) else caught.value.__cause__
    assert type(cause).__name__ == "RemoteProtocolError"
    assert len(received) == 2
