"""The sync transport before issue 13's last pass: urllib3 behind httpx's transport interface.

Kept here, out of the package, as the "before" row of benchmarks/sync_transports.py: the core's
`tokenhub_core._sync_transport.SyncTransport` drives the same ``http.client`` connections without
urllib3's layers (benchmarks/transport-decision.md). Bodies are read by urllib3's own
``read_chunked`` / ``read1``, as they were before the core read chunks from http.client's reader.
"""

from __future__ import annotations

import http.client
import ssl
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import urllib3
from urllib3 import exceptions as u3

from tokenhub_core._transports import ErrorTable, httpx_error

__all__ = ["Urllib3Transport"]

# Most specific first: the first class that matches decides. Two tables because the same urllib3
# failure means a different thing before the response starts than in the middle of its body.
_SEND_ERRORS: ErrorTable = (
    (u3.NewConnectionError, httpx.ConnectError),  # refused, unreachable, no such host
    (u3.ConnectTimeoutError, httpx.ConnectTimeout),
    (u3.ReadTimeoutError, httpx.ReadTimeout),
    (u3.EmptyPoolError, httpx.PoolTimeout),
    (u3.SSLError, httpx.ConnectError),
    (u3.LocationValueError, httpx.UnsupportedProtocol),
    (u3.ProtocolError, httpx.RemoteProtocolError),  # hung up, or no valid status line
    (http.client.HTTPException, httpx.RemoteProtocolError),
    (OSError, httpx.WriteError),
    (u3.HTTPError, httpx.NetworkError),
)
_READ_ERRORS: ErrorTable = (
    (u3.ReadTimeoutError, httpx.ReadTimeout),
    (u3.ProtocolError, httpx.RemoteProtocolError),  # the body ended short, or a bad chunk
    (http.client.HTTPException, httpx.RemoteProtocolError),
    (OSError, httpx.ReadError),
    (u3.HTTPError, httpx.ReadError),
)
_CATCH = (u3.HTTPError, http.client.HTTPException, OSError)


class _Body(httpx.SyncByteStream):
    """A response body as httpx reads it: bytes as they arrive; closing it early closes the
    connection, a fully read one goes back to the pool."""

    def __init__(
        self,
        response: urllib3.BaseHTTPResponse,
        request: httpx.Request,
        reading: set[urllib3.BaseHTTPResponse],
    ) -> None:
        self._response = response
        self._request = request
        self._complete = False
        self._reading = reading
        reading.add(response)

    def __iter__(self) -> Iterator[bytes]:
        return self.raw()

    def raw(self) -> Iterator[bytes]:
        """The body's bytes as urllib3 reads them."""
        response = self._response
        try:
            if response.chunked:
                yield from response.read_chunked(decode_content=False)
            else:
                while data := response.read1(1 << 16, decode_content=False):
                    yield data
        except _CATCH as exc:
            raise httpx_error(exc, _READ_ERRORS, self._request) from exc
        self._complete = True

    def close(self) -> None:
        response = self._response
        if not self._complete:
            # An unread rest cannot be skipped cheaply on a keep-alive connection.
            response.close()
        response.release_conn()
        self._reading.discard(response)


class Urllib3Transport(httpx.BaseTransport):
    """urllib3 connection pools, one per host, driven through httpx's transport interface.

    Args:
        keep: idle connections kept per host; more may be open at once (one per thread).
        ssl_context: used for every https connection (build one per process: each costs ms).

    The request's ``timeout`` extension applies: ``connect`` to opening a connection, ``read``
    to each read (urllib3 has no write or pool timeout: its pool never makes a call wait).
    Proxies are not read from the environment here (see `tokenhub_core._pools`). Redirects are
    not followed and nothing is retried: the client's lifecycle decides.
    """

    def __init__(self, *, keep: int, ssl_context: ssl.SSLContext) -> None:
        # Pools kept by (scheme, host, port) here rather than by a PoolManager, which parses
        # the URL and rebuilds its pool key on every request (a fifth of a call's CPU).
        self._options: dict[str, Any] = {"maxsize": keep, "block": False, "retries": False}
        self._ssl_context = ssl_context
        self._pools: dict[tuple[str, str, int | None], urllib3.HTTPConnectionPool] = {}
        self._lock = threading.Lock()
        self._timeouts: dict[tuple[float | None, float | None], urllib3.Timeout] = {}
        # The responses being read, held here as httpcore's pool holds its busy connections: a
        # stream dropped in a reference cycle is then closed by the client's deferred close,
        # not finalized by the collector with its socket ("unclosed socket").
        self._reading: set[urllib3.BaseHTTPResponse] = set()

    def _timeout(self, extension: Mapping[str, float | None]) -> urllib3.Timeout:
        key = (extension.get("connect"), extension.get("read"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = self._timeouts[key] = urllib3.Timeout(connect=key[0], read=key[1])
        return timeout

    def _pool(self, url: httpx.URL) -> urllib3.HTTPConnectionPool:
        key = (url.scheme, url.host, url.port)
        pool = self._pools.get(key)
        if pool is None:
            with self._lock:
                pool = self._pools.get(key)
                if pool is None:
                    if url.scheme == "https":
                        pool = urllib3.HTTPSConnectionPool(
                            url.host, url.port, ssl_context=self._ssl_context, **self._options
                        )
                    elif url.scheme == "http":
                        pool = urllib3.HTTPConnectionPool(url.host, url.port, **self._options)
                    else:
                        raise u3.LocationValueError(f"unsupported URL scheme {url.scheme!r}")
                    self._pools[key] = pool
        return pool

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``; the response's body streams from the connection."""
        try:
            content: bytes = request.content
        except httpx.RequestNotRead:
            content = request.read()
        raw = request.headers.raw
        headers: Mapping[str, str] = {k.decode(): v.decode("utf-8", "replace") for k, v in raw}
        if len(headers) != len(raw):  # a repeated header: keep every value
            headers = urllib3.HTTPHeaderDict()
            for key, value in raw:
                headers.add(key.decode(), value.decode("utf-8", "replace"))
        try:
            response = self._pool(request.url).urlopen(
                request.method,
                request.url.raw_path.decode("ascii"),
                body=content or None,
                headers=headers,
                redirect=False,
                retries=False,
                assert_same_host=False,
                preload_content=False,
                decode_content=False,
                timeout=self._timeout(request.extensions.get("timeout", {})),
            )
        except _CATCH as exc:
            raise httpx_error(exc, _SEND_ERRORS, request) from exc
        return httpx.Response(
            response.status,
            # Bytes: httpx takes them as they are (str pairs it re-encodes one by one).
            headers=[
                (k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()
            ],
            stream=_Body(response, request, self._reading),
            request=request,
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": (response.reason or "").encode("ascii", "replace"),
            },
        )

    def close(self) -> None:
        """Close every idle connection (those being read close as their responses do)."""
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()
