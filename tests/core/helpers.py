"""Building blocks for the core's MockTransport tests: canned bodies and a recording server."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from tokenhub_core import TokenHubClient

KEY = "th-test-key-0123456789"
BASE = "https://tokenhub.test/api/v1"
MODEL = "anthropic/claude-sonnet-4-6"
USER = [{"role": "user", "content": "hi"}]


def completion(text: str = "hello", model: str = MODEL, **usage: int) -> dict[str, Any]:
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15} | usage
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": usage,
    }


def chunk(
    delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any
) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MODEL,
        "choices": choices,
        **extra,
    }


def sse(*events: dict[str, Any] | str, done: bool = True) -> bytes:
    out = "".join(f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n" for e in events)
    return (out + ("data: [DONE]\n\n" if done else "")).encode()


def text_stream(*pieces: str, usage: bool = True, done: bool = True) -> bytes:
    events: list[dict[str, Any] | str] = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": p}) for p in pieces]
    events.append(chunk({}, finish="stop"))
    if usage:
        events.append(
            chunk(
                None,
                usage={
                    "prompt_tokens": 4,
                    "completion_tokens": len(pieces),
                    "total_tokens": 4 + len(pieces),
                },
            )
        )
    return sse(*events, done=done)


class BrokenStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body that delivers some bytes, then fails like a dropped connection."""

    def __init__(self, first: bytes) -> None:
        self.first = first
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield self.first
        raise httpx.RemoteProtocolError(
            "peer closed connection without sending complete message body"
        )

    async def __aiter__(self):  # type: ignore[no-untyped-def]
        yield self.first
        raise httpx.RemoteProtocolError(
            "peer closed connection without sending complete message body"
        )

    def close(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.closed = True


class Server:
    """Answers with the queued responses in order (the last one repeats) and records requests."""

    def __init__(
        self, *responses: httpx.Response | Callable[[httpx.Request], httpx.Response]
    ) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        return answer(request) if callable(answer) else answer

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]

    def client(self, **kwargs: Any) -> TokenHubClient:
        transport = httpx.MockTransport(self)
        kwargs.setdefault("api_key", KEY)
        kwargs.setdefault("base_url", BASE)
        return TokenHubClient(
            http_client=httpx.Client(transport=transport),
            http_async_client=httpx.AsyncClient(transport=transport),
            **kwargs,
        )


def ok(body: dict[str, Any] | None = None, **headers: str) -> httpx.Response:
    return httpx.Response(
        200, json=body or completion(), headers={"x-request-id": "req_ok", **headers}
    )


def streamed(content: bytes, **headers: str) -> httpx.Response:
    return httpx.Response(
        200,
        content=content,
        headers={"content-type": "text/event-stream", "x-request-id": "req_s", **headers},
    )


def error(status: int, message: str = "failed", **headers: str) -> httpx.Response:
    return httpx.Response(
        status,
        json={"error": {"message": message, "type": "error"}},
        headers={"x-request-id": f"req_{status}", **headers},
    )


def unreachable_client() -> TokenHubClient:
    """A client whose base URL is a loopback port nobody listens on (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return TokenHubClient(api_key=KEY, base_url=f"http://127.0.0.1:{port}/api/v1", max_retries=0)
