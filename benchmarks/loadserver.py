"""The pre-encoded server: chat completions and Claude's native Messages API over HTTP/1.1.

Under load the emulator's own checks and pydantic work would be what is measured, so the
concurrency table runs against this minimal asyncio server instead: it reads a request (headers,
then ``Content-Length`` bytes), waits the delay named in the path, and writes one pre-encoded
answer on a keep-alive connection. The delay is part of the base URL
(``http://127.0.0.1:PORT/d200/api/v1`` answers after 200 ms; ``/d0c/...`` answers at once and
closes the connection), so one server process serves every case in one run.

A path ending in ``/messages`` gets Anthropic's native answer instead: a ``message`` JSON body,
or, when the request body asks for ``"stream": true``, the native SSE event sequence
(``message_start``, ``content_block_start``, ``ping``, one ``content_block_delta`` per word,
``content_block_stop``, ``message_delta``, ``message_stop``) with chunked transfer encoding. A
second path segment sizes the stream like the emulator's chat/completions ones: ``/d0/w2000/...``
streams 2,000 words written in ~4 KiB batches, ``/d0/w300g1/...`` 300 words one event per write,
1 ms apart. Run as a script it serves until its stdin closes.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from types import TracebackType

__all__ = ["NATIVE_MODEL", "REPLY_TEXT", "LoadServer", "native_stream_events"]

REPLY_TEXT = "Hello! How can I help you today?"
NATIVE_MODEL = "claude-sonnet-4-6"
_BATCH_BYTES = 4096  # as the emulator: stream events written in batches of about this size
# Same words as the emulator's benchmark texts (benchserver.words), one delta each.
_WORDS = (
    *("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "seven"),
    *("small", "birds", "sing", "in", "the", "old", "green", "tree", "and", "a", "cat", "naps"),
    *("by", "the", "warm", "door"),
)

_BODY = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "anthropic/claude-sonnet-4-6",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": REPLY_TEXT},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 9, "total_tokens": 19},
    },
    separators=(",", ":"),
).encode()
_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-request-id: req-bench\r\n"
    b"content-length: " + str(len(_BODY)).encode() + b"\r\n"
)
_ANSWER = _HEAD + b"\r\n" + _BODY
_ANSWER_AND_CLOSE = _HEAD + b"connection: close\r\n\r\n" + _BODY


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _native_usage(output_tokens: int) -> dict[str, object]:
    return {
        "input_tokens": 10,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _native_head(content_type: bytes, length: int | None, close: bool) -> bytes:
    framing = b"transfer-encoding: chunked" if length is None else b"content-length: %d" % length
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: " + content_type + b"\r\nrequest-id: req-bench\r\n"
        + framing + b"\r\n" + (b"connection: close\r\n" if close else b"") + b"\r\n"
    )  # fmt: skip


_NATIVE_BODY = _json(
    {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": NATIVE_MODEL,
        "content": [{"type": "text", "text": REPLY_TEXT}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": _native_usage(9),
    }
)


def native_stream_events(n_words: int) -> tuple[str, list[bytes]]:
    """The text of ``n_words`` words and its native SSE events, one ``bytes`` per event."""
    pieces = [(" " if i else "") + _WORDS[i % len(_WORDS)] for i in range(n_words)]

    def event(name: str, data: dict[str, object]) -> bytes:
        return b"event: " + name.encode() + b"\ndata: " + _json(data) + b"\n\n"

    start: dict[str, object] = {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": NATIVE_MODEL,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": _native_usage(1),
    }
    events = [
        event("message_start", {"type": "message_start", "message": start}),
        event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        event("ping", {"type": "ping"}),
    ]
    for piece in pieces:
        delta = {"type": "text_delta", "text": piece}
        events.append(
            event(
                "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}
            )
        )
    # Usage stays within the request's max_tokens (1024), as a real server's does.
    usage = {"output_tokens": min(n_words, 1024)}
    end = {"stop_reason": "end_turn", "stop_sequence": None}
    events += [
        event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        event("message_delta", {"type": "message_delta", "delta": end, "usage": usage}),
        event("message_stop", {"type": "message_stop"}),
    ]
    return "".join(pieces), events


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


@dataclass(frozen=True)
class _Stream:
    """What to write for one streamed answer: the head, then ``writes`` ``gap_s`` apart."""

    head: bytes
    writes: tuple[bytes, ...]
    gap_s: float


@functools.lru_cache(maxsize=64)
def _native_stream(n_words: int, gap_ms: float, close: bool) -> _Stream:
    _, events = native_stream_events(n_words)
    writes: list[bytes] = []
    if gap_ms > 0:
        writes = [_chunk(e) for e in events]
    else:
        batch = b""
        for e in events:
            batch += e
            if len(batch) >= _BATCH_BYTES:
                writes.append(_chunk(batch))
                batch = b""
        if batch:
            writes.append(_chunk(batch))
    writes.append(b"0\r\n\r\n")
    head = _native_head(b"text/event-stream; charset=utf-8", None, close)
    return _Stream(head, tuple(writes), gap_ms / 1000)


_NATIVE_ANSWER = _native_head(b"application/json", len(_NATIVE_BODY), False) + _NATIVE_BODY
_NATIVE_ANSWER_AND_CLOSE = _native_head(b"application/json", len(_NATIVE_BODY), True) + _NATIVE_BODY
_STEP = re.compile(r"d(\d+(?:\.\d+)?)?(c?)")
_SIZE = re.compile(r"w(\d+)(?:g(\d+(?:\.\d+)?))?")


def _route(head: str, body: bytes) -> tuple[float, bool, bytes | _Stream]:
    """(delay in ms, close after answering, what to write) for one request."""
    path = head.split(" ", 2)[1]
    segments = path.split("/")
    step = _STEP.fullmatch(segments[1])
    delay_ms, close = (float(step.group(1) or 0), bool(step.group(2))) if step else (0.0, False)
    if not path.endswith("/messages"):
        return delay_ms, close, _ANSWER_AND_CLOSE if close else _ANSWER
    if not json.loads(body or b"{}").get("stream"):
        return delay_ms, close, _NATIVE_ANSWER_AND_CLOSE if close else _NATIVE_ANSWER
    size = _SIZE.fullmatch(segments[2]) if len(segments) > 2 else None
    n_words, gap_ms = (int(size.group(1)), float(size.group(2) or 0)) if size else (200, 0.0)
    return delay_ms, close, _native_stream(n_words, gap_ms, close)


class _Protocol(asyncio.Protocol):
    """One connection: requests in order, each answered after the delay its path names."""

    def __init__(self) -> None:
        self._buffer = b""
        self._transport: asyncio.Transport | None = None
        self._queue: asyncio.Queue[tuple[float, bool, bytes | _Stream]] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._writer = asyncio.ensure_future(self._answer())

    def connection_lost(self, exc: Exception | None) -> None:
        if self._writer is not None:
            self._writer.cancel()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            head_end = self._buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self._buffer[:head_end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            end = head_end + 4 + length
            if len(self._buffer) < end:
                return
            body, self._buffer = self._buffer[head_end + 4 : end], self._buffer[end:]
            delay_ms, close, answer = _route(head, body)
            self._queue.put_nowait((time.monotonic() + delay_ms / 1000, close, answer))

    async def _answer(self) -> None:
        while True:
            due, close, answer = await self._queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            transport = self._transport
            assert transport is not None
            if transport.is_closing():
                return
            if isinstance(answer, bytes):
                transport.write(answer)
            else:
                transport.write(answer.head)
                for i, data in enumerate(answer.writes):
                    if answer.gap_s > 0 and i > 0:
                        await asyncio.sleep(answer.gap_s)
                        if transport.is_closing():
                            return
                    transport.write(data)
            if close:
                transport.close()
                return


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Protocol, "127.0.0.1", 0, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin
    server.close()


class LoadServer:
    """The server in a child process (its CPU is never the client's); a context manager.

    ``LoadServer(port=...)`` names one already running (a worker process's view of it).
    """

    def __init__(self, port: int = 0) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self.port = port

    def base_url(self, delay_ms: int = 0, *, close: bool = False) -> str:
        """A base URL whose calls are answered after ``delay_ms``, closing the connection if
        ``close``."""
        return f"http://127.0.0.1:{self.port}/d{delay_ms}{'c' if close else ''}/api/v1"

    def native_base_url(self, words: int, gap_ms: float = 0) -> str:
        """An Anthropic-style base URL (``{base}/v1/messages`` is the endpoint) whose streams
        carry ``words`` text deltas, batched, or one per write ``gap_ms`` apart."""
        gap = f"g{gap_ms:g}" if gap_ms else ""
        return f"http://127.0.0.1:{self.port}/d0/w{words}{gap}/api"

    def __enter__(self) -> LoadServer:
        self._proc = subprocess.Popen(
            [sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self._proc.stdout is not None
        self.port = int(self._proc.stdout.readline())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


if __name__ == "__main__":
    asyncio.run(_serve())
