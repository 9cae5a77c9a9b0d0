"""A rate-measuring stand-in for TokenHub on loopback: receive times, seeded 429s, latency.

The emulator answers like TokenHub; this gateway records when each request arrived, so tests (and
benchmarks/batch.py) can count the requests of any minute as the server saw them. Each answer is a
small chat completion with a fixed usage; a seeded share of requests get 429 with Retry-After.
``GET /stats`` returns what it recorded; ``python -m tests.batch.gateway`` serves it from a shell.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import threading
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tokenhub_core.params import estimate_tokens


class Gateway:
    """Serve ``/api/v1/chat/completions`` on 127.0.0.1 in a thread; ``arrivals`` are wall times."""

    def __init__(
        self,
        *,
        latency_s: float = 0.0,
        fault_rate: float = 0.0,
        retry_after_s: float = 0.1,
        seed: int = 0,
    ) -> None:
        self.latency_s = latency_s
        self.fault_rate = fault_rate
        self.retry_after_s = retry_after_s
        self.fail_first = 0  # answer this many next requests with 429, whatever the fault rate
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.arrivals: list[float] = []
        self.statuses: list[int] = []
        self.answered: list[str] = []  # the custom content of each 200, to spot duplicates
        self.api_key = "th-gateway-key"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    async def _chat(self, request: Request) -> Response:
        arrived = time.time()
        body = await request.json()
        with self._lock:
            fail = self._random.random() < self.fault_rate or self.fail_first > 0
            self.fail_first = max(0, self.fail_first - 1)
            self.arrivals.append(arrived)
            self.statuses.append(429 if fail else 200)
        if fail:
            return JSONResponse(
                {"error": {"message": "rate limited", "type": "rate_limit_error"}},
                status_code=429,
                headers={"Retry-After": str(self.retry_after_s)},
            )
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        text = str(body["messages"][-1]["content"])
        with self._lock:
            self.answered.append(text)
        return JSONResponse(_completion(body.get("model", ""), body["messages"]))

    async def _stats(self, request: Request) -> Response:
        with self._lock:
            stats = {
                "arrivals": list(self.arrivals),
                "statuses": list(self.statuses),
                "answered": list(self.answered),
            }
        return JSONResponse(stats)

    def start(self, port: int = 0) -> Gateway:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(1024)
        app = Starlette(
            routes=[
                Route("/api/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/stats", self._stats, methods=["GET"]),
            ]
        )
        config = uvicorn.Config(
            app, log_config=None, log_level="warning", lifespan="off", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        while not self._server.started:
            time.sleep(0.005)
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}/api/v1"
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
        self._server = self._thread = None

    def __enter__(self) -> Gateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def most_in_window(self, window_s: float) -> int:
        """The most requests that arrived within any ``window_s`` seconds."""
        return most_in_window(self.arrivals, window_s)


def usage_of(messages: list[dict[str, Any]]) -> tuple[int, int]:
    """The prompt and completion tokens the gateway reports (the emulator's estimate)."""
    return estimate_tokens(messages), 5


def _completion(model: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
    text = str(messages[-1]["content"])
    prompt, completion = usage_of(messages)
    return {
        "id": "chatcmpl-gw",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": f"label for {json.dumps(text)}"},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def most_in_window(arrivals: list[float], window_s: float) -> int:
    """The most of ``arrivals`` within any ``window_s`` seconds."""
    times = sorted(arrivals)
    most, start = 0, 0
    for end, arrived in enumerate(times):
        while arrived - times[start] >= window_s:
            start += 1
        most = max(most, end - start + 1)
    return most


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="serve the rate-measuring gateway")
    parser.add_argument("--latency-s", type=float, default=0.0)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--retry-after-s", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    gateway = Gateway(
        latency_s=args.latency_s,
        fault_rate=args.fault_rate,
        retry_after_s=args.retry_after_s,
        seed=args.seed,
    ).start()
    print(gateway.base_url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        gateway.stop()
