"""The client's decisions, through httpx.MockTransport; every test body runs sync and async."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import Any

import httpx
import pytest

import tokenhub_core.client as client_module
from tokenhub_core import (
    ChatCompletionChunk,
    TokenHubClient,
    errors,
    track_cost,
)
from tokenhub_core.client import ChatStream

from .helpers import (
    BASE,
    KEY,
    MODEL,
    USER,
    BrokenStream,
    Server,
    chunk,
    completion,
    error,
    ok,
    sse,
    streamed,
    text_stream,
)


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record retry waits instead of sleeping."""
    waited: list[float] = []

    async def asleep(seconds: float) -> None:
        waited.append(seconds)

    monkeypatch.setattr(client_module, "_sleep", waited.append)
    monkeypatch.setattr(client_module, "_asleep", asleep)
    return waited


async def chat(client: TokenHubClient, mode: str, **kwargs: Any) -> Any:
    kwargs.setdefault("model", MODEL)
    kwargs.setdefault("messages", USER)
    if mode == "sync":
        return client.chat(**kwargs)
    return await client.achat(**kwargs)


async def stream(
    client: TokenHubClient, mode: str, **kwargs: Any
) -> tuple[list[ChatCompletionChunk], Any]:
    kwargs.setdefault("model", MODEL)
    kwargs.setdefault("messages", USER)
    if mode == "sync":
        s = client.stream(**kwargs)
        return list(s), s
    a = client.astream(**kwargs)
    return [c async for c in a], a


# Requests


async def test_request_line_headers_and_body(mode: str) -> None:
    server = Server(ok())
    client = server.client(default_headers={"X-App": "demo"})
    result = await chat(client, mode, temperature=0.3, stop="END", extra_headers={"X-Trace": "t1"})
    request = server.requests[0]
    assert str(request.url) == f"{BASE}/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-app"] == "demo" and request.headers["x-trace"] == "t1"
    assert request.headers["user-agent"].startswith("tokenhub-integrations/")
    assert server.bodies[0] == {
        "model": MODEL,
        "messages": USER,
        "max_tokens": 1024,
        "temperature": 0.3,
        "stop": ["END"],
    }
    assert result.choices[0].message.content == "hello"
    assert result.request_id == "req_ok"
    assert result.usage.prompt_tokens == 10


async def test_stream_request_asks_for_usage(mode: str) -> None:
    server = Server(streamed(text_stream("a", "b")))
    chunks, s = await stream(server.client(), mode)
    assert server.bodies[0]["stream"] is True
    assert server.bodies[0]["stream_options"] == {"include_usage": True}
    assert server.requests[0].headers["accept"] == "text/event-stream"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "ab"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    final = s.completion()
    assert final.choices[0].message.content == "ab"
    assert final.choices[0].finish_reason == "stop"
    assert final.usage.completion_tokens == 2
    assert s.request_id == "req_s" and final.request_id == "req_s"


async def test_invalid_parameters_send_nothing(mode: str) -> None:
    server = Server(ok())
    client = server.client()
    with pytest.raises(errors.InvalidParameterError, match="temperature"):
        await chat(client, mode, temperature=2)
    with pytest.raises(errors.InvalidParameterError, match="stop"):
        await stream(client, mode, stop=["1", "2", "3", "4", "5"])
    with pytest.raises(errors.InvalidParameterError, match=r"extra_headers\['x-note'\]"):
        await chat(client, mode, extra_headers={"x-note": "a\r\nx-injected: 1"})
    with pytest.raises(errors.InvalidParameterError, match="extra_headers name='bad name'"):
        await chat(client, mode, extra_headers={"bad name": "x"})
    assert server.requests == []


def test_default_headers_are_checked_when_the_client_is_built() -> None:
    with pytest.raises(errors.InvalidParameterError, match="printable ASCII") as caught:
        TokenHubClient(api_key=KEY, default_headers={"X-Secret": "caf\u00e9"})
    assert caught.value.param == "default_headers['X-Secret']"
    with pytest.raises(errors.InvalidParameterError) as hidden:
        TokenHubClient(api_key=KEY, default_headers={"Authorization": "Bearer th-x\n"})
    assert "th-x" not in str(hidden.value)


async def test_key_and_base_url_come_from_the_environment(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = Server(ok())
    transport = httpx.MockTransport(server)
    monkeypatch.setenv("TOKENHUB_BASE_URL", "https://gateway.test/v9/")
    client = TokenHubClient(
        http_client=httpx.Client(transport=transport),
        http_async_client=httpx.AsyncClient(transport=transport),
    )
    with pytest.raises(errors.MissingAPIKeyError, match="TOKENHUB_API_KEY"):
        await chat(client, mode)
    assert server.requests == []
    monkeypatch.setenv("TOKENHUB_API_KEY", "th-from-env")
    await chat(client, mode)
    assert str(server.requests[0].url) == "https://gateway.test/v9/chat/completions"
    assert server.requests[0].headers["authorization"] == "Bearer th-from-env"


def test_defaults_and_key_is_secret() -> None:
    client = TokenHubClient(api_key=KEY)
    assert client.base_url == "https://tokenhub.store/api/v1"
    assert client.max_retries == 2 and client.timeout.read == 60.0
    assert (
        KEY not in repr(client) and KEY not in repr(client.api_key) and KEY not in str(vars(client))
    )
    with pytest.raises(ValueError, match="max_retries"):
        TokenHubClient(max_retries=-1)


# Retries


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 529])
async def test_retryable_status_then_success(mode: str, status: int, sleeps: list[float]) -> None:
    server = Server(error(status), ok())
    result = await chat(server.client(), mode)
    assert result.choices[0].message.content == "hello"
    assert len(server.requests) == 2
    assert len(sleeps) == 1 and 0.375 <= sleeps[0] <= 0.5


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, errors.BadRequestError),
        (401, errors.AuthenticationError),
        (402, errors.PaymentRequiredError),
        (403, errors.PermissionDeniedError),
        (404, errors.NotFoundError),
        (422, errors.BadRequestError),
    ],
)
async def test_client_errors_are_not_retried(mode: str, status: int, cls: type[Exception]) -> None:
    server = Server(error(status, "server says no"), ok())
    with pytest.raises(cls) as caught:
        await chat(server.client(), mode)
    assert len(server.requests) == 1
    assert caught.value.status_code == status  # type: ignore[attr-defined]
    assert caught.value.request_id == f"req_{status}"  # type: ignore[attr-defined]
    assert "server says no" in str(caught.value)


async def test_retries_stop_after_max_retries(mode: str, sleeps: list[float]) -> None:
    server = Server(error(500))
    with pytest.raises(errors.InternalServerError):
        await chat(server.client(max_retries=3), mode)
    assert len(server.requests) == 4
    assert len(sleeps) == 3 and sleeps[2] > sleeps[0]
    server = Server(error(500))
    with pytest.raises(errors.InternalServerError):
        await chat(server.client(max_retries=0), mode)
    assert len(server.requests) == 1


async def test_x_should_retry_is_obeyed(mode: str) -> None:
    server = Server(error(500, **{"x-should-retry": "false"}), ok())
    with pytest.raises(errors.InternalServerError):
        await chat(server.client(), mode)
    assert len(server.requests) == 1
    server = Server(error(400, **{"x-should-retry": "true"}), ok())
    await chat(server.client(), mode)
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),
    ],
)
async def test_retry_after_is_honored(
    mode: str, sleeps: list[float], headers: dict[str, str], wait: float | None
) -> None:
    server = Server(error(429, **headers), ok())
    await chat(server.client(), mode)
    assert len(server.requests) == 2
    if wait is None:  # a date in the past: fall back to backoff
        assert 0.375 <= sleeps[0] <= 0.5
    else:
        assert sleeps == [wait]


async def test_retry_after_beyond_a_minute_raises_at_once(mode: str, sleeps: list[float]) -> None:
    server = Server(error(429, "slow down", **{"retry-after": "120"}), ok())
    with pytest.raises(errors.RateLimitError) as caught:
        await chat(server.client(), mode)
    assert caught.value.retry_after == 120.0
    assert len(server.requests) == 1 and sleeps == []


async def test_connection_errors_and_timeouts_are_retried(mode: str) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    server = Server(refuse, ok())
    assert (await chat(server.client(), mode)).choices[0].message.content == "hello"
    assert len(server.requests) == 2

    server = Server(refuse)
    with pytest.raises(errors.APIConnectionError) as caught:
        await chat(server.client(max_retries=1), mode)
    assert type(caught.value) is errors.APIConnectionError and len(server.requests) == 2

    server = Server(slow)
    with pytest.raises(errors.APITimeoutError):
        await chat(server.client(max_retries=1), mode)
    assert len(server.requests) == 2


async def test_the_key_is_absent_from_every_error(mode: str) -> None:
    echo = f"invalid key {KEY} (Bearer {KEY})"
    for status in (400, 401, 402, 403, 404, 422, 429, 500):
        server = Server(error(status, echo, **{"x-should-retry": "false"}))
        with pytest.raises(errors.APIStatusError) as caught:
            await chat(server.client(), mode)
        exc = caught.value
        for text in (str(exc), repr(exc), exc.message, str(exc.args)):
            assert KEY not in text


# Bodies that break the promise


@pytest.mark.parametrize(
    ("response", "match"),
    [
        ({"content": b'{"id": "x", "choices": [{"mess'}, "do not parse"),
        (
            {
                "content": b"<html><title>Gateway</title></html>",
                "headers": {"content-type": "text/html"},
            },
            "HTML page",
        ),
        ({"json": {"id": "x", "choices": []}}, "no choices"),
        ({"json": {"id": "x"}}, "no choices"),
        ({"json": {"error": {"message": "overloaded", "type": "overloaded_error"}}}, "overloaded"),
    ],
)
async def test_a_200_that_is_not_a_completion_is_an_api_response_error(
    mode: str, response: dict[str, Any], match: str
) -> None:
    server = Server(lambda request: httpx.Response(200, **response))
    with pytest.raises(errors.APIResponseError, match=match):
        await chat(server.client(), mode)
    assert len(server.requests) == 1


async def test_unknown_fields_and_finish_reasons_are_tolerated(mode: str) -> None:
    body = completion() | {"service_tier": "priority"}
    body["choices"][0]["finish_reason"] = "pause_turn"
    body["choices"][0]["message"]["annotations"] = []
    result = await chat(Server(ok(body)).client(), mode)
    assert result.choices[0].finish_reason == "pause_turn"
    assert result.model_extra == {"service_tier": "priority"}


# Streams


async def test_sse_error_event_raises_a_typed_error(mode: str) -> None:
    body = sse(
        chunk({"role": "assistant", "content": "par"}),
        {"error": {"message": "overloaded", "type": "overloaded_error", "code": 529}},
        done=False,
    )
    server = Server(streamed(body))
    with pytest.raises(errors.APIResponseError, match="overloaded") as caught:
        await stream(server.client(), mode)
    assert caught.value.error_type == "overloaded_error" and caught.value.code == "529"
    assert caught.value.request_id == "req_s"
    assert len(server.requests) == 1


async def test_event_error_field_raises_too(mode: str) -> None:
    body = b'event: error\ndata: {"message": "boom"}\n\n'
    with pytest.raises(errors.APIResponseError, match="boom"):
        await stream(Server(streamed(body)).client(), mode)


async def test_stream_cut_before_finish_is_interrupted_with_what_arrived(mode: str) -> None:
    body = sse(chunk({"role": "assistant", "content": "Hel"}), chunk({"content": "lo"}), done=False)
    with pytest.raises(errors.StreamInterruptedError) as caught:
        await stream(Server(streamed(body)).client(), mode)
    assert caught.value.partial is not None
    assert caught.value.partial.choices[0].message.content == "Hello"
    assert isinstance(caught.value, errors.APIConnectionError)


async def test_stream_with_finish_but_no_done_is_complete(mode: str) -> None:
    _, s = await stream(Server(streamed(text_stream("x", done=False))).client(), mode)
    assert s.completion().choices[0].message.content == "x"


async def test_connection_dropped_mid_stream_is_not_retried(mode: str) -> None:
    broken = BrokenStream(sse(chunk({"role": "assistant", "content": "Hi"}), done=False))
    server = Server(
        httpx.Response(200, stream=broken, headers={"content-type": "text/event-stream"}), ok()
    )
    with (
        track_cost() as meter,
        pytest.raises(errors.StreamInterruptedError, match="broke off") as caught,
    ):
        await stream(server.client(), mode)
    assert caught.value.partial.choices[0].message.content == "Hi"
    assert len(server.requests) == 1
    assert broken.closed
    # A started stream may have been billed and its usage never came: its worst case, marked.
    assert meter.calls == meter.estimated_calls == 1


async def test_stream_answered_with_json_is_handled(mode: str) -> None:
    server = Server(ok(completion("whole answer")))
    chunks, s = await stream(server.client(), mode)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "whole answer"
    assert s.completion().choices[0].message.content == "whole answer"
    assert s.completion().usage.total_tokens == 15


async def test_keepalives_bom_and_crlf_are_fine(mode: str) -> None:
    body = b"\xef\xbb\xbf: keep-alive\r\n\r\n" + text_stream("a", "b").replace(b"\n", b"\r\n")
    _, s = await stream(Server(streamed(body)).client(), mode)
    assert s.completion().choices[0].message.content == "ab"


async def test_closing_a_stream_early_releases_the_connection(mode: str) -> None:
    body = BrokenStream(text_stream(*"abcdef"))
    server = Server(httpx.Response(200, stream=body, headers={"content-type": "text/event-stream"}))
    client = server.client()
    if mode == "sync":
        with client.stream(model=MODEL, messages=USER) as s:
            first = next(s)
    else:
        async with client.astream(model=MODEL, messages=USER) as a:
            first = await a.__anext__()
    assert first.choices[0].delta.role == "assistant"
    assert body.closed


async def test_retry_happens_before_the_stream_starts(mode: str) -> None:
    server = Server(error(503), streamed(text_stream("ok")))
    _, s = await stream(server.client(), mode)
    assert len(server.requests) == 2
    assert s.completion().choices[0].message.content == "ok"


# Cost metering and budgets


async def test_meter_counts_successful_calls_only_by_canonical_model(mode: str) -> None:
    server = Server(
        ok(completion(model="claude-haiku-4-5")),
        ok(completion(model="anthropic/claude-haiku-4-5")),
        error(400),
    )
    client = server.client()
    with track_cost() as meter:
        await chat(client, mode, model="claude-haiku-4-5")
        await chat(client, mode, model="anthropic/claude-haiku-4-5")
        with pytest.raises(errors.BadRequestError):
            await chat(client, mode)
    assert meter.calls == 2
    assert (meter.input_tokens, meter.output_tokens) == (20, 10)
    assert list(meter.by_model) == ["anthropic/claude-haiku-4-5"]
    assert meter.by_model["anthropic/claude-haiku-4-5"].calls == 2
    assert meter.total_usd == pytest.approx(2 * (10 * 1 + 5 * 5) / 1e6)
    assert "anthropic/claude-haiku-4-5" in meter._repr_html_()


async def test_streamed_calls_are_metered_from_the_usage_chunk(mode: str) -> None:
    with track_cost() as meter:
        await stream(Server(streamed(text_stream("a", "b", "c"))).client(), mode)
    assert (meter.calls, meter.input_tokens, meter.output_tokens) == (1, 4, 3)


async def test_budget_stops_a_call_before_it_is_sent(mode: str) -> None:
    server = Server(ok())
    client = server.client()
    # Worst case of one call: ~8 prompt tokens * $3/M + 1024 * $15/M ~= $0.0154.
    with track_cost(budget_usd=0.02) as meter:
        await chat(client, mode)
        assert meter.total_usd == pytest.approx((10 * 3 + 5 * 15) / 1e6)
        await chat(client, mode, max_tokens=100)
        with pytest.raises(errors.BudgetExceededError, match="Nothing was sent") as caught:
            await chat(client, mode, max_tokens=4096)
        with pytest.raises(errors.BudgetExceededError):
            await stream(client, mode, max_tokens=4096)
    assert len(server.requests) == 2
    assert caught.value.budget_usd == 0.02
    assert meter.calls == 2


async def test_budget_refuses_a_model_it_cannot_price(mode: str) -> None:
    server = Server(lambda request: ok(completion(model="claude-sonnet-9")))
    with track_cost(budget_usd=1.0), pytest.raises(errors.BudgetExceededError, match="catalog"):
        await chat(server.client(), mode, model="claude-sonnet-9")
    assert server.requests == []
    with track_cost() as meter:
        await chat(server.client(), mode, model="claude-sonnet-9")
    assert meter.calls == 1 and meter.total_usd == 0.0
    assert list(meter.by_model) == ["anthropic/claude-sonnet-9"]


async def test_meters_nest_and_reach_tasks_and_context_threads() -> None:
    server = Server(lambda request: ok())
    client = server.client()
    with track_cost() as outer:
        with track_cost() as inner:
            client.chat(model=MODEL, messages=USER)
        await asyncio.gather(*(client.achat(model=MODEL, messages=USER) for _ in range(3)))
        context = contextvars.copy_context()
        thread = threading.Thread(
            target=context.run, args=(client.chat,), kwargs={"model": MODEL, "messages": USER}
        )
        thread.start()
        thread.join()
    client.chat(model=MODEL, messages=USER)
    assert inner.calls == 1
    assert outer.calls == 5


def test_stream_object_shape() -> None:
    server = Server(streamed(text_stream("a")))
    s = server.client().stream(model=MODEL, messages=USER)
    assert isinstance(s, ChatStream)
    assert server.requests == []  # sent on first use
    with pytest.raises(RuntimeError, match="iterate"):
        s.completion()
    assert iter(s) is iter(s)  # one underlying iteration, however often it is asked for
    list(s)
    assert len(server.requests) == 1


# Sloppy but recognizable servers


async def test_nulls_and_object_arguments_are_forgiven(mode: str) -> None:
    body = completion()
    body["id"] = None
    body["usage"] = {"prompt_tokens": 3, "completion_tokens": None, "total_tokens": None}
    body["choices"][0]["message"]["tool_calls"] = [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"x": 1}}}
    ]
    result = await chat(Server(ok(body)).client(), mode)
    assert result.id == ""
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (3, 0)
    assert result.choices[0].message.tool_calls[0].function.arguments == '{"x": 1}'


async def test_streamed_nulls_and_object_arguments_are_forgiven(mode: str) -> None:
    body = sse(
        chunk({"role": "assistant", "content": None, "tool_calls": None}) | {"id": None},
        chunk(
            {
                "tool_calls": [
                    {"index": 0, "id": "c1", "function": {"name": "f", "arguments": {"x": 1}}}
                ]
            }
        ),
        chunk({}, finish="tool_calls"),
    )
    _, s = await stream(Server(streamed(body)).client(), mode)
    call = s.completion().choices[0].message.tool_calls[0]
    assert (call.function.name, call.function.arguments) == ("f", '{"x": 1}')


async def test_what_cannot_be_forgiven_is_still_an_api_response_error(mode: str) -> None:
    body = completion()
    body["choices"] = "none"
    with pytest.raises(errors.APIResponseError):
        await chat(Server(ok(body)).client(), mode)


def test_client_slot_reuses_a_client_until_its_settings_change() -> None:
    import copy

    from tokenhub_core.client import ClientSlot

    slot = ClientSlot()
    settings: dict[str, Any] = {
        "api_key": KEY,
        "base_url": BASE,
        "timeout": 60.0,
        "max_retries": 2,
        "default_headers": {"X-App": "a"},
        "http_client": None,
        "http_async_client": None,
    }
    first = slot.get(**settings)
    assert slot.get(**settings) is first
    assert slot.get(**{**settings, "default_headers": {"X-App": "a"}}) is first
    changed = slot.get(**{**settings, "base_url": "https://other.test/v1"})
    assert changed is not first and changed.base_url == "https://other.test/v1"
    assert slot.get(**{**settings, "max_retries": 0}).max_retries == 0
    assert copy.deepcopy(slot).get(**settings) is not slot.get(**settings)
