"""Agents on Claude's native protocol (issue 13): prompt-caching middleware, thinking tool loops."""

from __future__ import annotations

from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_anthropic.middleware import AnthropicPromptCachingMiddleware
from langchain_core.messages import AIMessage
from langchain_core.tools import tool

from langchain_tokenhub import ChatTokenHub
from langchain_tokenhub.middleware import TokenHubPromptCachingMiddleware
from tokenhub_emulator import TokenHubEmulator

LONG_RULES = "You are a careful assistant. Follow the house style exactly. " * 200
ONE_HOUR = {"type": "ephemeral", "ttl": "1h"}


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"Sunny, 21 C in {city}"


def _weather_then_answer(emu: TokenHubEmulator, **reply: Any) -> None:
    call = {"name": "get_weather", "arguments": {"city": "Lisbon"}, "id": "toolu_w"}
    emu.queue_reply(tool_calls=[call], **reply)
    emu.queue_reply(text="Sunny in Lisbon.")


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
async def test_the_caching_middleware_caches_an_agent_s_prefix(
    tokenhub_emulator: TokenHubEmulator, mode: str
) -> None:
    _weather_then_answer(tokenhub_emulator)
    agent = create_agent(
        ChatTokenHub(protocol="messages"),
        tools=[get_weather],
        system_prompt=LONG_RULES,
        middleware=[TokenHubPromptCachingMiddleware(ttl="1h")],
    )
    question = {"messages": [("user", "What is the weather in Lisbon?")]}
    if mode == "invoke":
        result = agent.invoke(question)
    else:
        result = await agent.ainvoke(question)

    first = tokenhub_emulator.requests[0].body
    assert first["system"][-1]["cache_control"] == ONE_HOUR
    assert first["tools"][-1]["cache_control"] == ONE_HOUR
    assert first["messages"][-1]["content"][-1]["cache_control"] == ONE_HOUR
    answers = [m for m in result["messages"] if isinstance(m, AIMessage)]
    written = answers[0].usage_metadata["input_token_details"]["cache_creation"]
    assert written > 1024
    assert answers[0].response_metadata["cache_creation"]["ephemeral_1h_input_tokens"] == written
    assert answers[1].usage_metadata["input_token_details"]["cache_read"] == written
    assert answers[1].text == "Sunny in Lisbon."


def test_the_caching_middleware_leaves_other_models_alone_as_told() -> None:
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    agent = create_agent(
        FakeListChatModel(responses=["hi"]),
        middleware=[TokenHubPromptCachingMiddleware(unsupported_model_behavior="raise")],
    )
    with pytest.raises(ValueError, match="ChatTokenHub"):
        agent.invoke({"messages": [("user", "hi")]})


def test_langchain_anthropic_s_middleware_skips_chat_tokenhub_with_a_warning(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    # It applies to ChatAnthropic instances only (an isinstance check): hence ours.
    agent = create_agent(
        ChatTokenHub(protocol="messages"), middleware=[AnthropicPromptCachingMiddleware()]
    )
    with pytest.warns(UserWarning, match="only supports Anthropic models"):
        agent.invoke({"messages": [("user", "hi")]})
    assert "cache_control" not in str(tokenhub_emulator.requests[-1].body)


@pytest.mark.parametrize("stream", [False, True], ids=["invoke", "stream"])
def test_a_tool_loop_with_thinking_sends_each_turn_s_thinking_back_signed(
    tokenhub_emulator: TokenHubEmulator, stream: bool
) -> None:
    _weather_then_answer(tokenhub_emulator, thinking="The user wants Lisbon's weather.")
    agent = create_agent(
        ChatTokenHub(protocol="messages", thinking=2048, max_tokens=4096), tools=[get_weather]
    )
    question = {"messages": [("user", "What is the weather in Lisbon?")]}
    result: dict[str, Any] | None = None
    if stream:
        streamed = list(agent.stream(question, stream_mode="messages"))
        assert any(
            c.content_blocks and c.content_blocks[0]["type"] == "reasoning" for c, _ in streamed
        )
    else:
        result = agent.invoke(question)

    second = tokenhub_emulator.requests[1].body["messages"]
    assistant = second[1]
    assert [b["type"] for b in assistant["content"]] == ["thinking", "tool_use"]
    assert assistant["content"][0]["thinking"] == "The user wants Lisbon's weather."
    assert assistant["content"][0]["signature"]
    assert second[2]["content"][0]["type"] == "tool_result"
    if result is not None:
        first_reply = result["messages"][1]
        assert first_reply.content_blocks[0]["type"] == "reasoning"
        assert result["messages"][-1].text == "Sunny in Lisbon."
