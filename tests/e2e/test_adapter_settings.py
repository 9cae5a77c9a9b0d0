"""Settings both adapters share with the core, over real loopback HTTP: credentials never in the
base URL, the per-attempt deadline, per-call timeouts."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.load import dumps
from llama_index.core.base.llms.types import ChatMessage
from pydantic import ValidationError

from langchain_tokenhub import ChatTokenHub
from llama_index_tokenhub import TokenHub
from tests.hostile import HostileServer, keepalives
from tokenhub_core.errors import APITimeoutError, InvalidParameterError, StreamInterruptedError
from tokenhub_emulator import TokenHubEmulator

SECRET = "th-in-the-url-0123456789"


@pytest.mark.parametrize("adapter", [ChatTokenHub, TokenHub])
@pytest.mark.parametrize(
    "base_url",
    [f"https://{SECRET}@gateway.test/api/v1", f"https://gateway.test/api/v1?key={SECRET}"],
)
def test_a_key_in_the_base_url_is_refused_and_never_shown(adapter: Any, base_url: str) -> None:
    with pytest.raises((InvalidParameterError, ValidationError)) as caught:
        adapter(base_url=base_url)
    assert "0123456789" not in str(caught.value)


def test_a_clean_base_url_round_trips_through_langchain_serialization() -> None:
    llm = ChatTokenHub(base_url="https://gateway.test/api/v1/", api_key=SECRET)
    assert llm.base_url == "https://gateway.test/api/v1"
    assert SECRET not in dumps(llm) and SECRET not in repr(llm)


def _stream_langchain(base_url: str, **options: Any) -> None:
    llm = ChatTokenHub(base_url=base_url, api_key="th-x", max_retries=0, **options)
    list(llm.stream("hi"))


def _stream_llama_index(base_url: str, **options: Any) -> None:
    llm = TokenHub(base_url=base_url, api_key="th-x", max_retries=0, **options)
    list(llm.stream_chat([ChatMessage(role="user", content="hi")]))


@pytest.mark.parametrize("stream", [_stream_langchain, _stream_llama_index])
def test_the_deadline_ends_a_stream_kept_alive_by_comments(stream: Any) -> None:
    with (
        HostileServer(keepalives(0.1)) as server,
        pytest.raises((APITimeoutError, StreamInterruptedError), match="deadline"),
    ):
        stream(server.base_url, timeout=5, deadline=0.5)


def test_llama_index_takes_timeout_and_deadline_per_call(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    llm = TokenHub(max_retries=0)
    tokenhub_emulator.delay_headers(2.0)
    with pytest.raises(APITimeoutError):
        llm.chat([ChatMessage(role="user", content="hi")], timeout=0.2)
    tokenhub_emulator.delay_headers(2.0)
    with pytest.raises(APITimeoutError):
        llm.chat([ChatMessage(role="user", content="hi")], deadline=0.2)
    assert llm.chat([ChatMessage(role="user", content="hi")]).message.content


def test_langchain_takes_timeout_per_call(tokenhub_emulator: TokenHubEmulator) -> None:
    llm = ChatTokenHub(max_retries=0)
    tokenhub_emulator.delay_headers(2.0)
    with pytest.raises(APITimeoutError):
        llm.invoke("hi", timeout=0.2)
    assert llm.invoke("hi").content
