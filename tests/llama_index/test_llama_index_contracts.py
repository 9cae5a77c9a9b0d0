"""`TokenHub`'s contracts (issues 11 and 12), over real loopback HTTP against the emulator."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from decimal import Decimal
from typing import Any

import httpx
import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import (
    CacheControl,
    CachePoint,
    ChatMessage,
    TextBlock,
)
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel

from llama_index_tokenhub import TokenHub
from tests.llama_index.fixtures import chat_bodies
from tokenhub_core import track_cost
from tokenhub_core.catalog import price_call
from tokenhub_core.errors import (
    APIResponseError,
    APITimeoutError,
    IncompleteToolCallError,
    InvalidParameterError,
    UnknownParameterError,
)
from tokenhub_emulator import TokenHubEmulator

MODES = ["sync", "async", "stream", "astream"]
CUT = '{"to_account": "DE89 3704 0044 05'


def _user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role="user", content=text)]


async def _final(mode: str, llm: TokenHub, messages: list[ChatMessage], **kwargs: Any) -> Any:
    """The final ChatResponse of one call made ``mode``'s way."""
    if mode == "sync":
        return llm.chat(messages, **kwargs)
    if mode == "async":
        return await llm.achat(messages, **kwargs)
    if mode == "stream":
        return list(llm.stream_chat(messages, **kwargs))[-1]
    return [c async for c in await llm.astream_chat(messages, **kwargs)][-1]


def transfer(to_account: str, amount: float) -> str:
    """Transfer money to an account."""
    raise AssertionError("a cut-off call must never run")


# --- 11.3 the one pricing rule -----------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_a_dated_model_id_is_priced_like_the_meter_prices_it(
    llm: TokenHub, tokenhub_emulator: TokenHubEmulator, mode: str
) -> None:
    tokenhub_emulator.queue_reply(
        "hi",
        model="claude-haiku-4-5-20251001",
        usage={"prompt_tokens": 1000, "completion_tokens": 100},
    )
    with track_cost() as meter:
        final = await _final(mode, llm, _user("hi"), model="claude-haiku-4-5")
    _, expected = price_call("claude-haiku-4-5", "claude-haiku-4-5-20251001", 1000, 100)
    assert expected is not None
    assert final.additional_kwargs["cost_usd"] == float(expected)
    assert Decimal(str(meter.total_usd)) == expected


# --- 11.5 / 11.6 OpenAILike's names, loud typos, no secrets ------------------------------------


async def test_openailike_names_are_aliases(tokenhub_emulator: TokenHubEmulator) -> None:
    key = tokenhub_emulator.api_key
    llm = TokenHub(
        "claude-haiku-4-5",  # by position, as OpenAILike takes it
        openai_api_key=key,
        api_base=tokenhub_emulator.base_url,
        request_timeout=5,
        max_completion_tokens=50,
    )
    assert (llm.model, llm.base_url, llm.api_base, llm.timeout, llm.max_tokens) == (
        "claude-haiku-4-5",
        tokenhub_emulator.base_url,
        tokenhub_emulator.base_url,
        5,
        50,
    )
    llm.chat(_user("hi"))
    body = chat_bodies(tokenhub_emulator)[-1]
    assert (body["model"], body["max_tokens"]) == ("claude-haiku-4-5", 50)
    assert key not in json.dumps(body) and key not in repr(llm)
    assert TokenHub(model_name="claude-opus-4-7").model == "claude-opus-4-7"


def test_an_unknown_constructor_field_names_it_and_suggests() -> None:
    with pytest.raises(UnknownParameterError, match=r"'temprature'.*did you mean 'temperature'"):
        TokenHub(temprature=0.2)
    with pytest.raises(TypeError, match="position and by name"):
        TokenHub("claude-haiku-4-5", model="claude-opus-4-7")


@pytest.mark.parametrize("mode", MODES)
async def test_an_unknown_per_call_field_sends_nothing(
    llm: TokenHub, tokenhub_emulator: TokenHubEmulator, mode: str
) -> None:
    with pytest.raises(UnknownParameterError, match=r"'temprature'.*'temperature'"):
        await _final(mode, llm, _user("hi"), temprature=0.2)
    assert chat_bodies(tokenhub_emulator) == []


def test_a_secret_looking_field_is_never_forwarded() -> None:
    with pytest.raises(ValueError, match="credentials") as info:
        TokenHub(additional_kwargs={"api_key": "th-leak-1234"})
    assert "th-leak-1234" not in str(info.value)


async def test_extras_and_request_fields(
    llm: TokenHub, tokenhub_emulator: TokenHubEmulator
) -> None:
    TokenHub(seed=3).chat(_user("hi"), extra_body={"top_k": 2}, max_completion_tokens=9)
    body = chat_bodies(tokenhub_emulator)[-1]
    assert (body["seed"], body["top_k"], body["max_tokens"]) == (3, 2, 9)


# --- 11.7 types users pass, 11.8 key and base URL at first use ---------------------------------


@pytest.mark.parametrize(
    "timeout", [5, None, httpx.Timeout(5.0, connect=1.0), (1.0, 5.0), (1, 5, 5, 1)]
)
def test_every_timeout_form_works(tokenhub_emulator: TokenHubEmulator, timeout: Any) -> None:
    assert TokenHub(timeout=timeout).chat(_user("hi")).message.content


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [({"timeout": "5s"}, "timeout"), ({"timeout": 0}, "timeout"), ({"max_retries": 1.5}, "max")],
)
def test_timeout_and_retries_are_checked_at_construction(
    kwargs: dict[str, Any], param: str
) -> None:
    with pytest.raises(ValueError, match=param):
        TokenHub(**kwargs)


@pytest.mark.parametrize("mode", MODES)
async def test_a_per_call_timeout_applies_to_that_call(
    tokenhub_emulator: TokenHubEmulator, mode: str
) -> None:
    llm = TokenHub(max_retries=0)  # 60 s by default
    tokenhub_emulator.delay_headers(1.0)
    with pytest.raises(APITimeoutError):
        await _final(mode, llm, _user("hi"), timeout=0.2)
    assert (await _final(mode, llm, _user("hi"))).message.content  # the instance's again


async def test_max_tokens_none(tokenhub_emulator: TokenHubEmulator) -> None:
    assert TokenHub(max_tokens=None).max_tokens == 1024
    TokenHub(max_tokens=77).chat(_user("hi"), max_tokens=None)
    assert chat_bodies(tokenhub_emulator)[-1]["max_tokens"] == 77


def test_key_and_base_url_are_both_read_at_first_use(
    tokenhub_emulator: TokenHubEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOKENHUB_API_KEY")
    monkeypatch.delenv("TOKENHUB_BASE_URL")
    llm = TokenHub()  # e.g. Settings.llm set at import time, before the environment is ready
    monkeypatch.setenv("TOKENHUB_API_KEY", tokenhub_emulator.api_key)
    monkeypatch.setenv("TOKENHUB_BASE_URL", tokenhub_emulator.base_url)
    assert llm.chat(_user("hi")).message.content
    assert tokenhub_emulator.ledger(tokenhub_emulator.api_key).calls == 1


# --- 11.10 a cut-off tool call never runs -----------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_predict_and_call_refuses_a_cut_off_call(
    llm: TokenHub, tokenhub_emulator: TokenHubEmulator, mode: str
) -> None:
    tokenhub_emulator.queue_reply(
        tool_calls=[{"name": "transfer", "arguments": CUT}], finish_reason="length"
    )
    tool = FunctionTool.from_defaults(fn=transfer)

    async def predict() -> Any:
        if mode == "sync":
            return llm.predict_and_call([tool], "Pay Bob")
        return await llm.apredict_and_call([tool], "Pay Bob")

    with pytest.raises(IncompleteToolCallError, match="max_tokens") as info:
        await predict()
    assert (info.value.tool_name, info.value.arguments) == ("transfer", CUT)


class Payment(BaseModel):
    to_account: str
    amount: float


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_structured_predict_refuses_a_cut_off_call(
    llm: TokenHub, tokenhub_emulator: TokenHubEmulator, mode: str
) -> None:
    from llama_index.core.prompts import PromptTemplate

    tokenhub_emulator.queue_reply(
        tool_calls=[{"name": "Payment", "arguments": CUT}], finish_reason="length"
    )
    prompt = PromptTemplate("Pay Bob {what}")

    async def predict() -> Any:
        if mode == "sync":
            return llm.structured_predict(Payment, prompt, what="5")
        return await llm.astructured_predict(Payment, prompt, what="5")

    with pytest.raises(IncompleteToolCallError, match="max_tokens"):
        await predict()


def test_streamed_structured_predict_never_completes_a_cut_off_object(
    llm: TokenHub, tokenhub_emulator: TokenHubEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    from llama_index.core.prompts import PromptTemplate

    tokenhub_emulator.queue_reply(
        tool_calls=[{"name": "Payment", "arguments": CUT}], finish_reason="length"
    )
    # LlamaIndex's streaming program logs every parse error and goes on: partial objects only.
    objects = list(llm.stream_structured_predict(Payment, PromptTemplate("Pay Bob")))
    assert objects and not any(isinstance(o, Payment) for o in objects)
    assert "cut off by max_tokens" in caplog.text


@pytest.mark.parametrize("streaming", [True, False])
async def test_function_agent_refuses_a_cut_off_call(
    llm: TokenHub, tokenhub_emulator: TokenHubEmulator, streaming: bool, agent_memory: Any
) -> None:
    tokenhub_emulator.queue_reply(
        tool_calls=[{"name": "transfer", "arguments": CUT}], finish_reason="length"
    )
    agent = FunctionAgent(tools=[transfer], llm=llm, streaming=streaming)
    with pytest.raises(Exception, match="max_tokens"):
        await agent.run(user_msg="Pay Bob", memory=agent_memory())


# --- 11.13 one conversation, one request; 11.14 CachePoint; 12.5 surrogates ----------------------


async def test_one_conversation_gives_one_request_whichever_adapter(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    lc = pytest.importorskip("langchain_core.messages")
    from langchain_tokenhub import ChatTokenHub

    ChatTokenHub().invoke(
        [
            lc.SystemMessage("Be brief."),
            lc.HumanMessage("hi"),
            lc.AIMessage(""),
            lc.SystemMessage("Use French."),
            lc.HumanMessage("again"),
        ]
    )
    TokenHub().chat(
        [
            ChatMessage(role="system", content="Be brief."),
            ChatMessage(role="user", content="hi"),
            ChatMessage(role="assistant", content=""),
            ChatMessage(role="system", content="Use French."),
            ChatMessage(role="user", content="again"),
        ]
    )
    from_langchain, from_llama_index = chat_bodies(tokenhub_emulator)
    assert from_langchain["messages"] == from_llama_index["messages"]
    assert from_llama_index["messages"] == [
        {"role": "system", "content": "Be brief.\nUse French."},
        {"role": "user", "content": "hi"},
        {"role": "user", "content": "again"},
    ]


@pytest.mark.parametrize("mode", MODES)
async def test_empty_user_content_is_refused_naming_it(
    llm: TokenHub, tokenhub_emulator: TokenHubEmulator, mode: str
) -> None:
    messages = [ChatMessage(role="system", content="x"), ChatMessage(role="user", content="")]
    with pytest.raises(InvalidParameterError, match=r"messages\[1\]\.content.*empty user"):
        await _final(mode, llm, messages)
    assert chat_bodies(tokenhub_emulator) == []


@pytest.mark.parametrize("mode", MODES)
async def test_a_lone_surrogate_is_refused_naming_where(
    llm: TokenHub, tokenhub_emulator: TokenHubEmulator, mode: str
) -> None:
    with pytest.raises(InvalidParameterError, match=r"messages\[0\]\.content.*surrogate"):
        await _final(mode, llm, _user("broken \ud800 text"))
    assert chat_bodies(tokenhub_emulator) == []


async def test_cache_point_reaches_the_wire(
    llm: TokenHub, tokenhub_emulator: TokenHubEmulator
) -> None:
    system = ChatMessage(
        role="system",
        blocks=[
            TextBlock(text="long rules"),
            CachePoint(cache_control=CacheControl(type="ephemeral")),
        ],
    )
    llm.chat([system, *_user("hi")])
    assert chat_bodies(tokenhub_emulator)[-1]["messages"][0] == {
        "role": "system",
        "content": [{"type": "text", "text": "long rules", "cache_control": {"type": "ephemeral"}}],
    }


# --- 12.4 deeply nested tool arguments -----------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_deeply_nested_tool_arguments_never_run(
    llm: TokenHub, tokenhub_emulator: TokenHubEmulator, mode: str
) -> None:
    # Streams stay shallower: LlamaIndex's callbacks copy the growing message on every chunk.
    depth = 100_000 if mode in ("sync", "async") else 3_000
    deep = '{"a": ' * depth + "1" + "}" * depth
    tokenhub_emulator.queue_reply(
        tool_calls=[{"name": "transfer", "arguments": deep}],
        usage={"prompt_tokens": 50, "completion_tokens": 1000},  # within max_tokens, as a server
    )
    final = await _final(mode, llm, _user("Pay Bob"))
    with pytest.raises(IncompleteToolCallError, match="transfer"):
        llm.get_tool_calls_from_response(final)


# --- 11.16 breaking out of astream_chat is silent ------------------------------------------------


def test_breaking_out_of_astream_chat_inside_asyncio_run_is_silent() -> None:
    script = textwrap.dedent(
        """
        import asyncio
        from llama_index.core.llms import ChatMessage
        from llama_index_tokenhub import TokenHub
        from tokenhub_emulator import TokenHubEmulator

        with TokenHubEmulator() as emu:
            llm = TokenHub(api_key=emu.api_key, base_url=emu.base_url)

            async def main():
                for _ in range(3):
                    messages = [ChatMessage(role="user", content="a long story please")]
                    async for _ in await llm.astream_chat(messages):
                        break
                    async for _ in await llm.astream_complete("a long story please"):
                        break

            asyncio.run(main())
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.strip() == "ok", done.stderr
    assert done.stderr == ""


@pytest.mark.parametrize("mode", MODES)
async def test_a_deeply_nested_reply_body_is_an_api_response_error(
    llm: TokenHub, tokenhub_emulator: TokenHubEmulator, mode: str
) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    tokenhub_emulator.fail_next(200, body=f'{{"id": "x", "choices": [], "x": {deep}}}')
    with pytest.raises(APIResponseError):
        await _final(mode, llm, _user("hi"))
