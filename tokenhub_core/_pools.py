"""The connection pools every `TokenHubClient` shares unless given its own httpx client.

One sync pool per process and one async pool per event loop, closed when the process exits or
the loop shuts down; one SSL context per process for all of them.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import ssl
import threading
import urllib.request
from collections.abc import AsyncGenerator, Callable
from typing import TYPE_CHECKING

import httpx

from tokenhub_core._sync_transport import SyncTransport

if TYPE_CHECKING:
    from tokenhub_core._aiohttp_transport import AiohttpTransport

__all__ = ["ASYNC_POOL_LIMIT", "KEEPALIVE_S", "pools"]

# httpcore's pool (behind a proxy) rescans every connection for each idle one whenever a call
# starts or ends, so its keep-alive cap stays small: keeping 100 idle connections made 200 calls
# in flight 4x slower than keeping 20 (benchmarks/results.md). The sync pool keeps 20 too.
_SYNC_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=30)
_SYNC_KEEP = 20
# Async: aiohttp's pool costs the same per call at any size, so the cap is set for throughput
# (at 200 ms per call, 1,000 calls in flight took 2.4 s with 100 connections, 1.0 s with 512;
# 1,000 connections cost more CPU for no gain) and stays under the usual 1,024 open files.
ASYNC_POOL_LIMIT = 512
KEEPALIVE_S = 30.0  # idle connections are closed after this long


_AsyncPool = httpx.AsyncClient | httpx.AsyncBaseTransport


async def _close_when_loop_shuts_down(
    pool: _AsyncPool, forget: Callable[[], object]
) -> AsyncGenerator[None, None]:
    # An async generator parked here is finalized by loop.shutdown_asyncgens() (asyncio.run,
    # asyncio.Runner, pytest-asyncio), which lets the pooled connections close on their own loop.
    try:
        yield
    finally:
        forget()
        await pool.aclose()


def _abandon(pool: _AsyncPool) -> None:
    abandon = getattr(pool, "abandon", None)  # an AiohttpTransport's; httpx's need nothing
    if abandon is not None:
        abandon()


def _aiohttp_transport() -> type[AiohttpTransport]:
    from tokenhub_core._aiohttp_transport import AiohttpTransport  # imports aiohttp: ~100 ms

    return AiohttpTransport


def _proxies_configured() -> bool:
    return any(scheme in urllib.request.getproxies() for scheme in ("http", "https", "all"))


class _DefaultPools:
    """The connection pools every `TokenHubClient` shares unless given its own httpx client.

    One sync pool per process and one async pool per event loop: new clients (a new chat model
    per request, say) reuse warm connections, and no pool is left for the garbage collector to
    find with open sockets. Timeouts and headers are set per request, so sharing is safe.

    Sync: `SyncTransport`, the standard library's http.client pooled per host behind httpx's
    transport interface, driven directly
    (`httpx.Client`'s own layers do nothing for this API and cost more CPU than the rest of a
    request). Async: `AiohttpTransport`, aiohttp behind the same interface. With proxy
    variables set, both are full httpx clients instead, so ``HTTPS_PROXY``, ``ALL_PROXY`` and
    ``NO_PROXY`` work exactly as httpx reads them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ssl: ssl.SSLContext | None = None
        self._proxies: bool | None = None  # read from the environment once, like the sync pool
        self._sync: httpx.Client | httpx.BaseTransport | None = None
        # Not a WeakKeyDictionary: aiohttp's objects hold their loop, so an entry would keep its
        # own key alive. Entries leave when their loop shuts down, or, for a loop closed without
        # shutting down its async generators, when the next loop's pool is built (or at exit).
        self._async: dict[
            asyncio.AbstractEventLoop, tuple[_AsyncPool, AsyncGenerator[None, None]]
        ] = {}
        self._inherited: list[object] = []  # a forked child's async pools, left alone
        atexit.register(self._forget_closed_loops)

    def start_over_in_a_child(self) -> None:
        """After ``os.fork()``, in the child: the parent's connections stay the parent's.

        A forked worker (gunicorn's ``--preload``, Celery's prefork pool, multiprocessing's fork
        start) inherits the pools' idle sockets; two processes writing requests to one socket
        would mix them. The child builds its own pools on its first call instead.
        """
        self._lock = threading.Lock()  # one held by another thread at the fork stays held
        self._sync = None  # its idle sockets, once collected, close the child's copies only
        # Async pools are held, never closed here: their sockets are registered with an event
        # loop's epoll instance, which the child shares with the parent, so closing them would
        # unregister the parent's. (An event loop does not survive a fork anyway.)
        self._inherited.extend(self._async.values())
        self._async = {}

    def ssl_context(self) -> ssl.SSLContext:
        """The process's SSL context (httpx's defaults: certifi, ``SSL_CERT_FILE``)."""
        with self._lock:
            if self._ssl is None:
                self._ssl = httpx.create_ssl_context()
            return self._ssl

    def _use_proxies(self) -> bool:
        # Scanning the environment costs ~150 µs: not again for every new event loop.
        if self._proxies is None:
            self._proxies = _proxies_configured()
        return self._proxies

    def sync(self) -> httpx.Client | httpx.BaseTransport:
        """The process's sync pool."""
        if self._sync is not None:  # built once, never replaced: no lock needed to read it
            return self._sync
        context = self.ssl_context()
        with self._lock:
            if self._sync is None:
                self._sync = (
                    httpx.Client(limits=_SYNC_LIMITS, verify=context)
                    if self._use_proxies()
                    else SyncTransport(keep=_SYNC_KEEP, ssl_context=context)
                )
                atexit.register(self._sync.close)
            return self._sync

    async def for_running_loop(self) -> _AsyncPool:
        """The running event loop's pool, built on first use and closed with the loop."""
        loop = asyncio.get_running_loop()
        entry = self._async.get(loop)
        if entry is None:
            self._forget_closed_loops()
            pool = self._new_async_pool()
            closer = _close_when_loop_shuts_down(pool, lambda: self._async.pop(loop, None))
            await closer.__anext__()
            entry = self._async[loop] = (pool, closer)
        return entry[0]

    def _forget_closed_loops(self) -> None:
        # Their pools can no longer be closed on their loop: let them go without their loop.
        for loop in [loop for loop in list(self._async) if loop.is_closed()]:
            entry = self._async.pop(loop, None)
            if entry is not None:
                _abandon(entry[0])

    def _new_async_pool(self) -> _AsyncPool:
        context = self.ssl_context()
        if self._use_proxies():
            return httpx.AsyncClient(limits=_SYNC_LIMITS, verify=context)
        return _aiohttp_transport()(
            limit=ASYNC_POOL_LIMIT, keepalive_s=KEEPALIVE_S, ssl_context=context
        )


pools = _DefaultPools()
if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=pools.start_over_in_a_child)
