"""ChatTokenHub on Claude's native protocol, end to end against the emulator (issue 13).

One parametrized suite where both protocols must behave the same, then what only the native
protocol does: prompt caching, extended thinking, PDFs.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from langchain_core.exceptions import ModelAPIError, OutputParserException
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel

from langchain_tokenhub import ChatTokenHub
from tests.langchain.test_chat_model import MODES, call
from tokenhub_core import track_cost
from tokenhub_core.catalog import price_call
from tokenhub_core.errors import (
    BudgetExceededError,
    InternalServerError,
    InvalidParameterError,
    RateLimitError,
)
from tokenhub_emulator import TokenHubEmulator

PROTOCOLS = ["chat/completions", "messages"]
PDF = base64.b64encode(b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n").decode()
LONG_RULES = "You are a careful assistant. Follow the house style exactly. " * 200  # > 1024 tokens
EPHEMERAL = {"type": "ephemeral"}


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"Sunny in {city}"


class Person(BaseModel):
    """A person."""

    name: str
    age: int


def _last(emu: TokenHubEmulator) -> dict[str, Any]:
    body: dict[str, Any] = emu.requests[-1].body
    return body


# --- the same behavior on both protocols ---------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_text_usage_and_cost_are_the_same_on_both_protocols(
    tokenhub_emulator: TokenHubEmulator, protocol: str, mode: str
) -> None:
    tokenhub_emulator.queue_reply(
        text="Hello!", usage={"prompt_tokens": 50, "completion_tokens": 4}
    )
    message, chunks = await call(ChatTokenHub(protocol=protocol), "Say hello", mode)

    assert tokenhub_emulator.requests[-1].protocol == protocol
    assert message.content == "Hello!"
    assert message.usage_metadata["input_tokens"] == 50
    assert message.usage_metadata["output_tokens"] == 4
    assert message.response_metadata["finish_reason"] == "stop"
    assert message.response_metadata["cost_usd"] == pytest.approx((50 * 3 + 4 * 15) / 1e6)
    if chunks:
        assert sum(1 for c in chunks if c.usage_metadata) == 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_tool_calls_and_tool_results_round_trip_on_both_protocols(
    tokenhub_emulator: TokenHubEmulator, protocol: str, mode: str
) -> None:
    call_spec = {"name": "get_weather", "arguments": {"city": "Oslo"}, "id": "toolu_1"}
    tokenhub_emulator.queue_reply(tool_calls=[call_spec])
    tokenhub_emulator.queue_reply(text="It is sunny in Oslo.")
    llm = ChatTokenHub(protocol=protocol).bind_tools([get_weather], tool_choice="get_weather")

    first, _ = await call(llm, "Weather in Oslo?", mode)
    assert [(c["name"], c["args"], c["id"]) for c in first.tool_calls] == [
        ("get_weather", {"city": "Oslo"}, "toolu_1")
    ]
    assert first.response_metadata["finish_reason"] == "tool_calls"
    history = [
        HumanMessage("Weather in Oslo?"),
        first,
        ToolMessage("Sunny", tool_call_id="toolu_1"),
    ]
    second, _ = await call(llm, history, mode)
    assert second.text == "It is sunny in Oslo."
    body = _last(tokenhub_emulator)
    if protocol == "messages":
        assert body["tool_choice"] == {"type": "tool", "name": "get_weather"}
        assert body["messages"][-1]["content"][0]["type"] == "tool_result"
    else:
        assert body["messages"][-1]["role"] == "tool"


@pytest.mark.parametrize("method", ["function_calling", "json_mode", "json_schema"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_structured_output_every_method_on_both_protocols(
    tokenhub_emulator: TokenHubEmulator, protocol: str, method: str
) -> None:
    if method == "function_calling":
        args = {"name": "Ada", "age": 36}
        tokenhub_emulator.queue_reply(tool_calls=[{"name": "Person", "arguments": args, "id": "t"}])
    else:
        tokenhub_emulator.queue_reply(json={"name": "Ada", "age": 36})
    llm = ChatTokenHub(protocol=protocol).with_structured_output(Person, method=method)
    prompt = "Ada Lovelace, 36. Answer as JSON with keys name and age."
    assert llm.invoke(prompt) == Person(name="Ada", age=36)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_errors_retries_and_budgets_hold_on_both_protocols(
    tokenhub_emulator: TokenHubEmulator, protocol: str
) -> None:
    tokenhub_emulator.fail_next(429, times=1, headers={"Retry-After": "0"})
    llm = ChatTokenHub(protocol=protocol, max_retries=1)
    assert (await llm.ainvoke("hi")).content
    tokenhub_emulator.fail_next(429, times=2, headers={"Retry-After": "0"})
    with pytest.raises(RateLimitError):
        llm.invoke("hi")
    with track_cost(budget_usd=0.000001) as meter, pytest.raises(BudgetExceededError):
        llm.invoke("hi")
    assert meter.calls == 0


@pytest.mark.parametrize("mode", MODES)
async def test_claude_s_overload_is_retried_and_typed_as_langchain_knows_it(
    tokenhub_emulator: TokenHubEmulator, mode: str
) -> None:
    llm = ChatTokenHub(protocol="messages", max_retries=1)
    if mode in ("stream", "astream"):  # the overload inside a 200 stream, before any text
        tokenhub_emulator.sse_error_after(chunks=0)
    else:
        tokenhub_emulator.fail_next(529, headers={"Retry-After": "0"})
    message, _ = await call(llm, "hi", mode)
    assert len(tokenhub_emulator.requests) == 2
    assert message.text.startswith("[emulator]")

    tokenhub_emulator.fail_next(529, times=2, headers={"Retry-After": "0"})
    with pytest.raises(ModelAPIError) as caught:
        await call(llm, "hi", mode)
    assert isinstance(caught.value, InternalServerError)
    assert caught.value.status_code == 529 and caught.value.is_retryable


def test_an_overload_after_text_has_streamed_is_raised_not_retried(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    tokenhub_emulator.sse_error_after(chunks=6)
    llm = ChatTokenHub(protocol="messages")
    seen: list[str] = []

    def read_all() -> None:
        for chunk in llm.stream("Tell me a long story."):
            seen.append(chunk.text)

    with pytest.raises(InternalServerError) as caught:
        read_all()
    assert caught.value.status_code == 529
    assert "".join(seen)  # what arrived was given to the caller first
    assert len(tokenhub_emulator.requests) == 1


# --- prompt caching --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_a_cached_system_prompt_is_written_then_read_and_priced_so(
    tokenhub_emulator: TokenHubEmulator, mode: str
) -> None:
    llm = ChatTokenHub(protocol="messages")
    system = SystemMessage([{"type": "text", "text": LONG_RULES, "cache_control": EPHEMERAL}])
    with track_cost() as meter:
        first, _ = await call(llm, [system, HumanMessage("Question one?")], mode)
        second, _ = await call(llm, [system, HumanMessage("Question two?")], mode)

    written = first.usage_metadata["input_token_details"]
    assert written["cache_creation"] > 1024
    assert written["cache_read"] == 0
    assert first.response_metadata["cache_creation"] == {
        "ephemeral_5m_input_tokens": written["cache_creation"],
        "ephemeral_1h_input_tokens": 0,
    }
    read = second.usage_metadata["input_token_details"]
    assert read["cache_read"] == written["cache_creation"]
    for message in (first, second):  # the whole prompt, each token once
        details = message.usage_metadata["input_token_details"]
        assert message.usage_metadata["input_tokens"] >= sum(details.values())
    # priced with cache prices: the read call is far cheaper than the write call
    _, expected = price_call(
        "claude-sonnet-4-6",
        None,
        second.usage_metadata["input_tokens"],
        second.usage_metadata["output_tokens"],
        cache_read_tokens=read["cache_read"],
    )
    assert second.response_metadata["cost_usd"] == pytest.approx(float(expected or 0))
    assert second.response_metadata["cost_usd"] < first.response_metadata["cost_usd"] / 2
    assert meter.cache_read_tokens == read["cache_read"]
    assert meter.cache_saved_usd > 0


async def test_the_per_call_cache_control_marks_the_conversation_tail(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    # as langchain-anthropic's AnthropicPromptCachingMiddleware passes it, every call
    llm = ChatTokenHub(protocol="messages").bind(cache_control={"type": "ephemeral", "ttl": "1h"})
    history = [HumanMessage(LONG_RULES), AIMessage("Understood."), HumanMessage("Go on.")]
    first = await llm.ainvoke(history)
    last = _last(tokenhub_emulator)["messages"][-1]
    assert last["content"][-1]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert first.response_metadata["cache_creation"]["ephemeral_1h_input_tokens"] > 1024
    reply = await llm.ainvoke([*history, AIMessage("More."), HumanMessage("Again.")])
    assert reply.usage_metadata["input_token_details"]["cache_read"] > 1024


def test_a_cached_tool_definition_reaches_the_wire(tokenhub_emulator: TokenHubEmulator) -> None:
    @tool(extras={"cache_control": EPHEMERAL})
    def lookup(city: str) -> str:
        """Look a city up."""
        return city

    ChatTokenHub(protocol="messages").bind_tools([get_weather, lookup]).invoke("hi")
    tools = _last(tokenhub_emulator)["tools"]
    assert [t.get("cache_control") for t in tools] == [None, EPHEMERAL]


# --- extended thinking -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_a_thinking_reply_reads_like_chat_anthropic_s_and_goes_back_signed(
    tokenhub_emulator: TokenHubEmulator, mode: str
) -> None:
    llm = ChatTokenHub(protocol="messages", thinking=2048, max_tokens=4096)
    message, chunks = await call(llm, "What is 17 * 23?", mode)

    assert _last(tokenhub_emulator)["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    kinds = [b["type"] for b in message.content_blocks]
    assert kinds == ["reasoning", "text"]
    reasoning = message.content_blocks[0]
    assert reasoning["reasoning"] and reasoning["extras"]["signature"]
    assert message.text.startswith("[emulator]")
    assert "reasoning" in message.usage_metadata["output_token_details"]
    if chunks:
        assert sum(1 for c in chunks if any(b["type"] == "reasoning" for b in c.content_blocks)) > 0

    await call(llm, [HumanMessage("What is 17 * 23?"), message, HumanMessage("Sure?")], mode)
    sent = _last(tokenhub_emulator)["messages"][1]["content"]
    assert sent[0] == {
        "type": "thinking",
        "thinking": reasoning["reasoning"],
        "signature": reasoning["extras"]["signature"],
    }


def test_standard_v1_output_goes_back_signed(tokenhub_emulator: TokenHubEmulator) -> None:
    llm = ChatTokenHub(protocol="messages", thinking=2048, max_tokens=4096, output_version="v1")
    first = llm.invoke("What is 17 * 23?")
    assert [b["type"] for b in first.content] == ["reasoning", "text"]
    llm.invoke([HumanMessage("What is 17 * 23?"), first, HumanMessage("Sure?")])
    sent = _last(tokenhub_emulator)["messages"][1]["content"]
    assert sent[0]["type"] == "thinking"
    assert sent[0]["signature"] == first.content[0]["extras"]["signature"]


@pytest.mark.parametrize(
    ("settings", "param"),
    [
        ({"thinking": 2048, "max_tokens": 4096, "temperature": 0.2}, "temperature"),
        ({"thinking": 4096, "max_tokens": 4096}, "thinking.budget_tokens"),
        ({"thinking": 2048, "max_tokens": 4096, "top_k": 5}, "top_k"),
        ({"thinking": 2048, "max_tokens": 4096, "model": "claude-opus-4-7"}, "thinking"),
        ({"thinking": "adaptive", "model": "claude-3-5-haiku-latest"}, "thinking"),
    ],
)
def test_claude_s_thinking_rules_are_checked_before_sending(
    tokenhub_emulator: TokenHubEmulator, settings: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidParameterError) as caught:
        ChatTokenHub(protocol="messages", **settings).invoke("hi")
    assert caught.value.param == param
    assert tokenhub_emulator.requests == []


def test_forcing_a_tool_while_thinking_is_refused_and_structured_output_asks_instead(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    llm = ChatTokenHub(protocol="messages", thinking=2048, max_tokens=4096)
    with pytest.raises(InvalidParameterError, match="thinking") as caught:
        llm.bind_tools([get_weather], tool_choice="get_weather").invoke("Oslo?")
    assert caught.value.param == "tool_choice"
    args = {"name": "Ada", "age": 36}
    tokenhub_emulator.queue_reply(tool_calls=[{"name": "Person", "arguments": args, "id": "t"}])
    assert llm.with_structured_output(Person).invoke("Ada, 36") == Person(name="Ada", age=36)
    assert "tool_choice" not in _last(tokenhub_emulator) or _last(tokenhub_emulator)[
        "tool_choice"
    ] == {"type": "auto"}
    tokenhub_emulator.queue_reply(text="no tool today")
    with pytest.raises(OutputParserException):
        llm.with_structured_output(Person).invoke("Ada, 36")


def test_thinking_on_chat_completions_is_refused_naming_the_protocol(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    with pytest.raises(InvalidParameterError, match="messages"):
        ChatTokenHub(thinking=2048, max_tokens=4096).invoke("hi")
    assert tokenhub_emulator.requests == []


# --- PDFs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "block",
    [
        {"type": "file", "base64": PDF, "mime_type": "application/pdf"},
        {"type": "file", "url": "https://example.com/report.pdf"},
        {"type": "text-plain", "text": "Quarterly numbers: up 4%.", "mime_type": "text/plain"},
    ],
    ids=["base64", "url", "text"],
)
def test_documents_reach_claude_as_document_blocks(
    tokenhub_emulator: TokenHubEmulator, block: dict[str, Any]
) -> None:
    message = HumanMessage([{"type": "text", "text": "Summarize this."}, block])
    reply = ChatTokenHub(protocol="messages").invoke([message])
    assert reply.text
    sent = _last(tokenhub_emulator)["messages"][0]["content"]
    assert [b["type"] for b in sent] == ["text", "document"]


def test_a_pdf_on_chat_completions_is_refused_before_sending(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    message = HumanMessage([{"type": "text", "text": "Read."}, {"type": "file", "base64": PDF}])
    with pytest.raises(InvalidParameterError, match="protocol='messages'"):
        ChatTokenHub().invoke([message])
    assert tokenhub_emulator.requests == []


# --- settings --------------------------------------------------------------------------------------


def test_protocol_and_thinking_are_checked_at_construction_and_shown_in_the_profile() -> None:
    with pytest.raises(ValueError, match=r"protocol='anthropic'.*\"messages\""):
        ChatTokenHub(protocol="anthropic")
    with pytest.raises(ValueError, match=r"thinking.budget_tokens=100.*>= 1024"):
        ChatTokenHub(thinking=100)
    native = ChatTokenHub(protocol="messages")
    assert native.profile is not None and native.profile["pdf_inputs"] is True
    assert native.profile["reasoning_output"] is True
    assert ChatTokenHub(protocol="chat_completions").protocol == "chat/completions"
    plain = ChatTokenHub()
    assert plain.profile is not None and plain.profile["pdf_inputs"] is False


def test_protocol_per_call(tokenhub_emulator: TokenHubEmulator) -> None:
    llm = ChatTokenHub()
    llm.invoke("hi", protocol="messages")
    llm.invoke("hi")
    assert [r.protocol for r in tokenhub_emulator.requests] == ["messages", "chat/completions"]
