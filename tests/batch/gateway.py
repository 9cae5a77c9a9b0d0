"""A rate-measuring stand-in for TokenHub on loopback: receive times, seeded 429s, latency.

The emulator answers like TokenHub; this gateway records when each request arrived, so tests (and
benchmarks/batch.py) can count the requests of any minute as the server saw them. Each answer is a
small chat completion billed as Haiku; a seeded share of requests get 429 with Retry-After.
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
            fail = self._random.random() < self.fault_rate
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
        return JSONResponse(_completion(body.get("model", ""), text))

    def start(self) -> Gateway:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)
        app = Starlette(routes=[Route("/api/v1/chat/completions", self._chat, methods=["POST"])])
        config = uvicorn.Config(app, log_config=None, log_level="warning", lifespan="off")
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
        times = sorted(self.arrivals)
        most, start = 0, 0
        for end, arrived in enumerate(times):
            while arrived - times[start] >= window_s:
                start += 1
            most = max(most, end - start + 1)
        return most


def _completion(model: str, text: str) -> dict[str, Any]:
    prompt, completion = 10 + len(text) // 4, 5
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
