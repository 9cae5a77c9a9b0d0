"""The scripting API, as a thin client of the emulator's operations; and its HTTP form.

`Scripting` holds the methods tests call (``queue_reply``, ``fail_next``, ``ledger``...). Each
turns its arguments into a JSON-ready operation and hands it to ``_control``: in the same process
`TokenHubEmulator` runs it on its state directly, and `RemoteEmulator` sends it to another
process's emulator as ``POST /_emulator/<op>``. Either way the one implementation in
`tokenhub_emulator.state` runs it. This module needs httpx only, not the server.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import httpx

from tokenhub_emulator.state import ControlError, Ledger, LedgerEntry, RecordedRequest

__all__ = ["CONTROL_PREFIX", "RemoteEmulator", "Scripting"]

CONTROL_PREFIX = "/_emulator"


class Scripting:
    """Queue replies, inject faults, change settings, read requests and the ledger."""

    def _control(self, op: str, args: dict[str, Any]) -> Any:
        raise NotImplementedError

    # -- replies and faults -------------------------------------------------------------------

    def queue_reply(
        self,
        text: str | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
        usage: Mapping[str, int] | None = None,
        finish_reason: str | None = None,
        model: str | None = None,
        json: Any = None,
        times: int = 1,
        *,
        content: list[dict[str, Any]] | None = None,
        stop_reason: str | None = None,
        thinking: str | None = None,
    ) -> None:
        """Answer the next call(s) exactly so (FIFO), streamed or not as the request asks.

        ``tool_calls`` items are ``{"name", "arguments" (dict or str, even invalid JSON), "id"}``;
        ``usage`` may give ``prompt_tokens``, ``completion_tokens`` and ``cached_tokens``, or
        Claude's ``input_tokens``, ``output_tokens``, ``cache_read_input_tokens`` and
        ``cache_creation_input_tokens``; ``json`` is a convenience for ``text=json.dumps(json)``.
        A reply may instead be given in Claude's native shape: ``content`` blocks (``text``,
        ``tool_use``, ``thinking``, ``redacted_thinking``; a thinking block without a signature
        is signed by the emulator) and a ``stop_reason``; ``thinking`` puts a signed thinking
        block first. Either shape is served on both endpoints (thinking only on
        ``/v1/messages``). Only successful calls take a queued reply: a call failed by a fault
        leaves it for the next one.
        """
        args = {
            "text": text,
            "tool_calls": tool_calls,
            "usage": dict(usage) if usage is not None else None,
            "finish_reason": finish_reason,
            "model": model,
            "json": json,
            "times": times,
        }
        if content is not None:
            args["content"] = [dict(block) for block in content]
        if stop_reason is not None:
            args["stop_reason"] = stop_reason
        if thinking is not None:
            args["thinking"] = thinking
        self._control("queue_reply", args)

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next ``times`` calls with ``status``.

        The body is OpenAI-shaped (``{"error": {...}}``, with ``message``) on chat completions
        and Claude-shaped (``{"type": "error", "error": {...}}``) on ``/v1/messages``, unless
        ``body`` is given: a dict/list is sent as JSON, a str or bytes as is. ``headers`` are
        added, e.g. ``{"Retry-After": "1"}`` or ``{"x-should-retry": "false"}``.
        """
        args: dict[str, Any] = {"status": status, "times": times, "message": message}
        if headers is not None:
            args["headers"] = dict(headers)
        if isinstance(body, bytes):
            args["body_base64"] = base64.b64encode(body).decode()
        elif isinstance(body, str):
            args["body_text"] = body
        elif body is not None:
            args["body"] = body
        self._control("fail_next", args)

    def fail_next_html(self, status: int = 502, times: int = 1) -> None:
        """Answer the next calls with a proxy's HTML error page (``text/html``)."""
        self._control("fail_next_html", {"status": status, "times": times})

    def truncate_next(self, times: int = 1) -> None:
        """A 200 whose JSON body is cut in half (non-stream) or a stream cut mid-event."""
        self._control("truncate_next", {"times": times})

    def drop_stream_after(self, chunks: int, times: int = 1) -> None:
        """Streamed calls: the TCP connection is cut after ``chunks`` data events."""
        self._control("drop_stream_after", {"chunks": chunks, "times": times})

    def sse_error_after(
        self,
        chunks: int,
        message: str = "[emulator] injected stream error",
        times: int = 1,
        *,
        type: str = "overloaded_error",
        code: str | int | None = "overloaded",
    ) -> None:
        """Streamed calls: an error event after ``chunks`` events, then the end.

        ``data: {"error": {...}}`` on chat completions; on ``/v1/messages`` Claude's
        ``event: error`` with ``{"type": "error", "error": {"type": type, "message": ...}}``.
        """
        args = {"chunks": chunks, "message": message, "times": times, "type": type, "code": code}
        self._control("sse_error_after", args)

    def slow_drip(self, delay_s: float, times: int = 1) -> None:
        """Streamed calls: wait ``delay_s`` before each event."""
        self._control("slow_drip", {"delay_s": delay_s, "times": times})

    def delay_headers(self, seconds: float, times: int = 1) -> None:
        """Wait ``seconds`` before sending the status line and headers."""
        self._control("delay_headers", {"seconds": seconds, "times": times})

    # -- prompt cache and clock ---------------------------------------------------------------

    def clear_cache(self) -> int:
        """Forget every cached prompt prefix (``/v1/messages``); returns how many were live."""
        return int(self._control("clear_cache", {}))

    def advance_clock(self, seconds: float) -> float:
        """Move the emulator's clock forward: cache TTLs and rate windows see the time pass.

        Returns the total offset; `reset` sets it back to zero (and empties the cache and the
        rate windows with it).
        """
        return float(self._control("advance_clock", {"seconds": seconds}))

    # -- settings -----------------------------------------------------------------------------

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change settings until `reset` (``rpm=3``, ``tokens_per_second=20``...); returns them all.

        The settings: ``latency_ms``, ``keepalive_interval_s``, ``tokens_per_second``, ``rpm``,
        ``tpm``, ``fault_rate``, ``seed``, ``claude_rules``. ``configure()`` only reads them.
        """
        result: dict[str, Any] = self._control("configure", settings)
        return result

    @property
    def latency_ms(self) -> float:
        """Delay added before every chat answer (until `reset`)."""
        return float(self.configure()["latency_ms"])

    @latency_ms.setter
    def latency_ms(self, value: float) -> None:
        self.configure(latency_ms=value)

    @property
    def keepalive_interval_s(self) -> float | None:
        """When set, streams send ``: keep-alive`` comments at the start and while waiting."""
        value = self.configure()["keepalive_interval_s"]
        return None if value is None else float(value)

    @keepalive_interval_s.setter
    def keepalive_interval_s(self, value: float | None) -> None:
        self.configure(keepalive_interval_s=value)

    # -- what happened ------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received since the last `reset`, oldest first."""
        return [RecordedRequest.from_json(r) for r in self._control("requests", {})]

    def ledger(self, api_key: str | None = None) -> Ledger:
        """The successful calls billed to ``api_key`` (every key when None)."""
        entries = self._control("ledger", {"api_key": api_key})
        return Ledger(tuple(LedgerEntry.from_json(e) for e in entries))

    def reset(self) -> None:
        """Forget queued replies, faults, delays, requests, the ledger, the rate windows and the
        prompt cache, and set the clock back.

        Settings go back to the ones the emulator was started with.
        """
        self._control("reset", {})


class RemoteEmulator(Scripting):
    """Scripts an emulator running in another process, through its HTTP control API.

    ``url`` is the emulator's root or base URL (``http://127.0.0.1:8080`` or ``.../api/v1``).
    Give ``control_token`` when the emulator was started with one. A refused operation raises
    `ControlError` (a ``ValueError``) with the emulator's message.
    """

    def __init__(self, url: str, *, control_token: str | None = None, timeout: float = 10) -> None:
        root = url.rstrip("/")
        for suffix in ("/api/v1", "/v1"):
            root = root.removesuffix(suffix)
        self.url = root
        headers = {"Authorization": f"Bearer {control_token}"} if control_token else {}
        self._http = httpx.Client(base_url=root + CONTROL_PREFIX, headers=headers, timeout=timeout)

    def __repr__(self) -> str:
        return f"RemoteEmulator({self.url})"

    def _control(self, op: str, args: dict[str, Any]) -> Any:
        response = self._http.post(f"/{op}", json=args)
        if response.status_code != 200:
            try:
                error = response.json()["error"]
                message, param = str(error["message"]), error.get("param")
            except (ValueError, KeyError, TypeError):
                message, param = f"{response.status_code}: {response.text[:200]}", None
            raise ControlError(message, param)
        return response.json()

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def __enter__(self) -> RemoteEmulator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
