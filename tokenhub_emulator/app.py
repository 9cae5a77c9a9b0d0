"""The emulator's Starlette app: TokenHub's endpoints (chat completions and Claude's native
Messages API), their checks, answers and injected faults."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from tokenhub_core.catalog import MODELS, price_call
from tokenhub_emulator.caching import minimum_cacheable_tokens
from tokenhub_emulator.checks import (
    ChatRequest,
    RequestError,
    check_api_key,
    check_context_window,
    check_request,
)
from tokenhub_emulator.control import CONTROL_PREFIX
from tokenhub_emulator.encode import completion_body, error_body, error_event, stream_events
from tokenhub_emulator.limits import Refusal
from tokenhub_emulator.native import (
    MAX_REQUEST_BYTES,
    MessagesRequest,
    check_messages_request,
    check_native_key,
)
from tokenhub_emulator.native_reply import (
    NativeReply,
    message_body,
    message_events,
    native_error_body,
    native_error_event,
    native_reply,
)
from tokenhub_emulator.replies import Reply, answer, prompt_tokens, scripted_reply
from tokenhub_emulator.state import (
    CallPlan,
    ControlError,
    EmulatorState,
    LedgerEntry,
    RecordedRequest,
    redact_authorization,
    redact_key,
)

__all__ = ["DroppedConnectionFilter", "create_app"]

CHAT_PATHS = ("/api/v1/chat/completions", "/v1/chat/completions")
MODELS_PATHS = ("/api/v1/models", "/v1/models")
MESSAGES_PATHS = ("/api/v1/messages", "/v1/messages")
COUNT_TOKENS_PATHS = ("/api/v1/messages/count_tokens", "/v1/messages/count_tokens")
_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_BATCH_BYTES = 4096  # stream events are written in batches of about this size unless dripped
_KEEPALIVE = b": keep-alive\n\n"
_JSON = b"application/json"
_SSE = b"text/event-stream; charset=utf-8"


class _DropConnection(Exception):
    """Raised mid-body so that uvicorn closes the TCP connection: an injected connection drop."""


class DroppedConnectionFilter(logging.Filter):
    """Keeps uvicorn from logging the injected connection drops as application errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _DropConnection))


class _Disconnect:
    """Sleeps that end early when the client goes away (read from the ASGI ``receive``)."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._task: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass

    async def sleep(self, seconds: float) -> bool:
        """Wait ``seconds``; False if the client disconnected meanwhile."""
        if seconds <= 0:
            return True
        if self._task is None:
            self._task = asyncio.ensure_future(self._watch())
        done, _ = await asyncio.wait({self._task}, timeout=seconds)
        return not done

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class _Answer(Response):
    """One HTTP answer, sent with the delays, keep-alives and endings the script asks for."""

    def __init__(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        parts: Sequence[str | bytes],
        *,
        stream: bool = False,
        head_delay: float = 0.0,
        first_event_delay: float = 0.0,
        gap: float = 0.0,
        keepalive: float | None = None,
        ending: Literal["end", "drop"] = "end",
        before_last: Callable[[], None] | None = None,
    ) -> None:
        self.status_code = status
        self.raw_headers = headers
        self.background = None
        self.body = b""
        self._parts = parts
        self._head_delay = head_delay
        self._first_event_delay = first_event_delay
        self._gap = gap
        self._keepalive = keepalive if stream else None
        self._ending = ending
        self._before_last = before_last
        self._started = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        waiter = _Disconnect(receive)
        self._started = False
        try:
            await self._send_all(waiter, send)
        finally:
            await waiter.close()
            # A stream that started is billed in full, even if the client went away mid-way.
            if self._started and self._ending == "end" and self._before_last is not None:
                self._before_last()

    async def _wait(self, waiter: _Disconnect, send: Send, seconds: float) -> bool:
        interval = self._keepalive
        if interval is None:
            return await waiter.sleep(seconds)
        while seconds > 0:
            step = min(interval, seconds)
            if not await waiter.sleep(step):
                return False
            seconds -= step
            if step == interval:
                await send({"type": "http.response.body", "body": _KEEPALIVE, "more_body": True})
        return True

    async def _send_all(self, waiter: _Disconnect, send: Send) -> None:
        if not await waiter.sleep(self._head_delay):
            return
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        self._started = True
        if self._keepalive is not None:
            await send({"type": "http.response.body", "body": _KEEPALIVE, "more_body": True})
        if not await self._wait(waiter, send, self._first_event_delay):
            return
        parts = self._parts
        last = len(parts) - 1
        batch: list[bytes] = []
        size = 0
        for i, part in enumerate(parts):
            data = part.encode() if isinstance(part, str) else part
            if self._gap > 0 and i > 0 and not await self._wait(waiter, send, self._gap):
                return
            if i == last and self._ending == "end":
                if self._before_last is not None:
                    self._before_last()
                    self._before_last = None
                batch.append(data)
                await send({"type": "http.response.body", "body": b"".join(batch)})
                return
            batch.append(data)
            size += len(data)
            if self._gap > 0 or size >= _BATCH_BYTES:
                await send(
                    {"type": "http.response.body", "body": b"".join(batch), "more_body": True}
                )
                batch, size = [], 0
        if batch:
            await send({"type": "http.response.body", "body": b"".join(batch), "more_body": True})
        if self._ending == "drop":
            raise _DropConnection
        await send({"type": "http.response.body", "body": b""})


def _headers(
    request_id: str,
    content_type: bytes,
    extra: Sequence[tuple[str, str]] = (),
    *,
    native: bool = False,
) -> list[tuple[bytes, bytes]]:
    names = {k.lower() for k, _ in extra}
    headers = [(b"x-request-id", request_id.encode())]
    if native:
        headers.append((b"request-id", request_id.encode()))
    if "content-type" not in names:
        headers.append((b"content-type", content_type))
    headers.extend((k.lower().encode(), v.encode("latin-1")) for k, v in extra)
    return headers


def _json_answer(
    status: int,
    body: bytes,
    request_id: str,
    delay: float = 0.0,
    extra: Sequence[tuple[str, str]] = (),
    *,
    native: bool = False,
) -> _Answer:
    headers = _headers(request_id, _JSON, extra, native=native)
    headers.append((b"content-length", str(len(body)).encode()))
    return _Answer(status, headers, [body], head_delay=delay)


class _Endpoints:
    def __init__(self, state: EmulatorState, control_token: str | None) -> None:
        self.state = state
        self.control_token = control_token

    def _record(self, request: Request, raw: bytes, request_id: str) -> tuple[RecordedRequest, Any]:
        try:
            body: Any = json.loads(raw) if raw else _INVALID
        except ValueError:
            body = _INVALID
        headers: dict[str, str] = {}
        for raw_name, raw_value in request.scope["headers"]:
            name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
            if name == "authorization":
                value = redact_authorization(value)
            elif name == "x-api-key":
                value = redact_key(value)
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        recorded = RecordedRequest(
            method=request.method,
            path=request.scope["path"],
            headers=headers,
            body=None if body is _INVALID else body,
            raw_body=raw,
            request_id=request_id,
        )
        self.state.record(recorded)
        return recorded, body

    def _error(self, recorded: RecordedRequest, err: RequestError, delay: float = 0.0) -> _Answer:
        self.state.answered(recorded, err.status)
        body = error_body(err.message, err.type, err.code, err.param)
        return _json_answer(err.status, body, recorded.request_id, delay)

    async def chat(self, request: Request) -> Response:
        state = self.state
        settings = state.settings
        request_id = state.next_request_id()
        recorded, body = self._record(request, await request.body(), request_id)
        latency = settings.latency_ms / 1000
        try:
            api_key = check_api_key(request.headers.get("authorization"))
            if body is _INVALID:
                raise RequestError(400, "The request body is not valid JSON.", code="invalid_json")
            chat = check_request(body, claude_rules=settings.claude_rules)
            tokens = prompt_tokens(chat)
            if settings.claude_rules:
                check_context_window(chat, tokens)
        except RequestError as err:
            return self._error(recorded, err, latency)
        admission = state.admit(api_key, tokens)
        if isinstance(admission, Refusal):
            return self._rate_limited(recorded, admission, latency)
        plan = state.take_plan(chat.stream)
        ids = request_id.removeprefix("req_")
        if plan.scripted is not None:
            reply = scripted_reply(chat, plan.scripted, f"call_{ids}_")
        else:
            reply = answer(chat, f"call_{ids}_")
        state.spent(admission, reply.completion_tokens)
        completion_id = f"chatcmpl-{ids}"
        created = int(time.time())
        fault = plan.fault
        if fault is not None and fault.kind == "status":
            state.answered(recorded, fault.status)
            headers = _headers(request_id, fault.content_type.encode(), fault.headers)
            headers.append((b"content-length", str(len(fault.body)).encode()))
            delay = latency + plan.delay_headers_s
            return _Answer(fault.status, headers, [fault.body], head_delay=delay)
        state.answered(recorded, 200)

        def bill() -> None:
            if fault is None:
                state.bill(_ledger_entry(request_id, api_key, chat, reply))

        if not chat.stream:
            data = completion_body(reply, completion_id=completion_id, created=created)
            if fault is not None:  # truncate
                data = data[: len(data) // 2]
            else:
                bill()
            delay = latency + plan.delay_headers_s
            return _json_answer(200, data, request_id, delay, admission.headers)
        return self._stream(
            chat, reply, plan, request_id, completion_id, created, latency, bill, admission.headers
        )

    def _rate_limited(
        self, recorded: RecordedRequest, refusal: Refusal, delay: float, *, native: bool = False
    ) -> _Answer:
        self.state.answered(recorded, 429)
        if native:
            body = native_error_body(refusal.message, "rate_limit_error", recorded.request_id)
        else:
            body = error_body(refusal.message, "rate_limit_error", "rate_limit_exceeded")
        extra = [
            ("retry-after", str(refusal.retry_after_s)),
            (f"x-ratelimit-reset-{refusal.limit}", f"{refusal.retry_after_s}s"),
        ]
        headers = _headers(recorded.request_id, _JSON, extra, native=native)
        headers.append((b"content-length", str(len(body)).encode()))
        return _Answer(429, headers, [body], head_delay=delay)

    def _stream(
        self,
        chat: ChatRequest,
        reply: Reply,
        plan: CallPlan,
        request_id: str,
        completion_id: str,
        created: int,
        latency: float,
        bill: Callable[[], None],
        headers: Sequence[tuple[str, str]] = (),
    ) -> _Answer:
        events: list[str] = stream_events(
            reply, completion_id=completion_id, created=created, include_usage=chat.include_usage
        )
        ending: Literal["end", "drop"] = "end"
        fault = plan.fault
        if fault is not None:
            after = min(fault.after, len(events) - 1)  # never [DONE]: the stream stays unfinished
            if fault.kind == "drop":
                events, ending = events[:after], "drop"
            elif fault.kind == "sse_error":
                error = error_event(fault.message, fault.error_type, fault.code)
                events = [*events[:after], error]
            else:  # truncate: half the events, then half an event, then a clean end
                keep = max(1, (len(events) - 1) // 2)
                events = [*events[:keep], events[keep][: len(events[keep]) // 2]]
        return self._paced(
            events,
            _headers(request_id, _SSE, [("cache-control", "no-cache"), *headers]),
            plan,
            latency,
            ending,
            bill,
        )

    def _paced(
        self,
        events: Sequence[str],
        headers: list[tuple[bytes, bytes]],
        plan: CallPlan,
        latency: float,
        ending: Literal["end", "drop"],
        bill: Callable[[], None],
    ) -> _Answer:
        """A stream's answer, paced by the settings and the call's plan."""
        settings = self.state.settings
        keepalive = settings.keepalive_interval_s
        gap = plan.drip_s
        if settings.tokens_per_second:  # about one token per event
            gap = max(gap, 1 / settings.tokens_per_second)
        head_delay = plan.delay_headers_s + (latency if keepalive is None else 0.0)
        return _Answer(
            200,
            headers,
            events,
            stream=True,
            head_delay=head_delay,
            first_event_delay=latency if keepalive is not None else 0.0,
            gap=gap,
            keepalive=keepalive,
            ending=ending,
            before_last=bill,
        )

    # -- Claude's native Messages API ----------------------------------------------------------

    def _native_error(
        self, recorded: RecordedRequest, err: RequestError, delay: float = 0.0
    ) -> _Answer:
        self.state.answered(recorded, err.status)
        body = native_error_body(err.message, err.type, recorded.request_id)
        return _json_answer(err.status, body, recorded.request_id, delay, native=True)

    def _check_native(
        self, request: Request, raw: bytes, body: Any, *, counting: bool = False
    ) -> tuple[str, MessagesRequest]:
        api_key = check_native_key(
            request.headers.get("x-api-key"), request.headers.get("authorization")
        )
        if len(raw) > MAX_REQUEST_BYTES:
            raise RequestError(
                413,
                f"Request exceeds the maximum allowed number of bytes: {len(raw)} > "
                f"{MAX_REQUEST_BYTES} (32 MB).",
                type="request_too_large",
            )
        version = request.headers.get("anthropic-version")
        if version is not None and not _VERSION.match(version.strip()):
            raise RequestError(400, f"anthropic-version: {version!r} is not a valid version")
        if body is _INVALID:
            raise RequestError(400, "The request body is not valid JSON.")
        if counting and isinstance(body, dict) and "max_tokens" not in body:
            # count_tokens takes no max_tokens; any that passes the thinking budget rule will do
            thinking = body.get("thinking")
            budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
            body = {**body, "max_tokens": budget + 1 if type(budget) is int else 1}
        native = check_messages_request(
            body,
            claude_rules=self.state.settings.claude_rules,
            verify_signature=self.state.signer.verify,
        )
        if self.state.settings.claude_rules:
            window = native.info.context_window
            if native.prompt_tokens > window:
                raise RequestError(
                    400, f"prompt is too long: {native.prompt_tokens} tokens > {window} maximum"
                )
        return api_key, native

    async def count_tokens(self, request: Request) -> Response:
        request_id = self.state.next_request_id()
        raw = await request.body()
        recorded, body = self._record(request, raw, request_id)
        try:
            _, native = self._check_native(request, raw, body, counting=True)
        except RequestError as err:
            return self._native_error(recorded, err)
        self.state.answered(recorded, 200)
        data = json.dumps({"input_tokens": native.prompt_tokens}).encode()
        return _json_answer(200, data, request_id, native=True)

    async def messages(self, request: Request) -> Response:
        state = self.state
        request_id = state.next_request_id()
        raw = await request.body()
        recorded, body = self._record(request, raw, request_id)
        latency = state.settings.latency_ms / 1000
        try:
            api_key, native = self._check_native(request, raw, body)
        except RequestError as err:
            return self._native_error(recorded, err, latency)
        admission = state.admit(api_key, native.prompt_tokens)
        if isinstance(admission, Refusal):
            return self._rate_limited(recorded, admission, latency, native=True)
        plan = state.take_plan(native.stream)
        ids = request_id.removeprefix("req_")
        if plan.scripted is not None:
            reply = scripted_reply(native.chat, plan.scripted, f"toolu_{ids}_")
        else:
            reply = answer(native.chat, f"toolu_{ids}_")
        fault = plan.fault
        if fault is not None and fault.kind == "status":
            state.answered(recorded, fault.status)
            data = fault.body
            if fault.generic:
                data = native_error_body(fault.message, fault.error_type, request_id)
            headers = _headers(request_id, fault.content_type.encode(), fault.headers, native=True)
            headers.append((b"content-length", str(len(data)).encode()))
            delay = latency + plan.delay_headers_s
            return _Answer(fault.status, headers, [data], head_delay=delay)
        model_id = native.info.id
        cache = state.use_cache(
            f"{api_key}\0{model_id}", native.pieces, minimum_cacheable_tokens(model_id)
        )
        result = native_reply(
            native, reply, cache, state.signer, message_id=f"msg_{ids}", scripted=plan.scripted
        )
        state.spent(admission, result.output_tokens)
        state.answered(recorded, 200)

        def bill() -> None:
            if fault is None:
                state.bill(_native_ledger_entry(request_id, api_key, native, result))

        if not native.stream:
            data = message_body(result)
            if fault is not None:  # truncate
                data = data[: len(data) // 2]
            else:
                bill()
            delay = latency + plan.delay_headers_s
            return _json_answer(200, data, request_id, delay, admission.headers, native=True)
        events = message_events(result)
        ending: Literal["end", "drop"] = "end"
        if fault is not None:
            after = min(fault.after, len(events) - 1)  # never message_stop
            if fault.kind == "drop":
                events, ending = events[:after], "drop"
            elif fault.kind == "sse_error":
                events = [*events[:after], native_error_event(fault.message, fault.error_type)]
            else:  # truncate: half the events, then half an event, then a clean end
                keep = max(1, (len(events) - 1) // 2)
                events = [*events[:keep], events[keep][: len(events[keep]) // 2]]
        headers = _headers(
            request_id, _SSE, [("cache-control", "no-cache"), *admission.headers], native=True
        )
        return self._paced(events, headers, plan, latency, ending, bill)

    async def models(self, request: Request) -> Response:
        request_id = self.state.next_request_id()
        recorded, _ = self._record(request, await request.body(), request_id)
        try:
            check_api_key(request.headers.get("authorization"))
        except RequestError as err:
            return self._error(recorded, err)
        self.state.answered(recorded, 200)
        data = [
            {"id": m.id, "object": "model", "created": 0, "owned_by": "anthropic"}
            for m in MODELS.values()
        ]
        body = json.dumps({"object": "list", "data": data}).encode()
        return _json_answer(200, body, request_id)

    def _control_refusal(self, request: Request) -> RequestError | None:
        token = self.control_token
        if token is not None:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() == "bearer" and secrets.compare_digest(
                given.strip().encode(), token.encode()
            ):
                return None
            return RequestError(
                401,
                "The emulator's control API needs 'Authorization: Bearer <control token>'.",
                type="authentication_error",
            )
        host = request.client.host if request.client else ""
        if _is_loopback(host):
            return None
        return RequestError(
            403,
            f"The emulator's control API answers loopback clients only, not {host}; start "
            "the emulator with a control token (--control-token) to script it from elsewhere.",
            type="permission_error",
        )

    async def control(self, request: Request) -> Response:
        request_id = self.state.next_request_id()
        refusal = self._control_refusal(request)
        if refusal is not None:
            body = error_body(refusal.message, refusal.type, None)
            return _json_answer(refusal.status, body, request_id)
        op = request.path_params["op"]
        try:
            if request.method == "GET":
                if op not in _CONTROL_READS:
                    raise ControlError(f"GET {CONTROL_PREFIX}/{op}: use POST with JSON arguments")
                args: Any = dict(request.query_params)
            else:
                raw = await request.body()
                try:
                    args = json.loads(raw) if raw.strip() else {}
                except ValueError:
                    raise ControlError("the body is not valid JSON") from None
                if not isinstance(args, dict):
                    raise ControlError("the body must be a JSON object of arguments")
            result = self.state.apply(op, args)
        except ControlError as err:
            status = 404 if err.param == "op" else 400
            body = error_body(err.message, "invalid_request_error", None, err.param)
            return _json_answer(status, body, request_id)
        return _json_answer(200, json.dumps(result).encode(), request_id)

    async def other(self, request: Request) -> Response:
        request_id = self.state.next_request_id()
        recorded, _ = self._record(request, await request.body(), request_id)
        path = request.scope["path"]
        native = _is_native(path)
        if path in CHAT_PATHS or path in MODELS_PATHS or native:
            err = RequestError(405, f"Method {request.method} not allowed on {path}.")
        else:
            err = RequestError(
                404,
                f"Unknown path {path}; POST {CHAT_PATHS[0]} or {MESSAGES_PATHS[0]}.",
                type="not_found_error",
            )
        return self._native_error(recorded, err) if native else self._error(recorded, err)


def _is_native(path: str) -> bool:
    return path in MESSAGES_PATHS or path in COUNT_TOKENS_PATHS


_INVALID = object()
_CONTROL_READS = frozenset({"requests", "ledger", "configure"})


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return host == "localhost"


def _ledger_entry(request_id: str, api_key: str, chat: ChatRequest, reply: Reply) -> LedgerEntry:
    model, cost = price_call(chat.model, reply.model, reply.prompt_tokens, reply.completion_tokens)
    return LedgerEntry(
        request_id=request_id,
        api_key=api_key,
        model=model,
        requested_model=chat.model,
        prompt_tokens=reply.prompt_tokens,
        completion_tokens=reply.completion_tokens,
        cost_usd=cost if cost is not None else Decimal(0),
        stream=chat.stream,
        billed_at=time.time(),
    )


def _native_ledger_entry(
    request_id: str, api_key: str, request: MessagesRequest, reply: NativeReply
) -> LedgerEntry:
    cache = reply.cache
    model, cost = price_call(
        request.model,
        reply.model,
        cache.prompt_tokens,
        reply.output_tokens,
        cache_read_tokens=cache.read,
        cache_write_5m_tokens=cache.write_5m,
        cache_write_1h_tokens=cache.write_1h,
    )
    return LedgerEntry(
        request_id=request_id,
        api_key=api_key,
        model=model,
        requested_model=request.model,
        prompt_tokens=cache.prompt_tokens,
        completion_tokens=reply.output_tokens,
        cost_usd=cost if cost is not None else Decimal(0),
        stream=request.stream,
        billed_at=time.time(),
        protocol="messages",
        cache_read_tokens=cache.read,
        cache_write_tokens=cache.write,
        cache_write_1h_tokens=cache.write_1h,
    )


def create_app(state: EmulatorState, *, control_token: str | None = None) -> Starlette:
    """The ASGI app serving TokenHub's API and the control API from ``state``."""
    endpoints = _Endpoints(state, control_token)
    routes = [Route(path, endpoints.chat, methods=["POST"]) for path in CHAT_PATHS]
    routes += [Route(path, endpoints.models, methods=["GET"]) for path in MODELS_PATHS]
    routes += [Route(path, endpoints.messages, methods=["POST"]) for path in MESSAGES_PATHS]
    routes += [Route(path, endpoints.count_tokens, methods=["POST"]) for path in COUNT_TOKENS_PATHS]
    routes.append(Route(CONTROL_PREFIX + "/{op}", endpoints.control, methods=["GET", "POST"]))
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    routes.append(Route("/{path:path}", endpoints.other, methods=methods))

    async def internal_error(request: Request, exc: Exception) -> Response:
        request_id = state.next_request_id()
        message = f"[emulator] internal error: {exc!r}"
        if _is_native(request.url.path):
            return _json_answer(
                500, native_error_body(message, "api_error", request_id), request_id, native=True
            )
        return _json_answer(500, error_body(message, "api_error", None), request_id)

    return Starlette(routes=routes, exception_handlers={Exception: internal_error})
