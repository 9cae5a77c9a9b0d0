"""`TokenHubClient`: the one place that talks to TokenHub.

Every decision (request body, validation, budget, error mapping, retry, SSE decoding, chunk
accumulation) is made once, by pure code shared by the sync and async paths; the two shells
below differ only in how they wait.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any

import httpx
from pydantic import SecretStr

from tokenhub_core._pools import pools as _pools
from tokenhub_core._version import __version__
from tokenhub_core.cost import CallMeters
from tokenhub_core.errors import (
    APIConnectionError,
    APIResponseError,
    APIStatusError,
    APITimeoutError,
    MissingAPIKeyError,
    StreamInterruptedError,
    TokenHubError,
    make_status_error,
    parse_error_body,
    request_id_from,
)
from tokenhub_core.params import build_body, estimate_tokens
from tokenhub_core.retry import parse_retry_after, retry_delay, status_is_retryable
from tokenhub_core.sse import SSEDecoder
from tokenhub_core.stream import ChunkAccumulator, completion_to_chunks
from tokenhub_core.wire import ChatCompletion, ChatCompletionChunk, Usage, parse_lenient

__all__ = ["DEFAULT_BASE_URL", "AsyncChatStream", "ChatStream", "ClientSlot", "TokenHubClient"]

DEFAULT_BASE_URL = "https://tokenhub.store/api/v1"
API_KEY_ENV = "TOKENHUB_API_KEY"
BASE_URL_ENV = "TOKENHUB_BASE_URL"

_log = logging.getLogger("tokenhub")
# Module-level so tests can replace the waiting without touching the decisions.
_sleep = time.sleep
_asleep = asyncio.sleep


class _Call:
    """Everything about one call that is decided before anything is sent."""

    __slots__ = ("content", "headers", "meters", "model", "stream")

    def __init__(
        self,
        model: str,
        content: bytes,
        stream: bool,
        meters: CallMeters,
        headers: dict[str, str],
    ) -> None:
        self.model = model
        self.content = content
        self.stream = stream
        self.meters = meters
        self.headers = headers


def _describe_body(content: bytes, headers: Mapping[str, str]) -> str:
    content_type = headers.get("content-type", "")
    if "html" in content_type or content.lstrip()[:1] == b"<":
        _, error = parse_error_body(content)
        return f"expected a JSON chat completion, got an HTML page ({error['message']})"
    preview = content[:120].decode("utf-8", errors="replace")
    return (
        f"expected a JSON chat completion, got {len(content)} bytes that do not parse: {preview!r}"
    )


def parse_completion(content: bytes, headers: Mapping[str, str]) -> ChatCompletion:
    """The ``chat.completion`` in a 200 body, or `APIResponseError` when it is not one."""
    request_id = request_id_from(headers)
    try:
        completion = parse_lenient(ChatCompletion, content)
    except ValueError:  # ValidationError is one too
        raise APIResponseError(_describe_body(content, headers), request_id=request_id) from None
    extra = completion.__pydantic_extra__
    if extra and "error" in extra:
        raise _error_event(extra["error"], request_id)
    if not completion.choices:
        raise APIResponseError(
            "TokenHub answered 200 with no choices", body=extra, request_id=request_id
        )
    completion._request_id = request_id
    return completion


def _error_event(error: Any, request_id: str | None) -> APIResponseError:
    fields = error if isinstance(error, dict) else {"message": str(error)}
    return APIResponseError(
        f"TokenHub reported an error: {fields.get('message') or fields}",
        body=error,
        request_id=request_id,
        error_type=fields.get("type"),
        code=None if fields.get("code") is None else str(fields.get("code")),
    )


class _StreamReader:
    """Streamed bytes in, chunks out: SSE, ``[DONE]``, error events, accumulation."""

    __slots__ = ("_decoder", "accumulator", "done", "request_id")

    def __init__(self, request_id: str | None) -> None:
        self._decoder = SSEDecoder()
        self.accumulator = ChunkAccumulator()
        self.done = False
        self.request_id = request_id

    def feed(self, data: bytes) -> list[ChatCompletionChunk]:
        chunks = []
        for event in self._decoder.decode(data):
            if self.done:
                continue
            if event.data == "[DONE]":
                self.done = True
                continue
            if not event.data.strip():  # an empty data: line used as a keep-alive
                continue
            if event.event == "error":
                raise _error_event(_loads_or_text(event.data), self.request_id)
            try:
                chunk = parse_lenient(ChatCompletionChunk, event.data)
            except ValueError:  # ValidationError is one too
                raise APIResponseError(
                    f"malformed stream event: {event.data[:120]!r}", request_id=self.request_id
                ) from None
            extra = chunk.__pydantic_extra__
            if extra and "error" in extra:
                raise _error_event(extra["error"], self.request_id)
            self.accumulator.add(chunk)
            chunks.append(chunk)
        return chunks

    def feed_json(self, content: bytes, headers: Mapping[str, str]) -> list[ChatCompletionChunk]:
        """A ``stream=true`` request answered with a plain JSON body: replay it as chunks."""
        chunks = completion_to_chunks(parse_completion(content, headers))
        for chunk in chunks:
            self.accumulator.add(chunk)
        self.done = True
        return chunks

    def end(self) -> None:
        for _ in self._decoder.flush():
            pass
        if not self.done and not self.accumulator.finished:
            raise StreamInterruptedError(
                "the stream ended before the reply finished (no finish_reason, no [DONE])",
                partial=self.accumulator.completion(),
                request_id=self.request_id,
            )

    def interrupted(self, exc: Exception) -> StreamInterruptedError:
        return StreamInterruptedError(
            f"the stream broke off: {type(exc).__name__}: {exc}",
            partial=self.accumulator.completion(),
            request_id=self.request_id,
        )


def _transport_error(exc: httpx.TransportError, doing: str) -> APIConnectionError:
    """The core's error for an httpx transport failure while ``doing`` something."""
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"{doing} timed out: {exc}")
    return APIConnectionError(f"{doing} failed: {exc}")


def _loads_or_text(data: str) -> Any:
    try:
        value = json.loads(data)
    except ValueError:
        return {"message": data}
    return value.get("error", value) if isinstance(value, dict) else {"message": data}


def _is_json(headers: Mapping[str, str]) -> bool:
    return headers.get("content-type", "").startswith("application/json")


class TokenHubClient:
    """A client for TokenHub's OpenAI-compatible ``/chat/completions`` endpoint.

    Args:
        api_key: ``th-...`` key; defaults to ``TOKENHUB_API_KEY``. A missing key is an error at
            call time, not at construction.
        base_url: defaults to ``TOKENHUB_BASE_URL``, then ``https://tokenhub.store/api/v1``.
        timeout: seconds (or an ``httpx.Timeout``) for each attempt.
        max_retries: retries after the first attempt, for retryable failures only.
        default_headers: sent with every request.
        http_client / http_async_client: your own httpx clients, used as they are (you close
            them). Without them, every client shares one pool per process (async: per event loop).
    """

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        base_url: str | None = None,
        timeout: float | httpx.Timeout | None = 60.0,
        max_retries: int = 2,
        default_headers: Mapping[str, str] | None = None,
        http_client: httpx.Client | None = None,
        http_async_client: httpx.AsyncClient | None = None,
    ) -> None:
        if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
            raise ValueError(f"max_retries must be a non-negative integer, got {max_retries!r}")
        self.api_key: SecretStr | None = (
            api_key if isinstance(api_key, SecretStr) or api_key is None else SecretStr(api_key)
        )
        self.base_url = (base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.max_retries = max_retries
        self.default_headers = dict(default_headers or {})
        self._url = httpx.URL(f"{self.base_url}/chat/completions")
        self._timeout_extension = self.timeout.as_dict()
        self._http_client = http_client
        self._http_async_client = http_async_client

    def __repr__(self) -> str:
        key = "set" if self.api_key is not None else "from env"
        return f"TokenHubClient(base_url={self.base_url!r}, api_key=<{key}>)"

    # The request path shared by every call.

    def _key(self) -> str:
        if self.api_key is not None and self.api_key.get_secret_value():
            return self.api_key.get_secret_value()
        key = os.environ.get(API_KEY_ENV)
        if not key:
            raise MissingAPIKeyError()
        return key

    def _prepare(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        params: dict[str, Any],
        *,
        stream: bool,
    ) -> _Call:
        extra_headers = params.pop("extra_headers", None)
        body = build_body(model, messages, stream=stream, **params)
        headers = {
            "Authorization": f"Bearer {self._key()}",
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if stream else "application/json",
            "User-Agent": f"tokenhub-integrations/{__version__}",
            **self.default_headers,
            **(extra_headers or {}),
        }
        meters = CallMeters(
            model, estimate_tokens(body["messages"], body.get("tools")), body["max_tokens"]
        )
        meters.check()
        content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        return _Call(model, content, stream, meters, headers)

    def _request(self, http: httpx.Client | httpx.AsyncClient | None, call: _Call) -> httpx.Request:
        if http is not None:  # a full client: let it merge its own headers and settings
            return http.build_request(
                "POST", self._url, content=call.content, headers=call.headers, timeout=self.timeout
            )
        return httpx.Request(
            "POST",
            self._url,
            content=call.content,
            headers=call.headers,
            extensions={"timeout": self._timeout_extension},
        )

    def _status_error(self, response: httpx.Response) -> tuple[APIStatusError, bool]:
        headers = response.headers
        error = make_status_error(
            response.status_code,
            headers,
            response.content,
            retry_after=parse_retry_after(headers),
            secret=self._key(),
        )
        return error, status_is_retryable(response.status_code, headers)

    def _next_delay(self, error: TokenHubError, attempt: int, retryable: bool) -> float | None:
        delay = retry_delay(
            error, attempt=attempt, max_retries=self.max_retries, retryable=retryable
        )
        if delay is not None:
            _log.info("TokenHub call failed (%s); retry %d in %.2fs", error, attempt + 1, delay)
        return delay

    # Sync shell.

    def _sync_http(self) -> httpx.Client | httpx.HTTPTransport:
        return self._http_client if self._http_client is not None else _pools.sync()

    def _send(self, call: _Call) -> httpx.Response:
        http = self._sync_http()
        call.meters.hold()
        attempt = 0
        while True:
            retryable = True
            try:
                if isinstance(http, httpx.Client):
                    response = http.send(self._request(http, call), stream=True)
                else:
                    response = http.handle_request(self._request(None, call))
            except httpx.TransportError as exc:
                error: TokenHubError = _transport_error(exc, "the request to TokenHub")
            else:
                if response.is_success:
                    return response
                try:
                    response.read()
                finally:
                    response.close()
                error, retryable = self._status_error(response)
            delay = self._next_delay(error, attempt, retryable)
            if delay is None:
                call.meters.release()
                raise error
            _sleep(delay)
            attempt += 1

    def chat(
        self, *, model: str, messages: Sequence[Mapping[str, Any]], **params: Any
    ) -> ChatCompletion:
        """Send a chat completion and return the parsed ``chat.completion``."""
        call = self._prepare(model, messages, params, stream=False)
        response = self._send(call)
        try:
            content = response.read()
        except httpx.TransportError as exc:
            raise _transport_error(exc, "reading TokenHub's answer") from exc
        finally:
            response.close()
            call.meters.release()
        completion = parse_completion(content, response.headers)
        call.meters.record(completion.model, completion.usage)
        return completion

    def stream(
        self, *, model: str, messages: Sequence[Mapping[str, Any]], **params: Any
    ) -> ChatStream:
        """Stream a chat completion: an iterator of chunks, sent on first use."""
        return ChatStream(self, self._prepare(model, messages, params, stream=True))

    # Async shell: the same steps, awaited. The shared pool is per event loop, so a client keeps
    # working across pytest's per-test loops and in Jupyter.

    async def _async_http(self) -> httpx.AsyncClient | httpx.AsyncBaseTransport:
        if self._http_async_client is not None:
            return self._http_async_client
        return await _pools.for_running_loop()

    async def _asend(self, call: _Call) -> httpx.Response:
        http = await self._async_http()
        call.meters.hold()
        attempt = 0
        while True:
            retryable = True
            try:
                if isinstance(http, httpx.AsyncClient):
                    response = await http.send(self._request(http, call), stream=True)
                else:
                    response = await http.handle_async_request(self._request(None, call))
            except httpx.TransportError as exc:
                error: TokenHubError = _transport_error(exc, "the request to TokenHub")
            else:
                if response.is_success:
                    return response
                try:
                    await response.aread()
                finally:
                    await response.aclose()
                error, retryable = self._status_error(response)
            delay = self._next_delay(error, attempt, retryable)
            if delay is None:
                call.meters.release()
                raise error
            await _asleep(delay)
            attempt += 1

    async def achat(
        self, *, model: str, messages: Sequence[Mapping[str, Any]], **params: Any
    ) -> ChatCompletion:
        """Async `chat`."""
        call = self._prepare(model, messages, params, stream=False)
        response = await self._asend(call)
        try:
            content = await response.aread()
        except httpx.TransportError as exc:
            raise _transport_error(exc, "reading TokenHub's answer") from exc
        finally:
            await response.aclose()
            call.meters.release()
        completion = parse_completion(content, response.headers)
        call.meters.record(completion.model, completion.usage)
        return completion

    def astream(
        self, *, model: str, messages: Sequence[Mapping[str, Any]], **params: Any
    ) -> AsyncChatStream:
        """Async `stream`: ``async for chunk in client.astream(...)``."""
        return AsyncChatStream(self, self._prepare(model, messages, params, stream=True))


class ClientSlot:
    """One adapter instance's `TokenHubClient`: built on first use, rebuilt when settings change.

    Framework models are mutable (``llm.base_url = ...``), so the slot compares the connection
    settings on each call; a client is cheap (the pools are shared), so a rare race that builds
    two is harmless and needs no lock. Copies start empty, never sharing a user's httpx client.
    """

    __slots__ = ("_client", "_settings")

    def __init__(self) -> None:
        self._client: TokenHubClient | None = None
        self._settings: tuple[Any, ...] = ()

    def get(
        self,
        *,
        api_key: str | SecretStr | None,
        base_url: str | None,
        timeout: float | httpx.Timeout | None,
        max_retries: int,
        default_headers: Mapping[str, str] | None,
        http_client: httpx.Client | None,
        http_async_client: httpx.AsyncClient | None,
    ) -> TokenHubClient:
        settings = (
            api_key,
            base_url,
            timeout,
            max_retries,
            tuple(sorted((default_headers or {}).items())),
            http_client,
            http_async_client,
        )
        client = self._client
        if client is None or settings != self._settings:
            client = TokenHubClient(
                api_key=api_key,
                base_url=base_url,
                timeout=timeout,
                max_retries=max_retries,
                default_headers=default_headers,
                http_client=http_client,
                http_async_client=http_async_client,
            )
            self._client, self._settings = client, settings
        return client

    def __copy__(self) -> ClientSlot:
        return ClientSlot()

    def __deepcopy__(self, memo: dict[int, Any]) -> ClientSlot:
        return ClientSlot()


class _StreamBase:
    def __init__(self, client: TokenHubClient, call: _Call) -> None:
        self._client = client
        self._call = call
        self._reader: _StreamReader | None = None

    @property
    def request_id(self) -> str | None:
        """The server's request id, once the response has started."""
        return None if self._reader is None else self._reader.request_id

    @property
    def usage(self) -> Usage | None:
        """The last usage the server reported (None before it does)."""
        return None if self._reader is None else self._reader.accumulator.usage

    def completion(self) -> ChatCompletion:
        """Everything received so far, assembled into one ``chat.completion``."""
        if self._reader is None:
            raise RuntimeError("the stream has not started; iterate it first")
        completion = self._reader.accumulator.completion()
        completion._request_id = self._reader.request_id
        return completion

    def _start(self, response: httpx.Response) -> _StreamReader:
        self._reader = _StreamReader(request_id_from(response.headers))
        return self._reader

    def _finish(self, reader: _StreamReader) -> None:
        reader.end()
        accumulator = reader.accumulator
        self._call.meters.record(accumulator.model, accumulator.usage)


class ChatStream(_StreamBase):
    """Iterator of ``chat.completion.chunk``s; a context manager; ``close()`` ends it early."""

    _chunks: Generator[ChatCompletionChunk, None, None] | None = None

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        # The generator itself, so a for loop pays no extra Python frame per chunk.
        if self._chunks is None:
            self._chunks = self._iterate()
        return self._chunks

    def __next__(self) -> ChatCompletionChunk:
        return next(iter(self))

    def _iterate(self) -> Generator[ChatCompletionChunk, None, None]:
        response = self._client._send(self._call)
        reader = self._start(response)
        try:
            if _is_json(response.headers):
                yield from reader.feed_json(response.read(), response.headers)
            else:
                for data in response.iter_bytes():
                    yield from reader.feed(data)
            self._finish(reader)
        except httpx.TransportError as exc:
            raise reader.interrupted(exc) from exc
        finally:
            response.close()
            self._call.meters.release()

    def close(self) -> None:
        """Stop reading and release the connection."""
        if self._chunks is not None:
            self._chunks.close()

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncChatStream(_StreamBase):
    """Async iterator of ``chat.completion.chunk``s; an async context manager; ``aclose()``."""

    _chunks: AsyncGenerator[ChatCompletionChunk, None] | None = None

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        if self._chunks is None:
            self._chunks = self._iterate()
        return self._chunks

    async def __anext__(self) -> ChatCompletionChunk:
        return await self.__aiter__().__anext__()

    async def _iterate(self) -> AsyncGenerator[ChatCompletionChunk, None]:
        response = await self._client._asend(self._call)
        reader = self._start(response)
        try:
            if _is_json(response.headers):
                for chunk in reader.feed_json(await response.aread(), response.headers):
                    yield chunk
            else:
                async for data in response.aiter_bytes():
                    for chunk in reader.feed(data):
                        yield chunk
            self._finish(reader)
        except httpx.TransportError as exc:
            raise reader.interrupted(exc) from exc
        finally:
            await response.aclose()
            self._call.meters.release()

    async def aclose(self) -> None:
        """Stop reading and release the connection."""
        if self._chunks is not None:
            await self._chunks.aclose()

    async def __aenter__(self) -> AsyncChatStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
