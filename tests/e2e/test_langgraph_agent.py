"""A LangGraph agent (langchain.agents.create_agent) running a two-tool loop on ChatTokenHub."""

from __future__ import annotations

from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, AIMessageChunk, ToolMessage
from langchain_core.tools import tool

from langchain_tokenhub import ChatTokenHub
from tokenhub_emulator import TokenHubEmulator


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"21C and sunny in {city}"


@tool
def get_local_time(city: str) -> str:
    """Get the local time in a city."""
    return f"14:05 in {city}"


QUESTION = {"messages": [("user", "Check the weather in Paris, then the local time there.")]}


@pytest.mark.parametrize("mode", ["invoke", "ainvoke", "stream", "astream"])
async def test_agent_completes_a_two_tool_loop(
    tokenhub_emulator: TokenHubEmulator, mode: str
) -> None:
    # The model calls one tool per turn: weather, then time, then answers from both results.
    tokenhub_emulator.queue_reply(
        text="Checking the weather first.",
        tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call_1"}],
    )
    tokenhub_emulator.queue_reply(
        tool_calls=[{"name": "get_local_time", "arguments": {"city": "Paris"}, "id": "call_2"}]
    )
    agent = create_agent(
        ChatTokenHub(), [get_weather, get_local_time], system_prompt="Use the tools."
    )

    tokens: list[str] = []
    if mode == "invoke":
        state = agent.invoke(QUESTION)
    elif mode == "ainvoke":
        state = await agent.ainvoke(QUESTION)
    else:
        state = await _streamed(agent, mode, tokens)

    messages = state["messages"]
    assert [type(m).__name__ for m in messages] == [
        "HumanMessage",
        "AIMessage",
        "ToolMessage",
        "AIMessage",
        "ToolMessage",
        "AIMessage",
    ]
    tool_results = [m for m in messages if isinstance(m, ToolMessage)]
    assert [(m.name, m.content) for m in tool_results] == [
        ("get_weather", "21C and sunny in Paris"),
        ("get_local_time", "14:05 in Paris"),
    ]
    final = messages[-1]
    assert isinstance(final, AIMessage)
    assert not final.tool_calls
    assert "14:05 in Paris" in final.text  # the emulator answers from the last tool result
    assert all(m.usage_metadata for m in messages if isinstance(m, AIMessage))

    requests = tokenhub_emulator.requests
    assert len(requests) == 3
    assert {bool(r.body.get("stream")) for r in requests} == {mode in ("stream", "astream")}
    last_sent = requests[-1].body["messages"]
    assert [m["role"] for m in last_sent] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
    ]
    assert last_sent[3]["tool_call_id"] == last_sent[2]["tool_calls"][0]["id"]
    if tokens:
        assert "".join(tokens).endswith(final.text)


async def _streamed(agent: Any, mode: str, tokens: list[str]) -> dict[str, Any]:
    """Stream model tokens and state updates; the final state."""
    state: dict[str, Any] = {}
    if mode == "stream":
        events = list(agent.stream(QUESTION, stream_mode=["messages", "values"]))
    else:
        events = [e async for e in agent.astream(QUESTION, stream_mode=["messages", "values"])]
    for kind, payload in events:
        if kind == "values":
            state = payload
        elif isinstance(payload[0], AIMessageChunk):
            tokens.append(payload[0].text)
    return state
