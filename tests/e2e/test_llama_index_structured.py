"""Structured output through LlamaIndex's function-calling program, over real loopback HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.prompts import PromptTemplate
from pydantic import BaseModel, Field

from llama_index_tokenhub import TokenHub
from tests.llama_index import fixtures
from tests.llama_index.fixtures import chat_bodies
from tokenhub_emulator import TokenHubEmulator

llm = fixtures.llm
make_llm = fixtures.make_llm
sync_loop = fixtures.sync_loop


class Album(BaseModel):
    """A music album."""

    title: str = Field(description="The album's title")
    artist: str
    year: int


PROMPT = PromptTemplate("Describe an album by {artist}.")
ALBUM = {"title": "Blue", "artist": "Joni Mitchell", "year": 1971}


@pytest.mark.parametrize("is_async", [False, True])
async def test_structured_predict_forces_the_tool_and_respects_llm_kwargs(
    is_async: bool, llm: TokenHub, tokenhub_emulator: TokenHubEmulator
) -> None:
    llm_kwargs = {"max_tokens": 321, "temperature": 0.2}
    if is_async:
        album = await llm.astructured_predict(
            Album, PROMPT, llm_kwargs=llm_kwargs, artist="Joni Mitchell"
        )
    else:
        album = llm.structured_predict(Album, PROMPT, llm_kwargs=llm_kwargs, artist="Joni Mitchell")
    assert isinstance(album, Album)
    assert album.title and album.artist
    [body] = chat_bodies(tokenhub_emulator)
    assert body["tool_choice"] == "required"
    assert body["parallel_tool_calls"] is False
    assert [t["function"]["name"] for t in body["tools"]] == ["Album"]
    assert (body["max_tokens"], body["temperature"]) == (321, 0.2)
    assert body["messages"][-1]["content"] == "Describe an album by Joni Mitchell."


def test_structured_predict_uses_the_instance_max_tokens(
    make_llm: Any, tokenhub_emulator: TokenHubEmulator
) -> None:
    make_llm(max_tokens=64).structured_predict(Album, PROMPT, artist="Nina Simone")
    assert chat_bodies(tokenhub_emulator)[0]["max_tokens"] == 64


@pytest.mark.parametrize("is_async", [False, True])
async def test_stream_structured_predict_yields_growing_partial_objects(
    is_async: bool, llm: TokenHub, tokenhub_emulator: TokenHubEmulator
) -> None:
    tokenhub_emulator.queue_reply(
        tool_calls=[{"name": "Album", "arguments": ALBUM, "id": "call_album"}]
    )
    if is_async:
        stream = await llm.astream_structured_predict(Album, PROMPT, artist="Joni Mitchell")
        partials = [p async for p in stream]
    else:
        partials = list(llm.stream_structured_predict(Album, PROMPT, artist="Joni Mitchell"))
    dumps = [p.model_dump() for p in partials]
    assert len(dumps) > 3
    assert any(d.get("title") and d.get("year") is None for d in dumps), dumps
    assert dumps[-1] == ALBUM
    assert isinstance(partials[-1], Album)
    assert chat_bodies(tokenhub_emulator)[0]["stream"] is True


# llama-index-core 0.14's StructuredLLM.stream_chat calls pydantic's deprecated .json().
@pytest.mark.filterwarnings(
    "ignore:The `json` method is deprecated:pydantic.warnings.PydanticDeprecatedSince20"
    ":llama_index.core.llms.structured_llm"
)
async def test_as_structured_llm(llm: TokenHub, tokenhub_emulator: TokenHubEmulator) -> None:
    structured = llm.as_structured_llm(Album)
    messages = [ChatMessage(role="user", content="Describe the album Blue by Joni Mitchell")]
    response = structured.chat(messages)
    assert isinstance(response.raw, Album)
    assert json.loads(response.message.content or "") == response.raw.model_dump()
    aresponse = await structured.achat(messages)
    assert isinstance(aresponse.raw, Album)
    tokenhub_emulator.queue_reply(
        tool_calls=[{"name": "Album", "arguments": ALBUM, "id": "call_1"}]
    )
    chunks = list(structured.stream_chat(messages))
    assert isinstance(chunks[-1].raw, Album)
    assert chunks[-1].raw.model_dump() == ALBUM
    assert all(b["tools"][0]["function"]["name"] == "Album" for b in chat_bodies(tokenhub_emulator))
