"""`TokenHubEmulator`: the emulator app served by uvicorn, in a thread or in the foreground."""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from tokenhub_emulator.app import DroppedConnectionFilter, create_app
from tokenhub_emulator.control import CONTROL_PREFIX, Scripting
from tokenhub_emulator.state import EmulatorSettings, EmulatorState

__all__ = ["TokenHubEmulator"]

_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 10.0


def _install_log_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, DroppedConnectionFilter) for f in logger.filters):
        logger.addFilter(DroppedConnectionFilter())


class _CoalescingTransport(asyncio.Transport):
    """Holds a response head back until the body's first write, so both leave in one segment.

    uvicorn writes the status line and headers, then the body: two wake-ups of the client per
    answer. A held head goes out with the next write, or at the end of the loop iteration.
    """

    def __init__(self, inner: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._inner = inner
        self._loop = loop
        self._held = b""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._held:
            data, self._held = self._held + bytes(data), b""
        if data[:5] == b"HTTP/" and data[-4:] == b"\r\n\r\n":
            self._held = bytes(data)
            self._loop.call_soon(self._flush)
            return
        self._inner.write(data)

    def _flush(self) -> None:
        if self._held:
            data, self._held = self._held, b""
            self._inner.write(data)

    def close(self) -> None:
        self._flush()
        self._inner.close()

    def abort(self) -> None:
        self._inner.abort()

    def is_closing(self) -> bool:
        return self._inner.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._inner.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._inner.pause_reading()

    def resume_reading(self) -> None:
        self._inner.resume_reading()

    def is_reading(self) -> bool:
        return self._inner.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._inner.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._inner.get_protocol()

    def get_write_buffer_size(self) -> int:
        return self._inner.get_write_buffer_size() + len(self._held)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._inner.set_write_buffer_limits(high, low)

    def can_write_eof(self) -> bool:
        return self._inner.can_write_eof()

    def write_eof(self) -> None:
        self._flush()
        self._inner.write_eof()


class _H11Protocol(H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_CoalescingTransport(transport, self.loop))


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
    # and without it every answer written in two parts waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


class TokenHubEmulator(Scripting):
    """A local TokenHub: same endpoints, checks and wire formats, scriptable from tests.

    It serves ``POST /api/v1/chat/completions`` (the OpenAI schema) and Claude's native
    ``POST /v1/messages`` (also under ``/api/v1``), with prompt caching and extended thinking.

    Use it as a context manager or with `start` / `stop`; `base_url` and `api_key` are what a
    client needs. The scripting methods (`queue_reply`, `fail_next`, ...) come from `Scripting`
    and may be called from any thread; other processes script it over HTTP (`RemoteEmulator`).

    Args:
        host: interface to bind; the control API answers loopback clients only unless
            ``control_token`` is set.
        port: TCP port; 0 picks a free one.
        latency_ms: delay added before every chat answer.
        keepalive_interval_s: send ``: keep-alive`` SSE comments this often in streams.
        api_key: the key printed for clients (any ``th-`` key is accepted); random by default.
        tokens_per_second: stream pace; None sends a reply as fast as possible.
        rpm: requests per minute per key, beyond which calls get 429 with ``Retry-After``.
        tpm: tokens (prompt + completion) per minute per key, likewise.
        fault_rate: probability, 0 to 1, that a call fails at random (500, 503, 529, or a
            stream cut mid-way).
        seed: seed of the random faults, for a repeatable run.
        claude_rules: refuse what Claude refuses (context window, empty or user-less
            conversations, unanswered tool calls) with its 400s; on by default.
        control_token: when set, the control API (``/_emulator/...``) needs
            ``Authorization: Bearer <control_token>`` and answers any client that has it.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: float = 0.0,
        keepalive_interval_s: float | None = None,
        api_key: str | None = None,
        tokens_per_second: float | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        fault_rate: float = 0.0,
        seed: int | None = None,
        claude_rules: bool = True,
        control_token: str | None = None,
    ) -> None:
        if api_key is not None and not api_key.startswith("th-"):
            raise ValueError("api_key: an emulator key must start with 'th-'")
        if control_token is not None and not control_token.strip():
            raise ValueError("control_token='': give a non-empty token or None")
        self.state = EmulatorState(
            EmulatorSettings(
                latency_ms=latency_ms,
                keepalive_interval_s=keepalive_interval_s,
                tokens_per_second=tokens_per_second,
                rpm=rpm,
                tpm=tpm,
                fault_rate=fault_rate,
                seed=seed,
                claude_rules=claude_rules,
            )
        )
        self.host = host
        self.api_key = api_key or f"th-emulator-{secrets.token_hex(8)}"
        self.control_token = control_token
        self._requested_port = port
        self._port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def _control(self, op: str, args: dict[str, Any]) -> Any:
        return self.state.apply(op, args)

    def __repr__(self) -> str:
        where = self.base_url if self._port is not None else "not running"
        return f"TokenHubEmulator({where})"

    @property
    def running(self) -> bool:
        """Whether the server is serving."""
        return self._server is not None

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        if self._port is None:
            raise RuntimeError("the emulator is not running; call start() first")
        return self._port

    @property
    def url(self) -> str:
        """The server's root URL, e.g. ``http://127.0.0.1:8123``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def control_url(self) -> str:
        """Where the HTTP control API answers: ``http://127.0.0.1:<port>/_emulator``."""
        return f"{self.url}{CONTROL_PREFIX}"

    @property
    def base_url(self) -> str:
        """The TokenHub base URL to give a client: ``http://127.0.0.1:<port>/api/v1``."""
        return f"{self.url}/api/v1"

    def _bind(self) -> tuple[uvicorn.Server, socket.socket]:
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        sock = _listen(self.host, self._requested_port)
        config = uvicorn.Config(
            create_app(self.state, control_token=self.control_token),
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            http=_H11Protocol,
            ws="none",
            server_header=False,
            timeout_keep_alive=30,
            timeout_graceful_shutdown=2,
        )
        _install_log_filter()
        self._port = sock.getsockname()[1]
        return uvicorn.Server(config), sock

    def start(self) -> TokenHubEmulator:
        """Serve in a background thread; returns once the server accepts connections."""
        server, sock = self._bind()
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="tokenhub-emulator", daemon=True
        )
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                sock.close()
                raise RuntimeError("the TokenHub emulator failed to start")
            time.sleep(0.002)
        return self

    def stop(self) -> None:
        """Shut the server down and wait for its thread; a no-op when not running."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        self._port = None
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(_STOP_TIMEOUT_S)
        if thread.is_alive():
            server.force_exit = True
            thread.join(_STOP_TIMEOUT_S)

    def serve_forever(self, on_ready: Callable[[TokenHubEmulator], None] | None = None) -> None:
        """Serve in this thread until interrupted (Ctrl-C); ``on_ready`` runs once bound."""
        server, sock = self._bind()
        self._server = server
        try:
            if on_ready is not None:
                on_ready(self)
            server.run(sockets=[sock])
        finally:
            self._server = None
            self._port = None
            sock.close()

    def __enter__(self) -> TokenHubEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
