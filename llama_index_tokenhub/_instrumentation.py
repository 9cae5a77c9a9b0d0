"""LlamaIndex's instrumentation for the streaming methods, with per-response events built only
when something listens.

``llm_chat_callback`` and ``llm_completion_callback`` build an in-progress event for every
streamed response (a fresh uuid4, a timestamp, pydantic validation) and dispatch it even when no
handler is registered. On a live stream, one response per network read, that is over a quarter
of `TokenHub`'s CPU per token. The decorators here emit the same events in the same order, make
the same callback-manager calls and honour the rate limiter, as LlamaIndex's do for a method that
returns a generator; the in-progress event is built only when an event handler other than
LlamaIndex's null handler is on the dispatcher chain, checked for each response, so a handler
added in the middle of a stream hears the rest of it.
``tests/llama_index/test_llama_index_instrumentation.py`` compares the two decorators event by
event.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload
from llama_index.core.instrumentation.event_handlers import NullEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.exception import ExceptionEvent
from llama_index.core.instrumentation.events.llm import (
    LLMChatEndEvent,
    LLMChatInProgressEvent,
    LLMChatStartEvent,
    LLMCompletionEndEvent,
    LLMCompletionInProgressEvent,
    LLMCompletionStartEvent,
)
from llama_index.core.instrumentation.span import active_span_id
from llama_index.core.llms.callbacks import dispatcher

if TYPE_CHECKING:  # llama-index-core re-exports it without declaring it
    from llama_index_instrumentation.dispatcher import Dispatcher

__all__ = ["stream_chat_callback", "stream_completion_callback"]


@dataclass(frozen=True, slots=True)
class _Kind:
    """What differs between a chat stream's events and a completion stream's."""

    trace: str
    start: Callable[..., BaseEvent]
    progress: Callable[..., BaseEvent]
    end: Callable[..., BaseEvent]
    subject: str  # the event field holding the input: "messages" or "prompt"
    subject_key: EventPayload
    result_key: EventPayload


_CHAT = _Kind(
    "chat",
    LLMChatStartEvent,
    LLMChatInProgressEvent,
    LLMChatEndEvent,
    "messages",
    EventPayload.MESSAGES,
    EventPayload.RESPONSE,
)
_COMPLETION = _Kind(
    "completion",
    LLMCompletionStartEvent,
    LLMCompletionInProgressEvent,
    LLMCompletionEndEvent,
    "prompt",
    EventPayload.PROMPT,
    EventPayload.COMPLETION,
)


def listening() -> bool:
    """Whether dispatching an event from LlamaIndex's LLM callbacks reaches a handler that does
    something: the chain ``Dispatcher.event`` walks, its null handlers left out."""
    current: Dispatcher | None = dispatcher
    while current is not None:
        for handler in current.event_handlers:
            if type(handler) is not NullEventHandler:
                return True
        current = current.parent if current.propagate else None
    return False


def _callback_manager(llm: Any) -> CallbackManager:
    if not isinstance(getattr(llm, "callback_manager", None), CallbackManager):
        llm.callback_manager = CallbackManager()
    return llm.callback_manager  # type: ignore[no-any-return]


class _Call:
    """One streaming call's instrumentation, from the start events to the end events."""

    __slots__ = ("event_id", "kind", "manager", "span_id", "subject")

    def __init__(
        self, kind: _Kind, llm: Any, manager: CallbackManager, subject: Any, kwargs: dict[str, Any]
    ) -> None:
        self.kind = kind
        self.subject = subject
        self.manager = manager
        self.span_id = span_id = active_span_id.get()
        model_dict = llm.to_payload()
        dispatcher.event(
            kind.start(
                model_dict=model_dict,
                additional_kwargs=kwargs,
                span_id=span_id,
                **{kind.subject: subject},
            )
        )
        self.event_id = manager.on_event_start(
            CBEventType.LLM,
            payload={
                kind.subject_key: subject,
                EventPayload.ADDITIONAL_KWARGS: kwargs,
                EventPayload.SERIALIZED: model_dict,
            },
        )

    def progress(self, response: Any) -> None:
        kind = self.kind
        dispatcher.event(
            kind.progress(response=response, span_id=self.span_id, **{kind.subject: self.subject})
        )

    def failed(self, error: BaseException) -> None:
        self.manager.on_event_end(
            CBEventType.LLM, payload={EventPayload.EXCEPTION: error}, event_id=self.event_id
        )

    def failed_in_stream(self, error: BaseException) -> None:
        self.failed(error)
        dispatcher.event(ExceptionEvent(exception=error, span_id=self.span_id))

    def ended(self, last: Any) -> None:
        kind = self.kind
        self.manager.on_event_end(
            CBEventType.LLM,
            payload={kind.subject_key: self.subject, kind.result_key: last},
            event_id=self.event_id,
        )
        dispatcher.event(
            kind.end(response=last, span_id=self.span_id, **{kind.subject: self.subject})
        )


def _relay(call: _Call, responses: Iterator[Any]) -> Iterator[Any]:
    last = None
    try:
        for response in responses:
            if listening():
                call.progress(response)
            yield response
            last = response
    except BaseException as error:
        call.failed_in_stream(error)
        raise
    call.ended(last)


async def _arelay(call: _Call, responses: AsyncIterator[Any]) -> AsyncIterator[Any]:
    last = None
    try:
        async for response in responses:
            if listening():
                call.progress(response)
            yield response
            last = response
    except BaseException as error:
        call.failed_in_stream(error)
        raise
    call.ended(last)


def _chat_input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, tuple[Any, ...]]:
    """The messages and the positional arguments to call with, as LlamaIndex's
    ``wrapped_llm_chat(_self, messages, **kwargs)`` binds them."""
    if args:
        return args[0], args
    messages = kwargs.pop("messages")
    return messages, (messages,)


def _completion_input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, tuple[Any, ...]]:
    """The prompt, as LlamaIndex's ``extract_prompt`` finds it; the arguments are unchanged."""
    if args:
        return str(args[0]), args
    if "prompt" in kwargs:
        return kwargs["prompt"], args
    raise ValueError("No prompt provided in positional or keyword arguments")


_Input = Callable[[tuple[Any, ...], dict[str, Any]], tuple[Any, tuple[Any, ...]]]


def _instrument(kind: _Kind, input_of: _Input, method: Callable[..., Any]) -> Any:
    if inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        async def instrumented_async(llm: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            subject, args = input_of(args, kwargs)
            manager = _callback_manager(llm)
            with manager.as_trace(kind.trace):
                call = _Call(kind, llm, manager, subject, kwargs)
                if llm.rate_limiter is not None:
                    await llm.rate_limiter.async_acquire()
                try:
                    responses = await method(llm, *args, **kwargs)
                except BaseException as error:
                    call.failed(error)
                    raise
                return _arelay(call, responses)

        return instrumented_async

    @functools.wraps(method)
    def instrumented(llm: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        subject, args = input_of(args, kwargs)
        manager = _callback_manager(llm)
        with manager.as_trace(kind.trace):
            call = _Call(kind, llm, manager, subject, kwargs)
            if llm.rate_limiter is not None:
                llm.rate_limiter.acquire()
            try:
                responses = method(llm, *args, **kwargs)
            except BaseException as error:
                call.failed(error)
                raise
            return _relay(call, responses)

    return instrumented


def stream_chat_callback(method: Callable[..., Any]) -> Any:
    """LlamaIndex's ``llm_chat_callback()``, for ``stream_chat`` and ``astream_chat``."""
    return _instrument(_CHAT, _chat_input, method)


def stream_completion_callback(method: Callable[..., Any]) -> Any:
    """LlamaIndex's ``llm_completion_callback()``, for ``stream_complete`` and
    ``astream_complete``."""
    return _instrument(_COMPLETION, _completion_input, method)
