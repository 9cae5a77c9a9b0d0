"""RAG with ``Settings.llm = TokenHub()``: query engines and chat engines over real loopback HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.chat_engine.types import ChatMode

from tests.llama_index import fixtures
from tests.llama_index.fixtures import chat_bodies
from tokenhub_emulator import TokenHubEmulator

llama_settings = fixtures.llama_settings
llm = fixtures.llm
make_llm = fixtures.make_llm
sync_loop = fixtures.sync_loop

DOCS = [
    Document(text="Llamas are domesticated South American camelids used as pack animals."),
    Document(text="Alpacas are smaller than llamas and are bred for their fibre."),
    Document(text="TokenHub serves Claude models through one OpenAI-compatible endpoint."),
]


@pytest.fixture
def index(llama_settings: Any) -> VectorStoreIndex:
    return VectorStoreIndex.from_documents(DOCS)


def _prompt_text(body: dict[str, Any]) -> str:
    return "\n".join(str(m.get("content")) for m in body["messages"])


def test_query_engine(index: VectorStoreIndex, tokenhub_emulator: TokenHubEmulator) -> None:
    response = index.as_query_engine(similarity_top_k=3).query("What are llamas used for?")
    # The emulator answers a RAG prompt with the context sentence that best answers it.
    assert str(response) == (
        "[emulator] Llamas are domesticated South American camelids used as pack animals."
    )
    assert len(response.source_nodes) == 3
    [body] = chat_bodies(tokenhub_emulator)
    assert "What are llamas used for?" in _prompt_text(body)
    assert any(node.get_content() in _prompt_text(body) for node in response.source_nodes)


def test_streaming_query_engine(
    index: VectorStoreIndex, tokenhub_emulator: TokenHubEmulator
) -> None:
    response = index.as_query_engine(streaming=True).query("Tell me about alpacas")
    pieces = list(response.response_gen)  # type: ignore[union-attr]
    assert len(pieces) > 3
    assert "".join(pieces).startswith("[emulator] ")
    [body] = chat_bodies(tokenhub_emulator)
    assert body["stream"] is True


async def test_async_query_engine(
    index: VectorStoreIndex, tokenhub_emulator: TokenHubEmulator
) -> None:
    response = await index.as_query_engine(similarity_top_k=3).aquery("What is TokenHub?")
    assert str(response) == (
        "[emulator] TokenHub serves Claude models through one OpenAI-compatible endpoint."
    )
    assert tokenhub_emulator.ledger().calls == 1


@pytest.mark.parametrize(
    "mode",
    [
        ChatMode.CONDENSE_PLUS_CONTEXT,
        ChatMode.CONTEXT,
        ChatMode.CONDENSE_QUESTION,
        ChatMode.SIMPLE,
        ChatMode.BEST,
    ],
)
def test_chat_engine_modes(
    mode: ChatMode,
    index: VectorStoreIndex,
    tokenhub_emulator: TokenHubEmulator,
    agent_memory: Any,
) -> None:
    engine = index.as_chat_engine(chat_mode=mode, memory=agent_memory())
    first = engine.chat("What are llamas?")
    second = engine.chat("And how big are alpacas?")
    assert str(first).startswith("[emulator]")
    assert str(second).startswith("[emulator]")
    history = engine.chat_history
    assert [m.role.value for m in history[-4:]] == ["user", "assistant", "user", "assistant"]
    assert tokenhub_emulator.ledger().calls >= 2
    assert any("alpacas" in _prompt_text(b) for b in chat_bodies(tokenhub_emulator))


@pytest.mark.parametrize(
    "mode", [ChatMode.CONDENSE_PLUS_CONTEXT, ChatMode.CONTEXT, ChatMode.SIMPLE]
)
async def test_streaming_chat_engines(
    mode: ChatMode,
    index: VectorStoreIndex,
    tokenhub_emulator: TokenHubEmulator,
    agent_memory: Any,
) -> None:
    engine = index.as_chat_engine(chat_mode=mode, memory=agent_memory())
    streamed = engine.stream_chat("What are llamas?")
    pieces = list(streamed.response_gen)
    assert len(pieces) > 3
    assert "".join(pieces) == streamed.response
    astreamed = await engine.astream_chat("And alpacas?")
    apieces = [p async for p in astreamed.async_response_gen()]
    assert "".join(apieces).startswith("[emulator]")
    assert all(b.get("stream") for b in chat_bodies(tokenhub_emulator)[-1:])
