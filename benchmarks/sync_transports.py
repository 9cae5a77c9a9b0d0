"""The sync transports the core can drive, head to head: CPU per request and per streamed read.

Each transport gets an `httpx.Request` exactly as the core builds one and is driven as the core
drives it (``handle_request``, ``iter_bytes``, ``close``), in one process, rounds interleaved so
that the machine's load hits all of them alike; figures are medians over rounds, ratios medians
of per-round ratios against our `Urllib3Transport`. "Per read" is a stream of 300 events sent
1 ms apart (a live model: one event per socket read); "per batched event" a stream of 2,000
events sent in ~4 KiB writes.

    python benchmarks/sync_transports.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from loadserver import LoadServer

from tokenhub_core._pools import _SYNC_KEEP, _SYNC_LIMITS, pools
from tokenhub_core._urllib3_transport import Urllib3Transport

_BODY = (
    b'{"model":"claude-sonnet-4-6","max_tokens":8000,"messages":[{"role":"user","content":"Hi."}]}'
)


class _ReadChunkedBody(httpx.SyncByteStream):
    """Our body read through urllib3's ``read_chunked`` (before issue 13's per-event pass)."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def __iter__(self) -> Iterator[bytes]:
        response = self._body._response
        if not response.chunked:
            yield from self._body.raw()
            return
        yield from response.read_chunked(decode_content=False)
        self._body._complete = True

    def close(self) -> None:
        self._body.close()


class _ReadChunkedTransport(Urllib3Transport):
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        response.stream = _ReadChunkedBody(response.stream)
        return response


def _transports() -> dict[str, Callable[[], httpx.BaseTransport]]:
    context = pools.ssl_context()
    return {
        "ours (Urllib3Transport)": lambda: Urllib3Transport(keep=_SYNC_KEEP, ssl_context=context),
        "ours, chunks through urllib3's read_chunked (before)": lambda: _ReadChunkedTransport(
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
        ours = figures["ours (Urllib3Transport)"]
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
