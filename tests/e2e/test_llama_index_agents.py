"""LlamaIndex agents on `TokenHub`: FunctionAgent, AgentWorkflow, ReActAgent, structured output."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core.agent.workflow import (
    AgentOutput,
    AgentStream,
    AgentWorkflow,
    FunctionAgent,
    ReActAgent,
    ToolCallResult,
)
from pydantic import BaseModel

from llama_index_tokenhub import TokenHub
from tests.llama_index import fixtures
from tests.llama_index.fixtures import Calls, agent_run, chat_bodies
from tokenhub_emulator import TokenHubEmulator

llm = fixtures.llm
make_llm = fixtures.make_llm


@pytest.mark.parametrize("streaming", [True, False])
async def test_function_agent_with_two_tools(
    streaming: bool, llm: TokenHub, tokenhub_emulator: TokenHubEmulator, agent_memory: Any
) -> None:
    calls = Calls()
    agent = FunctionAgent(tools=[calls.multiply, calls.add], llm=llm, streaming=streaming)
    result, events = await agent_run(
        agent, "Please multiply 3 and 4, then add 5 and 6", agent_memory()
    )
    assert sorted(calls.seen) == [("add", {"a": 5, "b": 6}), ("multiply", {"a": 3, "b": 4})]
    assert str(result.response.content).startswith("[emulator] Tool results:")
    assert "multiply returned 12" in str(result.response.content)
    assert "add returned 11" in str(result.response.content)
    tool_results = [e for e in events if isinstance(e, ToolCallResult)]
    assert {r.tool_name for r in tool_results} == {"multiply", "add"}
    streamed = [e for e in events if isinstance(e, AgentStream)]
    if streaming:
        assert any(e.tool_calls for e in streamed), "tool calls are visible while streaming"
        assert "".join(e.delta for e in streamed).endswith(str(result.response.content))
    else:
        assert streamed == []
    first, second = chat_bodies(tokenhub_emulator)
    assert bool(first.get("stream")) is streaming
    sent_ids = {c["id"] for c in second["messages"][-3]["tool_calls"]}
    assert sent_ids == {m["tool_call_id"] for m in second["messages"][-2:]}


async def test_function_agent_keeps_its_memory_across_runs(
    llm: TokenHub, tokenhub_emulator: TokenHubEmulator, agent_memory: Any
) -> None:
    calls = Calls()
    agent = FunctionAgent(tools=[calls.multiply], llm=llm)
    memory = agent_memory()
    await agent.run(user_msg="Please multiply 2 and 5", memory=memory)
    second = await agent.run(user_msg="Thanks, that is all", memory=memory)
    assert str(second.response.content) == "[emulator] You said: Thanks, that is all"
    last = chat_bodies(tokenhub_emulator)[-1]["messages"]
    assert [m["role"] for m in last] == ["user", "assistant", "tool", "assistant", "user"]


async def test_agent_workflow_hands_off(
    llm: TokenHub, tokenhub_emulator: TokenHubEmulator, agent_memory: Any
) -> None:
    calls = Calls()
    calculator = FunctionAgent(
        name="calculator",
        description="Does arithmetic.",
        tools=[calls.multiply],
        llm=llm,
        can_handoff_to=["writer"],
    )
    writer = FunctionAgent(name="writer", description="Writes prose.", llm=llm)
    workflow = AgentWorkflow(agents=[calculator, writer], root_agent="calculator")
    tokenhub_emulator.queue_reply(
        tool_calls=[
            {
                "name": "handoff",
                "arguments": {"to_agent": "writer", "reason": "needs prose"},
                "id": "call_handoff",
            }
        ]
    )
    result, events = await agent_run(workflow, "Write a haiku about llamas", agent_memory())
    assert result.current_agent_name == "writer"
    assert str(result.response.content).startswith("[emulator]")
    names = [e.current_agent_name for e in events if isinstance(e, AgentOutput)]
    assert names[0] == "calculator"
    assert names[-1] == "writer"
    assert calls.seen == []


# llama-index-core 0.14's ReActAgent reads ctx.is_running inside its step, which workflows deprecates.
@pytest.mark.filterwarnings("ignore:is_running called from within a step:DeprecationWarning")
@pytest.mark.parametrize("streaming", [True, False])
async def test_react_agent(
    streaming: bool, llm: TokenHub, tokenhub_emulator: TokenHubEmulator, agent_memory: Any
) -> None:
    calls = Calls()
    agent = ReActAgent(tools=[calls.multiply, calls.add], llm=llm, streaming=streaming)
    tokenhub_emulator.queue_reply(
        text='Thought: I need to multiply.\nAction: multiply\nAction Input: {"a": 7, "b": 6}'
    )
    tokenhub_emulator.queue_reply(
        text="Thought: I can answer without using any more tools.\nAnswer: 42"
    )
    result, _ = await agent_run(agent, "What is 7 times 6?", agent_memory())
    assert calls.seen == [("multiply", {"a": 7, "b": 6})]
    assert str(result.response.content) == "42"
    second = chat_bodies(tokenhub_emulator)[1]
    assert "tools" not in second  # ReAct speaks in text, not the tools API
    assert "Observation: 42" in str(second["messages"])


class Product(BaseModel):
    """The result of a multiplication."""

    a: int
    b: int
    product: int


async def test_agent_with_output_cls(
    llm: TokenHub, tokenhub_emulator: TokenHubEmulator, agent_memory: Any
) -> None:
    calls = Calls()
    agent = FunctionAgent(tools=[calls.multiply], llm=llm, output_cls=Product)
    tokenhub_emulator.queue_reply(
        tool_calls=[{"name": "multiply", "arguments": {"a": 3, "b": 9}, "id": "call_m"}]
    )
    tokenhub_emulator.queue_reply(text="3 times 9 is 27.")
    tokenhub_emulator.queue_reply(
        tool_calls=[{"name": "Product", "arguments": {"a": 3, "b": 9, "product": 27}, "id": "c"}]
    )
    result, _ = await agent_run(agent, "Multiply 3 by 9", agent_memory())
    assert result.structured_response == {"a": 3, "b": 9, "product": 27}
    assert result.get_pydantic_model(Product) == Product(a=3, b=9, product=27)
    last = chat_bodies(tokenhub_emulator)[-1]
    assert last["tool_choice"] == "required"
    assert [t["function"]["name"] for t in last["tools"]] == ["Product"]
