"""ChatAnthropic and ChatTokenHub(protocol="messages") against the same emulator (issue 13).

The anchor's common paths (text, stream, tools, thinking, cache usage, PDF) must give a user the
same messages: the same text, tool calls, reasoning, usage and cache details. Not the same bytes:
ChatAnthropic keeps Anthropic's own metadata (``stop_reason``), ChatTokenHub the project's
(``finish_reason``, ``cost_usd``).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool

from langchain_tokenhub import ChatTokenHub
from tokenhub_emulator import TokenHubEmulator

MODEL = "claude-sonnet-4-6"
PDF = base64.b64encode(b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n").decode()
LONG_RULES = "You are a careful assistant. Follow the house style exactly. " * 200

Build = Callable[..., BaseChatModel]


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"Sunny in {city}"


@pytest.fixture
def both(tokenhub_emulator: TokenHubEmulator) -> dict[str, Build]:
    root = tokenhub_emulator.base_url.removesuffix("/v1")
    key = tokenhub_emulator.api_key

    def anthropic(**kwargs: Any) -> BaseChatModel:
        return ChatAnthropic(model=MODEL, base_url=root, api_key=key, max_retries=0, **kwargs)

    def tokenhub(**kwargs: Any) -> BaseChatModel:
        return ChatTokenHub(model=MODEL, protocol="messages", max_retries=0, **kwargs)

    return {"ChatAnthropic": anthropic, "ChatTokenHub": tokenhub}


def _run(llm: Any, value: Any, stream: bool) -> AIMessage:
    if not stream:
        message: AIMessage = llm.invoke(value)
        return message
    full = None
    for chunk in llm.stream(value):
        full = chunk if full is None else full + chunk
    assert full is not None
    return full


def _seen(message: AIMessage) -> dict[str, Any]:
    """What a user reads from a reply."""
    usage = message.usage_metadata or {}
    details = usage.get("input_token_details") or {}
    return {
        "text": message.text,
        "blocks": [
            {k: v for k, v in block.items() if k not in ("index", "id")}
            for block in message.content_blocks
        ],
        "tool_calls": [(c["name"], c["args"]) for c in message.tool_calls],
        "input_tokens": usage.get("input_tokens"),
        "output_tokens": usage.get("output_tokens"),
        "output_details": usage.get("output_token_details") or {},
        "cache_read": details.get("cache_read", 0),
        "cache_written": sum(v for k, v in details.items() if k != "cache_read"),
        "cache": {k: v for k, v in details.items() if v},
    }


def _side_by_side(
    emu: TokenHubEmulator, both: dict[str, Build], run: Callable[[Build], AIMessage]
) -> dict[str, dict[str, Any]]:
    seen = {}
    for name, build in both.items():
        emu.reset()
        seen[name] = _seen(run(build))
    return seen


@pytest.mark.parametrize("stream", [False, True], ids=["invoke", "stream"])
def test_text(tokenhub_emulator: TokenHubEmulator, both: dict[str, Build], stream: bool) -> None:
    messages = [SystemMessage("Be brief."), HumanMessage("Explain the CAP theorem.")]
    seen = _side_by_side(tokenhub_emulator, both, lambda b: _run(b(), messages, stream))
    assert seen["ChatTokenHub"] == seen["ChatAnthropic"]
    assert seen["ChatTokenHub"]["text"].startswith("[emulator]")


@pytest.mark.parametrize("stream", [False, True], ids=["invoke", "stream"])
def test_tools(tokenhub_emulator: TokenHubEmulator, both: dict[str, Build], stream: bool) -> None:
    def run(build: Build) -> AIMessage:
        llm = build().bind_tools([get_weather], tool_choice="get_weather")
        return _run(llm, "What is the weather in Oslo?", stream)

    seen = _side_by_side(tokenhub_emulator, both, run)
    assert seen["ChatTokenHub"]["tool_calls"] == seen["ChatAnthropic"]["tool_calls"]
    assert seen["ChatTokenHub"]["tool_calls"][0][0] == "get_weather"
    assert seen["ChatTokenHub"]["input_tokens"] == seen["ChatAnthropic"]["input_tokens"]


@pytest.mark.parametrize("stream", [False, True], ids=["invoke", "stream"])
def test_thinking(
    tokenhub_emulator: TokenHubEmulator, both: dict[str, Build], stream: bool
) -> None:
    thinking = {"type": "enabled", "budget_tokens": 2048}
    replies: dict[str, AIMessage] = {}

    def run(build: Build) -> AIMessage:
        llm = build(thinking=thinking, max_tokens=4096)
        first = _run(llm, "What is 17 * 23?", stream)
        # the reply goes back on the next turn, signature and all
        history: list[BaseMessage] = [
            HumanMessage("What is 17 * 23?"),
            first,
            HumanMessage("Sure?"),
        ]
        replies[type(llm).__name__] = _run(llm, history, stream)
        sent = tokenhub_emulator.requests[-1].body["messages"][1]["content"]
        assert sent[0]["type"] == "thinking" and sent[0]["signature"]
        return first

    seen = _side_by_side(tokenhub_emulator, both, run)
    assert seen["ChatTokenHub"] == seen["ChatAnthropic"]
    assert [b["type"] for b in seen["ChatTokenHub"]["blocks"]] == ["reasoning", "text"]
    assert _seen(replies["ChatTokenHub"]) == _seen(replies["ChatAnthropic"])


@pytest.mark.parametrize("stream", [False, True], ids=["invoke", "stream"])
def test_cache_usage(
    tokenhub_emulator: TokenHubEmulator, both: dict[str, Build], stream: bool
) -> None:
    system = SystemMessage(
        [{"type": "text", "text": LONG_RULES, "cache_control": {"type": "ephemeral"}}]
    )
    second: dict[str, dict[str, Any]] = {}

    def run(build: Build) -> AIMessage:
        llm = build()
        first = _run(llm, [system, HumanMessage("One?")], stream)
        second[type(llm).__name__] = _seen(_run(llm, [system, HumanMessage("Two?")], stream))
        return first

    seen = _side_by_side(tokenhub_emulator, both, run)
    # The keys differ by design: ChatAnthropic reports writes under ephemeral_5m/1h with
    # cache_creation 0; we report them all as cache_creation (the split is in
    # response_metadata). The figures a user adds up ("cache_written", "cache_read") agree.
    for what in (seen, second):
        for name in what:
            what[name].pop("cache")
    assert seen["ChatTokenHub"] == seen["ChatAnthropic"]
    assert second["ChatTokenHub"] == second["ChatAnthropic"]
    assert seen["ChatTokenHub"]["cache_written"] > 1024
    assert second["ChatTokenHub"]["cache_read"] == seen["ChatTokenHub"]["cache_written"]


@pytest.mark.parametrize(
    "block",
    [
        {"type": "file", "base64": PDF, "mime_type": "application/pdf"},
        {"type": "file", "url": "https://example.com/report.pdf", "mime_type": "application/pdf"},
        {"type": "text-plain", "text": "Quarterly numbers: up 4%.", "mime_type": "text/plain"},
    ],
    ids=["base64", "url", "text"],
)
def test_pdf(
    tokenhub_emulator: TokenHubEmulator, both: dict[str, Build], block: dict[str, Any]
) -> None:
    message = HumanMessage([{"type": "text", "text": "Summarize this document."}, block])
    seen = _side_by_side(tokenhub_emulator, both, lambda b: _run(b(), [message], False))
    assert seen["ChatTokenHub"] == seen["ChatAnthropic"]


def test_a_chat_anthropic_history_with_thinking_and_tools_continues_on_chat_tokenhub(
    tokenhub_emulator: TokenHubEmulator, both: dict[str, Build]
) -> None:
    call = {"name": "get_weather", "arguments": {"city": "Oslo"}, "id": "toolu_1"}
    tokenhub_emulator.queue_reply(tool_calls=[call], thinking="Oslo's weather is needed.")
    thinking = {"type": "enabled", "budget_tokens": 2048}
    anthropic = both["ChatAnthropic"](thinking=thinking, max_tokens=4096)
    first = anthropic.bind_tools([get_weather]).invoke("Weather in Oslo?")
    assert first.response_metadata["model_provider"] == "anthropic"

    history = [
        HumanMessage("Weather in Oslo?"),
        first,
        ToolMessage("Sunny", tool_call_id=first.tool_calls[0]["id"]),
    ]
    tokenhub = both["ChatTokenHub"](thinking=thinking, max_tokens=4096)
    reply = tokenhub.bind_tools([get_weather]).invoke(history)
    assert reply.text
    sent = tokenhub_emulator.requests[-1].body["messages"][1]["content"]
    assert [b["type"] for b in sent] == ["thinking", "tool_use"]
    assert sent[0]["signature"] == first.content[0]["signature"]
