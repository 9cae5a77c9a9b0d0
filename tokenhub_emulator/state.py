"""The emulator's scripted state: queued replies, injected faults, recorded requests, the ledger.

Tests touch it from their own thread while the server thread serves requests, so every access
holds one lock. No I/O here.
"""

from __future__ import annotations

import itertools
import json as jsonlib
import secrets
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from http import HTTPStatus
from typing import Any, Literal

from tokenhub_emulator.replies import ScriptedReply

__all__ = [
    "EmulatorState",
    "Fault",
    "Ledger",
    "LedgerEntry",
    "RecordedRequest",
    "ScriptedReply",
    "redact_authorization",
]

FaultKind = Literal["status", "truncate", "drop", "sse_error"]
_STREAM_ONLY: frozenset[str] = frozenset({"drop", "sse_error"})
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "payment_required",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}
_HTML_PAGE = (
    "<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


def error_type(status: int) -> str:
    """The OpenAI/Anthropic error ``type`` for an HTTP status."""
    return _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def redact_authorization(value: str) -> str:
    """``Bearer th-abc`` -> ``Bearer th-***``; anything else is masked entirely."""
    scheme, _, key = value.partition(" ")
    if scheme.lower() == "bearer" and key:
        return f"{scheme} {'th-***' if key.strip().startswith('th-') else '***'}"
    return "***"


@dataclass
class RecordedRequest:
    """One request the emulator received; the bearer key is redacted from ``headers``."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # the parsed JSON body, or None when it was not JSON
    raw_body: bytes = field(repr=False)
    request_id: str
    status: int | None = None  # the status the emulator answered with

    @property
    def json(self) -> Any:
        """Alias of ``body``."""
        return self.body


@dataclass(frozen=True)
class LedgerEntry:
    """One billed (successful) call."""

    request_id: str
    api_key: str = field(repr=False)
    model: str  # canonical id the call was billed as
    requested_model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal
    stream: bool


@dataclass(frozen=True)
class Ledger:
    """The billed calls of one key (or of every key)."""

    entries: tuple[LedgerEntry, ...] = ()

    def __repr__(self) -> str:
        return (
            f"Ledger(calls={self.calls}, prompt_tokens={self.prompt_tokens}, "
            f"completion_tokens={self.completion_tokens}, total_usd={self.total_usd})"
        )

    @property
    def calls(self) -> int:
        return len(self.entries)

    @property
    def prompt_tokens(self) -> int:
        return sum(e.prompt_tokens for e in self.entries)

    @property
    def completion_tokens(self) -> int:
        return sum(e.completion_tokens for e in self.entries)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def total_usd(self) -> Decimal:
        return sum((e.cost_usd for e in self.entries), Decimal(0))


@dataclass(frozen=True)
class Fault:
    """An injected failure for one call."""

    kind: FaultKind
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    after: int = 0  # stream faults: data events sent before the fault
    message: str = ""
    error_type: str = "api_error"
    code: str | int | None = None


@dataclass
class _Queued:
    item: Any
    times: int


@dataclass(frozen=True)
class CallPlan:
    """What the next valid chat call gets, taken atomically from the scripted state."""

    fault: Fault | None
    scripted: ScriptedReply | None
    delay_headers_s: float
    drip_s: float


class EmulatorState:
    """Scripting API shared by the test thread and the server thread."""

    def __init__(
        self, *, latency_ms: float = 0.0, keepalive_interval_s: float | None = None
    ) -> None:
        self._lock = threading.Lock()
        self._default_latency_ms = float(latency_ms)
        self._default_keepalive = keepalive_interval_s
        self._latency_ms = float(latency_ms)
        self._keepalive = keepalive_interval_s
        self._replies: deque[_Queued] = deque()
        self._faults: deque[_Queued] = deque()
        self._delays: deque[_Queued] = deque()
        self._drips: deque[_Queued] = deque()
        self._requests: list[RecordedRequest] = []
        self._ledger: list[LedgerEntry] = []
        self._ids = itertools.count(1)
        self._id_prefix = secrets.token_hex(4)

    # -- settings -------------------------------------------------------------------------------

    @property
    def latency_ms(self) -> float:
        """Delay added before every chat answer (until `reset`)."""
        return self._latency_ms

    @latency_ms.setter
    def latency_ms(self, value: float) -> None:
        with self._lock:
            self._latency_ms = float(value)

    @property
    def keepalive_interval_s(self) -> float | None:
        """When set, streams send ``: keep-alive`` comments at the start and while waiting."""
        return self._keepalive

    @keepalive_interval_s.setter
    def keepalive_interval_s(self, value: float | None) -> None:
        if value is not None and value <= 0:
            raise ValueError("keepalive_interval_s must be positive or None")
        with self._lock:
            self._keepalive = value

    # -- scripting ------------------------------------------------------------------------------

    def queue_reply(
        self,
        text: str | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
        usage: Mapping[str, int] | None = None,
        finish_reason: str | None = None,
        model: str | None = None,
        json: Any = None,
        times: int = 1,
    ) -> None:
        """Answer the next call(s) exactly so (FIFO), streamed or not as the request asks.

        ``tool_calls`` items are ``{"name", "arguments" (dict or str, even invalid JSON), "id"}``;
        ``usage`` may give ``prompt_tokens``, ``completion_tokens`` and ``cached_tokens``;
        ``json`` is a convenience for ``text=json.dumps(json)``. Only successful calls take a
        queued reply: a call failed by a fault leaves it for the next one.
        """
        if json is not None:
            if text is not None:
                raise ValueError("give text or json, not both")
            text = jsonlib.dumps(json, ensure_ascii=False)
        for call in tool_calls or ():
            if not isinstance(call, Mapping) or not isinstance(call.get("name"), str):
                raise ValueError(f"a tool call needs a 'name': {call!r}")
        reply = ScriptedReply(
            text=text,
            tool_calls=tuple(dict(c) for c in tool_calls or ()),
            usage=dict(usage) if usage is not None else None,
            finish_reason=finish_reason,
            model=model,
        )
        self._push(self._replies, reply, times)

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

        The body is OpenAI-shaped (``{"error": {...}}``, with ``message``) unless ``body`` is
        given: a dict/list is sent as JSON, a str or bytes as is. ``headers`` are added, e.g.
        ``{"Retry-After": "1"}`` or ``{"x-should-retry": "false"}``.
        """
        if not 100 <= status <= 599:
            raise ValueError(f"not an HTTP status: {status}")
        kind = error_type(status)
        text = message or f"[emulator] injected {status} {_phrase(status)}"
        if body is None:
            error = {"message": text, "type": kind, "param": None, "code": None}
            raw = jsonlib.dumps({"error": error}).encode()
        elif isinstance(body, bytes):
            raw = body
        elif isinstance(body, str):
            raw = body.encode()
        else:
            raw = jsonlib.dumps(body).encode()
        fault = Fault("status", status=status, body=raw, headers=_header_items(headers))
        self._push(self._faults, fault, times)

    def fail_next_html(self, status: int = 502, times: int = 1) -> None:
        """Answer the next calls with a proxy's HTML error page (``text/html``)."""
        page = _HTML_PAGE.format(status=status, phrase=_phrase(status)).encode()
        fault = Fault("status", status=status, body=page, content_type="text/html")
        self._push(self._faults, fault, times)

    def truncate_next(self, times: int = 1) -> None:
        """A 200 whose JSON body is cut in half (non-stream) or a stream cut mid-event."""
        self._push(self._faults, Fault("truncate"), times)

    def drop_stream_after(self, chunks: int, times: int = 1) -> None:
        """Streamed calls: the TCP connection is cut after ``chunks`` data events."""
        self._push(self._faults, Fault("drop", after=_count(chunks)), times)

    def sse_error_after(
        self,
        chunks: int,
        message: str = "[emulator] injected stream error",
        times: int = 1,
        *,
        type: str = "overloaded_error",
        code: str | int | None = "overloaded",
    ) -> None:
        """Streamed calls: ``data: {"error": {...}}`` after ``chunks`` data events, then the end."""
        fault = Fault(
            "sse_error", after=_count(chunks), message=message, error_type=type, code=code
        )
        self._push(self._faults, fault, times)

    def slow_drip(self, delay_s: float, times: int = 1) -> None:
        """Streamed calls: wait ``delay_s`` before each event."""
        self._push(self._drips, float(delay_s), times)

    def delay_headers(self, seconds: float, times: int = 1) -> None:
        """Wait ``seconds`` before sending the status line and headers."""
        self._push(self._delays, float(seconds), times)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received since the last `reset`, oldest first."""
        with self._lock:
            return list(self._requests)

    def ledger(self, api_key: str | None = None) -> Ledger:
        """The successful calls billed to ``api_key`` (every key when None)."""
        with self._lock:
            entries = tuple(e for e in self._ledger if api_key is None or e.api_key == api_key)
        return Ledger(entries)

    def reset(self) -> None:
        """Forget queued replies, faults, delays, recorded requests and the ledger."""
        with self._lock:
            self._replies.clear()
            self._faults.clear()
            self._delays.clear()
            self._drips.clear()
            self._requests.clear()
            self._ledger.clear()
            self._latency_ms = self._default_latency_ms
            self._keepalive = self._default_keepalive

    # -- used by the server ---------------------------------------------------------------------

    def _push(self, queue: deque[_Queued], item: Any, times: int) -> None:
        if times < 1:
            raise ValueError(f"times must be >= 1, got {times}")
        with self._lock:
            queue.append(_Queued(item, times))

    def next_request_id(self) -> str:
        """A fresh request id."""
        return f"req_emu{self._id_prefix}{next(self._ids):06d}"

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def answered(self, request: RecordedRequest, status: int) -> None:
        with self._lock:
            request.status = status

    def take_plan(self, stream: bool) -> CallPlan:
        """Take what applies to the next valid call: a fault, a queued reply, delays."""
        with self._lock:
            fault = _take(self._faults, lambda f: stream or f.kind not in _STREAM_ONLY)
            scripted: ScriptedReply | None
            if fault is None:
                scripted = _take(self._replies, lambda _: True)
            else:
                scripted = self._replies[0].item if self._replies else None
            delay = _take(self._delays, lambda _: True) or 0.0
            drip = (_take(self._drips, lambda _: True) or 0.0) if stream else 0.0
            return CallPlan(fault, scripted, delay, drip)

    def bill(self, entry: LedgerEntry) -> None:
        with self._lock:
            self._ledger.append(entry)


def _take(queue: deque[_Queued], applies: Any) -> Any:
    for queued in queue:
        if applies(queued.item):
            queued.times -= 1
            if queued.times == 0:
                queue.remove(queued)
            return queued.item
    return None


def _count(chunks: int) -> int:
    if chunks < 0:
        raise ValueError(f"chunks must be >= 0, got {chunks}")
    return chunks


def _header_items(headers: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), str(v)) for k, v in (headers or {}).items())
