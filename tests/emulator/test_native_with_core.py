"""The project's own client on the native endpoint: caching, thinking and PDFs end to end.

What the emulator bills and what `TokenHubClient(protocol="messages")` meters must agree, and a
tool loop with thinking must close, over real loopback HTTP.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tokenhub_core import TokenHubClient, track_cost
from tokenhub_core.catalog import price_usage
from tokenhub_emulator import TokenHubEmulator
from tokenhub_emulator.pdf import simple_pdf

MODEL = "anthropic/claude-sonnet-4-6"
LONG = "The Orin valley keeps its own calendar of harvests and feasts. " * 190
WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def _client() -> TokenHubClient:
    return TokenHubClient(protocol="messages", max_retries=0)


def test_cached_prompts_are_metered_as_the_emulator_bills_them(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    system = {
        "role": "system",
        "content": [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}],
    }
    client = _client()
    with track_cost() as meter:
        first = client.chat(model=MODEL, messages=[system, {"role": "user", "content": "Hi"}])
        second = client.chat(model=MODEL, messages=[system, {"role": "user", "content": "Again"}])
    assert first.usage is not None and second.usage is not None
    written = first.usage.cache_creation_tokens
    assert written > 2048 and first.usage.cache_read_tokens == 0
    assert second.usage.cache_read_tokens == written and second.usage.cache_creation_tokens == 0
    ledger = tokenhub_emulator.ledger()
    assert [e.prompt_tokens for e in ledger.entries] == [
        first.usage.prompt_tokens,
        second.usage.prompt_tokens,
    ]
    for entry, usage in zip(ledger.entries, (first.usage, second.usage), strict=True):
        assert entry.cost_usd == price_usage(MODEL, entry.model, usage)[1]
    assert meter.total_usd == pytest.approx(float(ledger.total_usd))
    assert meter.cache_read_tokens == ledger.cache_read_tokens == written


def test_a_tool_loop_with_thinking_closes(tokenhub_emulator: TokenHubEmulator) -> None:
    client = _client()
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Oslo?"}]
    params: dict[str, Any] = {"model": MODEL, "max_tokens": 2000, "thinking": 1024}
    first = client.chat(messages=messages, tools=[WEATHER], **params).choices[0]
    assert first.finish_reason == "tool_calls"
    assert first.message.thinking_blocks and first.message.thinking_blocks[0]["signature"]
    assert first.message.reasoning_content and "Oslo" in first.message.reasoning_content
    assert first.message.tool_calls is not None
    call = first.message.tool_calls[0]
    messages += [
        {  # the thinking goes back first in the content, as the client's contract has it
            "role": "assistant",
            "content": first.message.thinking_blocks,
            "tool_calls": [call.model_dump()],
        },
        {"role": "tool", "tool_call_id": call.id, "content": "Snow, -3C"},
    ]
    final = client.chat(messages=messages, tools=[WEATHER], **params).choices[0]
    assert final.message.content == "[emulator] Tool results: get_weather returned Snow, -3C"
    assert final.message.thinking_blocks
    assert [r.status for r in tokenhub_emulator.requests] == [200, 200]


def test_a_pdf_question_through_the_client(tokenhub_emulator: TokenHubEmulator) -> None:
    pdf = base64.b64encode(simple_pdf("Orin has 4200 people.", "It rains in May.")).decode()
    document = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": pdf},
        "title": "Orin",
    }
    question = {"type": "text", "text": "How many people does Orin have?"}
    completion = _client().chat(
        model=MODEL, messages=[{"role": "user", "content": [document, question]}]
    )
    assert completion.choices[0].message.content == (
        '[emulator] Orin has 4200 people. [1 document: PDF "Orin", 2 pages]'
    )
