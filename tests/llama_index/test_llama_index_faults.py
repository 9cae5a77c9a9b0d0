"""Failures surface as the core's typed errors, retried by the core alone, never leaking the key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage

from llama_index_tokenhub import TokenHub
from tokenhub_core.errors import (
    APIResponseError,
    AuthenticationError,
    InternalServerError,
    StreamInterruptedError,
)
from tokenhub_emulator import TokenHubEmulator

FAST_RETRY = {"retry-after-ms": "1"}
PROMPT = [ChatMessage(role="user", content="a question long enough to stream in several pieces")]


async def _call(mode: str, llm: TokenHub) -> Any:
    if mode == "sync":
        return llm.chat(PROMPT)
    if mode == "async":
        return await llm.achat(PROMPT)
    if mode == "stream":
        return list(llm.stream_chat(PROMPT))[-1]
    return [c async for c in await llm.astream_chat(PROMPT)][-1]


MODES = ["sync", "async", "stream", "astream"]


@pytest.mark.parametrize("mode", MODES)
async def test_429_then_success(
    mode: str, llm: TokenHub, tokenhub_emulator: TokenHubEmulator
) -> None:
    tokenhub_emulator.fail_next(429, headers=FAST_RETRY)
    response = await _call(mode, llm)
    assert response.message.content.startswith("[emulator] You said:")
    assert [r.status for r in tokenhub_emulator.requests] == [429, 200]
    assert tokenhub_emulator.ledger().calls == 1


@pytest.mark.parametrize("mode", MODES)
async def test_401_is_not_retried_and_hides_the_key(
    mode: str, llm: TokenHub, tokenhub_emulator: TokenHubEmulator
) -> None:
    key = tokenhub_emulator.api_key
    tokenhub_emulator.fail_next(401, message=f"key {key} is revoked")
    with pytest.raises(AuthenticationError) as info:
        await _call(mode, llm)
    assert info.value.status_code == 401
    assert len(tokenhub_emulator.requests) == 1
    assert key not in str(info.value)
    assert key not in repr(info.value)


@pytest.mark.parametrize(("max_retries", "attempts"), [(0, 1), (2, 3)])
@pytest.mark.parametrize("mode", ["sync", "astream"])
async def test_persistent_500_makes_exactly_one_plus_max_retries_attempts(
    mode: str,
    max_retries: int,
    attempts: int,
    make_llm: Callable[..., TokenHub],
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    tokenhub_emulator.fail_next(500, times=10, headers=FAST_RETRY)
    with pytest.raises(InternalServerError):
        await _call(mode, make_llm(max_retries=max_retries))
    assert len(tokenhub_emulator.requests) == attempts
    assert tokenhub_emulator.ledger().calls == 0


@pytest.mark.parametrize("mode", ["stream", "astream"])
async def test_a_dropped_stream_is_interrupted_not_retried(
    mode: str, llm: TokenHub, tokenhub_emulator: TokenHubEmulator
) -> None:
    tokenhub_emulator.drop_stream_after(3)
    received: list[str] = []

    async def consume() -> None:
        if mode == "stream":
            for chunk in llm.stream_chat(PROMPT):
                received.append(chunk.delta or "")
        else:
            async for chunk in await llm.astream_chat(PROMPT):
                received.append(chunk.delta or "")

    with pytest.raises(StreamInterruptedError) as info:
        await consume()
    assert received, "the chunks before the drop were delivered"
    assert info.value.partial is not None
    assert (info.value.partial.choices[0].message.content or "").startswith("".join(received))
    assert len(tokenhub_emulator.requests) == 1
    assert tokenhub_emulator.api_key not in str(info.value)


@pytest.mark.parametrize("mode", ["stream", "astream"])
async def test_an_sse_error_event_raises(
    mode: str, llm: TokenHub, tokenhub_emulator: TokenHubEmulator
) -> None:
    tokenhub_emulator.sse_error_after(2, message="upstream overloaded")
    with pytest.raises(APIResponseError, match="upstream overloaded"):
        await _call(mode, llm)
    assert len(tokenhub_emulator.requests) == 1


def test_a_truncated_body_is_an_api_response_error(
    llm: TokenHub, tokenhub_emulator: TokenHubEmulator
) -> None:
    tokenhub_emulator.truncate_next()
    with pytest.raises(APIResponseError):
        llm.chat(PROMPT)


async def test_tool_paths_raise_the_same_errors(
    llm: TokenHub, tokenhub_emulator: TokenHubEmulator
) -> None:
    from llama_index.core.tools import FunctionTool

    def ping() -> str:
        """Ping."""
        return "pong"

    tokenhub_emulator.fail_next(401)
    with pytest.raises(AuthenticationError):
        await llm.achat_with_tools([FunctionTool.from_defaults(ping)], user_msg="ping")
