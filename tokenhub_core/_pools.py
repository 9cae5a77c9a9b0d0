"""The connection pools every `TokenHubClient` shares unless given its own httpx client.

One sync pool per process and one async pool per event loop, closed when the process exits or
the loop shuts down.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
import urllib.request
import weakref
from collections.abc import AsyncGenerator

import httpx

__all__ = ["pools"]

# Agents and batches fan out; keep enough warm connections that a batch of 100 reuses them all.
_POOL_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100, keepalive_expiry=30)


async def _close_when_loop_shuts_down(
    pool: httpx.AsyncClient | httpx.AsyncHTTPTransport,
) -> AsyncGenerator[None, None]:
    # An async generator parked here is finalized by loop.shutdown_asyncgens() (asyncio.run,
    # asyncio.Runner, pytest-asyncio), which lets the pooled connections close on their own loop.
    try:
        yield
    finally:
        await pool.aclose()


def _proxies_configured() -> bool:
    return any(scheme in urllib.request.getproxies() for scheme in ("http", "https", "all"))


class _DefaultPools:
    """The connection pools every `TokenHubClient` shares unless given its own httpx client.

    One sync pool per process and one async pool per event loop: new clients (a new chat model
    per request, say) reuse warm connections, and no pool is left for the garbage collector to
    find with open sockets. Timeouts and headers are set per request, so sharing is safe.

    The pools are httpx transports, driven directly: `httpx.Client`'s own layers (URL merging,
    cookies, auth and redirect flows, hooks) do nothing for this API and cost more CPU per call
    than everything else in a request. When proxy variables are set, a full client is used
    instead, so ``HTTPS_PROXY`` and ``NO_PROXY`` keep working as httpx reads them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sync: httpx.Client | httpx.HTTPTransport | None = None
        self._async: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop,
            tuple[httpx.AsyncClient | httpx.AsyncHTTPTransport, AsyncGenerator[None, None]],
        ] = weakref.WeakKeyDictionary()

    def sync(self) -> httpx.Client | httpx.HTTPTransport:
        with self._lock:
            if self._sync is None:
                self._sync = (
                    httpx.Client(limits=_POOL_LIMITS)
                    if _proxies_configured()
                    else httpx.HTTPTransport(limits=_POOL_LIMITS)
                )
                atexit.register(self._sync.close)
            return self._sync

    async def for_running_loop(self) -> httpx.AsyncClient | httpx.AsyncHTTPTransport:
        loop = asyncio.get_running_loop()
        entry = self._async.get(loop)
        if entry is None:
            pool = (
                httpx.AsyncClient(limits=_POOL_LIMITS)
                if _proxies_configured()
                else httpx.AsyncHTTPTransport(limits=_POOL_LIMITS)
            )
            closer = _close_when_loop_shuts_down(pool)
            await closer.__anext__()
            entry = self._async[loop] = (pool, closer)
        return entry[0]


pools = _DefaultPools()
