"""ChatTokenHub against streams shaped the way other OpenAI-compatible servers send them."""

from __future__ import annotations

import httpx
import pytest

from langchain_tokenhub import ChatTokenHub
from tests.server_variants import EXPECTED_CALL, EXPECTED_TEXT, VARIANTS, transport


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_every_variant_streams_to_one_clean_message(variant: str, mode: str) -> None:
    llm = ChatTokenHub(
        api_key="th-test",
        base_url="https://gateway.test/v1",
        http_client=httpx.Client(transport=transport(variant)),
        http_async_client=httpx.AsyncClient(transport=transport(variant)),
    )
    if mode == "sync":
        chunks = list(llm.stream("What is the weather in Paris?"))
    else:
        chunks = [c async for c in llm.astream("What is the weather in Paris?")]
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    assert sum(1 for c in chunks if c.usage_metadata) == 1
    assert full.usage_metadata is not None
    assert full.usage_metadata["input_tokens"] == 10 and full.usage_metadata["output_tokens"] == 3
    assert full.response_metadata["cost_usd"] == pytest.approx((10 * 3 + 3 * 15) / 1e6)
    if variant in EXPECTED_TEXT:
        assert full.content == EXPECTED_TEXT[variant]
        assert full.tool_calls == []
    else:
        assert [(c["name"], c["args"]) for c in full.tool_calls] == [EXPECTED_CALL]
        assert full.tool_calls[0]["id"] == "call_w"
        assert full.invalid_tool_calls == []
