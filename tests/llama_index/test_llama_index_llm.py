"""`TokenHub` itself: parameters, secrets, metadata, the four chat paths, tools and images."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ImageBlock,
    TextBlock,
)
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.tools import FunctionTool

import llama_index_tokenhub
from llama_index_tokenhub import DEFAULT_CONTEXT_WINDOW, TokenHub
from tests.llama_index._images import PNG_1X1
from tests.llama_index.fixtures import chat_bodies, run_mode
from tokenhub_core import MODELS
from tokenhub_core.errors import InternalServerError, InvalidParameterError, MissingAPIKeyError
from tokenhub_emulator import TokenHubEmulator

SECRET = "th-very-secret-key-0123456789"


def _user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role="user", content=text)]


MODES = ["sync", "async", "stream", "astream"]


# The public face and parameters.


def test_public_api() -> None:
    assert llama_index_tokenhub.__all__ == ["DEFAULT_CONTEXT_WINDOW", "TokenHub"]
    assert issubclass(TokenHub, FunctionCallingLLM)


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    llm = TokenHub()
    assert llm.model == "anthropic/claude-sonnet-4-6"
    assert llm.max_tokens == 1024
    assert (llm.timeout, llm.max_retries) == (60.0, 2)
    # Key and base URL are both left to the first call (TOKENHUB_API_KEY, TOKENHUB_BASE_URL).
    assert (llm.base_url, llm.api_key) == (None, None)
    assert llm.api_base == "https://tokenhub.store/api/v1"
    monkeypatch.setenv("TOKENHUB_BASE_URL", "http://127.0.0.1:9/api/v1")
    assert llm.api_base == "http://127.0.0.1:9/api/v1"


def test_api_base_is_an_alias_of_base_url() -> None:
    assert TokenHub(api_base="http://127.0.0.1:1/x").base_url == "http://127.0.0.1:1/x"
    assert TokenHub(base_url="http://127.0.0.1:2/y").base_url == "http://127.0.0.1:2/y"
    llm = TokenHub(api_base="http://127.0.0.1:1/x")
    assert llm.api_base == "http://127.0.0.1:1/x"
    llm.api_base = "http://127.0.0.1:3/z"
    assert (llm.base_url, llm.api_base) == ("http://127.0.0.1:3/z", "http://127.0.0.1:3/z")


def test_api_key_is_never_shown() -> None:
    llm = TokenHub(api_key=SECRET, default_headers={"X-Proxy-Auth": "hidden-token"})
    shown = [
        repr(llm),
        str(llm),
        json.dumps(llm.to_dict(), default=str),
        llm.to_json(),
        json.dumps(llm.to_payload(), default=str),
        llm.model_dump_json(),
    ]
    for text in shown:
        assert SECRET not in text
        assert "hidden-token" not in text
    assert "api_key" not in llm.to_dict()
    assert llm.api_key is not None and llm.api_key.get_secret_value() == SECRET


def test_serialization_round_trip() -> None:
    llm = TokenHub(model="claude-haiku-4-5", temperature=0.3, stop=["END"], max_tokens=64)
    again = TokenHub.from_dict(llm.to_dict())
    assert (again.model, again.temperature, again.stop, again.max_tokens) == (
        "claude-haiku-4-5",
        0.3,
        ["END"],
        64,
    )
    assert TokenHub.from_json(llm.to_json()).context_window == llm.context_window


@pytest.mark.parametrize("model", ["anthropic/claude-haiku-4-5", "claude-haiku-4-5"])
def test_context_window_from_the_catalog_for_both_id_forms(model: str) -> None:
    assert (
        TokenHub(model=model).context_window == MODELS["anthropic/claude-haiku-4-5"].context_window
    )
    assert TokenHub(model=model).metadata.context_window == 200_000


def test_unknown_model_gets_the_documented_default_window() -> None:
    llm = TokenHub(model="someone/new-model")
    assert llm.context_window == DEFAULT_CONTEXT_WINDOW == 200_000
    assert TokenHub(model="someone/new-model", context_window=50_000).context_window == 50_000


def test_metadata() -> None:
    metadata = TokenHub(model="claude-opus-4-7", max_tokens=300).metadata
    assert metadata.context_window == MODELS["claude-opus-4-7"].context_window
    assert metadata.num_output == 300
    assert metadata.is_chat_model is True
    assert metadata.is_function_calling_model is True
    assert metadata.model_name == "claude-opus-4-7"


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"temperature": 1.5}, "temperature"),
        ({"temperature": 0.2, "top_p": 0.9}, "top_p"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_retries": -1}, "max_retries"),
    ],
)
def test_claude_rules_are_checked_at_construction(kwargs: dict[str, Any], param: str) -> None:
    with pytest.raises(ValueError, match=param) as info:
        TokenHub(api_key=SECRET, **kwargs)
    assert SECRET not in str(info.value)


def test_a_single_stop_string_becomes_a_list() -> None:
    assert TokenHub(stop="END").stop == ["END"]


async def test_claude_rules_are_checked_per_call(
    llm: TokenHub,
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    with pytest.raises(InvalidParameterError, match="temperature"):
        llm.chat(_user("hi"), temperature=1.7)
    with pytest.raises(InvalidParameterError, match="top_p"):
        await llm.achat(_user("hi"), temperature=0.5, top_p=0.5)
    with pytest.raises(InvalidParameterError, match="stop"):
        llm.stream_chat(_user("hi"), stop=["1", "2", "3", "4", "5"])
    assert tokenhub_emulator.requests == []


def test_missing_key_names_the_variable(
    tokenhub_emulator: TokenHubEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOKENHUB_API_KEY")
    with pytest.raises(MissingAPIKeyError, match="TOKENHUB_API_KEY"):
        TokenHub().chat(_user("hi"))
    assert tokenhub_emulator.requests == []


def test_an_explicit_key_is_used(
    tokenhub_emulator: TokenHubEmulator, make_llm: Callable[..., TokenHub]
) -> None:
    llm = make_llm(api_key=tokenhub_emulator.api_key, base_url=tokenhub_emulator.base_url)
    assert llm.chat(_user("hi")).message.content
    assert tokenhub_emulator.ledger(tokenhub_emulator.api_key).calls == 1


# The four chat paths and the completion paths.


@pytest.mark.parametrize("mode", MODES)
async def test_chat_paths_return_text_and_the_servers_usage(
    mode: str,
    llm: TokenHub,
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    final, chunks = await run_mode(mode, llm, _user("Tell me about llamas"))
    assert final.message.content == "[emulator] You said: Tell me about llamas"
    [entry] = tokenhub_emulator.ledger().entries
    assert final.raw["usage"]["prompt_tokens"] == entry.prompt_tokens
    assert final.raw["usage"]["completion_tokens"] == entry.completion_tokens
    assert final.additional_kwargs["prompt_tokens"] == entry.prompt_tokens
    assert final.additional_kwargs["completion_tokens"] == entry.completion_tokens
    assert final.additional_kwargs["total_tokens"] == entry.prompt_tokens + entry.completion_tokens
    assert final.additional_kwargs["cost_usd"] == pytest.approx(float(entry.cost_usd))
    [body] = chat_bodies(tokenhub_emulator)
    assert body["max_tokens"] == 1024
    if chunks:
        assert len(chunks) > 3
        assert "".join(c.delta for c in chunks) == final.message.content
        assert [c.message.content for c in chunks[:2]] == [
            chunks[0].delta,
            chunks[0].delta + chunks[1].delta,
        ]
        assert all("usage" not in (c.additional_kwargs or {}) for c in chunks[:-1])
        assert body["stream"] is True
        assert body["stream_options"] == {"include_usage": True}
    else:
        assert "stream" not in body


async def test_completion_paths(llm: TokenHub, tokenhub_emulator: TokenHubEmulator) -> None:
    expected = "[emulator] You said: hi"
    assert llm.complete("hi").text == expected
    assert (await llm.acomplete("hi")).text == expected
    streamed = list(llm.stream_complete("hi"))
    assert "".join(r.delta or "" for r in streamed) == streamed[-1].text == expected
    astreamed = [r async for r in await llm.astream_complete("hi")]
    assert astreamed[-1].text == expected
    assert astreamed[-1].additional_kwargs["prompt_tokens"] > 0
    assert tokenhub_emulator.ledger().calls == 4


async def test_high_level_llm_apis(llm: TokenHub, tokenhub_emulator: TokenHubEmulator) -> None:
    from llama_index.core.prompts import PromptTemplate

    prompt = PromptTemplate("Say something about {animal}.")
    assert (
        llm.predict(prompt, animal="llamas") == "[emulator] You said: Say something about llamas."
    )
    assert "".join(llm.stream(prompt, animal="alpacas")).endswith("about alpacas.")
    assert (await llm.apredict(prompt, animal="vicunas")).endswith("about vicunas.")
    tokens = [t async for t in await llm.astream(prompt, animal="guanacos")]
    assert "".join(tokens).endswith("about guanacos.")
    assert tokenhub_emulator.ledger().calls == 4


async def test_instance_and_per_call_parameters_reach_the_wire(
    tokenhub_emulator: TokenHubEmulator, make_llm: Callable[..., TokenHub]
) -> None:
    llm = make_llm(
        model="claude-haiku-4-5",
        temperature=0.3,
        stop=["ZZZ"],
        max_tokens=200,
        additional_kwargs={"user": "user-7", "metadata_tag": "x"},
        default_headers={"X-Trace": "abc"},
    )
    llm.chat(_user("one"))
    await llm.achat(
        _user("two"), max_tokens=77, temperature=0.9, model="anthropic/claude-haiku-4-5"
    )
    list(llm.stream_chat(_user("three"), extra_body={"seed_hint": 3}))
    first, second, third = chat_bodies(tokenhub_emulator)
    assert first["model"] == "claude-haiku-4-5"
    assert (first["temperature"], first["stop"], first["max_tokens"]) == (0.3, ["ZZZ"], 200)
    assert first["user"] == "user-7"
    assert first["metadata_tag"] == "x"
    assert (second["max_tokens"], second["temperature"]) == (77, 0.9)
    assert second["model"] == "anthropic/claude-haiku-4-5"
    assert third["seed_hint"] == 3
    assert tokenhub_emulator.requests[0].headers["x-trace"] == "abc"


async def test_the_rate_limiter_is_consulted_once_per_call(
    make_llm: Callable[..., TokenHub],
) -> None:
    from llama_index.core.rate_limiter import BaseRateLimiter

    class Counting(BaseRateLimiter):
        def __init__(self) -> None:
            self.sync_calls = 0
            self.async_calls = 0

        def acquire(self, num_tokens: int = 0) -> None:
            self.sync_calls += 1

        async def async_acquire(self, num_tokens: int = 0) -> None:
            self.async_calls += 1

    limiter = Counting()
    llm = make_llm(rate_limiter=limiter)
    llm.chat(_user("a"))
    list(llm.stream_chat(_user("b")))
    llm.complete("c")
    await llm.achat(_user("d"))
    [c async for c in await llm.astream_chat(_user("e"))]
    assert (limiter.sync_calls, limiter.async_calls) == (3, 2)


async def test_your_own_http_clients_are_used() -> None:
    import httpx

    seen: list[str] = []

    def reply(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        body = {
            "id": "x",
            "model": "anthropic/claude-sonnet-4-6",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "mocked"}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        return httpx.Response(200, json=body)

    transport = httpx.MockTransport(reply)
    with httpx.Client(transport=transport) as sync_client:
        async with httpx.AsyncClient(transport=transport) as async_client:
            llm = TokenHub(
                api_key="th-mock-key-1234",
                base_url="http://127.0.0.1:1/api/v1",
                http_client=sync_client,
                async_http_client=async_client,
            )
            assert llm.chat(_user("a")).message.content == "mocked"
            assert (await llm.achat(_user("b"))).message.content == "mocked"
    assert seen == ["Bearer th-mock-key-1234"] * 2


def test_an_unknown_per_call_parameter_is_refused(
    llm: TokenHub,
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    with pytest.raises(TypeError, match="temprature"):
        llm.chat(_user("hi"), temprature=0.5)
    assert tokenhub_emulator.requests == []


def test_settings_changed_after_construction_take_effect(
    llm: TokenHub, tokenhub_emulator: TokenHubEmulator
) -> None:
    llm.chat(_user("a"))
    llm.max_retries = 0
    tokenhub_emulator.fail_next(500)
    with pytest.raises(InternalServerError):
        llm.chat(_user("b"))
    assert len(tokenhub_emulator.requests) == 2  # the first call, then one attempt: no retry


def test_closing_a_stream_early_releases_it(
    llm: TokenHub,
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    stream = llm.stream_chat(_user("a long enough prompt to stream several pieces"))
    first = next(stream)
    assert first.delta
    stream.close()
    assert llm.chat(_user("again")).message.content == "[emulator] You said: again"


# Tools.


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


def lookup_city(name: str) -> str:
    """Look up facts about a city."""
    return f"{name} is lovely"


TOOLS = [FunctionTool.from_defaults(multiply), FunctionTool.from_defaults(lookup_city)]


def test_prepare_chat_with_tools_never_changes_the_history() -> None:
    llm = TokenHub()
    history = [ChatMessage(role="user", content="earlier")]
    kwargs = llm._prepare_chat_with_tools(TOOLS, user_msg="now", chat_history=history)
    assert [m.content for m in history] == ["earlier"]
    assert [m.content for m in kwargs["messages"]] == ["earlier", "now"]
    assert [t["function"]["name"] for t in kwargs["tools"]] == ["multiply", "lookup_city"]
    assert "tool_choice" not in kwargs
    assert kwargs["parallel_tool_calls"] is False


@pytest.mark.parametrize(
    ("options", "tool_choice", "parallel"),
    [
        ({"tool_required": True}, "required", False),
        (
            {"tool_choice": "multiply"},
            {"type": "function", "function": {"name": "multiply"}},
            False,
        ),
        ({"tool_choice": {"type": "function", "function": {"name": "lookup_city"}}}, None, False),
        ({"allow_parallel_tool_calls": True, "tool_choice": "auto"}, "auto", None),
        ({"tool_choice": None, "tool_required": False, "strict": True}, "absent", False),
    ],
)
def test_prepare_chat_with_tools_options(
    options: dict[str, Any], tool_choice: Any, parallel: bool | None
) -> None:
    kwargs = TokenHub()._prepare_chat_with_tools(TOOLS, user_msg="hi", **options)
    if tool_choice == "absent":
        assert "tool_choice" not in kwargs
    elif tool_choice is not None:
        assert kwargs["tool_choice"] == tool_choice
    assert kwargs.get("parallel_tool_calls") == parallel
    assert "strict" not in kwargs


def test_no_tools_sends_no_tool_fields() -> None:
    kwargs = TokenHub()._prepare_chat_with_tools([], user_msg="hi", tool_required=True)
    assert set(kwargs) == {"messages"}


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_tool_round_trip(
    mode: str,
    llm: TokenHub,
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    question = "Please multiply 6 and 7"
    if mode == "sync":
        response = llm.chat_with_tools(TOOLS, user_msg=question)
    else:
        response = await llm.achat_with_tools(TOOLS, user_msg=question)
    [selection] = llm.get_tool_calls_from_response(response)
    assert selection.tool_name == "multiply"
    assert selection.tool_id
    assert set(selection.tool_kwargs) == {"a", "b"}
    result = TOOLS[0](**selection.tool_kwargs)
    history = [
        ChatMessage(role="user", content=question),
        response.message,
        ChatMessage(
            role="tool",
            blocks=result.blocks,
            additional_kwargs={"tool_call_id": selection.tool_id},
        ),
    ]
    final = llm.chat_with_tools(TOOLS, chat_history=history)
    assert final.message.content == f"[emulator] Tool results: multiply returned {result.content}"
    assert llm.get_tool_calls_from_response(final, error_on_no_tool_call=False) == []
    sent = chat_bodies(tokenhub_emulator)[-1]["messages"]
    assert sent[1]["tool_calls"][0]["id"] == sent[2]["tool_call_id"] == selection.tool_id


def test_a_single_tool_call_is_kept_unless_parallel_is_allowed(
    llm: TokenHub,
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    calls = [
        {"name": "multiply", "arguments": {"a": 1, "b": 2}, "id": "call_1"},
        {"name": "lookup_city", "arguments": {"name": "Oslo"}, "id": "call_2"},
    ]
    tokenhub_emulator.queue_reply(tool_calls=calls, times=2)
    single = llm.chat_with_tools(TOOLS, user_msg="do both")
    assert [s.tool_id for s in llm.get_tool_calls_from_response(single)] == ["call_1"]
    assert len(single.message.additional_kwargs["tool_calls"]) == 1
    both = llm.chat_with_tools(TOOLS, user_msg="do both", allow_parallel_tool_calls=True)
    assert [s.tool_id for s in llm.get_tool_calls_from_response(both)] == ["call_1", "call_2"]
    bodies = chat_bodies(tokenhub_emulator)
    assert bodies[0]["parallel_tool_calls"] is False
    assert "parallel_tool_calls" not in bodies[1]


@pytest.mark.parametrize("mode", ["stream", "astream"])
async def test_streamed_tool_calls_parse_partially_and_end_complete(
    mode: str,
    llm: TokenHub,
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    args = {"name": "Reykjavik, the northernmost capital of a sovereign state"}
    tokenhub_emulator.queue_reply(
        tool_calls=[{"name": "lookup_city", "arguments": args, "id": "call_r"}]
    )
    if mode == "stream":
        chunks = list(llm.stream_chat_with_tools(TOOLS, user_msg="look it up"))
    else:
        chunks = [c async for c in await llm.astream_chat_with_tools(TOOLS, user_msg="look it up")]
    partial_names = []
    for chunk in chunks:
        for selection in llm.get_tool_calls_from_response(chunk, error_on_no_tool_call=False):
            assert selection.tool_id == "call_r"
            partial_names.append(selection.tool_kwargs.get("name", ""))
    growing = [n for n in partial_names if n and n != args["name"]]
    assert growing, "the arguments should be visible while they stream in"
    assert all(args["name"].startswith(n) for n in growing)
    [final] = llm.get_tool_calls_from_response(chunks[-1])
    assert final.tool_kwargs == args
    assert chunks[-1].additional_kwargs["finish_reason"] == "tool_calls"


# Images.


@pytest.mark.parametrize("source", ["url", "path", "bytes"])
def test_images_reach_the_emulator(
    source: str,
    tmp_path: Path,
    llm: TokenHub,
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    url = "https://example.com/llama.png"
    if source == "url":
        image = ImageBlock(url=url)
    elif source == "path":
        path = tmp_path / "llama.png"
        path.write_bytes(PNG_1X1)
        image = ImageBlock(path=path)
    else:
        image = ImageBlock(image=PNG_1X1, image_mimetype="image/png")
    message = ChatMessage(role="user", blocks=[TextBlock(text="What is this?"), image])
    response = llm.chat([message])
    label = "URL" if source == "url" else "base64 image/png"
    assert response.message.content == f"[emulator] You said: What is this? [1 image: 1 {label}]"
    [body] = chat_bodies(tokenhub_emulator)
    sent = body["messages"][0]["content"][1]["image_url"]["url"]
    if source == "url":
        assert sent == url
    else:
        assert sent.startswith("data:image/png;base64,")


def test_unsupported_image_is_refused_before_sending(
    llm: TokenHub,
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    message = ChatMessage(role="user", blocks=[ImageBlock(image=b"BM\x00\x00 a bitmap")])
    with pytest.raises(InvalidParameterError, match="image"):
        llm.chat([message])
    assert tokenhub_emulator.requests == []


def test_chat_response_type(llm: TokenHub) -> None:
    assert isinstance(llm.chat(_user("x")), ChatResponse)
