"""The client over real loopback HTTP against the emulator: pooling, event loops, faults."""

from __future__ import annotations

import asyncio
import gc
import warnings

import httpx
import pytest

from tokenhub_core import TokenHubClient, errors, track_cost
from tokenhub_emulator import TokenHubEmulator

MODEL = "anthropic/claude-haiku-4-5"
USER = [{"role": "user", "content": "Say something about pools."}]


def test_one_async_client_survives_many_event_loops(tokenhub_emulator: TokenHubEmulator) -> None:
    """pytest's per-test loops and Jupyter re-runs: a client must not die with its first loop."""
    client = TokenHubClient()

    async def one_call() -> str:
        completion = await client.achat(model=MODEL, messages=USER)
        streamed = [c async for c in client.astream(model=MODEL, messages=USER)]
        assert streamed[-1].usage is not None
        return completion.choices[0].message.content or ""

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        answers = [asyncio.run(one_call()) for _ in range(3)]
        gc.collect()
    assert len(set(answers)) == 1 and answers[0].startswith("[emulator]")
    assert len(tokenhub_emulator.requests) == 6


async def test_async_client_in_this_tests_loop(tokenhub_emulator: TokenHubEmulator) -> None:
    client = TokenHubClient()
    results = await asyncio.gather(*(client.achat(model=MODEL, messages=USER) for _ in range(5)))
    assert {r.choices[0].finish_reason for r in results} == {"stop"}


def test_closing_a_stream_early_frees_its_connection(tokenhub_emulator: TokenHubEmulator) -> None:
    one_connection = httpx.Client(
        limits=httpx.Limits(max_connections=1), timeout=httpx.Timeout(5.0, pool=2.0)
    )
    client = TokenHubClient(http_client=one_connection)
    long_prompt = [{"role": "user", "content": "word " * 300}]
    for _ in range(3):
        with client.stream(model=MODEL, messages=long_prompt, max_tokens=400) as stream:
            next(stream)
            next(stream)
    # With the only connection leaked, this would wait for the pool and time out.
    assert client.chat(model=MODEL, messages=USER).choices[0].message.content
    one_connection.close()


def test_pooled_connection_is_reused_after_a_full_stream(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    one_connection = httpx.Client(
        limits=httpx.Limits(max_connections=1), timeout=httpx.Timeout(5.0, pool=2.0)
    )
    client = TokenHubClient(http_client=one_connection)
    for _ in range(3):
        assert list(client.stream(model=MODEL, messages=USER))[-1].usage is not None
        client.chat(model=MODEL, messages=USER)
    one_connection.close()


def test_faults_over_real_http(tokenhub_emulator: TokenHubEmulator) -> None:
    client = TokenHubClient()
    tokenhub_emulator.fail_next(429, headers={"retry-after-ms": "20"})
    tokenhub_emulator.fail_next_html(502)
    assert client.chat(model=MODEL, messages=USER).choices[0].message.content
    assert len(tokenhub_emulator.requests) == 3

    tokenhub_emulator.truncate_next()
    with pytest.raises(errors.APIResponseError):
        client.chat(model=MODEL, messages=USER)

    tokenhub_emulator.drop_stream_after(3)
    with pytest.raises(errors.StreamInterruptedError) as caught:
        list(client.stream(model=MODEL, messages=USER))
    assert caught.value.partial is not None

    tokenhub_emulator.sse_error_after(2, message="overloaded mid-stream")
    with pytest.raises(errors.APIResponseError, match="overloaded mid-stream"):
        list(client.stream(model=MODEL, messages=USER))


def test_read_timeout_before_headers_is_retried_then_raised(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    client = TokenHubClient(timeout=0.3, max_retries=1)
    tokenhub_emulator.delay_headers(1.0, times=2)
    with pytest.raises(errors.APITimeoutError):
        client.chat(model=MODEL, messages=USER)


def test_server_errors_name_the_field_and_keep_the_request_id(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    client = TokenHubClient()
    with pytest.raises(errors.NotFoundError) as caught:
        client.chat(model="claude-sonnet-9", messages=USER)
    assert caught.value.request_id
    bad_key = TokenHubClient(api_key="sk-not-a-tokenhub-key")
    with pytest.raises(errors.AuthenticationError) as auth:
        bad_key.chat(model=MODEL, messages=USER)
    assert "sk-not-a-tokenhub-key" not in str(auth.value)
    assert len(tokenhub_emulator.requests) == 2


def test_meter_matches_the_emulators_ledger(tokenhub_emulator: TokenHubEmulator) -> None:
    client = TokenHubClient()
    with track_cost() as meter:
        client.chat(model="claude-haiku-4-5", messages=USER)
        list(client.stream(model="anthropic/claude-opus-4-7", messages=USER))
        tokenhub_emulator.fail_next(400)
        with pytest.raises(errors.BadRequestError):
            client.chat(model=MODEL, messages=USER)
    ledger = tokenhub_emulator.ledger()
    assert meter.calls == ledger.calls == 2
    assert meter.input_tokens == ledger.prompt_tokens
    assert meter.output_tokens == ledger.completion_tokens
    assert meter.total == ledger.total_usd


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
            "required": ["city"],
        },
    },
}


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"max_tokens": 5},
        {"tools": [WEATHER_TOOL], "tool_choice": "required"},
        {"response_format": {"type": "json_object"}},
    ],
    ids=["text", "cut-by-max-tokens", "tool-call", "json"],
)
def test_a_streamed_reply_assembles_to_the_non_streamed_one(
    tokenhub_emulator: TokenHubEmulator, params: dict[str, object]
) -> None:
    client = TokenHubClient()
    messages = [{"role": "user", "content": "What is the weather in Paris? Answer briefly."}]
    whole = client.chat(model=MODEL, messages=messages, **params)
    stream = client.stream(model=MODEL, messages=messages, **params)
    chunks = list(stream)
    assembled = stream.completion()
    assert len(chunks) > 3
    for reply in (whole, assembled):  # tool-call ids are unique per call; all else must match
        for call in reply.choices[0].message.tool_calls or []:
            assert call.id.startswith("call_")
            call.id = ""
    assert assembled.choices[0].message == whole.choices[0].message
    assert assembled.choices[0].finish_reason == whole.choices[0].finish_reason
    assert assembled.usage == whole.usage
    assert assembled.model == whole.model == MODEL


def test_proxy_environment_is_honored(
    tokenhub_emulator: TokenHubEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Default pools skip httpx.Client's layers for speed, but not its proxy support."""
    import tokenhub_core._pools as pools_module
    import tokenhub_core.client as client_module

    # A host that cannot be reached: without a proxy the call fails to connect...
    client = TokenHubClient(base_url="http://tokenhub.invalid/api/v1", max_retries=0)
    monkeypatch.setattr(client_module, "_pools", pools_module._DefaultPools())
    monkeypatch.setattr(client_module, "_warned_plain_http", set())
    with (
        pytest.warns(UserWarning, match="sent in clear text"),
        pytest.raises(errors.APIConnectionError),
    ):
        client.chat(model=MODEL, messages=USER)
    # ...and through a proxy (the emulator, which answers an absolute-form URL it does not
    # route with a 404) the request reaches the proxy.
    monkeypatch.setenv("HTTP_PROXY", tokenhub_emulator.base_url.removesuffix("/api/v1"))
    monkeypatch.setattr(client_module, "_pools", pools_module._DefaultPools())
    with pytest.raises(errors.NotFoundError):
        client.chat(model=MODEL, messages=USER)


def test_wire_models_describe_what_crosses_the_wire(tokenhub_emulator: TokenHubEmulator) -> None:
    from tokenhub_core.wire import ChatCompletionRequest, ErrorBody

    client = TokenHubClient()
    client.chat(model=MODEL, messages=USER, tools=[WEATHER_TOOL], tool_choice="required", stop="x")
    list(client.stream(model=MODEL, messages=USER, temperature=0.2, user="u1"))
    for recorded in tokenhub_emulator.requests:
        request = ChatCompletionRequest.model_validate(recorded.body)
        assert request.model == MODEL and request.max_tokens == 1024
    response = httpx.post(
        f"{tokenhub_emulator.base_url}/chat/completions",
        json={"model": MODEL, "messages": USER, "temperature": 3},
        headers={"Authorization": f"Bearer {tokenhub_emulator.api_key}"},
    )
    error = ErrorBody.model_validate_json(response.content).error
    assert response.status_code == 400 and error.param == "temperature" and error.message
