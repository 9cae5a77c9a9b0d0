"""`TokenHub`'s Claude settings: protocol, thinking (alias thinking_dict), cache_idx, tool choice."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core.tools import FunctionTool

from llama_index_tokenhub import TokenHub
from tokenhub_core.errors import InvalidParameterError


def _add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


ADD = FunctionTool.from_defaults(fn=_add)


def test_defaults() -> None:
    llm = TokenHub()
    assert (llm.protocol, llm.thinking, llm.thinking_dict, llm.cache_idx) == (
        "chat/completions",
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("given", "protocol"),
    [
        ("messages", "messages"),
        ("chat/completions", "chat/completions"),
        ("chat_completions", "chat/completions"),
    ],
)
def test_protocol_spellings(given: str, protocol: str) -> None:
    assert TokenHub(protocol=given).protocol == protocol


def test_an_unknown_protocol_is_refused_naming_the_choices() -> None:
    with pytest.raises(ValueError, match=r'protocol.*"chat/completions".*"messages"'):
        TokenHub(protocol="anthropic")


@pytest.mark.parametrize("thinking", [500, "enabled", {"type": "on"}, 2.5])
def test_a_malformed_thinking_setting_is_refused_when_built(thinking: Any) -> None:
    with pytest.raises(ValueError, match="thinking"):
        TokenHub(protocol="messages", thinking=thinking, max_tokens=4096)


@pytest.mark.parametrize(
    ("thinking", "as_dict"),
    [
        (2048, {"type": "enabled", "budget_tokens": 2048}),
        ("adaptive", {"type": "adaptive"}),
        ({"type": "enabled", "budget_tokens": 4000}, {"type": "enabled", "budget_tokens": 4000}),
    ],
)
def test_thinking_forms_and_anthropics_thinking_dict(thinking: Any, as_dict: Any) -> None:
    llm = TokenHub(protocol="messages", thinking=thinking, max_tokens=8000)
    assert llm.thinking == thinking
    assert llm.thinking_dict == as_dict


def test_thinking_dict_is_accepted_as_llama_index_anthropic_names_it() -> None:
    thinking = {"type": "enabled", "budget_tokens": 2048}
    llm = TokenHub(protocol="messages", thinking_dict=thinking, max_tokens=4096)
    assert llm.thinking == thinking
    with pytest.raises(ValueError, match="thinking_dict"):
        TokenHub(thinking_dict=thinking, thinking=4000, max_tokens=8000)


def test_settings_survive_serialization() -> None:
    llm = TokenHub(protocol="messages", thinking="adaptive", cache_idx=-1)
    again = TokenHub.from_dict(llm.to_dict())
    assert (again.protocol, again.thinking, again.cache_idx) == ("messages", "adaptive", -1)


def test_tool_required_asks_for_a_tool_without_thinking() -> None:
    request = TokenHub(protocol="messages")._prepare_chat_with_tools(
        [ADD], "2+3?", tool_required=True
    )
    assert request["tool_choice"] == "required"


@pytest.mark.parametrize(
    ("instance", "call"),
    [(2048, None), (None, {"thinking": 2048}), (None, {"thinking_dict": {"type": "adaptive"}})],
)
def test_tool_required_becomes_auto_while_thinking(instance: Any, call: Any) -> None:
    # Claude refuses a forced tool with thinking on; llama-index's Anthropic asks for auto too.
    llm = TokenHub(protocol="messages", thinking=instance, max_tokens=4096)
    request = llm._prepare_chat_with_tools([ADD], "2+3?", tool_required=True, **(call or {}))
    assert "tool_choice" not in request


def test_thinking_disabled_per_call_keeps_tool_required() -> None:
    llm = TokenHub(protocol="messages", thinking=2048, max_tokens=4096)
    request = llm._prepare_chat_with_tools(
        [ADD], "2+3?", tool_required=True, thinking={"type": "disabled"}
    )
    assert request["tool_choice"] == "required"


def test_the_prompt_caching_beta_header_caches_the_tools_as_anthropic_does() -> None:
    llm = TokenHub(protocol="messages")
    headers = {"anthropic-beta": "prompt-caching-2024-07-31"}
    request = llm._prepare_chat_with_tools([ADD, ADD], "2+3?", extra_headers=headers)
    assert [t.get("cache_control") for t in request["tools"]] == [None, {"type": "ephemeral"}]
    plain = llm._prepare_chat_with_tools([ADD], "2+3?")
    assert "cache_control" not in plain["tools"][0]


def test_a_bad_per_call_protocol_is_refused_before_sending() -> None:
    with pytest.raises(InvalidParameterError, match="protocol"):
        TokenHub(api_key="th-x").chat([], protocol="grpc")
