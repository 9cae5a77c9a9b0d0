"""`TokenHub(protocol="messages")` end to end: thinking, prompt caching, PDFs, native errors."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from llama_index.core.agent.workflow import AgentStream, FunctionAgent
from llama_index.core.base.llms.types import (
    CacheControl,
    CachePoint,
    ChatMessage,
    DocumentBlock,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)
from llama_index.core.callbacks import CallbackManager, TokenCountingHandler
from llama_index.core.tools import FunctionTool

from llama_index_tokenhub import TokenHub
from tests.llama_index.fixtures import run_mode
from tests.llama_index.test_llama_index_protocols import MODES, bodies
from tokenhub_core import track_cost
from tokenhub_core.errors import (
    APIStatusError,
    InvalidParameterError,
    StreamInterruptedError,
)
from tokenhub_emulator import TokenHubEmulator

# ~3,000 tokens: above the minimum cacheable prompt of Sonnet 4.6 (1,024).
LONG = "The Orin valley keeps its own calendar of harvests and feasts. " * 190
PDF = (
    b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
    b"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n"
    b"3 0 obj << /Type /Page /Parent 2 0 R /Contents 4 0 R >> endobj\n"
    b"4 0 obj << /Length 44 >> stream\nBT /F1 12 Tf 72 712 Td (Invoice 42) Tj ET\nendstream endobj\n"
    b"trailer << /Root 1 0 R >>\n%%EOF\n"
)


def _user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role="user", content=text)]


def _add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


ADD = FunctionTool.from_defaults(fn=_add, name="add")


def _thinking(message: ChatMessage) -> list[ThinkingBlock]:
    return [b for b in message.blocks if isinstance(b, ThinkingBlock)]


@pytest.mark.parametrize("mode", ["stream", "astream"])
async def test_a_streamed_response_carries_claudes_event_as_raw(
    mode: str, tokenhub_emulator: TokenHubEmulator
) -> None:
    # As llama-index's Anthropic does: each streamed response's raw is the event it came from
    # (here as plain JSON), the final one the whole reply.
    final, chunks = await run_mode(mode, TokenHub(protocol="messages"), _user("Tell me a story"))
    deltas = [c for c in chunks[:-1] if c.raw.get("type") == "content_block_delta"]
    assert len(deltas) == len(chunks) - 1 > 3
    assert [c.raw["delta"]["text"] for c in deltas] == [c.delta for c in deltas]
    json.dumps([c.raw for c in chunks])
    assert final.raw["usage"]["completion_tokens"] > 0


# Extended thinking.


@pytest.mark.parametrize("mode", MODES)
async def test_thinking_comes_back_first_with_its_signature(
    mode: str, tokenhub_emulator: TokenHubEmulator
) -> None:
    llm = TokenHub(protocol="messages", thinking=2048, max_tokens=4096)
    final, chunks = await run_mode(mode, llm, _user("What is 2 + 3?"))
    [thought] = _thinking(final.message)
    assert final.message.blocks[0] is thought
    assert thought.content and "2 + 3" in thought.content
    assert thought.additional_information["type"] == "thinking"
    assert thought.additional_information["signature"]
    assert final.message.content == "[emulator] You said: What is 2 + 3?"
    [body] = bodies(tokenhub_emulator)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    if chunks:
        deltas = [c.additional_kwargs.get("thinking_delta") for c in chunks[:-1]]
        assert "".join(d for d in deltas if d) == thought.content
        # The cumulative message carries the thinking block as it grows, before any text.
        growing = [_thinking(c.message)[0].content for c in chunks[:-1] if _thinking(c.message)]
        assert growing == sorted(growing, key=len)
        assert len(growing) > 1


async def test_a_thinking_turn_goes_back_verbatim_on_the_next(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    llm = TokenHub(protocol="messages", thinking="adaptive", max_tokens=4096)
    history = _user("What is 2 + 3?")
    first = llm.chat(history)
    history += [first.message, ChatMessage(role="user", content="And 3 + 4?")]
    second = llm.chat(history)
    assert second.message.content == "[emulator] You said: And 3 + 4?"
    [thought] = _thinking(first.message)
    sent = bodies(tokenhub_emulator)[1]["messages"][1]
    assert sent["role"] == "assistant"
    assert sent["content"][0] == {
        "type": "thinking",
        "thinking": thought.content,
        "signature": thought.additional_information["signature"],
    }


@pytest.mark.parametrize("streaming", [True, False])
async def test_function_agent_tool_loop_with_thinking(
    streaming: bool, tokenhub_emulator: TokenHubEmulator, agent_memory: Any
) -> None:
    llm = TokenHub(protocol="messages", thinking=2048, max_tokens=4096)
    agent = FunctionAgent(tools=[ADD], llm=llm, streaming=streaming)
    handler = agent.run(user_msg="Please add 5 and 6", memory=agent_memory())
    events = [event async for event in handler.stream_events()]
    result = await handler
    assert "add returned 11" in str(result.response.content)
    first, second = bodies(tokenhub_emulator)
    assert "tool_choice" not in first or first["tool_choice"]["type"] == "auto"
    # The assistant turn with the call goes back with its signed thinking first (the emulator,
    # like Claude, refuses a tool loop whose thinking was dropped or altered).
    assistant = second["messages"][1]
    assert [b["type"] for b in assistant["content"]] == ["thinking", "tool_use"]
    assert second["messages"][2]["content"][0]["type"] == "tool_result"
    if streaming:
        thinking = [e.thinking_delta for e in events if isinstance(e, AgentStream)]
        assert any(thinking), "AgentStream.thinking_delta carries the streamed thinking"


@pytest.mark.parametrize(
    ("settings", "call", "param"),
    [
        ({"thinking": 500, "max_tokens": 4096}, {}, "thinking"),
        ({"thinking": 2048}, {}, "max_tokens"),  # the budget must be below max_tokens (1024)
        ({"thinking": 2048, "max_tokens": 4096, "temperature": 0.5}, {}, "temperature"),
        ({"thinking": 2048, "max_tokens": 4096}, {"top_k": 5}, "top_k"),
        ({"thinking": 2048, "max_tokens": 4096}, {"tool_choice": "required"}, "tool_choice"),
        ({"thinking": 2048, "max_tokens": 4096, "model": "claude-opus-4-7"}, {}, "thinking"),
        ({"thinking": "adaptive", "model": "claude-haiku-4-5"}, {}, "thinking"),
        (
            {"thinking": 2048, "max_tokens": 4096, "model": "claude-3-5-haiku-latest"},
            {},
            "thinking",
        ),
    ],
)
def test_claudes_thinking_rules_fail_before_sending(
    settings: dict[str, Any],
    call: dict[str, Any],
    param: str,
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    kwargs: dict[str, Any] = dict(call)
    if "tool_choice" in call:
        kwargs["tools"] = [ADD.metadata.to_openai_tool()]

    def chat() -> None:
        TokenHub(protocol="messages", **settings).chat(_user("hi"), **kwargs)

    # A setting wrong in itself fails when the LLM is built, the others when it is called.
    with pytest.raises(ValueError, match=param):
        chat()
    assert tokenhub_emulator.requests == []


def test_thinking_on_chat_completions_says_to_use_messages(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    with pytest.raises(InvalidParameterError, match="messages"):
        TokenHub(thinking=2048, max_tokens=4096).chat(_user("hi"))
    assert tokenhub_emulator.requests == []


def test_per_call_thinking_and_protocol(tokenhub_emulator: TokenHubEmulator) -> None:
    llm = TokenHub(max_tokens=4096)
    plain = llm.chat(_user("hi"))
    assert _thinking(plain.message) == []
    thought = llm.chat(_user("hi"), protocol="messages", thinking_dict={"type": "adaptive"})
    assert _thinking(thought.message)
    first, second = tokenhub_emulator.requests
    assert first.path.endswith("/chat/completions")
    assert second.path.endswith("/messages")
    assert second.body["thinking"] == {"type": "adaptive"}


# Prompt caching.


def _cached_system() -> ChatMessage:
    cache = CachePoint(cache_control=CacheControl(type="ephemeral"))
    return ChatMessage(role="system", blocks=[TextBlock(text=LONG), cache])


@pytest.mark.parametrize("mode", MODES)
async def test_a_cached_system_prompt_is_written_then_read(
    mode: str, tokenhub_emulator: TokenHubEmulator
) -> None:
    counter = TokenCountingHandler()
    llm = TokenHub(protocol="messages", callback_manager=CallbackManager([counter]))
    with track_cost() as meter:
        first, _ = await run_mode(mode, llm, [_cached_system(), *_user("First question")])
        second, _ = await run_mode(mode, llm, [_cached_system(), *_user("Second question")])
    one, two = first.additional_kwargs, second.additional_kwargs
    assert one["cache_creation_input_tokens"] > 2_000
    assert one["cache_read_input_tokens"] == 0
    assert two["cache_read_input_tokens"] == one["cache_creation_input_tokens"]
    assert two["cache_creation_input_tokens"] == 0
    # The whole prompt is counted, cached or not, and reads are cheap.
    assert two["prompt_tokens"] > two["cache_read_input_tokens"]
    assert two["cost_usd"] < one["cost_usd"] / 3
    details = second.raw["usage"]["prompt_tokens_details"]
    assert details["cached_tokens"] == two["cache_read_input_tokens"]
    entries = tokenhub_emulator.ledger().entries
    assert [e.prompt_tokens for e in entries] == [one["prompt_tokens"], two["prompt_tokens"]]
    assert counter.prompt_llm_token_count == one["prompt_tokens"] + two["prompt_tokens"]
    assert meter.cache_read_tokens == two["cache_read_input_tokens"]
    assert meter.cache_saved_usd > 0
    assert meter.total_usd == pytest.approx(one["cost_usd"] + two["cost_usd"])
    body = bodies(tokenhub_emulator)[0]
    assert body["system"] == [
        {"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}
    ]


def test_cache_idx_caches_a_growing_conversation(tokenhub_emulator: TokenHubEmulator) -> None:
    llm = TokenHub(protocol="messages", cache_idx=-1)
    history = [ChatMessage(role="system", content=LONG), *_user("Question one")]
    first = llm.chat(history)
    history += [first.message, ChatMessage(role="user", content="Question two")]
    second = llm.chat(history)
    assert first.additional_kwargs["cache_creation_input_tokens"] > 2_000
    assert (
        second.additional_kwargs["cache_read_input_tokens"]
        >= (first.additional_kwargs["cache_creation_input_tokens"])
    )
    last = bodies(tokenhub_emulator)[1]["messages"][-1]["content"][-1]
    assert last["cache_control"] == {"type": "ephemeral"}


def test_a_cache_point_on_a_tool_result(tokenhub_emulator: TokenHubEmulator) -> None:
    cache = CachePoint(cache_control=CacheControl(type="ephemeral", ttl="1h"))
    history = [
        *_user("Add 5 and 6"),
        ChatMessage(
            role="assistant",
            blocks=[ToolCallBlock(tool_call_id="toolu_1", tool_name="add", tool_kwargs={"a": 5})],
        ),
        ChatMessage(
            role="tool",
            blocks=[TextBlock(text=LONG), cache],
            additional_kwargs={"tool_call_id": "toolu_1"},
        ),
    ]
    response = TokenHub(protocol="messages").chat(history, tools=[ADD.metadata.to_openai_tool()])
    assert response.additional_kwargs["cache_creation_input_tokens"] > 2_000
    assert response.raw["usage"]["prompt_tokens_details"]["cache_creation_1h_tokens"] > 2_000
    [result] = bodies(tokenhub_emulator)[0]["messages"][-1]["content"]
    assert result["type"] == "tool_result"
    assert result["content"][-1]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}


# PDFs and text documents.


@pytest.mark.parametrize("mode", MODES)
async def test_a_pdf_document_is_read(mode: str, tokenhub_emulator: TokenHubEmulator) -> None:
    message = ChatMessage(
        role="user", blocks=[DocumentBlock(data=PDF), TextBlock(text="What is this?")]
    )
    final, _ = await run_mode(mode, TokenHub(protocol="messages"), [message])
    assert final.message.content
    [document, _text] = bodies(tokenhub_emulator)[0]["messages"][0]["content"]
    assert document["source"]["media_type"] == "application/pdf"
    assert base64.b64decode(document["source"]["data"]) == PDF


def test_a_text_document_is_read(tokenhub_emulator: TokenHubEmulator) -> None:
    message = ChatMessage(
        role="user",
        blocks=[
            DocumentBlock(data=b"Grass is green.", document_mimetype="text/plain", title="Facts"),
            TextBlock(text="Which colour is grass?"),
        ],
    )
    assert TokenHub(protocol="messages").chat([message]).message.content
    [document, _text] = bodies(tokenhub_emulator)[0]["messages"][0]["content"]
    assert document == {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "Grass is green."},
        "title": "Facts",
    }


def test_documents_on_chat_completions_say_to_use_messages(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    message = ChatMessage(role="user", blocks=[DocumentBlock(data=PDF), TextBlock(text="Sum?")])
    with pytest.raises(InvalidParameterError, match="messages"):
        TokenHub().chat([message])
    assert tokenhub_emulator.requests == []


# Native errors.


def test_overloaded_529_is_retried(tokenhub_emulator: TokenHubEmulator) -> None:
    tokenhub_emulator.fail_next(529, headers={"retry-after-ms": "1"})
    assert TokenHub(protocol="messages").chat(_user("hi")).message.content
    assert len(tokenhub_emulator.requests) == 2


def test_an_overloaded_stream_before_any_text_is_retried(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    tokenhub_emulator.sse_error_after(1)  # after message_start: nothing a user saw yet
    chunks = list(TokenHub(protocol="messages").stream_chat(_user("hi")))
    assert chunks[-1].message.content == "[emulator] You said: hi"
    assert len(tokenhub_emulator.requests) == 2


async def test_an_error_event_mid_stream_is_typed(tokenhub_emulator: TokenHubEmulator) -> None:
    tokenhub_emulator.sse_error_after(6, type="api_error")
    seen: list[str] = []

    async def drain() -> None:
        async for chunk in await TokenHub(protocol="messages").astream_chat(_user("tell me")):
            seen.append(chunk.delta or "")

    with pytest.raises((APIStatusError, StreamInterruptedError)) as info:
        await drain()
    assert seen, "text arrived before the error"
    assert "api_error" in str(info.value) or getattr(info.value, "status_code", None) == 500


async def test_structured_output_with_thinking_on(tokenhub_emulator: TokenHubEmulator) -> None:
    from llama_index.core.prompts import PromptTemplate
    from pydantic import BaseModel

    class Album(BaseModel):
        """A music album."""

        title: str
        year: int

    llm = TokenHub(protocol="messages", thinking=2048, max_tokens=4096)
    prompt = PromptTemplate("Describe an album by {artist}.")
    album = await llm.astructured_predict(Album, prompt, artist="Joni Mitchell")
    assert isinstance(album, Album)
    [body] = bodies(tokenhub_emulator)
    # The tool the program would force is asked for with auto: Claude refuses forcing it.
    assert body["tool_choice"]["type"] == "auto"
    assert body["thinking"]["type"] == "enabled"
