"""One behavioral suite, both wire protocols: what a user of `TokenHubClient` sees is the same on
``chat/completions`` and on Claude's ``messages``, over real loopback HTTP to the emulator."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

import tokenhub_core.client as client_module
from tokenhub_core import TokenHubClient, track_cost
from tokenhub_core.catalog import price_usage
from tokenhub_core.errors import (
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    InternalServerError,
    InvalidParameterError,
    NotFoundError,
    RateLimitError,
    StreamInterruptedError,
)
from tokenhub_emulator import TokenHubEmulator

HAIKU = "anthropic/claude-haiku-4-5"
USER = [{"role": "user", "content": "Name a fruit that is red."}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
# A 1x1 transparent PNG.
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000100"
        "05fe02fea7d9a8d00000000049454e44ae426082"
    )
).decode()


@pytest.fixture(params=["chat/completions", "messages"])
def protocol(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def client(tokenhub_emulator: TokenHubEmulator, protocol: str) -> TokenHubClient:
    return TokenHubClient(protocol=protocol, max_retries=2)


@pytest.fixture
def no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    async def instantly(seconds: float) -> None:
        return None

    monkeypatch.setattr(client_module, "_sleep", lambda seconds: None)
    monkeypatch.setattr(client_module, "_asleep", instantly)


def _endpoint(emulator: TokenHubEmulator) -> str:
    return emulator.requests[-1].path


def test_a_plain_answer_is_priced_and_metered(
    client: TokenHubClient, tokenhub_emulator: TokenHubEmulator, protocol: str
) -> None:
    with track_cost() as meter:
        completion = client.chat(model=HAIKU, messages=USER)
    message = completion.choices[0].message
    assert message.content and completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.prompt_tokens > 0
    assert completion.request_id
    _, cost = price_usage(HAIKU, completion.model, completion.usage)
    assert meter.calls == 1 and meter.total == cost
    assert tokenhub_emulator.ledger().total_usd == cost
    assert _endpoint(tokenhub_emulator).endswith(
        "/messages" if protocol == "messages" else "/chat/completions"
    )


async def test_streams_sync_and_async_give_the_same_answer_with_usage_once(
    client: TokenHubClient,
) -> None:
    whole = client.chat(model=HAIKU, messages=USER).choices[0].message.content
    chunks = list(client.stream(model=HAIKU, messages=USER))
    achunks = [chunk async for chunk in client.astream(model=HAIKU, messages=USER)]
    for got in (chunks, achunks):
        assert "".join(c.choices[0].delta.content or "" for c in got if c.choices) == whole
        assert sum(1 for c in got if c.usage is not None) == 1
        finishes = [
            c.choices[0].finish_reason for c in got if c.choices and c.choices[0].finish_reason
        ]
        assert finishes == ["stop"]


async def test_a_forced_tool_call_and_the_answer_after_its_result(client: TokenHubClient) -> None:
    forced = {"type": "function", "function": {"name": "get_weather"}}
    first = await client.achat(
        model=HAIKU,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[WEATHER],
        tool_choice=forced,
    )
    calls = first.choices[0].message.tool_calls or []
    assert len(calls) == 1 and calls[0].function.name == "get_weather"
    assert isinstance(json.loads(calls[0].function.arguments)["city"], str)
    assert first.choices[0].finish_reason == "tool_calls"
    history: list[dict[str, Any]] = [
        {"role": "user", "content": "What is the weather in Paris?"},
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": calls[0].id, "content": "18 C and sunny"},
    ]
    after = await client.achat(model=HAIKU, messages=history, tools=[WEATHER])
    assert after.choices[0].message.content
    assert not after.choices[0].message.tool_calls


def test_streamed_tool_calls_accumulate_to_valid_arguments(client: TokenHubClient) -> None:
    stream = client.stream(
        model=HAIKU,
        messages=[{"role": "user", "content": "Weather in Oslo and in Rome?"}],
        tools=[WEATHER],
        tool_choice="required",
    )
    for _ in stream:
        pass
    calls = stream.completion().choices[0].message.tool_calls or []
    assert calls and all(json.loads(c.function.arguments).get("city") for c in calls)


def test_an_image_is_accepted(client: TokenHubClient) -> None:
    content = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ]
    completion = client.chat(model=HAIKU, messages=[{"role": "user", "content": content}])
    assert completion.choices[0].message.content


def test_structured_output_follows_the_schema(client: TokenHubClient) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    completion = client.chat(
        model=HAIKU,
        messages=[{"role": "user", "content": "Invent a person."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": schema},
        },
    )
    person = json.loads(completion.choices[0].message.content or "")
    assert isinstance(person["name"], str) and isinstance(person["age"], int)


def test_a_reply_cut_at_max_tokens_says_so(client: TokenHubClient) -> None:
    completion = client.chat(
        model=HAIKU, messages=[{"role": "user", "content": "Tell me a long story."}], max_tokens=5
    )
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens <= 5


def test_rate_limits_are_retried_after_the_servers_delay(
    client: TokenHubClient, tokenhub_emulator: TokenHubEmulator, no_wait: None
) -> None:
    tokenhub_emulator.fail_next(429, headers={"Retry-After": "1"})
    assert client.chat(model=HAIKU, messages=USER).choices[0].message.content
    assert len(tokenhub_emulator.requests) == 2
    tokenhub_emulator.fail_next(429, times=3)
    with pytest.raises(RateLimitError) as caught:
        client.chat(model=HAIKU, messages=USER)
    assert caught.value.status_code == 429 and caught.value.request_id


def test_overload_is_retried_and_server_errors_are_typed(
    client: TokenHubClient, tokenhub_emulator: TokenHubEmulator, no_wait: None
) -> None:
    tokenhub_emulator.fail_next(529)
    assert client.chat(model=HAIKU, messages=USER).choices[0].message.content
    tokenhub_emulator.fail_next(500, times=3)
    with pytest.raises(InternalServerError):
        client.chat(model=HAIKU, messages=USER)


def test_a_wrong_key_is_an_authentication_error_that_never_shows_the_key(
    tokenhub_emulator: TokenHubEmulator, protocol: str
) -> None:
    key = "wrong-key-0123456789abcdef"
    client = TokenHubClient(api_key=key, protocol=protocol)
    with pytest.raises(AuthenticationError) as caught:
        client.chat(model=HAIKU, messages=USER)
    assert key not in str(caught.value) and key not in repr(caught.value.body)
    assert key not in repr(client)


def test_the_server_refusing_a_request_is_typed(
    client: TokenHubClient, tokenhub_emulator: TokenHubEmulator
) -> None:
    with pytest.raises(NotFoundError) as caught:
        client.chat(model="anthropic/claude-nonexistent-9", messages=USER)
    assert caught.value.status_code == 404 and caught.value.request_id
    tokenhub_emulator.fail_next(400, message="messages: roles must alternate")
    with pytest.raises(BadRequestError, match="roles must alternate"):
        client.chat(model=HAIKU, messages=USER)


def test_bad_parameters_are_refused_before_sending(
    client: TokenHubClient, tokenhub_emulator: TokenHubEmulator
) -> None:
    for params in ({"temperature": 1.5}, {"stop": ["a", "b", "c", "d", "e"]}, {"n": 2}):
        with pytest.raises(InvalidParameterError):
            client.chat(model=HAIKU, messages=USER, **params)
    assert tokenhub_emulator.requests == []


def test_a_budget_stops_a_call_before_it_is_sent(
    client: TokenHubClient, tokenhub_emulator: TokenHubEmulator
) -> None:
    with track_cost(budget_usd=0.0001) as meter, pytest.raises(BudgetExceededError):
        client.chat(model=HAIKU, messages=USER, max_tokens=1000)
    assert tokenhub_emulator.requests == [] and meter.calls == 0


def test_a_stream_cut_mid_way_keeps_what_arrived_and_is_metered(
    client: TokenHubClient, tokenhub_emulator: TokenHubEmulator
) -> None:
    tokenhub_emulator.drop_stream_after(3)
    received: list[str] = []

    def read_all() -> None:
        story = [{"role": "user", "content": "Tell me a story about a long voyage."}]
        for chunk in client.stream(model=HAIKU, messages=story):
            received.append(chunk.choices[0].delta.content or "" if chunk.choices else "")

    with track_cost() as meter, pytest.raises(StreamInterruptedError) as caught:
        read_all()
    partial = caught.value.partial
    assert partial is not None
    assert partial.choices[0].message.content == "".join(received)
    assert meter.calls == 1 and meter.estimated_calls == 1


def test_an_abandoned_stream_closes_and_settles(
    client: TokenHubClient, tokenhub_emulator: TokenHubEmulator
) -> None:
    with track_cost() as meter:
        stream = client.stream(
            model=HAIKU, messages=[{"role": "user", "content": "Count to fifty slowly."}]
        )
        next(iter(stream))
        stream.close()
    assert meter.calls == 1 and meter.in_flight_usd == 0
