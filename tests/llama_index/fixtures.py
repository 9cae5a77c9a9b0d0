"""Fixtures shared by the LlamaIndex tests here and in tests/e2e (imported by name where used)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from llama_index.core import Settings
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler

from llama_index_tokenhub import TokenHub
from tokenhub_emulator import TokenHubEmulator

_H = TypeVar("_H", bound=BaseEventHandler)


@contextlib.contextmanager
def registered(handler: _H, dispatcher_name: str = "root") -> Iterator[_H]:
    """``handler`` on the named LlamaIndex dispatcher for the block, removed afterwards."""
    dispatcher = get_dispatcher(dispatcher_name)
    dispatcher.add_event_handler(handler)
    try:
        yield handler
    finally:
        dispatcher.event_handlers = [h for h in dispatcher.event_handlers if h is not handler]


_SETTINGS_SLOTS = (
    "_llm",
    "_embed_model",
    "_callback_manager",
    "_tokenizer",
    "_node_parser",
    "_prompt_helper",
    "_chat_prompt_helper",
    "_transformations",
)


@pytest.fixture
def make_llm(tokenhub_emulator: TokenHubEmulator) -> Callable[..., TokenHub]:
    """Build `TokenHub`s pointed at the emulator (by env)."""

    def make(**kwargs: Any) -> TokenHub:
        return TokenHub(**kwargs)

    return make


@pytest.fixture
def llm(make_llm: Callable[..., TokenHub]) -> TokenHub:
    """A `TokenHub` built with no arguments: key and base URL come from the emulator's env."""
    return make_llm()


@pytest.fixture
def llama_settings(llm: TokenHub) -> Iterator[Any]:
    """``Settings`` with our LLM and an offline 8-dim mock embedding; restored afterwards."""
    saved = {slot: getattr(Settings, slot) for slot in _SETTINGS_SLOTS}
    Settings.llm = llm
    Settings.embed_model = MockEmbedding(embed_dim=8)
    try:
        yield Settings
    finally:
        for slot, value in saved.items():
            setattr(Settings, slot, value)


@pytest.fixture(autouse=True)
def sync_loop(request: pytest.FixtureRequest) -> Iterator[None]:
    """For sync tests: a current event loop, closed afterwards.

    llama-index's sync paths (e.g. ``ChatMessage.estimate_tokens`` in every query) call its
    ``asyncio_run``, whose ``asyncio.get_event_loop()`` otherwise makes a loop nobody closes; its
    ResourceWarning would then fail whichever test happens to be running when it is collected.
    Async tests run on pytest-asyncio's per-test loops and are left alone.
    """
    if inspect.iscoroutinefunction(request.function):
        yield
        return
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        yield
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        asyncio.set_event_loop(None)


def chat_bodies(emulator: TokenHubEmulator) -> list[dict[str, Any]]:
    """The JSON bodies of the chat requests the emulator received, oldest first."""
    return [r.body for r in emulator.requests if r.path.endswith("/chat/completions")]


async def run_mode(mode: str, llm: TokenHub, messages: list[ChatMessage], **kwargs: Any) -> Any:
    """One call in ``mode``: the final ChatResponse and, when streamed, the chunk responses."""
    if mode == "sync":
        return llm.chat(messages, **kwargs), []
    if mode == "async":
        return await llm.achat(messages, **kwargs), []
    if mode == "stream":
        chunks = list(llm.stream_chat(messages, **kwargs))
    else:
        chunks = [c async for c in await llm.astream_chat(messages, **kwargs)]
    return chunks[-1], chunks


class Calls:
    """Two tools that record their calls."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, int]]] = []

    def multiply(self, a: int, b: int) -> int:
        """Multiply two integers."""
        self.seen.append(("multiply", {"a": a, "b": b}))
        return a * b

    def add(self, a: int, b: int) -> int:
        """Add two integers."""
        self.seen.append(("add", {"a": a, "b": b}))
        return a + b


async def agent_run(agent: Any, message: str, memory: Any) -> tuple[Any, list[Any]]:
    """Run an agent or workflow to its end: its output and every event it streamed."""
    handler = agent.run(user_msg=message, memory=memory)
    events = [event async for event in handler.stream_events()]
    return await handler, events
