"""TokenHub (LlamaIndex) against streams shaped the way other OpenAI-compatible servers send them."""

from __future__ import annotations

import httpx
import pytest
from llama_index.core.base.llms.types import ChatMessage

from llama_index_tokenhub import TokenHub
from tests.server_variants import EXPECTED_CALL, EXPECTED_TEXT, VARIANTS, transport


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_every_variant_streams_to_one_clean_response(variant: str, mode: str) -> None:
    llm = TokenHub(
        api_key="th-test",
        base_url="https://gateway.test/v1",
        http_client=httpx.Client(transport=transport(variant)),
        async_http_client=httpx.AsyncClient(transport=transport(variant)),
    )
    messages = [ChatMessage(role="user", content="What is the weather in Paris?")]
    if mode == "sync":
        responses = list(llm.stream_chat(messages))
    else:
        responses = [r async for r in await llm.astream_chat(messages)]
    last = responses[-1]
    assert last.raw["usage"]["prompt_tokens"] == 10
    assert last.raw["usage"]["completion_tokens"] == 3
    assert last.additional_kwargs["cost_usd"] == pytest.approx((10 * 3 + 3 * 15) / 1e6)
    calls = llm.get_tool_calls_from_response(last, error_on_no_tool_call=False)
    if variant in EXPECTED_TEXT:
        assert last.message.content == EXPECTED_TEXT[variant]
        assert calls == []
    else:
        assert [(c.tool_name, c.tool_kwargs) for c in calls] == [EXPECTED_CALL]
        assert calls[0].tool_id == "call_w"
