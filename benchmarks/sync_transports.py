"""The sync transports the core can drive, head to head: CPU per request and per streamed read.

Each transport gets an `httpx.Request` exactly as the core builds one and is driven as the core
drives it (``handle_request``, ``iter_bytes``, ``close``), in one process, rounds interleaved so
that the machine's load hits all of them alike; figures are medians over rounds, ratios medians
of per-round ratios against our `SyncTransport`. "Per read" is a stream of 300 events sent
1 ms apart (a live model: one event per socket read); "per batched event" a stream of 2,000
events sent in ~4 KiB writes.

    python benchmarks/sync_transports.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import httpx
from loadserver import LoadServer
from urllib3_transport import Urllib3Transport

from tokenhub_core._pools import _SYNC_KEEP, _SYNC_LIMITS, pools
from tokenhub_core._sync_transport import SyncTransport

_BODY = (
    b'{"model":"claude-sonnet-4-6","max_tokens":8000,"messages":[{"role":"user","content":"Hi."}]}'
)


def _transports() -> dict[str, Callable[[], httpx.BaseTransport]]:
    context = pools.ssl_context()
    return {
        "ours (SyncTransport)": lambda: SyncTransport(keep=_SYNC_KEEP, ssl_context=context),
        "urllib3 (Urllib3Transport, before)": lambda: Urllib3Transport(
            keep=_SYNC_KEEP, ssl_context=context
        ),
        "httpcore (httpx.HTTPTransport, before)": lambda: httpx.HTTPTransport(
            verify=context, limits=_SYNC_LIMITS
        ),
    }


def _cpu(transport: httpx.BaseTransport, url: str, times: int, stream: bool) -> float:
    headers = {"content-type": "application/json", "x-api-key": "th-bench"}
    body = _BODY.replace(b'"max_tokens"', b'"stream":true,"max_tokens"') if stream else _BODY
    start = time.process_time()
    for _ in range(times):
        request = httpx.Request("POST", url, content=body, headers=headers)
        response = transport.handle_request(request)
        for _data in response.iter_bytes():
            pass
        response.close()
    return time.process_time() - start


def main(rounds: int) -> None:
    with LoadServer() as server:
        short = server.native_base_url(1) + "/messages"
        long = server.native_base_url(2000) + "/messages"
        drip = server.native_base_url(300, 1.0) + "/messages"
        figures: dict[str, dict[str, list[float]]] = {}
        built = {name: make() for name, make in _transports().items()}
        for transport in built.values():
            _cpu(transport, short, 20, stream=False)  # warm: connections open
        for _ in range(rounds):
            for name, transport in built.items():
                row = figures.setdefault(name, {"call": [], "batched": [], "read": []})
                row["call"].append(_cpu(transport, short, 200, stream=False) / 200 * 1e6)
                row["batched"].append(_cpu(transport, long, 2, stream=True) / 4000 * 1e6)
                row["read"].append(_cpu(transport, drip, 1, stream=True) / 300 * 1e6)
        ours = figures["ours (SyncTransport)"]
        print(
            "| transport | µs CPU / call | ÷ ours | µs / batched event | ÷ ours | µs / read |"
            " ÷ ours |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name, row in figures.items():
            cells = []
            for key in ("call", "batched", "read"):
                ratio = statistics.median(a / b for a, b in zip(row[key], ours[key], strict=True))
                cells += [f"{statistics.median(row[key]):,.1f}", f"{ratio:.2f}×"]
            print(f"| {name} | " + " | ".join(cells) + " |")
        for transport in built.values():
            transport.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    main(parser.parse_args().rounds)
