"""The async pool (aiohttp behind httpx's transport interface) over real loopback HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import ssl
import subprocess
import sys
import warnings
import weakref
from collections.abc import AsyncIterator

import httpx
import pytest

import tokenhub_core._pools as pools_module
import tokenhub_core.client as client_module
from tokenhub_core import TokenHubClient, errors
from tokenhub_core._aiohttp_transport import AiohttpTransport
from tokenhub_emulator import TokenHubEmulator

from .helpers import unreachable_client

MODEL = "anthropic/claude-haiku-4-5"
USER = [{"role": "user", "content": "Say something about pools."}]
LONG = [{"role": "user", "content": "word " * 300}]


@contextlib.asynccontextmanager
async def _client_on(
    transport: AiohttpTransport, **settings: object
) -> AsyncIterator[TokenHubClient]:
    """A client on its own ``transport`` (a user's httpx.AsyncClient around it), closed after."""
    async with httpx.AsyncClient(transport=transport) as http:
        yield TokenHubClient(http_async_client=http, **settings)  # type: ignore[arg-type]


async def test_the_default_async_pool_is_aiohttp(tokenhub_emulator: TokenHubEmulator) -> None:
    assert isinstance(await pools_module.pools.for_running_loop(), AiohttpTransport)
    completion = await TokenHubClient().achat(model=MODEL, messages=USER)
    assert completion.choices[0].message.content
    assert completion.request_id  # headers crossed the transport


async def test_faults_over_real_http(tokenhub_emulator: TokenHubEmulator) -> None:
    client = TokenHubClient()
    tokenhub_emulator.fail_next(429, headers={"retry-after-ms": "20"})
    tokenhub_emulator.fail_next_html(502)
    assert (await client.achat(model=MODEL, messages=USER)).choices[0].message.content
    assert [r.status for r in tokenhub_emulator.requests] == [429, 502, 200]

    tokenhub_emulator.truncate_next()
    with pytest.raises(errors.APIResponseError):
        await client.achat(model=MODEL, messages=USER)

    tokenhub_emulator.drop_stream_after(3)
    with pytest.raises(errors.StreamInterruptedError) as caught:
        _ = [chunk async for chunk in client.astream(model=MODEL, messages=LONG)]
    assert caught.value.partial is not None and caught.value.partial.choices[0].message.content

    tokenhub_emulator.sse_error_after(2, message="overloaded mid-stream")
    with pytest.raises(errors.APIResponseError, match="overloaded mid-stream"):
        _ = [chunk async for chunk in client.astream(model=MODEL, messages=USER)]


async def test_read_timeout_before_headers_is_retried_then_raised(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    client = TokenHubClient(timeout=0.3, max_retries=1)
    tokenhub_emulator.delay_headers(1.0, times=2)
    with pytest.raises(errors.APITimeoutError):
        await client.achat(model=MODEL, messages=USER)
    assert len(tokenhub_emulator.requests) == 2


async def test_read_timeout_mid_stream_interrupts_the_stream(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    client = TokenHubClient(timeout=httpx.Timeout(5.0, read=0.3), max_retries=0)
    tokenhub_emulator.slow_drip(1.0)
    with pytest.raises(errors.StreamInterruptedError, match="ReadTimeout"):
        _ = [chunk async for chunk in client.astream(model=MODEL, messages=USER)]


async def test_the_read_timeout_is_per_wait_not_for_the_whole_stream(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    # Events 0.1 s apart for well over the 0.6 s read timeout in all: each wait is short.
    client = TokenHubClient(timeout=httpx.Timeout(5.0, read=0.6), max_retries=0)
    text = "one two three four five six seven eight nine ten eleven twelve"
    tokenhub_emulator.queue_reply(text=text)
    tokenhub_emulator.slow_drip(0.1)
    started = asyncio.get_running_loop().time()
    async with client.astream(model=MODEL, messages=USER) as stream:
        _ = [chunk async for chunk in stream]  # always waiting, never 0.6 s at once
    assert stream.completion().choices[0].message.content == text
    assert asyncio.get_running_loop().time() - started > 1.2  # twice the timeout, in all

    tokenhub_emulator.queue_reply(text=text)
    started = asyncio.get_running_loop().time()
    async with client.astream(model=MODEL, messages=USER) as stream:
        seen = 0
        async for _ in stream:
            seen += 1
            if seen <= 2:
                await asyncio.sleep(0.7)  # a slow reader: what arrived meanwhile is buffered
    assert stream.completion().choices[0].message.content == text
    assert asyncio.get_running_loop().time() - started > 1.2


async def test_calls_leave_no_read_timer_behind(tokenhub_emulator: TokenHubEmulator) -> None:
    client = TokenHubClient(timeout=httpx.Timeout(5.0, read=600))
    loop = asyncio.get_running_loop()
    before = sum(not handle.cancelled() for handle in loop._scheduled)  # type: ignore[attr-defined]
    for _ in range(20):
        await client.achat(model=MODEL, messages=USER)
        async with client.astream(model=MODEL, messages=USER) as stream:
            _ = [chunk async for chunk in stream]
        async with client.astream(model=MODEL, messages=LONG) as stream:
            await stream.__anext__()  # closed half way
    live = sum(not handle.cancelled() for handle in loop._scheduled)  # type: ignore[attr-defined]
    assert live - before <= 2  # the pool's own keep-alive reaper, not one per call


async def test_pool_timeout_then_an_early_close_frees_the_connection(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    one = AiohttpTransport(limit=1, keepalive_s=30, ssl_context=pools_module.pools.ssl_context())
    timeout = httpx.Timeout(5.0, pool=0.3)
    tokenhub_emulator.slow_drip(0.05, times=4)  # streams still running when we close them
    async with _client_on(one, timeout=timeout, max_retries=0) as client:
        stream = client.astream(model=MODEL, messages=LONG, max_tokens=400)
        await stream.__anext__()  # holds the only connection
        with pytest.raises(errors.APITimeoutError):
            await client.achat(model=MODEL, messages=USER)
        await stream.aclose()
        for _ in range(3):
            async with client.astream(model=MODEL, messages=LONG, max_tokens=400) as again:
                await again.__anext__()
        # With the only connection leaked, this would wait for the pool and time out.
        assert (await client.achat(model=MODEL, messages=USER)).choices[0].message.content


async def test_connection_refused_is_a_connection_error_not_a_timeout() -> None:
    client = unreachable_client()
    with pytest.raises(errors.APIConnectionError) as caught:
        await client.achat(model=MODEL, messages=USER)
    assert not isinstance(caught.value, errors.APITimeoutError)


_BODY = json.dumps(
    {
        "id": "c1",
        "object": "chat.completion",
        "created": 1,
        "model": MODEL,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
).encode()
_ANSWER = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
    len(_BODY),
    _BODY,
)


class _CountingServer:
    """A keep-alive HTTP/1.1 server that counts the connections it accepts and holds open.

    ``hang_up`` makes it read a request and close the connection without answering.
    """

    def __init__(self, *, hang_up: bool = False) -> None:
        self.accepted = 0
        self.open = 0
        self._hang_up = hang_up

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                if self._hang_up:
                    return
                writer.write(_ANSWER)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            yield f"http://127.0.0.1:{port}/api/v1"


async def test_a_server_hanging_up_is_a_connection_error_not_a_timeout() -> None:
    async with _CountingServer(hang_up=True).running() as base_url:
        client = TokenHubClient(api_key="th-test", base_url=base_url, max_retries=1)
        with pytest.raises(errors.APIConnectionError) as caught:
            await client.achat(model=MODEL, messages=USER)
    assert not isinstance(caught.value, errors.APITimeoutError)


async def test_connections_are_reused_and_idle_ones_reaped() -> None:
    counting = _CountingServer()
    context = pools_module.pools.ssl_context()
    async with counting.running() as base_url:
        pool = AiohttpTransport(limit=50, keepalive_s=30, ssl_context=context)
        async with _client_on(pool, api_key="th-test", base_url=base_url) as client:
            await asyncio.gather(*(client.achat(model=MODEL, messages=USER) for _ in range(20)))
            for _ in range(20):
                await client.achat(model=MODEL, messages=USER)
            assert counting.accepted <= 20  # the sequential calls reused the burst's connections
        # A short keep-alive (its own pool: on a busy machine a stall between two calls could
        # outlast it and make the reuse above open a connection).
        counting.accepted = 0
        reaping = AiohttpTransport(limit=50, keepalive_s=0.2, ssl_context=context)
        async with _client_on(reaping, api_key="th-test", base_url=base_url) as client:
            await client.achat(model=MODEL, messages=USER)
            assert counting.accepted == 1
            for _ in range(100):  # idle longer than keepalive_s: closed by the pool, not by us
                if counting.open == 0:
                    break
                await asyncio.sleep(0.05)
            assert counting.open == 0


async def test_hundreds_of_calls_in_flight(tokenhub_emulator: TokenHubEmulator) -> None:
    tokenhub_emulator.latency_ms = 100
    client = TokenHubClient()
    results = await asyncio.gather(*(client.achat(model=MODEL, messages=USER) for _ in range(300)))
    assert {r.choices[0].finish_reason for r in results} == {"stop"}
    assert len(tokenhub_emulator.requests) == 300


def test_one_ssl_context_per_process(
    tokenhub_emulator: TokenHubEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A context costs ~20 ms: not once per event loop (asyncio.run per request, notebooks)."""
    created = []
    real_new = ssl.SSLContext.__new__

    def counting_new(cls: type[ssl.SSLContext], *args: object, **kwargs: object) -> ssl.SSLContext:
        created.append(cls)
        return real_new(cls, *args, **kwargs)

    monkeypatch.setattr(client_module, "_pools", pools_module._DefaultPools())
    monkeypatch.setattr(ssl.SSLContext, "__new__", counting_new)
    client = TokenHubClient()
    for _ in range(3):
        assert asyncio.run(client.achat(model=MODEL, messages=USER)).choices
    assert client.chat(model=MODEL, messages=USER).choices
    assert len(created) == 1


def test_finished_loops_are_let_go_without_error_logs(
    tokenhub_emulator: TokenHubEmulator,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """asyncio.run per request, or loop.close() without loop.shutdown_asyncgens(): no loop is
    kept alive by its pool, and aiohttp logs no "Unclosed client session" for it."""
    monkeypatch.setattr(client_module, "_pools", pools_module._DefaultPools())
    client = TokenHubClient()
    loops = []

    async def call() -> None:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        assert (await client.achat(model=MODEL, messages=USER)).choices

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # idle sockets the GC closes
        for _ in range(2):
            loop = asyncio.new_event_loop()
            loop.run_until_complete(call())
            loop.close()
            del loop
        for _ in range(2):
            asyncio.run(call())
        gc.collect()
    assert [ref() for ref in loops] == [None] * 4
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_proxy_environment_is_honored_on_the_async_path(
    tokenhub_emulator: TokenHubEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Through a proxy (the emulator, which answers an absolute-form URL it does not route with
    # a 404) the request for an unreachable host reaches the proxy.
    monkeypatch.setenv("HTTP_PROXY", tokenhub_emulator.base_url.removesuffix("/api/v1"))
    monkeypatch.setattr(client_module, "_pools", pools_module._DefaultPools())
    monkeypatch.setattr(client_module, "_warned_plain_http", {"tokenhub.invalid"})
    client = TokenHubClient(base_url="http://tokenhub.invalid/api/v1", max_retries=0)
    with pytest.raises(errors.NotFoundError):
        asyncio.run(client.achat(model=MODEL, messages=USER))


def test_importing_the_core_does_not_import_aiohttp() -> None:
    code = "import sys, tokenhub_core; print('aiohttp' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "False"
