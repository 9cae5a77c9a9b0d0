"""The streaming methods' instrumentation is LlamaIndex's: the same events and callbacks, in the
same order, as ``llm_chat_callback`` / ``llm_completion_callback`` give, on every way a stream
can go; only the per-response events are skipped while nothing listens."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from llama_index.core.base.llms.generic_utils import (
    astream_chat_to_completion_decorator,
    stream_chat_to_completion_decorator,
)
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
)
from llama_index.core.callbacks import CallbackManager
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from pydantic import Field

from llama_index_tokenhub import TokenHub
from tests.llama_index.fixtures import registered
from tests.llama_index.test_llama_index_observability import _LegacyRecorder
from tokenhub_core.errors import TokenHubError
from tokenhub_emulator import TokenHubEmulator


class _LlamaIndexDecorated(TokenHub):
    """`TokenHub` with LlamaIndex's own decorators on the streaming methods: the reference."""

    @llm_chat_callback()
    def stream_chat(self, messages: Any, **kwargs: Any) -> ChatResponseGen:
        return self._stream_chat(messages, **kwargs)

    @llm_chat_callback()
    async def astream_chat(self, messages: Any, **kwargs: Any) -> ChatResponseAsyncGen:
        return await self._astream_chat(messages, **kwargs)

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        return stream_chat_to_completion_decorator(self._stream_chat)(prompt, **kwargs)

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        return await astream_chat_to_completion_decorator(self._astream_chat)(prompt, **kwargs)


class _AllEvents(BaseEventHandler):
    events: list[BaseEvent] = Field(default_factory=list)

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.events.append(event)


@pytest.fixture
def heard() -> Iterator[_AllEvents]:
    with registered(_AllEvents()) as handler:
        yield handler


_PROMPT = "tell me a story in a few words"
_MESSAGES = [ChatMessage(role="user", content=_PROMPT)]
_UNRECORDED_FIELDS = {"id_", "timestamp", "span_id"}


def _shape(value: Any, refs: list[tuple[str, Any]]) -> Any:
    """``value`` with the objects of one run replaced by their names, so runs compare."""
    for name, obj in refs:
        if value is obj:
            return name
    if isinstance(value, BaseException):
        return type(value).__name__
    if isinstance(value, dict):
        return {str(k): _shape(v, refs) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if list(value) == _MESSAGES:
            return "messages"
        return [_shape(v, refs) for v in value]
    return value


def _trace(events: list[BaseEvent], legacy: _LegacyRecorder, chunks: list[Any]) -> list[Any]:
    refs = [(f"chunk {i}", chunk) for i, chunk in enumerate(chunks)]
    spans = {e.span_id for e in events}
    shaped: list[Any] = [("one span id", len(spans) == 1 and None not in spans)]
    for event in events:
        fields = {
            name: _shape(getattr(event, name), refs)
            for name in type(event).model_fields
            if name not in _UNRECORDED_FIELDS
        }
        shaped.append((type(event).__name__, fields))
    shaped.append(("callback starts", _shape(legacy.starts, refs)))
    shaped.append(("callback ends", _shape(legacy.ends, refs)))
    return shaped


async def _open(llm: TokenHub, method: str, way: str, kwargs: dict[str, Any]) -> Any:
    completion = "complete" in method
    subject: Any = _PROMPT if completion else _MESSAGES
    if way == "called by keyword":
        kwargs = {"prompt" if completion else "messages": subject, "max_tokens": 64}
        result = getattr(llm, method)(**kwargs)
    else:
        result = getattr(llm, method)(subject, **kwargs)
    return await result if method.startswith("a") else result


_END = object()


async def _next(stream: Any) -> Any:
    if hasattr(stream, "__anext__"):
        return await anext(stream, _END)
    return next(stream, _END)


async def _run(llm: TokenHub, method: str, way: str, emulator: TokenHubEmulator) -> list[Any]:
    """Stream ``method`` the ``way`` named; return the responses the caller got."""
    chunks: list[Any] = []
    kwargs: dict[str, Any] = {"temperature": 7.0} if way == "refused before sending" else {}
    if way == "cut in the middle":
        emulator.drop_stream_after(2)
    if way == "answered 400":
        emulator.fail_next(400, message="no")
    try:
        stream = await _open(llm, method, way, kwargs)
        while (chunk := await _next(stream)) is not _END:
            chunks.append(chunk)
            if way == "abandoned after one response":
                await stream.aclose() if hasattr(stream, "aclose") else stream.close()
                break
    except TokenHubError:
        assert way in {"cut in the middle", "answered 400", "refused before sending"}
    return chunks


@pytest.mark.parametrize(
    "way",
    [
        "read whole",
        "called by keyword",
        "abandoned after one response",
        "cut in the middle",
        "answered 400",
        "refused before sending",
    ],
)
@pytest.mark.parametrize(
    "method", ["stream_chat", "astream_chat", "stream_complete", "astream_complete"]
)
async def test_the_events_are_llama_indexs(
    method: str,
    way: str,
    make_llm: Callable[..., TokenHub],
    heard: _AllEvents,
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    traces = []
    for cls in (_LlamaIndexDecorated, TokenHub):
        legacy = _LegacyRecorder()
        llm = cls(callback_manager=CallbackManager([legacy]), max_retries=0)
        heard.events.clear()
        chunks = await _run(llm, method, way, tokenhub_emulator)
        traces.append(_trace(list(heard.events), legacy, chunks))
    theirs, ours = traces
    assert ours == theirs
    kinds = [entry[0] for entry in ours]
    assert any(kind.endswith("StartEvent") for kind in kinds)
    if way == "read whole":
        assert (
            kinds.count("LLMChatInProgressEvent") + kinds.count("LLMCompletionInProgressEvent") > 2
        )


@pytest.mark.parametrize("where", ["root", "llama_index.core.llms.callbacks"])
def test_a_handler_added_mid_stream_hears_the_rest(where: str, llm: TokenHub) -> None:
    stream = llm.stream_chat(_MESSAGES)
    first = next(stream)
    with registered(_AllEvents(), where) as handler:
        rest = list(stream)
    progress = [e for e in handler.events if type(e).__name__ == "LLMChatInProgressEvent"]
    assert len(rest) > 1
    heard_responses = [e.response for e in progress]  # type: ignore[attr-defined]
    assert heard_responses == rest
    assert all(response is not first for response in heard_responses)
    assert type(handler.events[-1]).__name__ == "LLMChatEndEvent"
