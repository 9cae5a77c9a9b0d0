"""A small hostile HTTP server on loopback, for what the emulator will not do.

Each connection gets one scripted answer, written by a function of the request body and the raw
socket: huge or gzip-bombed bodies, endless keep-alives, streams without usage. The server counts
the bytes each answer managed to send before the client hung up.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any

Answer = Callable[[dict[str, Any], socket.socket], None]


def head(status: int = 200, content_type: str = "application/json", **headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status} OK", f"content-type: {content_type}", "x-request-id: req_hostile"]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def completion(
    text: str = "hi", usage: dict[str, Any] | None = None, model: str = "claude-haiku-4-5"
) -> bytes:
    body: dict[str, Any] = {
        "id": "chatcmpl-h",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
    }
    if usage is not None:
        body["usage"] = usage
    return json.dumps(body).encode()


def sse(*events: dict[str, Any] | str) -> bytes:
    return b"".join(
        f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n".encode() for e in events
    )


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-h",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "claude-haiku-4-5",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def huge_json(total: int) -> Answer:
    """A 200 declaring ``total`` bytes of JSON, produced as it is sent (never held in memory)."""

    def answer(body: dict[str, Any], sock: socket.socket) -> None:
        sock.sendall(head(content_length=str(total)))
        sock.sendall(b'{"id": "')
        block = b"x" * 65536
        sent = 8
        while sent < total:
            sock.sendall(block)
            sent += len(block)

    return answer


def gzip_bomb(decoded: int, content_type: str = "application/json") -> Answer:
    """A small gzip body that expands to ``decoded`` bytes."""
    return gzipped(b'{"id": "' + b" " * decoded, content_type)


def gzipped(data: bytes, content_type: str = "application/json") -> Answer:
    """A 200 whose body is ``data`` sent gzip-encoded (as a proxy may, asked or not)."""
    packed = gzip.compress(data, compresslevel=9)

    def answer(body: dict[str, Any], sock: socket.socket) -> None:
        sock.sendall(
            head(
                content_type=content_type, content_encoding="gzip", content_length=str(len(packed))
            )
        )
        sock.sendall(packed)

    return answer


def keepalives(every_s: float) -> Answer:
    """A 200 event stream that sends only SSE comments, forever."""

    def answer(body: dict[str, Any], sock: socket.socket) -> None:
        sock.sendall(head(content_type="text/event-stream"))
        while True:
            sock.sendall(b": keep-alive\n\n")
            time.sleep(every_s)

    return answer


def raw(data: bytes) -> Answer:
    def answer(body: dict[str, Any], sock: socket.socket) -> None:
        sock.sendall(data)

    return answer


class HostileServer:
    """Serves scripted answers in order (the last one repeats), one per connection."""

    def __init__(self, *answers: Answer) -> None:
        self._answers = list(answers)
        self.requests: list[dict[str, Any]] = []
        self.bytes_sent: list[int] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer._handle(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/api/v1"

    def _handle(self, sock: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            more = sock.recv(65536)
            if not more:
                return
            data += more
        header, _, rest = data.partition(b"\r\n\r\n")
        length = 0
        for line in header.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            rest += sock.recv(65536)
        with self._lock:
            self.requests.append(json.loads(rest) if rest else {})
            answer = self._answers[min(len(self.requests) - 1, len(self._answers) - 1)]
        counting = _Counting(sock)
        try:
            answer(self.requests[-1], counting)  # type: ignore[arg-type]
        except OSError:
            pass  # the client hung up
        finally:
            with self._lock:
                self.bytes_sent.append(counting.sent)
            sock.close()

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Counting:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.sent = 0

    def sendall(self, data: bytes) -> None:
        self._sock.sendall(data)
        self.sent += len(data)


def open_connections_to(port: int) -> int:
    """How many established TCP connections this process holds to ``port`` on loopback (Linux)."""
    inodes = set()
    for fd in _fds():
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == port and fields[3] == "01" and fields[9] in inodes:
                count += 1
    return count


def _fds() -> Iterator[str]:
    yield from os.listdir("/proc/self/fd")
