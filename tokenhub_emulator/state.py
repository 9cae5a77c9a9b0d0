"""The emulator's state and the one implementation of each scripting operation.

`EmulatorState.apply(op, args)` runs an operation from JSON-ready arguments and returns a
JSON-ready result: the HTTP control API (``/_emulator/<op>``) and the Python scripting methods
(`tokenhub_emulator.control.Scripting`) both go through it. Tests touch the state from their own
thread while the server thread serves requests, so every access holds one lock. No I/O here.
"""

from __future__ import annotations

import base64
import dataclasses
import inspect
import itertools
import json as jsonlib
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from http import HTTPStatus
from typing import Any, Literal

from tokenhub_emulator.caching import CacheUsage, Piece, PromptCache
from tokenhub_emulator.limits import Admission, RandomFaults, RateLimiter, Refusal
from tokenhub_emulator.replies import ScriptedReply
from tokenhub_emulator.thinking import Signer

__all__ = [
    "OPERATIONS",
    "ControlError",
    "EmulatorSettings",
    "EmulatorState",
    "Fault",
    "Ledger",
    "LedgerEntry",
    "RecordedRequest",
    "ScriptedReply",
    "native_error_type",
    "redact_authorization",
    "redact_key",
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


class ControlError(ValueError):
    """A scripting operation refused: bad arguments, or an unknown operation."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def error_type(status: int) -> str:
    """The OpenAI/Anthropic error ``type`` for an HTTP status."""
    return _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


_NATIVE_ERROR_TYPES = {
    **_ERROR_TYPES,
    402: "billing_error",
    413: "request_too_large",
    504: "timeout_error",
}


def native_error_type(status: int) -> str:
    """Claude's error ``type`` for an HTTP status (``overloaded_error`` for 529...)."""
    return _NATIVE_ERROR_TYPES.get(
        status, "api_error" if status >= 500 else "invalid_request_error"
    )


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


def redact_key(key: str) -> str:
    """``th-abc`` -> ``th-***``; anything else -> ``***``."""
    return "th-***" if key.strip().startswith("th-") else "***"


@dataclass
class RecordedRequest:
    """One request the emulator received; the bearer key is redacted from ``headers``.

    ``received_at`` is when it arrived, in seconds since the epoch (`time.time`).
    """

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # the parsed JSON body, or None when it was not JSON
    raw_body: bytes = field(repr=False)
    request_id: str
    status: int | None = None  # the status the emulator answered with
    received_at: float = field(default_factory=time.time)

    @property
    def json(self) -> Any:
        """Alias of ``body``."""
        return self.body

    @property
    def protocol(self) -> str | None:
        """``"messages"`` (Claude's native API), ``"chat/completions"``, or None (other paths)."""
        path = self.path.rstrip("/")
        if path.endswith(("/messages", "/messages/count_tokens")):
            return "messages"
        return "chat/completions" if path.endswith("/chat/completions") else None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form (``raw_body`` in base64), as the control API sends it."""
        out = dataclasses.asdict(self)
        out["raw_body"] = base64.b64encode(self.raw_body).decode()
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RecordedRequest:
        """The inverse of `to_json`."""
        fields = dict(data)
        fields["raw_body"] = base64.b64decode(fields.get("raw_body") or "")
        return cls(**fields)


@dataclass(frozen=True)
class LedgerEntry:
    """One billed (successful) call; ``api_key`` is shown redacted (``th-***``)."""

    request_id: str
    api_key: str = field(repr=False)
    model: str  # canonical id the call was billed as
    requested_model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal
    stream: bool
    billed_at: float = 0.0  # seconds since the epoch
    protocol: str = "chat/completions"  # or "messages"
    cache_read_tokens: int = 0  # part of prompt_tokens read from the prompt cache
    cache_write_tokens: int = 0  # part of prompt_tokens written to it (both TTLs)
    cache_write_1h_tokens: int = 0  # the part of cache_write_tokens written for an hour

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["api_key"] = redact_key(self.api_key)
        out["cost_usd"] = str(self.cost_usd)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LedgerEntry:
        return cls(**{**data, "cost_usd": Decimal(str(data["cost_usd"]))})


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
    def cache_read_tokens(self) -> int:
        return sum(e.cache_read_tokens for e in self.entries)

    @property
    def cache_write_tokens(self) -> int:
        return sum(e.cache_write_tokens for e in self.entries)

    @property
    def total_usd(self) -> Decimal:
        return sum((e.cost_usd for e in self.entries), Decimal(0))


@dataclass(frozen=True)
class EmulatorSettings:
    """What the emulator does to every call; set at construction, changed by ``configure``.

    Every limit is off by default except Claude's own rules (``claude_rules``: the context
    window and the conversations Claude refuses).
    """

    latency_ms: float = 0.0
    keepalive_interval_s: float | None = None
    tokens_per_second: float | None = None
    rpm: int | None = None
    tpm: int | None = None
    fault_rate: float = 0.0
    seed: int | None = None
    claude_rules: bool = True

    def __post_init__(self) -> None:
        _check_number("latency_ms", self.latency_ms, low=0, allowed="a number >= 0")
        for name in ("keepalive_interval_s", "tokens_per_second"):
            value = getattr(self, name)
            if value is not None:
                _check_number(name, value, low=0, open_low=True, allowed="a number > 0 or None")
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 1):
                raise ControlError(f"{name}={value!r}: expected an integer >= 1 or None", name)
        _check_number("fault_rate", self.fault_rate, low=0, high=1, allowed="a number 0 to 1")
        if self.seed is not None and not _is_int(self.seed):
            raise ControlError(f"seed={self.seed!r}: expected an integer or None", "seed")
        if not isinstance(self.claude_rules, bool):
            raise ControlError(
                f"claude_rules={self.claude_rules!r}: expected true or false", "claude_rules"
            )

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    open_low: bool = False,
    allowed: str,
) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if open_low else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        raise ControlError(f"{name}={value!r}: expected {allowed}", name)


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
    generic: bool = False  # the emulator's own body: the native endpoint sends its own shape


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


# The operations of the control API, by name: each is an `EmulatorState` method ``_op_<name>``.
OPERATIONS = (
    "queue_reply",
    "fail_next",
    "fail_next_html",
    "truncate_next",
    "drop_stream_after",
    "sse_error_after",
    "slow_drip",
    "delay_headers",
    "configure",
    "requests",
    "ledger",
    "clear_cache",
    "advance_clock",
    "reset",
)


class EmulatorState:
    """Scripted replies and faults, settings, limits, recorded requests and the ledger."""

    def __init__(self, settings: EmulatorSettings | None = None) -> None:
        self._lock = threading.Lock()
        self._initial = settings or EmulatorSettings()
        self.settings = self._initial
        self._replies: deque[_Queued] = deque()
        self._faults: deque[_Queued] = deque()
        self._delays: deque[_Queued] = deque()
        self._drips: deque[_Queued] = deque()
        self._requests: list[RecordedRequest] = []
        self._ledger: list[LedgerEntry] = []
        self._ids = itertools.count(1)
        self._id_prefix = secrets.token_hex(4)
        self._clock_offset = 0.0
        self._limiter = RateLimiter(self.clock)
        self._chaos = RandomFaults(self._initial.seed)
        self._cache = PromptCache(self.clock)
        self.signer = Signer()

    def clock(self) -> float:
        """The emulator's clock (monotonic seconds): rate windows and cache TTLs follow it."""
        return time.monotonic() + self._clock_offset

    # -- the operations ---------------------------------------------------------------------------

    def apply(self, op: str, args: Mapping[str, Any] | None = None) -> Any:
        """Run the operation ``op`` with JSON-ready ``args``; returns a JSON-ready result."""
        if op not in OPERATIONS:
            raise ControlError(
                f"unknown operation {op!r}; the operations are {', '.join(OPERATIONS)}", "op"
            )
        method: Callable[..., Any] = getattr(self, f"_op_{op}")
        try:
            bound = inspect.signature(method).bind(**dict(args or {}))
        except TypeError as exc:
            raise ControlError(f"{op}: {exc}") from None
        return method(*bound.args, **bound.kwargs)

    def _op_queue_reply(
        self,
        text: str | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
        usage: Mapping[str, int] | None = None,
        finish_reason: str | None = None,
        model: str | None = None,
        json: Any = None,
        times: int = 1,
        content: list[dict[str, Any]] | None = None,
        stop_reason: str | None = None,
        thinking: str | None = None,
    ) -> None:
        if content is not None and (text is not None or tool_calls or json is not None):
            raise ControlError(
                "queue_reply: give native content blocks or text/json/tool_calls, not both",
                "content",
            )
        _check_blocks(content)
        if thinking is not None and not isinstance(thinking, str):
            raise ControlError(f"thinking={thinking!r}: expected a string", "thinking")
        if stop_reason is not None and not isinstance(stop_reason, str):
            raise ControlError(f"stop_reason={stop_reason!r}: expected a string", "stop_reason")
        if json is not None:
            if text is not None:
                raise ControlError("queue_reply: give text or json, not both", "json")
            text = jsonlib.dumps(json, ensure_ascii=False)
        if text is not None and not isinstance(text, str):
            raise ControlError(f"text={text!r}: expected a string", "text")
        if tool_calls is not None and not isinstance(tool_calls, list):
            raise ControlError(f"tool_calls={tool_calls!r}: expected a list", "tool_calls")
        for call in tool_calls or ():
            if not isinstance(call, Mapping) or not isinstance(call.get("name"), str):
                raise ControlError(f"a tool call needs a 'name': {call!r}", "tool_calls")
        if usage is not None and (
            not isinstance(usage, Mapping) or not all(_is_int(v) for v in usage.values())
        ):
            raise ControlError(f"usage={usage!r}: expected integer token counts", "usage")
        reply = ScriptedReply(
            text=text,
            tool_calls=tuple(dict(c) for c in tool_calls or ()),
            usage=dict(usage) if usage is not None else None,
            finish_reason=finish_reason,
            model=model,
            content=tuple(dict(b) for b in content) if content is not None else None,
            stop_reason=stop_reason,
            thinking=thinking,
        )
        self._push(self._replies, reply, times)

    def _op_fail_next(
        self,
        status: int,
        times: int = 1,
        body: Any = None,
        body_text: str | None = None,
        body_base64: str | None = None,
        headers: Mapping[str, str] | None = None,
        message: str | None = None,
    ) -> None:
        if not _is_int(status) or not 100 <= status <= 599:
            raise ControlError(f"status={status!r}: expected an HTTP status, 100 to 599", "status")
        if headers is not None and not isinstance(headers, Mapping):
            raise ControlError(f"headers={headers!r}: expected an object", "headers")
        if body_base64 is not None:
            raw = base64.b64decode(body_base64)
        elif body_text is not None:
            raw = body_text.encode()
        elif body is not None:
            raw = jsonlib.dumps(body).encode()
        else:
            text = message or f"[emulator] injected {status} {_phrase(status)}"
            fault = _status_fault(status, text, _header_items(headers))
            self._push(self._faults, fault, times)
            return
        fault = Fault("status", status=status, body=raw, headers=_header_items(headers))
        self._push(self._faults, fault, times)

    def _op_fail_next_html(self, status: int = 502, times: int = 1) -> None:
        if not _is_int(status) or not 100 <= status <= 599:
            raise ControlError(f"status={status!r}: expected an HTTP status, 100 to 599", "status")
        page = _HTML_PAGE.format(status=status, phrase=_phrase(status)).encode()
        fault = Fault("status", status=status, body=page, content_type="text/html")
        self._push(self._faults, fault, times)

    def _op_truncate_next(self, times: int = 1) -> None:
        self._push(self._faults, Fault("truncate"), times)

    def _op_drop_stream_after(self, chunks: int, times: int = 1) -> None:
        self._push(self._faults, Fault("drop", after=_count(chunks)), times)

    def _op_sse_error_after(
        self,
        chunks: int,
        message: str = "[emulator] injected stream error",
        times: int = 1,
        type: str = "overloaded_error",
        code: str | int | None = "overloaded",
    ) -> None:
        fault = Fault(
            "sse_error", after=_count(chunks), message=message, error_type=type, code=code
        )
        self._push(self._faults, fault, times)

    def _op_slow_drip(self, delay_s: float, times: int = 1) -> None:
        _check_number("delay_s", delay_s, low=0, allowed="a number of seconds >= 0")
        self._push(self._drips, float(delay_s), times)

    def _op_delay_headers(self, seconds: float, times: int = 1) -> None:
        _check_number("seconds", seconds, low=0, allowed="a number of seconds >= 0")
        self._push(self._delays, float(seconds), times)

    def _op_configure(self, **changes: Any) -> dict[str, Any]:
        known = {f.name for f in dataclasses.fields(EmulatorSettings)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ControlError(
                f"configure: unknown setting {unknown[0]!r}; the settings are "
                f"{', '.join(sorted(known))}",
                unknown[0],
            )
        with self._lock:
            self.settings = dataclasses.replace(self.settings, **changes)
            if "seed" in changes:
                self._chaos.reseed(self.settings.seed)
            return self.settings.to_json()

    def _op_requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.to_json() for r in self._requests]

    def _op_ledger(self, api_key: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [e.to_json() for e in self._ledger if api_key is None or e.api_key == api_key]

    def _op_clear_cache(self) -> int:
        with self._lock:
            live = len(self._cache)
            self._cache.clear()
            return live

    def _op_advance_clock(self, seconds: float) -> float:
        _check_number("seconds", seconds, low=0, allowed="a number of seconds >= 0")
        with self._lock:
            self._clock_offset += float(seconds)
            return self._clock_offset

    def _op_reset(self) -> None:
        with self._lock:
            for queue in (self._replies, self._faults, self._delays, self._drips):
                queue.clear()
            self._requests.clear()
            self._ledger.clear()
            self.settings = self._initial
            self._limiter.clear()
            self._chaos.reseed(self._initial.seed)
            self._cache.clear()
            self._clock_offset = 0.0

    # -- used by the server -------------------------------------------------------------------

    def _push(self, queue: deque[_Queued], item: Any, times: int) -> None:
        if not _is_int(times) or times < 1:
            raise ControlError(f"times={times!r}: expected an integer >= 1", "times")
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

    def admit(self, api_key: str, prompt_tokens: int) -> Admission | Refusal:
        """Count a valid call against the key's per-minute limits, or refuse it."""
        with self._lock:
            settings = self.settings
            return self._limiter.admit(api_key, prompt_tokens, settings.rpm, settings.tpm)

    def spent(self, admission: Admission, completion_tokens: int) -> None:
        """Add a call's completion tokens to its minute's count."""
        with self._lock:
            admission.tokens += completion_tokens

    def take_plan(self, stream: bool) -> CallPlan:
        """Take what applies to the next valid call: a fault, a queued reply, delays."""
        with self._lock:
            fault = _take(self._faults, lambda f: stream or f.kind not in _STREAM_ONLY)
            if fault is None:
                fault = _random_fault(self._chaos.draw(self.settings.fault_rate, stream))
            scripted: ScriptedReply | None
            if fault is None:
                scripted = _take(self._replies, lambda _: True)
            else:
                scripted = self._replies[0].item if self._replies else None
            delay = _take(self._delays, lambda _: True) or 0.0
            drip = (_take(self._drips, lambda _: True) or 0.0) if stream else 0.0
            return CallPlan(fault, scripted, delay, drip)

    def use_cache(self, scope: str, pieces: tuple[Piece, ...], minimum: int) -> CacheUsage:
        """Read and write a request's cached prefixes (see `PromptCache.use`)."""
        with self._lock:
            return self._cache.use(scope, pieces, minimum)

    def bill(self, entry: LedgerEntry) -> None:
        with self._lock:
            self._ledger.append(entry)


def _random_fault(kind: str | None) -> Fault | None:
    if kind is None:
        return None
    if kind == "drop":
        return Fault("drop", after=2)
    status = int(kind)
    return _status_fault(
        status, f"[emulator] random fault (fault_rate): {status} {_phrase(status)}"
    )


def _status_fault(status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> Fault:
    """A status fault with the emulator's own error body (OpenAI-shaped on chat completions)."""
    error = {"message": message, "type": error_type(status), "param": None, "code": None}
    body = jsonlib.dumps({"error": error}).encode()
    return Fault(
        "status",
        status=status,
        body=body,
        headers=headers,
        message=message,
        error_type=native_error_type(status),
        generic=True,
    )


_BLOCK_FIELDS = {
    "text": "text",
    "tool_use": "name",
    "thinking": "thinking",
    "redacted_thinking": "data",
}


def _check_blocks(content: Any) -> None:
    if content is None:
        return
    if not isinstance(content, list):
        raise ControlError(f"content={content!r}: expected a list of content blocks", "content")
    for block in content:
        field = _BLOCK_FIELDS.get(str(block.get("type"))) if isinstance(block, Mapping) else None
        if field is None or not isinstance(block.get(field), str):
            raise ControlError(
                "a content block needs a type (text, tool_use, thinking, redacted_thinking) "
                f"and its string field (text, name, thinking, data): {block!r}",
                "content",
            )


def _take(queue: deque[_Queued], applies: Any) -> Any:
    for queued in queue:
        if applies(queued.item):
            queued.times -= 1
            if queued.times == 0:
                queue.remove(queued)
            return queued.item
    return None


def _count(chunks: int) -> int:
    if not _is_int(chunks) or chunks < 0:
        raise ControlError(f"chunks={chunks!r}: expected an integer >= 0", "chunks")
    return chunks


def _header_items(headers: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), str(v)) for k, v in (headers or {}).items())
