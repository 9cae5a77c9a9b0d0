"""langchain-tests' integration suite again, on Claude's native protocol (issue 13).

The same class as `test_standard.TestChatTokenHubIntegration` (scripted replies, local
downloads) with ``protocol="messages"`` and what only that protocol carries turned on: PDF
inputs, cache-write and cache-read usage details (from the emulator's real prompt cache, not
scripted counts) and reasoning output.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage

from langchain_tokenhub import ChatTokenHub
from tests.langchain import test_standard as base
from tokenhub_core.errors import BadRequestError

LONG_RULES = "You are a careful assistant. Follow the house style exactly. " * 200  # > 1024 tokens

STANDARD_MARKS = {
    **base.STANDARD_MARKS,
    # Its first half (an Anthropic tool with cache_control, tool_use and tool_result blocks)
    # passes; then it replays a thinking block signed by Anthropic, which the emulator refuses,
    # verifying the signatures it issued as Claude verifies its own.
    "test_anthropic_inputs": [
        pytest.mark.xfail(
            raises=BadRequestError,
            strict=True,
            reason="the emulator cannot verify a signature Anthropic issued",
        )
    ],
}


class TestChatTokenHubMessagesIntegration(base.TestChatTokenHubIntegration):
    """The same suite on Claude's native protocol, with what only it carries: PDFs, cache
    writes and reads (the emulator's prompt cache, not scripted counts) and reasoning."""

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {**super().chat_model_params, "protocol": "messages"}

    @property
    def supports_pdf_inputs(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return "claude-haiku-4-5"  # Claude's own API names the model it served bare

    @property
    def supports_pdf_tool_message(self) -> bool:
        return True

    @property
    def supported_usage_metadata_details(self) -> dict[str, Any]:
        details = ["reasoning_output", "cache_read_input", "cache_creation_input"]
        return {"invoke": details, "stream": details}

    def _cached_call(self, *, stream: bool) -> AIMessage:
        system = {"type": "text", "text": LONG_RULES, "cache_control": {"type": "ephemeral"}}
        model = ChatTokenHub(**self.chat_model_params)
        return _run(model, [SystemMessage([system]), HumanMessage("Summarize the rules.")], stream)

    def invoke_with_cache_creation_input(self, *, stream: bool = False) -> AIMessage:
        self.emulator.clear_cache()
        message = self._cached_call(stream=stream)
        assert message.usage_metadata is not None
        details = message.usage_metadata.get("input_token_details") or {}
        assert details.get("cache_creation", 0) > 1024  # really written
        return message

    def invoke_with_cache_read_input(self, *, stream: bool = False) -> AIMessage:
        self.emulator.clear_cache()
        self._cached_call(stream=stream)
        message = self._cached_call(stream=stream)
        assert message.usage_metadata is not None
        details = message.usage_metadata.get("input_token_details") or {}
        assert details.get("cache_read", 0) > 1024  # really read
        return message

    def invoke_with_reasoning_output(self, *, stream: bool = False) -> AIMessage:
        params = {**self.chat_model_params, "thinking": 2048, "max_tokens": 4096}
        message = _run(ChatTokenHub(**params), "What is 17 * 23?", stream)
        assert message.content_blocks[0]["type"] == "reasoning"
        return message


def _run(model: ChatTokenHub, value: Any, stream: bool) -> AIMessage:
    if not stream:
        return model.invoke(value)
    full: AIMessageChunk | None = None
    for chunk in model.stream(value):
        full = chunk if full is None else full + chunk
    assert full is not None
    return full
