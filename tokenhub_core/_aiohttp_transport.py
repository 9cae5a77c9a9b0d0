"""httpx's async transport interface over an aiohttp connection pool.

The client's own calls go through `AiohttpTransport.post`, which answers with a light `Reply`;
an `httpx.Request` (an `httpx.AsyncClient` given this transport) goes through
``handle_async_request``. Both send with aiohttp, whose pool hands out and takes back
connections in constant time however many calls wait or sit idle (httpcore's pool rescans every
connection for every waiting request on each event, which collapses past ~100 calls in flight).
aiohttp's failures are raised as httpx's exceptions, so the client's one mapping to
`APIConnectionError` / `APITimeoutError` / `StreamInterruptedError` holds unchanged.

This module imports aiohttp (~100 ms): `tokenhub_core._pools` imports it on the first async call.
"""

from __future__ import annotations

import asyncio
import ssl
import weakref
from collections.abc import AsyncIterator, Mapping

import aiohttp
import httpx

from tokenhub_core._transports import ErrorTable, Reply, httpx_error

__all__ = ["AiohttpTransport"]

# Most specific first: the first class that matches decides. Two tables because the same aiohttp
# failure means a different thing before the response starts than in the middle of its body.
_SEND_ERRORS: ErrorTable = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (asyncio.TimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),  # a malformed status line/headers
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.NonHttpUrlClientError, httpx.UnsupportedProtocol),
    (OSError, httpx.WriteError),
    (aiohttp.ClientError, httpx.NetworkError),
)
_READ_ERRORS: ErrorTable = (
    (asyncio.TimeoutError, httpx.ReadTimeout),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.RemoteProtocolError),  # the body ended short
    (OSError, httpx.ReadError),
    (aiohttp.ClientError, httpx.ReadError),
)
_CATCH = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


class _Body(httpx.AsyncByteStream):
    """A response body as httpx reads it; closing it early closes the connection.

    The read timeout applies to each wait for data, as httpx's does. It is kept here rather
    than by aiohttp, which re-arms a timer on every packet (cancel, a new handle, a heap push):
    a read only notes when it began to wait, and one watchdog timer, moved on when it finds a
    read younger than the timeout, fails the read that has waited the whole timeout. The timer
    holds the body weakly and stops when no read is waiting (the next read starts it again), so
    a body nobody reads is never kept alive by it.
    """

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        request: httpx.Request | None,
        read_timeout: float | None,
    ) -> None:
        self._response = response
        self._request = request
        self._content = response.content
        self._read_timeout: float | None = None
        self._waiting_since: float | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        connection = response.connection
        if read_timeout and connection is not None and connection.protocol is not None:
            connection.protocol.read_timeout = None  # this body's reads are timed here
            self._read_timeout = read_timeout
            self._loop = asyncio.get_running_loop()
            self._self = weakref.ref(self)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while data := await self.read_some():
            yield data

    async def read_some(self) -> bytes:
        """The body's next bytes as they arrive, b"" at its end: what the client reads,
        without httpx's layers (see `_transports`)."""
        timeout = self._read_timeout
        if timeout is None:
            try:
                return await self._content.readany()
            except _CATCH as exc:
                raise httpx_error(exc, _READ_ERRORS, self._request) from exc
        self._waiting_since = self._loop.time()
        if self._watchdog is None:
            self._watchdog = self._loop.call_later(timeout, _watch, self._self)
        try:
            data = await self._content.readany()
        except _CATCH as exc:
            raise httpx_error(exc, _READ_ERRORS, self._request) from exc
        finally:
            self._waiting_since = None
        if not data:
            self._stop_watching()
        return data

    def _check_wait(self) -> None:
        """The watchdog's round: fail a read that has waited the whole timeout."""
        self._watchdog = None
        since, timeout = self._waiting_since, self._read_timeout
        if since is None or timeout is None:
            return  # no read waiting: the next one starts the watchdog again
        if self._loop.time() - since >= timeout:
            self._content.set_exception(
                aiohttp.SocketTimeoutError("Timeout on reading data from socket")
            )
        else:
            self._watchdog = self._loop.call_at(since + timeout, _watch, self._self)

    def _stop_watching(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    async def aclose(self) -> None:
        self.close_now()

    def close_now(self) -> None:
        """Close without awaiting (aiohttp's release and close are synchronous): for a stream
        dropped unclosed, whose loop may be shutting down before a scheduled close would run."""
        self._stop_watching()
        # A fully read body has already gone back to the pool; an unread rest cannot be
        # skipped cheaply on a keep-alive connection, so that connection is closed.
        response = self._response
        if response.content.at_eof():
            response.release()
        else:
            response.close()


def _watch(body: weakref.ref[_Body]) -> None:
    live = body()
    if live is not None:
        live._check_wait()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp session for one event loop, driven through httpx's transport interface.

    Args:
        limit: most connections open at once; more calls wait in aiohttp's FIFO queue.
        keepalive_s: an idle connection is closed after this long.
        ssl_context: used for every https connection (build one per process: each costs ms).

    The request's ``timeout`` extension applies: ``connect`` to opening a connection, ``pool``
    to getting one (waiting for the pool and opening it), ``read`` to each read. aiohttp has
    no write timeout. Proxies are not read from the environment here (see `tokenhub_core._pools`).
    Build it inside the event loop that will use it.
    """

    def __init__(self, *, limit: int, keepalive_s: float, ssl_context: ssl.SSLContext) -> None:
        self._connector = aiohttp.TCPConnector(
            limit=limit, limit_per_host=0, keepalive_timeout=keepalive_s, ssl=ssl_context
        )
        self._session = aiohttp.ClientSession(
            connector=self._connector,
            # httpx decodes the body by its Content-Encoding; aiohttp must hand it over raw and
            # must not advertise encodings httpx might not decode. Cookies: not for this API.
            auto_decompress=False,
            skip_auto_headers=("Accept-Encoding", "User-Agent"),
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
        )
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}

    def _timeout(self, extension: Mapping[str, float | None]) -> aiohttp.ClientTimeout:
        key = (extension.get("connect"), extension.get("read"), extension.get("pool"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            connect, read, pool = key
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(
                total=None, connect=pool, sock_connect=connect, sock_read=read
            )
        return timeout

    async def post(
        self,
        url: httpx.URL,
        content: bytes,
        headers: Mapping[str, str],
        timeout: Mapping[str, float | None],
    ) -> Reply | httpx.Response:
        """POST ``content`` with ``headers``; the reply's body streams from the connection.
        What the client's own calls use (see `Reply`)."""
        response, body = await self._exchange(None, "POST", str(url), content, headers, timeout)
        if "content-encoding" in response.headers:
            request = httpx.Request("POST", url, extensions={"timeout": dict(timeout)})
            return self._response(response, body, request)
        return Reply(response.status, response.headers, body)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``; the response's body streams from the connection."""
        try:
            content: bytes = request.content
        except httpx.RequestNotRead:
            content = await request.aread()
        # Not Headers.multi_items(): it guesses the encoding again for every header.
        headers = [(k.decode(), v.decode("utf-8", "replace")) for k, v in request.headers.raw]
        response, body = await self._exchange(
            request,
            request.method,
            str(request.url),
            content,
            headers,
            request.extensions.get("timeout", {}),
        )
        return self._response(response, body, request)

    async def _exchange(
        self,
        request: httpx.Request | None,
        method: str,
        url: str,
        content: bytes,
        headers: Mapping[str, str] | list[tuple[str, str]],
        timeout_extension: Mapping[str, float | None],
    ) -> tuple[aiohttp.ClientResponse, _Body]:
        timeout = self._timeout(timeout_extension)
        try:
            response = await self._session.request(
                method,
                url,
                headers=headers,
                data=content or None,
                allow_redirects=False,
                timeout=timeout,
            )
        except _CATCH as exc:
            raise httpx_error(exc, _SEND_ERRORS, request) from exc
        return response, _Body(response, request, timeout.sock_read)

    @staticmethod
    def _response(
        response: aiohttp.ClientResponse, body: _Body, request: httpx.Request
    ) -> httpx.Response:
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=body,
            request=request,
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": (response.reason or "").encode("ascii", "replace"),
            },
        )

    async def aclose(self) -> None:
        """Close the session and every connection in its pool."""
        await self._session.close()

    def abandon(self) -> None:
        """Give the pool up without its loop: for a loop closed before its pool was.

        Marks the session and its connector closed, so that aiohttp does not log "Unclosed
        client session" when they are collected; the sockets close as their transports are.
        """
        self._session.detach()
        # With its loop closed the connector only marks itself closed: nothing in close()
        # suspends, so the coroutine is driven to its end here, without a loop.
        closing = self._connector.close()
        try:
            closing.send(None)
        except StopIteration:
            pass
        else:  # it did want to wait (its loop is still open): leave the sockets to their GC
            closing.close()
