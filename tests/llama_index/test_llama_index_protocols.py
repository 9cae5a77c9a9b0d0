"""One behavioral suite run on both protocols: what a LlamaIndex user does, over loopback HTTP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from llama_index.core.agent.workflow import AgentStream, FunctionAgent, ReActAgent
from llama_index.core.base.llms.types import ChatMessage, ChatResponse
from llama_index.core.callbacks import CallbackManager, TokenCountingHandler
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.prompts import PromptTemplate
from pydantic import BaseModel

from llama_index_tokenhub import TokenHub
from tests.llama_index._images import PNG_1X1
from tests.llama_index.fixtures import Calls, agent_run, run_mode
from tokenhub_core import track_cost
from tokenhub_core.errors import (
    BudgetExceededError,
    InternalServerError,
    RateLimitError,
)
from tokenhub_emulator import TokenHubEmulator

PROTOCOLS = ["chat/completions", "messages"]
MODES = ["sync", "async", "stream", "astream"]


def _user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role="user", content=text)]


def bodies(emulator: TokenHubEmulator) -> list[dict[str, Any]]:
    """The JSON bodies of the model calls the emulator received (either endpoint), oldest first."""
    return [
        r.body for r in emulator.requests if r.path.endswith(("/chat/completions", "/messages"))
    ]


def paths(emulator: TokenHubEmulator) -> list[str]:
    return [r.path for r in emulator.requests]


@pytest.fixture(params=PROTOCOLS)
def protocol(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make(tokenhub_emulator: TokenHubEmulator, protocol: str) -> Callable[..., TokenHub]:
    def build(**kwargs: Any) -> TokenHub:
        return TokenHub(protocol=protocol, **kwargs)

    return build


def _endpoint(protocol: str) -> str:
    return "/api/v1/messages" if protocol == "messages" else "/api/v1/chat/completions"


@pytest.mark.parametrize("mode", MODES)
async def test_chat_paths_give_text_usage_and_cost(
    mode: str, protocol: str, make: Callable[..., TokenHub], tokenhub_emulator: TokenHubEmulator
) -> None:
    final, chunks = await run_mode(mode, make(), _user("Tell me about llamas"))
    assert final.message.content == "[emulator] You said: Tell me about llamas"
    [entry] = tokenhub_emulator.ledger().entries
    extra = final.additional_kwargs
    assert (extra["prompt_tokens"], extra["completion_tokens"]) == (
        entry.prompt_tokens,
        entry.completion_tokens,
    )
    assert final.raw["usage"]["prompt_tokens"] == entry.prompt_tokens
    assert extra["cost_usd"] == pytest.approx(float(entry.cost_usd))
    assert extra["finish_reason"] == "stop"
    assert paths(tokenhub_emulator) == [_endpoint(protocol)]
    if chunks:
        assert len(chunks) > 3
        assert "".join(c.delta for c in chunks) == final.message.content


async def test_completion_and_predict(
    make: Callable[..., TokenHub], tokenhub_emulator: TokenHubEmulator
) -> None:
    llm = make()
    assert llm.complete("hi").text == "[emulator] You said: hi"
    assert (await llm.acomplete("hi")).text == "[emulator] You said: hi"
    assert "".join(r.delta or "" for r in llm.stream_complete("hi")) == "[emulator] You said: hi"
    prompt = PromptTemplate("Say something about {animal}.")
    assert llm.predict(prompt, animal="llamas").endswith("about llamas.")
    assert tokenhub_emulator.ledger().calls == 4


async def test_system_prompt_images_and_parameters_reach_the_model(
    make: Callable[..., TokenHub], tokenhub_emulator: TokenHubEmulator
) -> None:
    from llama_index.core.base.llms.types import ImageBlock, TextBlock

    llm = make(model="claude-haiku-4-5", temperature=0.3, stop=["ZZZ"], max_tokens=200)
    messages = [
        ChatMessage(role="system", content="Be brief."),
        ChatMessage(role="user", blocks=[ImageBlock(image=PNG_1X1), TextBlock(text="What?")]),
    ]
    assert llm.chat(messages).message.content
    [body] = bodies(tokenhub_emulator)
    assert (body["temperature"], body["max_tokens"]) == (0.3, 200)
    assert body["model"].endswith("claude-haiku-4-5")
    if llm.protocol == "messages":
        assert body["system"] == "Be brief."
        assert body["stop_sequences"] == ["ZZZ"]
        [image, text] = body["messages"][0]["content"]
        assert image["type"] == "image" and image["source"]["media_type"] == "image/png"
        assert text == {"type": "text", "text": "What?"}
    else:
        assert body["messages"][0] == {"role": "system", "content": "Be brief."}


@pytest.mark.parametrize("streaming", [True, False])
async def test_function_agent(
    streaming: bool,
    make: Callable[..., TokenHub],
    tokenhub_emulator: TokenHubEmulator,
    agent_memory: Any,
) -> None:
    calls = Calls()
    agent = FunctionAgent(tools=[calls.multiply, calls.add], llm=make(), streaming=streaming)
    result, events = await agent_run(
        agent, "Please multiply 3 and 4, then add 5 and 6", agent_memory()
    )
    assert sorted(calls.seen) == [("add", {"a": 5, "b": 6}), ("multiply", {"a": 3, "b": 4})]
    assert "multiply returned 12" in str(result.response.content)
    assert "add returned 11" in str(result.response.content)
    if streaming:
        streamed = [e for e in events if isinstance(e, AgentStream)]
        assert any(e.tool_calls for e in streamed)
    assert tokenhub_emulator.ledger().calls == 2


@pytest.mark.filterwarnings("ignore:is_running called from within a step:DeprecationWarning")
async def test_react_agent(
    make: Callable[..., TokenHub], tokenhub_emulator: TokenHubEmulator, agent_memory: Any
) -> None:
    calls = Calls()
    agent = ReActAgent(tools=[calls.multiply], llm=make())
    tokenhub_emulator.queue_reply(
        text='Thought: I need to multiply.\nAction: multiply\nAction Input: {"a": 7, "b": 6}'
    )
    tokenhub_emulator.queue_reply(
        text="Thought: I can answer without using any more tools.\nAnswer: 42"
    )
    result, _ = await agent_run(agent, "What is 7 times 6?", agent_memory())
    assert calls.seen == [("multiply", {"a": 7, "b": 6})]
    assert str(result.response.content) == "42"


class Album(BaseModel):
    """A music album."""

    title: str
    artist: str
    year: int


ALBUM = {"title": "Blue", "artist": "Joni Mitchell", "year": 1971}
PROMPT = PromptTemplate("Describe an album by {artist}.")


async def test_structured_output(
    make: Callable[..., TokenHub], tokenhub_emulator: TokenHubEmulator
) -> None:
    llm = make()
    album = llm.structured_predict(Album, PROMPT, artist="Joni Mitchell")
    assert isinstance(album, Album) and album.title
    assert isinstance(await llm.astructured_predict(Album, PROMPT, artist="Nina"), Album)
    tokenhub_emulator.queue_reply(tool_calls=[{"name": "Album", "arguments": ALBUM, "id": "c1"}])
    partials = list(llm.stream_structured_predict(Album, PROMPT, artist="Joni Mitchell"))
    assert len(partials) > 3
    assert partials[-1].model_dump() == ALBUM
    first = bodies(tokenhub_emulator)[0]
    if llm.protocol == "messages":
        assert first["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
        assert [t["name"] for t in first["tools"]] == ["Album"]
    else:
        assert first["tool_choice"] == "required"


async def test_errors_are_retried_then_typed(
    make: Callable[..., TokenHub], tokenhub_emulator: TokenHubEmulator
) -> None:
    llm = make(max_retries=1)
    tokenhub_emulator.fail_next(500, headers={"retry-after-ms": "1"})
    assert llm.chat(_user("hi")).message.content == "[emulator] You said: hi"
    tokenhub_emulator.fail_next(429, times=2, headers={"retry-after-ms": "1"})
    with pytest.raises(RateLimitError) as info:
        await llm.achat(_user("hi"))
    assert info.value.status_code == 429
    tokenhub_emulator.fail_next(503, times=2, headers={"retry-after-ms": "1"})
    with pytest.raises(InternalServerError):
        list(llm.stream_chat(_user("hi")))


async def test_instrumentation_events_and_token_counting(
    make: Callable[..., TokenHub], tokenhub_emulator: TokenHubEmulator
) -> None:
    seen: list[str] = []

    class Handler(BaseEventHandler):
        def handle(self, event: BaseEvent, **kwargs: Any) -> None:
            seen.append(event.class_name())

    handler = Handler()
    dispatcher = get_dispatcher()
    dispatcher.add_event_handler(handler)
    counter = TokenCountingHandler()
    try:
        llm = make(callback_manager=CallbackManager([counter]))
        response = llm.chat(_user("count me"))
        chunks = list(llm.stream_chat(_user("count me too")))
    finally:
        dispatcher.event_handlers.remove(handler)
    assert seen.count("LLMChatStartEvent") == 2
    assert seen.count("LLMChatEndEvent") == 2
    assert seen.count("LLMChatInProgressEvent") == len(chunks)
    entries = tokenhub_emulator.ledger().entries
    assert counter.prompt_llm_token_count == sum(e.prompt_tokens for e in entries)
    assert counter.completion_llm_token_count == sum(e.completion_tokens for e in entries)
    assert isinstance(response, ChatResponse)


async def test_cost_meter_and_budget(
    make: Callable[..., TokenHub], tokenhub_emulator: TokenHubEmulator
) -> None:
    llm = make()
    with track_cost() as meter:
        llm.chat(_user("one"))
        [c async for c in await llm.astream_chat(_user("two"))]
    assert meter.calls == 2
    assert meter.total_usd == pytest.approx(
        sum(float(e.cost_usd) for e in tokenhub_emulator.ledger().entries)
    )
    calls = tokenhub_emulator.ledger().calls
    with track_cost(budget_usd=1e-9), pytest.raises(BudgetExceededError):
        llm.chat(_user("three"))
    assert tokenhub_emulator.ledger().calls == calls  # refused before sending
