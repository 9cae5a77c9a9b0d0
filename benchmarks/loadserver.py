"""The concurrency benchmark's server: pre-encoded chat completions over HTTP/1.1, in a child.

Under load the emulator's own checks and pydantic work would be what is measured, so the
concurrency table runs against this minimal asyncio server instead: it reads a request (headers,
then ``Content-Length`` bytes), waits the delay named in the path, and writes one pre-encoded
answer on a keep-alive connection. The delay is part of the base URL
(``http://127.0.0.1:PORT/d200/api/v1`` answers after 200 ms; ``/d0c/...`` answers at once and
closes the connection), so one server process serves every case in one run. Run as a script it
serves until its stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from types import TracebackType

__all__ = ["REPLY_TEXT", "LoadServer"]

REPLY_TEXT = "Hello! How can I help you today?"

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


class _Protocol(asyncio.Protocol):
    """One connection: requests in order, each answered after the delay its path names."""

    def __init__(self) -> None:
        self._buffer = b""
        self._transport: asyncio.Transport | None = None
        self._queue: asyncio.Queue[tuple[float, bool]] = asyncio.Queue()
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
            self._buffer = self._buffer[end:]
            step = head.split(" ", 2)[1].split("/")[1]  # "d200" or "d0c"
            close = step.endswith("c")
            delay_ms = float(step[1:].rstrip("c") or 0) if step.startswith("d") else 0.0
            self._queue.put_nowait((time.monotonic() + delay_ms / 1000, close))

    async def _answer(self) -> None:
        while True:
            due, close = await self._queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            assert self._transport is not None
            if self._transport.is_closing():
                return
            self._transport.write(_ANSWER_AND_CLOSE if close else _ANSWER)
            if close:
                self._transport.close()
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
