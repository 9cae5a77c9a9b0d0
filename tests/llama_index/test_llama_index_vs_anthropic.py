"""Side by side: llama-index's `Anthropic` and `TokenHub(protocol="messages")` on one emulator.

The same common paths give what a user reads the same way: text, streamed text, tool calls,
thinking (its text and signature), cache usage and PDF answers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    CacheControl,
    CachePoint,
    ChatMessage,
    DocumentBlock,
    TextBlock,
    ThinkingBlock,
)
from llama_index.core.tools import FunctionTool
from llama_index.llms.anthropic import Anthropic
from llama_index.llms.anthropic import utils as anthropic_utils

from llama_index_tokenhub import TokenHub
from tests.llama_index.test_llama_index_native import LONG, PDF
from tokenhub_emulator import TokenHubEmulator

# The anchor sends `temperature` for every model but the newest, and anthropic 2.x's
# ``messages.create`` takes none: Opus 4.7 is the model it can call unpatched.
MODEL = "claude-opus-4-7"


def _add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


ADD = FunctionTool.from_defaults(fn=_add, name="add")


@pytest.fixture
async def pair(
    tokenhub_emulator: TokenHubEmulator, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Any]:
    # llama-index-llms-anthropic 0.12.3 builds each message with ``MessageParam(...)``, a
    # TypedDict in anthropic 1.x but a Union since 2.x (installed: 2.15), which cannot be
    # called: every chat fails with "Cannot instantiate typing.Union". Calling it was only ever
    # building a dict, so the anchor gets ``dict`` back.
    monkeypatch.setattr(anthropic_utils, "MessageParam", dict)
    anchors: list[Anthropic] = []

    def make(**kwargs: Any) -> tuple[Anthropic, TokenHub]:
        anthropic = Anthropic(
            model=MODEL,
            base_url=tokenhub_emulator.url,
            api_key=tokenhub_emulator.api_key,
            max_retries=0,
            **{("thinking_dict" if k == "thinking" else k): v for k, v in kwargs.items()},
        )
        anchors.append(anthropic)
        ours = TokenHub(model=MODEL, protocol="messages", **kwargs)
        return anthropic, ours

    yield make
    for anthropic in anchors:  # its SDK clients keep pooled connections open until closed
        anthropic._client.close()
        await anthropic._aclient.close()


def _user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role="user", content=text)]


def _thinking(message: ChatMessage) -> list[tuple[str | None, str | None]]:
    return [
        (b.content, b.additional_information.get("signature"))
        for b in message.blocks
        if isinstance(b, ThinkingBlock)
    ]


def test_chat_and_complete(pair: Any) -> None:
    anthropic, ours = pair(max_tokens=512)
    theirs_reply = anthropic.chat(_user("Tell me about llamas"))
    our_reply = ours.chat(_user("Tell me about llamas"))
    assert our_reply.message.content == theirs_reply.message.content
    assert ours.complete("hi").text == anthropic.complete("hi").text


async def test_streamed_text(pair: Any) -> None:
    anthropic, ours = pair(max_tokens=512)
    theirs = list(anthropic.stream_chat(_user("Stream a story")))
    mine = list(ours.stream_chat(_user("Stream a story")))
    assert mine[-1].message.content == theirs[-1].message.content
    assert "".join(c.delta or "" for c in mine) == "".join(c.delta or "" for c in theirs)
    atheirs = [c async for c in await anthropic.astream_chat(_user("Again"))]
    amine = [c async for c in await ours.astream_chat(_user("Again"))]
    assert amine[-1].message.content == atheirs[-1].message.content


def test_tool_calls(pair: Any) -> None:
    anthropic, ours = pair(max_tokens=512)
    theirs = anthropic.chat_with_tools([ADD], user_msg="Please add 5 and 6")
    mine = ours.chat_with_tools([ADD], user_msg="Please add 5 and 6")
    [their_call] = anthropic.get_tool_calls_from_response(theirs)
    [my_call] = ours.get_tool_calls_from_response(mine)
    assert (my_call.tool_name, my_call.tool_kwargs) == (
        their_call.tool_name,
        their_call.tool_kwargs,
    )
    assert my_call.tool_id == their_call.tool_id or my_call.tool_id.startswith("toolu_")


def test_thinking(pair: Any) -> None:
    anthropic, ours = pair(max_tokens=4096, thinking={"type": "adaptive"})
    theirs = anthropic.chat(_user("What is 2 + 3?"))
    mine = ours.chat(_user("What is 2 + 3?"))
    assert _thinking(mine.message) == _thinking(theirs.message)
    assert _thinking(mine.message)[0][1]  # signed
    assert mine.message.content == theirs.message.content
    their_stream = list(anthropic.stream_chat(_user("What is 2 + 3?")))
    my_stream = list(ours.stream_chat(_user("What is 2 + 3?")))
    assert _thinking(my_stream[-1].message) == _thinking(their_stream[-1].message)
    their_deltas = "".join(
        c.message.additional_kwargs.get("thinking_delta") or "" for c in their_stream
    )
    my_deltas = "".join(c.message.additional_kwargs.get("thinking_delta") or "" for c in my_stream)
    assert my_deltas == their_deltas


def test_cache_usage(pair: Any, tokenhub_emulator: TokenHubEmulator) -> None:
    anthropic, ours = pair(max_tokens=256)

    def conversation(question: str) -> list[ChatMessage]:
        cache = CachePoint(cache_control=CacheControl(type="ephemeral"))
        blocks = [TextBlock(text=LONG), cache, TextBlock(text=question)]
        return [ChatMessage(role="user", blocks=blocks)]

    their_usage = []
    for question in ("one", "two"):
        usage = anthropic.chat(conversation(question)).raw["usage"]
        their_usage.append(usage)
    tokenhub_emulator.clear_cache()
    mine = [ours.chat(conversation(q)).additional_kwargs for q in ("one", "two")]
    for theirs, my in zip(their_usage, mine, strict=True):
        assert my["cache_creation_input_tokens"] == theirs.cache_creation_input_tokens
        assert my["cache_read_input_tokens"] == theirs.cache_read_input_tokens
        # Ours counts the whole prompt; Anthropic's input_tokens is the uncached part only.
        assert my["prompt_tokens"] == (
            theirs.input_tokens
            + theirs.cache_creation_input_tokens
            + theirs.cache_read_input_tokens
        )
    assert mine[1]["cache_read_input_tokens"] > 2_000


def test_pdf(pair: Any) -> None:
    anthropic, ours = pair(max_tokens=512)
    message = ChatMessage(
        role="user", blocks=[DocumentBlock(data=PDF), TextBlock(text="What is in this PDF?")]
    )
    assert ours.chat([message]).message.content == anthropic.chat([message]).message.content


@pytest.mark.parametrize("thinking", [None, {"type": "adaptive"}])
async def test_function_agent(pair: Any, thinking: Any, agent_memory: Any) -> None:
    from llama_index.core.agent.workflow import FunctionAgent, ToolCallResult

    anthropic, ours = pair(max_tokens=4096, thinking=thinking)
    results = []
    for llm in (anthropic, ours):
        agent = FunctionAgent(tools=[ADD], llm=llm)
        handler = agent.run(user_msg="Please add 5 and 6", memory=agent_memory())
        events = [e async for e in handler.stream_events()]
        result = await handler
        calls = [
            (e.tool_name, e.tool_kwargs, str(e.tool_output))
            for e in events
            if isinstance(e, ToolCallResult)
        ]
        results.append((str(result.response.content), calls))
    assert results[1] == results[0]
    assert results[1][1] == [("add", {"a": 5, "b": 6}, "11")]
