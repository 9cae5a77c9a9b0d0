"""What observers see: instrumentation events, legacy callbacks, token counts and cost."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload
from llama_index.core.callbacks.base_handler import BaseCallbackHandler
from llama_index.core.callbacks.token_counting import TokenCountingHandler
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.exception import ExceptionEvent
from llama_index.core.instrumentation.events.llm import (
    LLMChatEndEvent,
    LLMChatInProgressEvent,
    LLMChatStartEvent,
    LLMCompletionEndEvent,
    LLMCompletionStartEvent,
)
from pydantic import Field

from llama_index_tokenhub import TokenHub
from tests.llama_index.fixtures import registered
from tokenhub_core import track_cost
from tokenhub_core.errors import StreamInterruptedError
from tokenhub_emulator import TokenHubEmulator

_LLM_EVENTS = (
    LLMChatStartEvent,
    LLMChatInProgressEvent,
    LLMChatEndEvent,
    LLMCompletionStartEvent,
    LLMCompletionEndEvent,
    ExceptionEvent,
)


class _Recorder(BaseEventHandler):
    events: list[BaseEvent] = Field(default_factory=list)

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        if isinstance(event, _LLM_EVENTS):
            self.events.append(event)

    def kinds(self) -> list[str]:
        return [type(e).__name__ for e in self.events]


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    with registered(_Recorder()) as handler:
        yield handler


class _LegacyRecorder(BaseCallbackHandler):
    def __init__(self) -> None:
        super().__init__(event_starts_to_ignore=[], event_ends_to_ignore=[])
        self.starts: list[dict[str, Any]] = []
        self.ends: list[dict[str, Any]] = []

    def on_event_start(
        self,
        event_type: CBEventType,
        payload: dict[str, Any] | None = None,
        event_id: str = "",
        parent_id: str = "",
        **kwargs: Any,
    ) -> str:
        if event_type == CBEventType.LLM:
            self.starts.append(payload or {})
        return event_id

    def on_event_end(
        self,
        event_type: CBEventType,
        payload: dict[str, Any] | None = None,
        event_id: str = "",
        **kwargs: Any,
    ) -> None:
        if event_type == CBEventType.LLM:
            self.ends.append(payload or {})

    def start_trace(self, trace_id: str | None = None) -> None:
        pass

    def end_trace(
        self, trace_id: str | None = None, trace_map: dict[str, list[str]] | None = None
    ) -> None:
        pass


def _user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role="user", content=text)]


@pytest.mark.parametrize("is_async", [False, True])
async def test_chat_emits_start_and_end(is_async: bool, llm: TokenHub, recorder: _Recorder) -> None:
    response = await llm.achat(_user("hi")) if is_async else llm.chat(_user("hi"))
    assert recorder.kinds() == ["LLMChatStartEvent", "LLMChatEndEvent"]
    start, end = recorder.events
    assert isinstance(start, LLMChatStartEvent) and isinstance(end, LLMChatEndEvent)
    assert start.model_dict["model_name"] == llm.model
    assert end.response is response


@pytest.mark.parametrize("is_async", [False, True])
async def test_stream_emits_one_in_progress_event_per_chunk(
    is_async: bool, llm: TokenHub, recorder: _Recorder
) -> None:
    if is_async:
        chunks = [c async for c in await llm.astream_chat(_user("stream me something"))]
    else:
        chunks = list(llm.stream_chat(_user("stream me something")))
    kinds = recorder.kinds()
    assert kinds == ["LLMChatStartEvent"] + ["LLMChatInProgressEvent"] * len(chunks) + [
        "LLMChatEndEvent"
    ]
    progress = [e for e in recorder.events if isinstance(e, LLMChatInProgressEvent)]
    assert [e.response for e in progress] == chunks
    end = recorder.events[-1]
    assert isinstance(end, LLMChatEndEvent)
    assert end.response is not None
    assert end.response.raw["usage"]["completion_tokens"] > 0


def test_completion_emits_one_event_pair(llm: TokenHub, recorder: _Recorder) -> None:
    llm.complete("hi")
    assert recorder.kinds() == ["LLMCompletionStartEvent", "LLMCompletionEndEvent"]


def test_a_broken_stream_emits_an_exception_event(
    llm: TokenHub, recorder: _Recorder, tokenhub_emulator: TokenHubEmulator
) -> None:
    tokenhub_emulator.drop_stream_after(2)
    with pytest.raises(StreamInterruptedError):
        list(llm.stream_chat(_user("a prompt long enough for a few chunks")))
    assert recorder.kinds()[0] == "LLMChatStartEvent"
    assert recorder.kinds()[-1] == "ExceptionEvent"
    assert "LLMChatEndEvent" not in recorder.kinds()


def test_legacy_callbacks_see_one_llm_event_per_call(make_llm: Callable[..., TokenHub]) -> None:
    legacy = _LegacyRecorder()
    llm = make_llm(callback_manager=CallbackManager([legacy]))
    llm.chat(_user("a"))
    list(llm.stream_chat(_user("b")))
    llm.complete("c")
    list(llm.stream_complete("d"))
    assert len(legacy.starts) == len(legacy.ends) == 4
    assert legacy.ends[0][EventPayload.RESPONSE].message.content == "[emulator] You said: a"
    assert legacy.ends[1][EventPayload.RESPONSE].message.content == "[emulator] You said: b"
    assert legacy.ends[2][EventPayload.COMPLETION].text == "[emulator] You said: c"


def test_the_start_payloads_never_carry_the_key(
    make_llm: Callable[..., TokenHub], recorder: _Recorder, tokenhub_emulator: TokenHubEmulator
) -> None:
    legacy = _LegacyRecorder()
    llm = make_llm(api_key=tokenhub_emulator.api_key, callback_manager=CallbackManager([legacy]))
    llm.chat(_user("a"))
    start = recorder.events[0]
    assert isinstance(start, LLMChatStartEvent)
    assert tokenhub_emulator.api_key not in str(start.model_dict)
    assert tokenhub_emulator.api_key not in str(legacy.starts[0][EventPayload.SERIALIZED])


async def test_token_counting_handler_counts_the_servers_usage(
    make_llm: Callable[..., TokenHub], tokenhub_emulator: TokenHubEmulator
) -> None:
    counter = TokenCountingHandler()
    llm = make_llm(callback_manager=CallbackManager([counter]))
    tokenhub_emulator.queue_reply(
        text="one two three", usage={"prompt_tokens": 101, "completion_tokens": 7}
    )
    llm.chat(_user("a"))
    list(llm.stream_chat(_user("a streamed question")))
    await llm.acomplete("a completion")
    [c async for c in await llm.astream_complete("an async streamed completion")]
    [c async for c in await llm.astream_chat(_user("async stream"))]
    ledger = tokenhub_emulator.ledger()
    assert ledger.calls == 5
    assert ledger.entries[0].prompt_tokens == 101
    assert counter.prompt_llm_token_count == ledger.prompt_tokens
    assert counter.completion_llm_token_count == ledger.completion_tokens
    assert counter.total_llm_token_count == ledger.total_tokens
    assert [e.prompt_token_count for e in counter.llm_token_counts] == [
        e.prompt_tokens for e in ledger.entries
    ]


async def test_track_cost_and_response_costs_match_the_ledger(
    llm: TokenHub, tokenhub_emulator: TokenHubEmulator
) -> None:
    costs = []
    with track_cost() as meter:
        costs.append(llm.chat(_user("one")).additional_kwargs["cost_usd"])
        costs.append(list(llm.stream_chat(_user("two")))[-1].additional_kwargs["cost_usd"])
        costs.append((await llm.achat(_user("three"))).additional_kwargs["cost_usd"])
        chunks = [c async for c in await llm.astream_chat(_user("four"))]
        costs.append(chunks[-1].additional_kwargs["cost_usd"])
    ledger = tokenhub_emulator.ledger()
    assert meter.calls == ledger.calls == 4
    assert meter.total == ledger.total_usd > Decimal(0)
    assert sum(costs) == pytest.approx(float(ledger.total_usd))
