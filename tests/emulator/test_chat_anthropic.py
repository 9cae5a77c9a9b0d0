"""The anchor: langchain-anthropic's ``ChatAnthropic`` works against the emulator's native endpoint.

Its common paths (invoke, stream, tools, structured output, a tool loop with thinking, prompt
caching, token counting) run here as a user would run them against Claude.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from tests.emulator.native_helpers import MODEL
from tokenhub_emulator import TokenHubEmulator

langchain_anthropic = pytest.importorskip("langchain_anthropic")
messages = pytest.importorskip("langchain_core.messages")

LONG = "The Orin valley keeps its own calendar of harvests and feasts. " * 190


def _llm(emulator: TokenHubEmulator, **params: Any) -> Any:
    return langchain_anthropic.ChatAnthropic(
        model=MODEL, base_url=emulator.url, api_key=emulator.api_key, max_retries=0, **params
    )


def get_weather(location: str) -> str:
    """Get the current weather for a location."""
    return "Sunny"


class Joke(BaseModel):
    setup: str
    punchline: str


def test_invoke_and_stream(tokenhub_emulator: TokenHubEmulator) -> None:
    llm = _llm(tokenhub_emulator)
    reply = llm.invoke("Hello anchor")
    assert reply.content == "[emulator] You said: Hello anchor"
    assert reply.usage_metadata["input_tokens"] > 0
    chunks = list(llm.stream("Stream anchor"))
    assert len(chunks) > 3
    text = "".join(c.content for c in chunks if isinstance(c.content, str))
    assert text == "[emulator] You said: Stream anchor"


@pytest.mark.parametrize("method", ["function_calling", "json_schema"])
def test_tools_and_structured_output(tokenhub_emulator: TokenHubEmulator, method: str) -> None:
    llm = _llm(tokenhub_emulator)
    call = llm.bind_tools([get_weather]).invoke("What's the weather in Paris?")
    assert [(c["name"], c["args"]) for c in call.tool_calls] == [
        ("get_weather", {"location": "Paris"})
    ]
    joke = llm.with_structured_output(Joke, method=method).invoke("Tell me a joke about cats")
    assert isinstance(joke, Joke)


def test_a_tool_loop_with_thinking(tokenhub_emulator: TokenHubEmulator) -> None:
    thinking = {"type": "enabled", "budget_tokens": 1024}
    llm = _llm(tokenhub_emulator, max_tokens=3000, thinking=thinking).bind_tools([get_weather])
    question = messages.HumanMessage("What's the weather in Paris?")
    first = llm.invoke([question])
    assert first.content[0]["type"] == "thinking" and first.content[0]["signature"]
    result = messages.ToolMessage("Sunny", tool_call_id=first.tool_calls[0]["id"])
    final = llm.invoke([question, first, result])
    assert final.content[-1]["text"] == "[emulator] Tool results: get_weather returned Sunny"


def test_prompt_caching_and_token_counting(tokenhub_emulator: TokenHubEmulator) -> None:
    llm = _llm(tokenhub_emulator)
    system = messages.SystemMessage(
        [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}]
    )
    first = llm.invoke([system, messages.HumanMessage("Hi")]).usage_metadata
    second = llm.invoke([system, messages.HumanMessage("Hi again")]).usage_metadata
    # langchain-anthropic reports writes by TTL (and then 0 as the generic cache_creation).
    written = first["input_token_details"]["ephemeral_5m_input_tokens"]
    assert written > 2048
    assert second["input_token_details"]["cache_read"] == written
    assert second["input_tokens"] > written  # LangChain counts the whole prompt
    counted = llm.get_num_tokens_from_messages([messages.HumanMessage("Hi")])
    assert counted == llm.invoke("Hi").usage_metadata["input_tokens"]
