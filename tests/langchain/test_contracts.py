"""ChatTokenHub's contracts (issues 11 and 12), over real loopback HTTP against the emulator."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import ModelRetryMiddleware, SummarizationMiddleware
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.exceptions import ModelAuthenticationError, ModelError, OutputParserException
from langchain_core.load import dumps
from langchain_core.messages import AIMessageChunk, HumanMessage, SystemMessage
from langchain_core.outputs import LLMResult
from langchain_core.tools import tool
from pydantic import BaseModel
from typing_extensions import TypedDict

from langchain_tokenhub import ChatTokenHub
from tokenhub_core import client as core_client
from tokenhub_core import track_cost
from tokenhub_core.catalog import resolve_model
from tokenhub_core.errors import (
    APIResponseError,
    AuthenticationError,
    BudgetExceededError,
    InvalidParameterError,
    PaymentRequiredError,
    RateLimitError,
    UnknownParameterError,
)
from tokenhub_emulator import TokenHubEmulator

MODES = ["invoke", "ainvoke", "stream", "astream"]
CUT = '{"to_account": "DE89 3704 0044 05'


async def run(llm: Any, value: Any, mode: str, **kwargs: Any) -> Any:
    """The reply one way; a stream is aggregated with ``+`` as LangChain users do."""
    if mode == "invoke":
        return llm.invoke(value, **kwargs)
    if mode == "ainvoke":
        return await llm.ainvoke(value, **kwargs)
    if mode == "stream":
        chunks = list(llm.stream(value, **kwargs))
    else:
        chunks = [c async for c in llm.astream(value, **kwargs)]
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    return full


@tool
def transfer(to_account: str, amount: float) -> str:
    """Transfer money to an account."""
    return "done"


# --- 11.5 ChatOpenAI's names are aliases; a secret is never forwarded --------------------------


async def test_chatopenai_names_are_aliases_and_the_key_goes_nowhere_else(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    key = tokenhub_emulator.api_key
    seen: list[dict[str, Any]] = []

    class Spy(BaseCallbackHandler):
        def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
            seen.append({"serialized": serialized, **kwargs})

    llm = ChatTokenHub(
        openai_api_key=key,
        openai_api_base=tokenhub_emulator.base_url,
        request_timeout=5,
        max_completion_tokens=50,
        model_name="claude-haiku-4-5",
    )
    assert (llm.api_key and llm.api_key.get_secret_value()) == key
    assert (llm.base_url, llm.timeout, llm.max_tokens, llm.model) == (
        tokenhub_emulator.base_url,
        5,
        50,
        "claude-haiku-4-5",
    )
    llm.invoke("hi", config={"callbacks": [Spy()]})
    body = tokenhub_emulator.requests[-1].body
    assert body["max_tokens"] == 50 and body["model"] == "claude-haiku-4-5"
    assert set(body) == {"model", "messages", "max_tokens"}
    for text in (json.dumps(body), repr(llm), dumps(llm), json.dumps(seen, default=str)):
        assert key not in text
    assert ChatTokenHub(api_base="http://127.0.0.1:1/v1").base_url == "http://127.0.0.1:1/v1"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"model_kwargs": {"api_key": "th-leak-1234"}},
        {"model_kwargs": {"openai_api_key": "th-leak-1234"}},
        {"extra_body": {"Authorization": "Bearer th-leak-1234"}},
    ],
)
def test_a_secret_looking_field_is_never_forwarded(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="credentials") as info:
        ChatTokenHub(**kwargs)
    assert "th-leak-1234" not in str(info.value)


async def test_a_secret_looking_field_per_call_sends_nothing(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    with pytest.raises(InvalidParameterError, match="extra_body"):
        ChatTokenHub().invoke("hi", extra_body={"client_secret": "s3cret"})
    assert tokenhub_emulator.requests == []


# --- 11.6 typos are loud ---------------------------------------------------------------------


def test_an_unknown_constructor_field_names_it_and_suggests() -> None:
    with pytest.raises(UnknownParameterError, match=r"'temprature'.*did you mean 'temperature'"):
        ChatTokenHub(temprature=0.2)
    with pytest.raises(TypeError, match=r"presence_penalty.*extra_body"):
        ChatTokenHub(presence_penalty=0.5)


@pytest.mark.parametrize("mode", MODES)
async def test_an_unknown_per_call_field_sends_nothing(
    tokenhub_emulator: TokenHubEmulator, mode: str
) -> None:
    with pytest.raises(UnknownParameterError, match="'temprature'"):
        await run(ChatTokenHub(), "hi", mode, temprature=0.2)
    with pytest.raises(UnknownParameterError, match=r"'max_token'.*'max_tokens'"):
        await run(ChatTokenHub().bind(max_token=10), "hi", mode)
    assert tokenhub_emulator.requests == []


async def test_provider_extras_go_through_extra_body(tokenhub_emulator: TokenHubEmulator) -> None:
    ChatTokenHub().invoke("hi", extra_body={"top_k": 3}, max_completion_tokens=9)
    body = tokenhub_emulator.requests[-1].body
    assert (body["top_k"], body["max_tokens"]) == (3, 9)


# --- 11.7 types users pass -------------------------------------------------------------------


@pytest.mark.parametrize(
    "timeout", [5, 2.5, None, httpx.Timeout(5.0, connect=1.0), (1.0, 5.0), (1, 5, 5, 1)]
)
async def test_every_timeout_form_works(tokenhub_emulator: TokenHubEmulator, timeout: Any) -> None:
    assert ChatTokenHub(timeout=timeout).invoke("hi").content


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"timeout": "5s"}, "timeout"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": (1, 2, 3)}, "timeout"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": 1.5}, "max_retries"),
    ],
)
def test_timeout_and_retries_are_checked_at_construction(
    kwargs: dict[str, Any], param: str
) -> None:
    with pytest.raises(ValueError, match=param):
        ChatTokenHub(**kwargs)


async def test_max_tokens_none(tokenhub_emulator: TokenHubEmulator) -> None:
    assert ChatTokenHub(max_tokens=None).max_tokens == 1024  # the default at construction
    ChatTokenHub(max_tokens=77).invoke("hi", max_tokens=None)  # the instance's value per call
    assert tokenhub_emulator.requests[-1].body["max_tokens"] == 77


# --- 11.10 a cut-off tool call never runs -----------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_a_tool_call_cut_off_by_max_tokens_is_invalid(
    tokenhub_emulator: TokenHubEmulator, mode: str
) -> None:
    tokenhub_emulator.queue_reply(
        tool_calls=[{"name": "transfer", "arguments": CUT}],
        finish_reason="length",
    )
    message = await run(ChatTokenHub().bind_tools([transfer]), "Pay Bob", mode)
    assert message.tool_calls == []
    [invalid] = message.invalid_tool_calls
    assert invalid["name"] == "transfer"
    assert invalid["args"] == CUT
    assert "max_tokens" in (invalid["error"] or "")


async def test_a_complete_streamed_call_stays_valid(tokenhub_emulator: TokenHubEmulator) -> None:
    tokenhub_emulator.queue_reply(
        tool_calls=[{"name": "transfer", "arguments": {"to_account": "DE89", "amount": 5}}]
    )
    message = await run(ChatTokenHub().bind_tools([transfer]), "Pay Bob", "stream")
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [
        ("transfer", {"to_account": "DE89", "amount": 5})
    ]
    assert message.invalid_tool_calls == []


# --- 11.12 one id per streamed reply, llm_output, profile --------------------------------------


@pytest.mark.parametrize("mode", ["stream", "astream"])
async def test_every_chunk_of_a_stream_has_the_same_id(
    tokenhub_emulator: TokenHubEmulator, mode: str
) -> None:
    llm = ChatTokenHub()
    if mode == "stream":
        chunks = list(llm.stream("hello there"))
    else:
        chunks = [c async for c in llm.astream("hello there")]
    assert len(chunks) > 2 and chunks[-1].usage_metadata
    assert {c.id for c in chunks} == {chunks[0].id}
    assert chunks[0].id and chunks[0].id.startswith("chatcmpl")


async def test_llm_output_carries_token_usage_and_model_name(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    ended: list[LLMResult] = []

    class End(BaseCallbackHandler):
        def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
            ended.append(response)

    tokenhub_emulator.queue_reply("a", usage={"prompt_tokens": 10, "completion_tokens": 2})
    tokenhub_emulator.queue_reply("b", usage={"prompt_tokens": 20, "completion_tokens": 3})
    llm = ChatTokenHub(model="claude-haiku-4-5")
    result = llm.generate([[HumanMessage("one")], [HumanMessage("two")]], callbacks=[End()])
    assert result.llm_output is not None
    assert result.llm_output["model_name"] == "claude-haiku-4-5"
    usage = result.llm_output["token_usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (
        30,
        5,
        35,
    )
    assert ended and all((r.llm_output or {}).get("token_usage") for r in ended)


def test_profile_comes_from_the_catalog() -> None:
    info = resolve_model("claude-haiku-4-5")
    assert info is not None
    profile = ChatTokenHub(model="claude-haiku-4-5").profile
    assert profile is not None
    assert profile["max_input_tokens"] == info.context_window
    assert profile["max_output_tokens"] == info.max_output_tokens
    assert profile["tool_calling"] and profile["image_inputs"] and profile["structured_output"]
    SummarizationMiddleware(model=ChatTokenHub(), trigger=("fraction", 0.8))


# --- 11.13 Claude's message rules, 11.14 cache_control, 12.5 lone surrogates ---------------------


@pytest.mark.parametrize("mode", MODES)
async def test_empty_user_content_is_refused_naming_the_message(
    tokenhub_emulator: TokenHubEmulator, mode: str
) -> None:
    with pytest.raises(InvalidParameterError, match=r"messages\[1\]\.content.*empty user"):
        await run(ChatTokenHub(), [SystemMessage("be brief"), HumanMessage("  ")], mode)
    assert tokenhub_emulator.requests == []


@pytest.mark.parametrize("mode", MODES)
async def test_a_lone_surrogate_is_refused_naming_where(
    tokenhub_emulator: TokenHubEmulator, mode: str
) -> None:
    with pytest.raises(InvalidParameterError, match=r"messages\[0\]\.content.*surrogate"):
        await run(ChatTokenHub(), "broken \ud800 text", mode)
    assert tokenhub_emulator.requests == []


async def test_cache_control_reaches_the_wire(tokenhub_emulator: TokenHubEmulator) -> None:
    marked = {"type": "text", "text": "long rules", "cache_control": {"type": "ephemeral"}}
    ChatTokenHub().invoke([SystemMessage([marked]), HumanMessage([dict(marked, text="doc")])])
    messages = tokenhub_emulator.requests[-1].body["messages"]
    assert messages[0] == {"role": "system", "content": [marked]}
    assert messages[1]["content"][0]["cache_control"] == {"type": "ephemeral"}


# --- 11.15 errors: chained, picklable, not retried by ModelRetryMiddleware ---------------------


async def test_bridged_errors_pickle_with_their_attributes(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    tokenhub_emulator.fail_next(401, message="bad key")
    with pytest.raises(AuthenticationError) as info:
        ChatTokenHub(max_retries=0).invoke("hi")
    error = info.value
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert isinstance(copy, ModelAuthenticationError)
    assert (copy.status_code, copy.request_id, copy.body, str(copy)) == (
        error.status_code,
        error.request_id,
        error.body,
        str(error),
    )


@pytest.fixture
def no_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core_client, "_sleep", lambda s: None)

    async def asleep(seconds: float) -> None:
        return None

    monkeypatch.setattr(core_client, "_asleep", asleep)


def _agent(max_retries: int = 0) -> Any:
    return create_agent(
        ChatTokenHub(max_retries=max_retries),
        tools=[],
        middleware=[ModelRetryMiddleware(max_retries=2, initial_delay=0.0, jitter=False)],
    )


def test_model_retry_middleware_leaves_a_402_alone(
    tokenhub_emulator: TokenHubEmulator, no_waits: None
) -> None:
    tokenhub_emulator.fail_next(402, times=3, message="credit exhausted")
    with pytest.raises(PaymentRequiredError) as info:
        _agent().invoke({"messages": [("user", "hi")]})
    assert isinstance(info.value, ModelError) and not info.value.is_retryable
    assert [r.status for r in tokenhub_emulator.requests] == [402]


def test_model_retry_middleware_leaves_a_budget_alone(tokenhub_emulator: TokenHubEmulator) -> None:
    with track_cost(budget_usd=0.000001), pytest.raises(BudgetExceededError) as info:
        _agent().invoke({"messages": [("user", "hi")]})
    assert isinstance(info.value, ModelError) and not info.value.is_retryable
    assert tokenhub_emulator.requests == []


def test_model_retry_middleware_still_retries_a_429(tokenhub_emulator: TokenHubEmulator) -> None:
    tokenhub_emulator.fail_next(429, headers={"Retry-After": "0"})
    result = _agent().invoke({"messages": [("user", "hi")]})
    assert result["messages"][-1].content
    assert [r.status for r in tokenhub_emulator.requests] == [429, 200]
    assert isinstance(RateLimitError, type)


# --- 12.4 deeply nested JSON ends typed ---------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_deeply_nested_tool_arguments_are_an_invalid_call(
    tokenhub_emulator: TokenHubEmulator, mode: str
) -> None:
    # Streams stay shallower: LangChain re-parses the merged arguments on every chunk it adds.
    depth = 100_000 if mode in ("invoke", "ainvoke") else 3_000
    deep = '{"a": ' * depth + "1" + "}" * depth
    tokenhub_emulator.queue_reply(
        tool_calls=[{"name": "transfer", "arguments": deep}],
        usage={"prompt_tokens": 50, "completion_tokens": 1000},  # within max_tokens, as a server
    )
    message = await run(ChatTokenHub().bind_tools([transfer]), "Pay Bob", mode)
    assert message.tool_calls == []
    assert [c["name"] for c in message.invalid_tool_calls] == ["transfer"]


@pytest.fixture
def hostile_server() -> Iterator[dict[str, Any]]:
    """A loopback server that answers every POST with ``reply["body"]`` (``reply["type"]``)."""
    reply: dict[str, Any] = {"body": b"", "type": "application/json"}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(200)
            self.send_header("content-type", reply["type"])
            self.send_header("content-length", str(len(reply["body"])))
            self.end_headers()
            self.wfile.write(reply["body"])

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    reply["base_url"] = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield reply
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("depth", [600, 100_000])
@pytest.mark.parametrize("mode", MODES)
async def test_deeply_nested_replies_are_api_response_errors(
    hostile_server: dict[str, Any], mode: str, depth: int
) -> None:
    deep = "[" * depth + "]" * depth
    chunk = f'{{"id": "c", "choices": [], "x": {deep}}}'
    if mode in ("stream", "astream"):
        hostile_server["body"] = f"data: {chunk}\n\ndata: [DONE]\n\n".encode()
        hostile_server["type"] = "text/event-stream"
    else:
        hostile_server["body"] = chunk.encode()
    llm = ChatTokenHub(api_key="th-test-key", base_url=hostile_server["base_url"], max_retries=0)
    with pytest.raises(APIResponseError):
        await run(llm, "hi", mode)


# --- 12.11 default headers are never serialized ---------------------------------------------


def test_dumps_leaves_default_headers_out() -> None:
    llm = ChatTokenHub(default_headers={"Authorization": "Bearer th-proxy-secret-99"})
    assert "th-proxy-secret-99" not in dumps(llm)
    assert "th-proxy-secret-99" not in repr(llm)


def test_aggregated_chunks_stay_plain_ai_message_chunks_when_serialized() -> None:
    chunk = AIMessageChunk(content="x")
    assert "TokenHubMessageChunk" not in dumps(chunk)


# --- 11.11 structured output: one behavior for every schema kind ------------------------------


class Payment(BaseModel):
    """A payment."""

    to_account: str
    amount: float


class PaymentDict(TypedDict):
    """A payment."""

    to_account: str
    amount: float


PAYMENT_SCHEMA = {
    "title": "Payment",
    "description": "A payment.",
    "type": "object",
    "properties": {"to_account": {"type": "string"}, "amount": {"type": "number"}},
    "required": ["to_account", "amount"],
}
SCHEMAS = {"pydantic": Payment, "typeddict": PaymentDict, "json_schema": PAYMENT_SCHEMA}
PROBLEMS = {
    "no_call": ({"text": "I would rather not."}, r"no '\w+' tool call.*rather not"),
    "invalid_json": (
        {"tool_calls": [{"name": "NAME", "arguments": '{"to_account": }'}]},
        r"'\w+' tool call is not valid: .*not one complete JSON",
    ),
    "cut_off": (
        {"tool_calls": [{"name": "NAME", "arguments": CUT}], "finish_reason": "length"},
        r"'\w+' tool call is not valid: .*cut off by max_tokens",
    ),
    "wrong_fields": (
        {"tool_calls": [{"name": "NAME", "arguments": {"to_account": "DE89"}}]},
        r"does not match the schema.*amount",
    ),
}


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("kind", sorted(SCHEMAS))
async def test_every_schema_kind_fails_the_same_way_saying_what_was_wrong(
    tokenhub_emulator: TokenHubEmulator, kind: str, problem: str
) -> None:
    schema = SCHEMAS[kind]
    name = "PaymentDict" if kind == "typeddict" else "Payment"
    reply, match = PROBLEMS[problem]
    reply = json.loads(json.dumps(reply).replace("NAME", name))
    tokenhub_emulator.queue_reply(**reply, times=2)
    with pytest.raises(OutputParserException, match=match):
        ChatTokenHub().with_structured_output(schema).invoke("Pay Bob 5")
    raw = ChatTokenHub().with_structured_output(schema, include_raw=True).invoke("Pay Bob 5")
    assert raw["parsed"] is None
    assert isinstance(raw["parsing_error"], OutputParserException)


# --- 11.8 key and base URL are both read at the first call ---------------------------------------


def test_key_and_base_url_are_both_read_at_first_use(
    tokenhub_emulator: TokenHubEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOKENHUB_API_KEY")
    monkeypatch.delenv("TOKENHUB_BASE_URL")
    llm = ChatTokenHub()  # built at import time, before the environment is ready
    monkeypatch.setenv("TOKENHUB_API_KEY", tokenhub_emulator.api_key)
    monkeypatch.setenv("TOKENHUB_BASE_URL", tokenhub_emulator.base_url)
    assert llm.invoke("hi").content
    assert tokenhub_emulator.ledger(tokenhub_emulator.api_key).calls == 1


def test_usage_callbacks_still_add_up_calls(tokenhub_emulator: TokenHubEmulator) -> None:
    from langchain_core.callbacks import get_usage_metadata_callback

    llm = ChatTokenHub(model="claude-haiku-4-5")
    with get_usage_metadata_callback() as usage:
        llm.invoke("one")
        list(llm.stream("two"))
    [totals] = usage.usage_metadata.values()
    ledger = tokenhub_emulator.ledger()
    assert totals["input_tokens"] == ledger.prompt_tokens
    assert totals["output_tokens"] == ledger.completion_tokens


async def test_a_deeply_nested_error_body_is_still_the_status_error(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    from tokenhub_core.errors import InternalServerError

    tokenhub_emulator.fail_next(500, body='{"error": ' * 100_000 + '"x"' + "}" * 100_000)
    with pytest.raises(InternalServerError) as info:
        await ChatTokenHub(max_retries=0).ainvoke("hi")
    assert info.value.status_code == 500


# --- 11.16 breaking out of a stream is silent ----------------------------------------------------


def test_breaking_out_of_streams_inside_asyncio_run_is_silent() -> None:
    script = textwrap.dedent(
        """
        import asyncio
        from langchain_tokenhub import ChatTokenHub
        from tokenhub_emulator import TokenHubEmulator

        with TokenHubEmulator() as emu:
            llm = ChatTokenHub(api_key=emu.api_key, base_url=emu.base_url)

            async def main():
                for _ in range(3):
                    async for _ in llm.astream("a long story please"):
                        break

            asyncio.run(main())
            for _ in range(3):
                for _ in llm.stream("a long story please"):
                    break
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.strip() == "ok", done.stderr
    assert done.stderr == ""
