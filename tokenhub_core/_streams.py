"""Streamed replies: SSE bytes in, ``chat.completion.chunk``s out, sync and async.

Inside, a stream is a sequence of `StreamPart`s, which the adapters read through ``parts()``;
iterating the stream itself gives each part's chunk.

An abandoned stream (a ``break`` out of the loop, an exception in its body, a dropped reference)
closes its connection and settles its meter as soon as the last reference to it goes: the
generators below hold the client and the call but never the stream object that holds them, so no
reference cycle waits for the garbage collector. When a collector does finalize one (a cycle the
caller made), the closing is queued and done at the next safe point, since the collector may run
while this thread holds the connection pool's lock or a meter's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

from tokenhub_core._lifecycle import MAX_REPLY_BYTES, Lifecycle
from tokenhub_core._transports import Response, body_bytes, body_reader_async
from tokenhub_core.cost import run_when_safe
from tokenhub_core.errors import (
    APIResponseError,
    APIStatusError,
    StreamInterruptedError,
    request_id_from,
)
from tokenhub_core.native import MessagesEventReader
from tokenhub_core.sse import SSEDecoder
from tokenhub_core.stream import ChunkAccumulator, StreamPart, completion_to_chunks
from tokenhub_core.wire import ChatCompletion, ChatCompletionChunk, Usage, loads, parse_lenient

if TYPE_CHECKING:
    from tokenhub_core.client import TokenHubClient


def client_sleep(seconds: float) -> None:
    """The client module's sleep (replaceable in tests), looked up at call time."""
    from tokenhub_core import client

    client._sleep(seconds)


async def client_asleep(seconds: float) -> None:
    from tokenhub_core import client

    await client._asleep(seconds)


__all__ = ["AsyncChatStream", "ChatStream", "error_event", "is_json"]


def error_event(error: Any, request_id: str | None) -> APIResponseError:
    fields = error if isinstance(error, dict) else {"message": str(error)}
    return APIResponseError(
        f"TokenHub reported an error: {fields.get('message') or fields}",
        body=error,
        request_id=request_id,
        error_type=fields.get("type"),
        code=None if fields.get("code") is None else str(fields.get("code")),
    )


def _loads_or_text(data: str) -> Any:
    try:
        value = loads(data)
    except ValueError:
        return {"message": data[:500]}
    return value.get("error", value) if isinstance(value, dict) else {"message": data[:500]}


# The events `SSEDecoder.lone_data` reads whole: Claude's text fragments, and chat chunks.
_TEXT_DELTA = "content_block_delta"
_TEXT_DELTA_HEAD = b"event: content_block_delta\ndata: "
_CHUNK_HEAD = b"data: "


def is_json(headers: Mapping[str, str]) -> bool:
    return headers.get("content-type", "").startswith("application/json")


class _StreamReader:
    """Streamed bytes in, chunks out: SSE, ``[DONE]`` or ``message_stop``, error events,
    accumulation, size cap. An error event after chunks in the same read is raised on the next
    call, so the chunks before it are not lost."""

    __slots__ = (
        "_decoder",
        "_error",
        "_lone_head",
        "_native",
        "_received",
        "accumulator",
        "done",
        "protocol",
        "request_id",
    )

    def __init__(self, request_id: str | None, protocol: str) -> None:
        self._decoder = SSEDecoder()
        self._received = 0
        self._error: Exception | None = None
        self._native = MessagesEventReader(request_id) if protocol == "messages" else None
        self._lone_head = _TEXT_DELTA_HEAD if self._native is not None else _CHUNK_HEAD
        self.protocol = protocol
        self.accumulator = ChunkAccumulator()
        self.done = False
        self.request_id = request_id

    @property
    def started(self) -> bool:
        """Whether any chunk has been produced (a retry would then repeat what was read)."""
        return self.accumulator.chunk_count > 0

    def feed(self, data: bytes) -> list[StreamPart]:
        if self._error is not None:
            raise self._error
        self._received += len(data)
        if self._received > MAX_REPLY_BYTES:
            raise APIResponseError(
                f"the stream is longer than {MAX_REPLY_BYTES:,} bytes, more than any legal"
                " reply; reading stopped",
                request_id=self.request_id,
            )
        native = self._native
        lone = None if self.done else self._decoder.lone_data(data, self._lone_head)
        if lone is not None and (native is not None or lone[:1] == b"{"):
            # A live stream's read: one event, most often a text fragment.
            try:
                if native is not None:
                    part = native.event(_TEXT_DELTA, lone)
                    self.done = native.done
                else:
                    part = self._chunk_part(lone)
            except (APIResponseError, APIStatusError):
                pass  # read it the usual way: that one says what is wrong, or reads it
            else:
                if part is None:
                    return []
                self.accumulator.add_part(part)
                return [part]
        parts: list[StreamPart] = []
        add = self.accumulator.add_part
        try:
            for text, name, _, _ in self._decoder.decode_fields(data):
                if self.done:
                    continue
                if native is not None:  # Claude's events, inline: this runs per event
                    if not text or text.isspace():  # no copy, unlike strip()
                        continue
                    part = native.event(name, text)
                    self.done = native.done
                else:
                    part = self._part(name, text)
                if part is not None:
                    add(part)
                    parts.append(part)
        except (APIResponseError, APIStatusError) as exc:
            if not parts:
                raise
            self._error = exc
        return parts

    def _part(self, name: str | None, data: str) -> StreamPart | None:
        """The part for one chat.completions event (Claude's are read inline in `feed`)."""
        if data == "[DONE]":
            self.done = True
            return None
        if not data or data.isspace():  # an empty data: line used as a keep-alive
            return None
        if name == "error":
            raise error_event(_loads_or_text(data), self.request_id)
        return self._chunk_part(data)

    def _chunk_part(self, data: str | bytes) -> StreamPart:
        """The part for a ``chat.completion.chunk`` event's data (text, or UTF-8)."""
        try:
            chunk = parse_lenient(ChatCompletionChunk, data)
        except (ValueError, RecursionError):  # ValidationError is a ValueError
            raise APIResponseError(
                f"malformed stream event: {data[:120]!r}", request_id=self.request_id
            ) from None
        extra = chunk.__pydantic_extra__
        if extra and "error" in extra:
            raise error_event(extra["error"], self.request_id)
        return StreamPart.from_chunk(chunk)

    def feed_json(self, content: bytes, headers: Mapping[str, str]) -> list[StreamPart]:
        """A ``stream=true`` request answered with a plain JSON body: replay it as chunks."""
        from tokenhub_core.client import parse_reply

        chunks = completion_to_chunks(parse_reply(content, headers, self.protocol))
        parts = [StreamPart.from_chunk(chunk) for chunk in chunks]
        for part in parts:
            self.accumulator.add_part(part)
        self.done = True
        return parts

    def end(self) -> None:
        if self._error is not None:
            raise self._error
        self._decoder.flush()
        if not self.done and not self.accumulator.finished:
            ending = "message_stop" if self._native is not None else "[DONE]"
            raise StreamInterruptedError(
                f"the stream ended before the reply finished (no finish_reason, no {ending})",
                partial=self.accumulator.completion(),
                request_id=self.request_id,
            )

    def interrupted(self, exc: Exception) -> StreamInterruptedError:
        error = StreamInterruptedError(
            f"the stream broke off: {type(exc).__name__}: {exc}",
            partial=self.accumulator.completion(),
            request_id=self.request_id,
        )
        error.__cause__ = exc
        return error


class _StreamState:
    """What a stream's generator shares with the stream object (never the generator itself)."""

    __slots__ = ("reader",)

    def __init__(self) -> None:
        self.reader: _StreamReader | None = None

    def start(self, response: Response, protocol: str) -> _StreamReader:
        self.reader = _StreamReader(request_id_from(response.headers), protocol)
        return self.reader

    @property
    def usage(self) -> Usage | None:
        return None if self.reader is None else self.reader.accumulator.usage

    @property
    def final_usage(self) -> Usage | None:
        """The usage to settle an unfinished stream with: only once the reply had finished
        (some servers send a growing usage on every chunk before the end)."""
        reader = self.reader
        if reader is None or not reader.accumulator.finished:
            return None
        return reader.accumulator.usage

    @property
    def served_model(self) -> str | None:
        return None if self.reader is None else self.reader.accumulator.model or None


def _finish(life: Lifecycle, reader: _StreamReader) -> None:
    reader.end()
    accumulator = reader.accumulator
    life.finish(accumulator.model, accumulator.usage, reader.request_id)


def _retry_delay(life: Lifecycle, reader: _StreamReader, exc: APIStatusError) -> float:
    """The delay before retrying a stream that failed before producing anything; or raise."""
    if reader.started:
        raise exc
    return life.stream_refused(exc)


def _parts(
    client: TokenHubClient, life: Lifecycle, state: _StreamState
) -> Generator[StreamPart, None, None]:
    while True:
        response = client._open(life)
        reader = state.start(response, life.call.protocol)
        retrying, delay = False, 0.0
        try:
            if is_json(response.headers):
                yield from reader.feed_json(client._read(response, life), response.headers)
            else:
                timed = life.deadline_s is not None
                for data in body_bytes(response):
                    if timed:
                        life.check_deadline()
                    yield from reader.feed(data)
            _finish(life, reader)
            return
        except APIStatusError as exc:  # an error event in a 200 stream
            delay = _retry_delay(life, reader, exc)
            retrying = True
        except httpx.TransportError as exc:
            raise reader.interrupted(exc) from exc
        finally:
            run_when_safe(response.close)
            if not retrying:
                life.settle(state.final_usage, state.served_model)
        client_sleep(delay)


class _StreamBase:
    def __init__(self, state: _StreamState) -> None:
        self._state = state

    @property
    def request_id(self) -> str | None:
        """The server's request id, once the response has started."""
        reader = self._state.reader
        return None if reader is None else reader.request_id

    @property
    def usage(self) -> Usage | None:
        """The last usage the server reported (None before it does)."""
        return self._state.usage

    def completion(self) -> ChatCompletion:
        """Everything received so far, assembled into one ``chat.completion``."""
        reader = self._state.reader
        if reader is None:
            raise RuntimeError("the stream has not started; iterate it first")
        completion = reader.accumulator.completion()
        completion._request_id = reader.request_id
        return completion


class ChatStream(_StreamBase):
    """Iterator of ``chat.completion.chunk``s, sent on first use; a context manager.

    ``close()`` (or leaving the ``with`` block, or dropping the last reference) ends it early: the
    connection is closed and the call is metered with the usage received, else at its worst case.
    """

    def __init__(self, client: TokenHubClient, life: Lifecycle) -> None:
        state = _StreamState()
        super().__init__(state)
        self._parts = _parts(client, life, state)
        self._chunks = map(_chunk_of, self._parts)

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        return self._chunks

    def __next__(self) -> ChatCompletionChunk:
        return next(self._chunks)

    def parts(self) -> Iterator[StreamPart]:
        """The stream as `StreamPart`s (what the adapters read: no chunk is built)."""
        return self._parts

    def close(self) -> None:
        """Stop reading and release the connection."""
        self._parts.close()

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
    """Async iterator of ``chat.completion.chunk``s; an async context manager; ``aclose()``.

    Deliberately not an async generator: the event loop's shutdown closes every async generator
    still alive at once, so a framework's generator that closes this stream in its own cleanup
    would race it ("aclose(): asynchronous generator is already running"). Dropped unclosed, it
    schedules its own closing on its loop.
    """

    def __init__(self, client: TokenHubClient, life: Lifecycle) -> None:
        state = _StreamState()
        super().__init__(state)
        self._client = client
        self._life = life
        self._response: Response | None = None
        self._read_some: Callable[[], Awaitable[bytes]] | None = None
        self._pending: deque[StreamPart] = deque()
        self._finished = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        return self

    async def __anext__(self) -> ChatCompletionChunk:
        return (await self._anext_part()).chunk

    def parts(self) -> AsyncIterator[StreamPart]:
        """The stream as `StreamPart`s (what the adapters read: no chunk is built)."""
        return _AsyncParts(self)

    async def _anext_part(self) -> StreamPart:
        # One coroutine from here to the transport's read: each layer is one more frame to
        # resume for every event of a live stream.
        pending = self._pending
        if pending:
            return pending.popleft()
        if self._finished:
            raise StopAsyncIteration
        life = self._life
        try:
            while True:
                try:
                    if self._response is None:
                        await self._start()
                    reader = self._state.reader
                    assert reader is not None
                    read_some = self._read_some
                    timed = life.deadline_s is not None
                    while not pending and read_some is not None:
                        data = await read_some()
                        if not data:
                            break
                        if timed:
                            life.check_deadline()
                        pending.extend(reader.feed(data))
                    if pending:
                        return pending.popleft()
                    _finish(life, reader)
                    raise StopAsyncIteration
                except APIStatusError as exc:  # an error event in a 200 stream
                    reader = self._state.reader
                    if self._response is None or reader is None:
                        raise  # an error status, already past the lifecycle's retries
                    delay = _retry_delay(life, reader, exc)
                    response, self._response, self._read_some = self._response, None, None
                    await response.aclose()
                    await client_asleep(delay)
        except StopAsyncIteration:
            await self.aclose()
            raise
        except httpx.TransportError as exc:
            reader = self._state.reader
            await self.aclose()
            if reader is None:
                raise
            raise reader.interrupted(exc) from exc
        except BaseException:
            await self.aclose()
            raise

    async def _start(self) -> None:
        """Send the request (the lifecycle retries a refused one) and begin its reply."""
        life = self._life
        self._loop = asyncio.get_running_loop()
        self._response = response = await self._client._aopen(life)
        reader = self._state.start(response, life.call.protocol)
        if is_json(response.headers):
            content = await self._client._aread(response, life)
            self._pending.extend(reader.feed_json(content, response.headers))
        else:
            self._read_some = body_reader_async(response)

    async def aclose(self) -> None:
        """Stop reading and release the connection."""
        if self._finished:
            return
        self._finished = True
        response, self._response = self._response, None
        try:
            if response is not None:
                await response.aclose()
        finally:
            self._life.settle(self._state.final_usage, self._state.served_model)

    def __del__(self) -> None:
        if self._finished:
            return
        self._finished = True
        response, loop = self._response, self._loop
        close_now = getattr(getattr(response, "stream", None), "close_now", None)
        if close_now is not None and _running_loop() is loop:
            # Our own transport closes synchronously: do it now, on the loop's thread, rather
            # than schedule it where asyncio.run's shutdown may cancel it.
            run_when_safe(close_now)
        elif response is not None and loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(_close_later, response)
        life, state = self._life, self._state
        run_when_safe(lambda: life.settle(state.final_usage, state.served_model))

    async def __aenter__(self) -> AsyncChatStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _chunk_of(part: StreamPart) -> ChatCompletionChunk:
    return part.chunk


class _AsyncParts:
    """`AsyncChatStream.parts()`: the same stream, read as parts."""

    __slots__ = ("_stream",)

    def __init__(self, stream: AsyncChatStream) -> None:
        self._stream = stream

    def __aiter__(self) -> _AsyncParts:
        return self

    def __anext__(self) -> Awaitable[StreamPart]:
        return self._stream._anext_part()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


_closing: set[asyncio.Task[None]] = set()


def _close_later(response: Response) -> None:
    task = asyncio.get_running_loop().create_task(response.aclose())
    _closing.add(task)
    task.add_done_callback(_closing.discard)
