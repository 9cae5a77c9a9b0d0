"""What every contender shares: the request's constants and the shape of its operations."""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from benchserver import Endpoint

__all__ = [
    "CALL_PROMPT",
    "CONTEXT_WINDOW",
    "MAX_TOKENS",
    "MODEL",
    "STREAM_PROMPT",
    "AsyncOps",
    "Contender",
    "Server",
    "SyncOps",
    "heard",
]

MODEL = "anthropic/claude-sonnet-4-6"
MAX_TOKENS = 1024
CALL_PROMPT = "Say hello."
STREAM_PROMPT = "Tell me a long story."
CONTEXT_WINDOW = 200_000  # what a user of llama-index's OpenAI has to state for a Claude model


@dataclass(frozen=True)
class SyncOps:
    """One call (result, then its text) and one stream (items, then each item's text)."""

    call: Callable[[], Any]
    call_text: Callable[[Any], str]
    open_stream: Callable[[], Iterable[Any]]
    piece: Callable[[Any], str | None]


@dataclass(frozen=True)
class AsyncOps:
    """The async counterpart of `SyncOps`; ``open_stream`` is awaited once per stream."""

    call: Callable[[], Awaitable[Any]]
    call_text: Callable[[Any], str]
    open_stream: Callable[[], Awaitable[AsyncIterable[Any]]]
    piece: Callable[[Any], str | None]


@dataclass(frozen=True)
class Contender:
    """A row of the table."""

    key: str  # used by --only and --profile
    label: str
    api: str  # the methods timed
    family: str  # "floor", "reference", "langchain", "llamaindex"
    role: str  # "floor", "reference", "anchor", "ours", "framework" (the framework alone)
    is_async: bool
    build: Callable[[Endpoint, Endpoint], SyncOps | AsyncOps]


class Server(Protocol):
    """What the timing runner needs of a server: three endpoints and a way to forget requests."""

    @property
    def short(self) -> Endpoint: ...  # calls: a short reply

    @property
    def long(self) -> Endpoint: ...  # streams delivered in ~4 KiB batches

    @property
    def drip(self) -> Endpoint: ...  # streams delivered one event per write

    def reset(self) -> None: ...


Build = Callable[[Endpoint, Endpoint], SyncOps | AsyncOps]


def heard(build: Build) -> Build:
    """``build`` with its streams read with a LlamaIndex event handler (one that does nothing)
    on the root dispatcher, as with a tracing integration installed: LlamaIndex then builds an
    in-progress event for every response, which ``TokenHub`` skips while nothing listens.

    The handler is registered as a stream is opened and removed when the stream is freed, so
    nothing stands between the timing loop and the stream."""
    import weakref

    from llama_index.core.instrumentation import get_dispatcher
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler

    class Listener(BaseEventHandler):
        def handle(self, event: Any, **kwargs: Any) -> None:
            return None

    root, listener = get_dispatcher(), Listener()

    def listen() -> None:
        root.add_event_handler(listener)

    def stop() -> None:
        root.event_handlers = [h for h in root.event_handlers if h is not listener]

    def heard_ops(short: Endpoint, long: Endpoint) -> SyncOps | AsyncOps:
        ops = build(short, long)
        if isinstance(ops, SyncOps):
            open_sync = ops.open_stream

            def open_heard_sync() -> Iterable[Any]:
                listen()
                stream = open_sync()
                weakref.finalize(stream, stop)
                return stream

            return SyncOps(ops.call, ops.call_text, open_heard_sync, ops.piece)

        open_async = ops.open_stream

        async def open_heard() -> AsyncIterable[Any]:
            listen()
            stream = await open_async()
            weakref.finalize(stream, stop)
            return stream

        return AsyncOps(ops.call, ops.call_text, open_heard, ops.piece)

    return heard_ops
