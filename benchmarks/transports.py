"""The async transports the core can drive, head to head: CPU per request and burst wall time.

Each transport gets an `httpx.Request` exactly as the core builds one and is driven as the core
drives it (``handle_async_request``, ``aread``, ``aclose``), in one process and one event loop,
rounds interleaved so that the machine's load hits all of them alike; figures are medians over
rounds, ratios medians of per-round ratios against our `AiohttpTransport`.

    python benchmarks/transports.py [--rounds 9]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable

import httpx
from loadserver import LoadServer

from tokenhub_core._aiohttp_transport import AiohttpTransport
from tokenhub_core._pools import ASYNC_POOL_LIMIT, KEEPALIVE_S, pools

_BODY = b'{"model":"anthropic/claude-sonnet-4-6","messages":[{"role":"user","content":"Hi."}]}'


def _transports() -> dict[str, Callable[[], httpx.AsyncBaseTransport]]:
    from httpx_aiohttp import AiohttpTransport as HttpxAiohttpTransport

    context = pools.ssl_context()
    return {
        "ours (AiohttpTransport)": lambda: AiohttpTransport(
            limit=ASYNC_POOL_LIMIT, keepalive_s=KEEPALIVE_S, ssl_context=context
        ),
        "httpx-aiohttp 0.2": lambda: HttpxAiohttpTransport(
            verify=context, limits=httpx.Limits(max_connections=ASYNC_POOL_LIMIT)
        ),
        "httpcore, 100 idle kept (before)": lambda: httpx.AsyncHTTPTransport(
            verify=context, limits=httpx.Limits(max_connections=100, max_keepalive_connections=100)
        ),
        "httpcore, 20 idle kept": lambda: httpx.AsyncHTTPTransport(
            verify=context, limits=httpx.Limits(max_connections=100, max_keepalive_connections=20)
        ),
    }


async def _main(rounds: int, calls: int, burst: int) -> None:
    with LoadServer() as server:
        url = f"{server.base_url(0)}/chat/completions"
        headers = {"Authorization": "Bearer th-bench", "Content-Type": "application/json"}
        timeout = httpx.Timeout(60.0).as_dict()
        pools_ = {name: make() for name, make in _transports().items()}

        async def one(transport: httpx.AsyncBaseTransport) -> None:
            request = httpx.Request(
                "POST", url, content=_BODY, headers=headers, extensions={"timeout": timeout}
            )
            response = await transport.handle_async_request(request)
            await response.aread()
            await response.aclose()

        cpu: dict[str, list[float]] = {name: [] for name in pools_}
        wall: dict[str, list[float]] = {name: [] for name in pools_}
        for transport in pools_.values():  # warm-up
            await asyncio.gather(*(one(transport) for _ in range(burst)))
        for _ in range(rounds):
            for name, transport in pools_.items():
                start = time.process_time()
                for _ in range(calls):
                    await one(transport)
                cpu[name].append((time.process_time() - start) / calls * 1e6)
                start = time.perf_counter()
                await asyncio.gather(*(one(transport) for _ in range(burst)))
                wall[name].append((time.perf_counter() - start) * 1e3)
        ours = next(iter(pools_))
        print(f"{rounds} interleaved rounds of {calls} sequential requests and {burst} concurrent")
        print()
        print(f"| transport | µs CPU / request | ÷ ours | {burst} concurrent, ms | ÷ ours |")
        print("|---|---:|---:|---:|---:|")
        for name in pools_:
            cpu_ratio = statistics.median(a / b for a, b in zip(cpu[name], cpu[ours], strict=True))
            wall_ratio = statistics.median(
                a / b for a, b in zip(wall[name], wall[ours], strict=True)
            )
            print(
                f"| {name} | {statistics.median(cpu[name]):,.0f} | {cpu_ratio:.2f}× "
                f"| {statistics.median(wall[name]):,.0f} | {wall_ratio:.2f}× |"
            )
        for transport in pools_.values():
            await transport.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python benchmarks/transports.py")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--burst", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(_main(args.rounds, args.calls, args.burst))
