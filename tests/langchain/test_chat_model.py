"""ChatTokenHub's behaviour over real loopback HTTP against the emulator."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import httpx
import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.exceptions import (
    ContextOverflowError,
    ModelAPIError,
    ModelAuthenticationError,
    ModelConnectionError,
    ModelInvalidRequestError,
    ModelRateLimitError,
    OutputParserException,
)
from langchain_core.load import dumpd, dumps, load
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.tools import tool
from pydantic import BaseModel, Field, ValidationError
from typing_extensions import TypedDict

import langchain_tokenhub
from langchain_tokenhub import ChatTokenHub
from langchain_tokenhub.messages import completion_to_message
from tests.langchain._images import PNG_BYTES
from tokenhub_core import ChatCompletion, track_cost
from tokenhub_core import client as core_client
from tokenhub_core.catalog import cost_usd, price_call
from tokenhub_core.errors import (
    APIResponseError,
    AuthenticationError,
    InternalServerError,
    InvalidParameterError,
    MissingAPIKeyError,
    RateLimitError,
    StreamInterruptedError,
)
from tokenhub_emulator import TokenHubEmulator

MODEL = "anthropic/claude-sonnet-4-6"
MODES = ["invoke", "ainvoke", "stream", "astream"]
ASYNC = {"ainvoke", "astream"}


async def call(runnable: Any, value: Any, mode: str, **kwargs: Any) -> tuple[Any, list[Any]]:
    """Run ``runnable`` one way; the result (stream chunks merged) and the chunks."""
    if mode == "invoke":
        return runnable.invoke(value, **kwargs), []
    if mode == "ainvoke":
        return await runnable.ainvoke(value, **kwargs), []
    if mode == "stream":
        chunks = list(runnable.stream(value, **kwargs))
    else:
        chunks = [c async for c in runnable.astream(value, **kwargs)]
    if chunks and isinstance(chunks[0], AIMessageChunk):
        full = chunks[0]
        for c in chunks[1:]:
            full = full + c
        return full, chunks
    return (chunks[-1] if chunks else None), chunks


def _calls(message: AIMessage) -> list[tuple[str, dict[str, Any], str | None]]:
    return [(c["name"], c["args"], c["id"]) for c in message.tool_calls]


def _no_nulls(value: Any, path: str = "body") -> list[str]:
    if value is None:
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _no_nulls(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _no_nulls(v, f"{path}[{i}]")]
    return []


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"Sunny in {city}"


@tool
def get_time(timezone: str) -> str:
    """Get the current time in a timezone."""
    return "12:00"


# --- replies, usage and metadata ----------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_reply_usage_and_metadata(tokenhub_emulator: TokenHubEmulator, mode: str) -> None:
    tokenhub_emulator.queue_reply(
        text="Hello from the gateway.",
        usage={"prompt_tokens": 120, "completion_tokens": 7, "cached_tokens": 20},
    )
    message, chunks = await call(ChatTokenHub(), "Say hello", mode)

    assert message.content == "Hello from the gateway."
    assert message.usage_metadata == {
        "input_tokens": 120,
        "output_tokens": 7,
        "total_tokens": 127,
        "input_token_details": {"cache_read": 20},
    }
    meta = message.response_metadata
    recorded = tokenhub_emulator.requests[-1]
    assert meta["model_name"] == MODEL
    assert meta["finish_reason"] == "stop"
    assert meta["model_provider"] == "tokenhub"
    assert meta["request_id"] == recorded.request_id
    assert meta["id"] and message.id == meta["id"]
    # the 20 cache reads at a tenth of the input price
    assert meta["cost_usd"] == float(price_call(MODEL, None, 120, 7, cache_read_tokens=20)[1] or 0)
    assert meta["cost_usd"] < float(cost_usd(MODEL, 120, 7))
    assert message.content_blocks == [{"type": "text", "text": "Hello from the gateway."}]
    if chunks:
        with_usage = [c for c in chunks if c.usage_metadata]
        assert len(with_usage) == 1
        assert chunks[-1] is with_usage[0]
        assert chunks[-1].chunk_position == "last"
        assert len([c for c in chunks if c.content]) > 1  # really streamed


def test_cost_is_none_for_a_model_outside_the_catalog() -> None:
    completion = ChatCompletion.model_validate(
        {
            "id": "x",
            "model": "anthropic/claude-9-experimental",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
        }
    )
    message = completion_to_message(completion, model="anthropic/claude-9-experimental")
    assert message.response_metadata["model_name"] == "anthropic/claude-9-experimental"
    assert message.response_metadata["cost_usd"] is None


@pytest.mark.parametrize("mode", MODES)
async def test_cost_follows_the_one_pricing_rule(
    tokenhub_emulator: TokenHubEmulator, mode: str
) -> None:
    usage = {"prompt_tokens": 1000, "completion_tokens": 100}
    # A dated id is priced as its catalog entry, as the meter prices it.
    tokenhub_emulator.queue_reply(text="hi", model="claude-haiku-4-5-20251001", usage=usage)
    with track_cost() as meter:
        message, _ = await call(ChatTokenHub(model="claude-haiku-4-5"), "hi", mode)
    expected = price_call("claude-haiku-4-5", "claude-haiku-4-5-20251001", 1000, 100)[1]
    assert expected == cost_usd("anthropic/claude-haiku-4-5", 1000, 100)
    assert message.response_metadata["cost_usd"] == float(expected)
    assert Decimal(str(meter.total_usd)) == expected
    # A served id the catalog does not know: priced as the model requested.
    tokenhub_emulator.queue_reply(text="hi", model="anthropic/claude-9-experimental", usage=usage)
    message, _ = await call(ChatTokenHub(model="claude-haiku-4-5"), "hi", mode)
    assert message.response_metadata["cost_usd"] == float(expected)


async def test_a_cache_hit_costs_nothing(tokenhub_emulator: TokenHubEmulator) -> None:
    llm = ChatTokenHub(cache=InMemoryCache())
    first = llm.invoke("hi")
    again = llm.invoke("hi")
    assert first.response_metadata["cost_usd"] > 0
    assert again.response_metadata["cost_usd"] == 0.0
    assert again.usage_metadata is not None and again.usage_metadata.get("total_cost") == 0
    assert len(tokenhub_emulator.requests) == 1


async def test_stream_usage_false_leaves_usage_off(tokenhub_emulator: TokenHubEmulator) -> None:
    chunks = list(ChatTokenHub(stream_usage=False).stream("hi"))
    assert all(c.usage_metadata is None for c in chunks)
    assert chunks[-1].chunk_position == "last"


class _Tokens(BaseCallbackHandler):
    def __init__(self) -> None:
        self.tokens: list[str] = []

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.tokens.append(token)


@pytest.mark.parametrize("mode", [*MODES, "events_v3"])
async def test_streaming_callbacks_see_every_text_delta_once(
    tokenhub_emulator: TokenHubEmulator, mode: str
) -> None:
    handler = _Tokens()
    model = ChatTokenHub(streaming=True)
    config: Any = {"callbacks": [handler]}
    if mode == "events_v3":  # the path where the model itself reports each token
        stream = model.stream_events("Tell me about streams", version="v3", config=config)
        list(stream)
        text = stream.output.text
    else:
        message, _ = await call(model, "Tell me about streams", mode, config=config)
        text = message.text
    assert "".join(handler.tokens) == text
    assert len([t for t in handler.tokens if t]) > 1


async def test_stream_events_v2_carry_the_deltas(tokenhub_emulator: TokenHubEmulator) -> None:
    tokenhub_emulator.queue_reply(text="one two three four")
    text = ""
    ended = None
    async for event in ChatTokenHub().astream_events("count", version="v2"):
        if event["event"] == "on_chat_model_stream":
            text += event["data"]["chunk"].content
        elif event["event"] == "on_chat_model_end":
            ended = event["data"]["output"]
    assert text == "one two three four"
    assert isinstance(ended, AIMessage)
    assert ended.usage_metadata is not None


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_batch(tokenhub_emulator: TokenHubEmulator, mode: str) -> None:
    model = ChatTokenHub()
    prompts = ["first question", "second question", "third question"]
    replies = model.batch(prompts) if mode == "sync" else await model.abatch(prompts)
    assert [r.content for r in replies] == [
        model.invoke(p).content for p in prompts
    ]  # deterministic emulator: batch answers like one-by-one calls, in order
    assert tokenhub_emulator.ledger().calls == 6


# --- tools --------------------------------------------------------------------------------------

PARALLEL = [
    {"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call_w1"},
    {"name": "get_time", "arguments": {"timezone": "Europe/Paris"}, "id": "call_t1"},
]


@pytest.mark.parametrize("mode", MODES)
async def test_parallel_tool_calls_merge_to_the_same_calls(
    tokenhub_emulator: TokenHubEmulator, mode: str
) -> None:
    tokenhub_emulator.queue_reply(text="Checking both.", tool_calls=PARALLEL)
    model = ChatTokenHub().bind_tools([get_weather, get_time])
    message, chunks = await call(model, "Weather and time in Paris?", mode)
    assert message.content == "Checking both."
    assert _calls(message) == [
        ("get_weather", {"city": "Paris"}, "call_w1"),
        ("get_time", {"timezone": "Europe/Paris"}, "call_t1"),
    ]
    assert message.invalid_tool_calls == []
    assert message.response_metadata["finish_reason"] == "tool_calls"
    if chunks:
        indexes = {tc["index"] for c in chunks for tc in c.tool_call_chunks}
        assert indexes == {0, 1}
        assert sum(len(c.tool_call_chunks) for c in chunks) > 2  # arguments arrived in pieces


@pytest.mark.parametrize("mode", MODES)
async def test_invalid_tool_call_json_lands_in_invalid_tool_calls(
    tokenhub_emulator: TokenHubEmulator, mode: str
) -> None:
    # Arguments no JSON parser can complete. (In streams LangChain merges the chunks with its
    # lenient partial-JSON parser, which completes a merely truncated string such as '{"a": "P'.)
    bad = ['{"city": Paris}', '{"city": "Oslo"}}']
    calls = [{"name": "get_weather", "arguments": a, "id": f"c{i}"} for i, a in enumerate(bad)]
    tokenhub_emulator.queue_reply(tool_calls=calls)
    message, _ = await call(ChatTokenHub().bind_tools([get_weather]), "weather?", mode)
    assert message.tool_calls == []
    assert [(c["name"], c["args"], c["id"]) for c in message.invalid_tool_calls] == [
        ("get_weather", bad[0], "c0"),
        ("get_weather", bad[1], "c1"),
    ]


async def test_tool_round_trip_goes_back_on_the_wire(tokenhub_emulator: TokenHubEmulator) -> None:
    tokenhub_emulator.queue_reply(
        tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}, "id": "toolu:01.x"}]
    )
    model = ChatTokenHub().bind_tools([get_weather])
    question = HumanMessage("Weather in Oslo?")
    ai = model.invoke([question])
    result = get_weather.invoke(ai.tool_calls[0])
    final = model.invoke([question, ai, result])
    assert "Sunny in Oslo" in final.text  # the emulator answers from the tool result
    sent = tokenhub_emulator.requests[-1].body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    call_id = sent[1]["tool_calls"][0]["id"]
    assert call_id == sent[2]["tool_call_id"]
    assert all(ch.isalnum() or ch in "_-" for ch in call_id)
    assert json.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Oslo"}


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        ("any", "required"),
        (True, "required"),
        ("auto", "auto"),
        ("none", "none"),
        ("get_time", {"type": "function", "function": {"name": "get_time"}}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"type": "function", "function": {"name": "get_weather"}},
        ),
    ],
)
async def test_tool_choice_on_the_wire(
    tokenhub_emulator: TokenHubEmulator, choice: Any, wire: Any
) -> None:
    model = ChatTokenHub().bind_tools(
        [get_weather, get_time], tool_choice=choice, parallel_tool_calls=False, strict=True
    )
    message = model.invoke("What now?")
    body = tokenhub_emulator.requests[-1].body
    assert body["tool_choice"] == wire
    assert body["parallel_tool_calls"] is False
    assert [t["function"]["strict"] for t in body["tools"]] == [True, True]
    if wire == "none":
        assert message.tool_calls == []
    elif isinstance(wire, dict):
        assert [c["name"] for c in message.tool_calls] == [wire["function"]["name"]]
    elif wire == "required":
        assert message.tool_calls


async def test_true_with_one_tool_forces_that_tool(tokenhub_emulator: TokenHubEmulator) -> None:
    ChatTokenHub().bind_tools([get_time], tool_choice=True).invoke("hi")
    assert tokenhub_emulator.requests[-1].body["tool_choice"] == {
        "type": "function",
        "function": {"name": "get_time"},
    }


async def test_unknown_tool_choice_is_refused_at_bind_time() -> None:
    with pytest.raises(InvalidParameterError, match="get_weather") as info:
        ChatTokenHub(api_key="th-x").bind_tools([get_weather], tool_choice="get_wether")
    assert isinstance(info.value, ModelInvalidRequestError)


async def test_output_version_v1_stream_has_tool_call_blocks(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    tokenhub_emulator.queue_reply(tool_calls=PARALLEL)
    model = ChatTokenHub(output_version="v1").bind_tools([get_weather, get_time])
    full, _ = await call(model, "Weather and time?", "stream")
    assert [b["type"] for b in full.content_blocks] == ["tool_call", "tool_call"]
    assert _calls(full)[0] == ("get_weather", {"city": "Paris"}, "call_w1")


# --- structured output --------------------------------------------------------------------------


class Joke(BaseModel):
    """A joke."""

    setup: str = Field(description="the question")
    punchline: str = Field(description="the answer")


class Person(TypedDict):
    """A person."""

    name: str
    age: int
    hobbies: list[str]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", ["function_calling", "json_mode", "json_schema"])
async def test_structured_output_pydantic(
    tokenhub_emulator: TokenHubEmulator, method: str, mode: str
) -> None:
    joke = {"setup": "Why did the cat sit on the computer?", "punchline": "To watch the mouse."}
    if method == "function_calling":
        tokenhub_emulator.queue_reply(tool_calls=[{"name": "Joke", "arguments": joke, "id": "c"}])
    else:
        tokenhub_emulator.queue_reply(json=joke)
    structured = ChatTokenHub().with_structured_output(Joke, method=method)
    result, _ = await call(structured, "Tell me a cat joke as JSON.", mode)
    assert result == Joke(**joke)
    body = tokenhub_emulator.requests[-1].body
    if method == "function_calling":
        assert body["tool_choice"] == {"type": "function", "function": {"name": "Joke"}}
        assert "response_format" not in body
    elif method == "json_mode":
        assert body["response_format"] == {"type": "json_object"}
    else:
        assert body["response_format"]["type"] == "json_schema"
        assert body["response_format"]["json_schema"]["schema"]["required"] == [
            "setup",
            "punchline",
        ]
        system = body["messages"][0]
        assert system["role"] == "system"
        assert '"punchline"' in system["content"]  # the schema is in the prompt too


@pytest.mark.parametrize("method", ["function_calling", "json_schema"])
async def test_structured_output_typeddict_is_validated(
    tokenhub_emulator: TokenHubEmulator, method: str
) -> None:
    missing_age = {"name": "Ada", "hobbies": ["math"]}
    if method == "function_calling":
        call_ = {"name": "Person", "arguments": missing_age, "id": "c"}
        tokenhub_emulator.queue_reply(tool_calls=[call_], times=2)
    else:
        tokenhub_emulator.queue_reply(json=missing_age, times=2)
    structured = ChatTokenHub().with_structured_output(Person, method=method)
    with pytest.raises(OutputParserException, match="missing 'age'"):
        structured.invoke("Describe Ada.")
    raw = ChatTokenHub().with_structured_output(Person, method=method, include_raw=True)
    result = raw.invoke("Describe Ada.")
    assert result["parsed"] is None
    assert isinstance(result["parsing_error"], OutputParserException)
    assert isinstance(result["raw"], AIMessage)


async def test_include_raw_on_success(tokenhub_emulator: TokenHubEmulator) -> None:
    person = {"name": "Ada", "age": 36, "hobbies": ["math"]}
    tokenhub_emulator.queue_reply(tool_calls=[{"name": "Person", "arguments": person, "id": "c"}])
    result = ChatTokenHub().with_structured_output(Person, include_raw=True).invoke("Ada?")
    assert result["parsed"] == person
    assert result["parsing_error"] is None
    assert result["raw"].tool_calls[0]["args"] == person


@pytest.mark.parametrize("mode", ["stream", "astream"])
async def test_structured_output_streams_partial_objects(
    tokenhub_emulator: TokenHubEmulator, mode: str
) -> None:
    person = {"name": "Ada Lovelace", "age": 36, "hobbies": ["math", "poetry", "engines"]}
    tokenhub_emulator.queue_reply(tool_calls=[{"name": "Person", "arguments": person, "id": "c"}])
    structured = ChatTokenHub().with_structured_output(Person)
    _, partials = await call(structured, "Ada?", mode)
    assert len(partials) > 2
    assert partials[-1] == person
    assert partials[0] != person
    assert all(set(p) <= set(person) for p in partials)


async def test_streamed_structured_output_is_validated_at_the_end(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    tokenhub_emulator.queue_reply(json={"name": "Ada"})
    structured = ChatTokenHub().with_structured_output(Person, method="json_mode")
    with pytest.raises(OutputParserException, match="missing 'age'"):
        list(structured.stream("Ada?"))


# --- images -------------------------------------------------------------------------------------


async def test_images_reach_the_wire(tokenhub_emulator: TokenHubEmulator) -> None:
    data = base64.b64encode(PNG_BYTES).decode()
    message = HumanMessage(
        [
            {"type": "text", "text": "What is in these pictures?"},
            {"type": "image", "base64": data, "mime_type": "image/png"},
            {"type": "image", "url": "https://example.test/cat.jpg"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}},
        ]
    )
    reply = ChatTokenHub().invoke([message])
    assert reply.content
    parts = tokenhub_emulator.requests[-1].body["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url", "image_url", "image_url"]
    assert parts[1]["image_url"]["url"] == f"data:image/png;base64,{data}"
    assert parts[2]["image_url"]["url"] == "https://example.test/cat.jpg"


async def test_unsupported_image_type_fails_before_sending(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    bmp = {"type": "image", "base64": "Qk0=", "mime_type": "image/bmp"}
    with pytest.raises(InvalidParameterError, match="image/jpeg") as info:
        ChatTokenHub().invoke([HumanMessage([{"type": "text", "text": "see"}, bmp])])
    assert isinstance(info.value, ModelInvalidRequestError)
    assert tokenhub_emulator.requests == []


# --- parameters ---------------------------------------------------------------------------------


async def test_request_body_is_what_tokenhub_documents(tokenhub_emulator: TokenHubEmulator) -> None:
    model = ChatTokenHub(temperature=0.2, stop_sequences=["END"]).bind_tools([get_weather])
    model.invoke("hi")
    list(model.stream("hi"))
    plain, streamed = (r.body for r in tokenhub_emulator.requests)
    for body in (plain, streamed):
        assert body["max_tokens"] == 1024
        assert "max_completion_tokens" not in body
        assert body["temperature"] == 0.2
        assert body["stop"] == ["END"]
        assert "top_p" not in body
        assert _no_nulls(body) == []
    assert "stream" not in plain
    assert streamed["stream"] is True
    assert streamed["stream_options"] == {"include_usage": True}


async def test_per_call_overrides_are_sent(tokenhub_emulator: TokenHubEmulator) -> None:
    model = ChatTokenHub(temperature=0.2)
    reply = model.invoke(
        "hi", model="claude-haiku-4-5", max_tokens=50, temperature=0.9, stop=["x"], user="u-1"
    )
    body = tokenhub_emulator.requests[-1].body
    assert (body["model"], body["max_tokens"], body["temperature"], body["stop"]) == (
        "claude-haiku-4-5",
        50,
        0.9,
        ["x"],
    )
    assert body["user"] == "u-1"
    usage = reply.usage_metadata
    assert usage is not None
    assert "haiku" in reply.response_metadata["model_name"]
    expected = cost_usd("claude-haiku-4-5", usage["input_tokens"], usage["output_tokens"])
    assert reply.response_metadata["cost_usd"] == float(expected)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"temperature": 1.5}, "temperature"),
        ({"top_p": 0.5}, "not both"),  # the instance sets temperature
        ({"stop": ["a", "b", "c", "d", "e"]}, "at most 4"),
        ({"max_tokens": 0}, "max_tokens"),
    ],
)
@pytest.mark.parametrize("mode", MODES)
async def test_per_call_overrides_follow_claudes_rules(
    tokenhub_emulator: TokenHubEmulator, kwargs: dict[str, Any], match: str, mode: str
) -> None:
    model = ChatTokenHub(temperature=0.5)
    with pytest.raises(InvalidParameterError, match=match) as info:
        await call(model.bind(**kwargs), "hi", mode)
    assert isinstance(info.value, ModelInvalidRequestError)
    assert tokenhub_emulator.requests == []


async def test_bind_tools_checks_overrides_at_once() -> None:
    with pytest.raises(InvalidParameterError, match="temperature"):
        ChatTokenHub(api_key="th-x").bind_tools([get_weather], temperature=3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"temperature": 1.2}, "temperature"),
        ({"temperature": 0.3, "top_p": 0.9}, "not both"),
        ({"stop": ["1", "2", "3", "4", "5"]}, "at most 4"),
        ({"top_p": -0.1}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
    ],
)
def test_construction_follows_claudes_rules(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        ChatTokenHub(**kwargs)


def test_aliases_and_defaults() -> None:
    model = ChatTokenHub(model_name="claude-haiku-4-5", stop_sequences="###")
    assert (model.model, model.stop, model.max_tokens, model.api_key) == (
        "claude-haiku-4-5",
        ["###"],
        1024,
        None,
    )
    assert ChatTokenHub().model == MODEL


async def test_request_fields_and_explicit_extras_go_to_the_request_body(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    model = ChatTokenHub(seed=7, model_kwargs={"verbosity": "low"})
    model = model.model_copy(update={"extra_body": {"metadata": {"team": "a"}}})
    model.invoke("hi", extra_body={"service_tier": "auto"})
    body = tokenhub_emulator.requests[-1].body
    assert (body["seed"], body["verbosity"], body["service_tier"]) == (7, "low", "auto")
    assert body["metadata"] == {"team": "a"}


async def test_default_headers_and_own_http_clients(tokenhub_emulator: TokenHubEmulator) -> None:
    seen: list[str] = []

    def hook(request: httpx.Request) -> None:
        seen.append("sync")

    async def ahook(request: httpx.Request) -> None:
        seen.append("async")

    with httpx.Client(event_hooks={"request": [hook]}) as sync_http:
        async with httpx.AsyncClient(event_hooks={"request": [ahook]}) as async_http:
            model = ChatTokenHub(
                default_headers={"X-Team": "search"},
                http_client=sync_http,
                http_async_client=async_http,
            )
            model.invoke("hi")
            await model.ainvoke("hi")
    assert seen == ["sync", "async"]
    assert all(r.headers.get("x-team") == "search" for r in tokenhub_emulator.requests)


async def test_what_base_chat_model_gives_still_works(tokenhub_emulator: TokenHubEmulator) -> None:
    cached = ChatTokenHub(cache=InMemoryCache())
    assert cached.invoke("same question").content == cached.invoke("same question").content
    assert len(tokenhub_emulator.requests) == 1
    chunks = list(ChatTokenHub(disable_streaming=True).stream("hi"))
    assert len(chunks) == 1
    assert "stream" not in tokenhub_emulator.requests[-1].body


def test_public_names() -> None:
    assert langchain_tokenhub.__all__ == ["ChatTokenHub"]
    assert langchain_tokenhub.ChatTokenHub is ChatTokenHub


def test_token_estimate_is_offline_and_grows_with_the_prompt() -> None:
    model = ChatTokenHub(api_key="th-x", base_url="http://127.0.0.1:9/api/v1")
    short = model.get_num_tokens_from_messages([HumanMessage("hi")])
    long = model.get_num_tokens_from_messages([HumanMessage("hi " * 400)])
    with_tools = model.get_num_tokens_from_messages([HumanMessage("hi")], tools=[get_weather])
    data = base64.b64encode(PNG_BYTES).decode()
    image = HumanMessage([{"type": "image", "base64": data, "mime_type": "image/png"}])
    assert 0 < short < with_tools
    assert long > short + 250
    assert model.get_num_tokens_from_messages([image]) > long
    assert 100 < model.get_num_tokens("word " * 100) < 200


# --- keys, serialization, cost ------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_no_key_is_an_error_at_call_time(
    tokenhub_emulator: TokenHubEmulator, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.delenv("TOKENHUB_API_KEY")
    model = ChatTokenHub()  # constructing without a key works
    with pytest.raises(MissingAPIKeyError, match="TOKENHUB_API_KEY") as info:
        await call(model, "hi", mode)
    assert isinstance(info.value, ModelAuthenticationError)
    assert tokenhub_emulator.requests == []


@pytest.mark.filterwarnings("ignore:The function `load` is in beta")
async def test_serialization_round_trip_without_the_key(
    tokenhub_emulator: TokenHubEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = tokenhub_emulator.api_key
    model = ChatTokenHub(api_key=key, base_url=tokenhub_emulator.base_url, temperature=0.1)
    for text in (dumps(model), repr(model), str(model), json.dumps(model.asdict())):
        assert key not in text
    data = dumpd(model)
    assert data["kwargs"]["api_key"] == {"lc": 1, "type": "secret", "id": ["TOKENHUB_API_KEY"]}
    monkeypatch.delenv("TOKENHUB_API_KEY")
    loaded = load(
        data,
        allowed_objects=[ChatTokenHub],
        valid_namespaces=["langchain_tokenhub"],
        secrets_map={"TOKENHUB_API_KEY": key},
    )
    assert isinstance(loaded, ChatTokenHub)
    assert loaded.asdict() == model.asdict()
    assert loaded.invoke("hi").content


async def test_track_cost_totals_equal_the_emulators_ledger(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    model = ChatTokenHub()
    haiku = ChatTokenHub(model="claude-haiku-4-5")
    with track_cost() as meter:
        model.invoke("one")
        list(model.stream("two"))
        await haiku.ainvoke("three")
        [c async for c in haiku.astream("four")]
        model.batch(["five", "six"])
    ledger = tokenhub_emulator.ledger()
    assert meter.calls == ledger.calls == 6
    assert meter.total == ledger.total_usd > Decimal(0)
    assert (meter.input_tokens, meter.output_tokens) == (
        ledger.prompt_tokens,
        ledger.completion_tokens,
    )


# --- faults over real HTTP ----------------------------------------------------------------------


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The core's retry waits, recorded instead of slept."""
    delays: list[float] = []

    async def asleep(seconds: float) -> None:
        delays.append(seconds)

    monkeypatch.setattr(core_client, "_sleep", delays.append)
    monkeypatch.setattr(core_client, "_asleep", asleep)
    return delays


def _assert_no_key(exc: BaseException, key: str) -> None:
    assert key not in str(exc)
    assert key not in repr(exc)
    assert all(key not in str(a) for a in exc.args)


@pytest.mark.parametrize("mode", MODES)
async def test_429_with_retry_after_then_success(
    tokenhub_emulator: TokenHubEmulator, waits: list[float], mode: str
) -> None:
    tokenhub_emulator.fail_next(429, headers={"Retry-After": "3"})
    tokenhub_emulator.queue_reply(text="made it")
    message, _ = await call(ChatTokenHub(), "hi", mode)
    assert message.content == "made it"
    assert waits == [3.0]
    assert [r.status for r in tokenhub_emulator.requests] == [429, 200]
    assert tokenhub_emulator.ledger().calls == 1


@pytest.mark.parametrize("mode", MODES)
async def test_500_then_success(
    tokenhub_emulator: TokenHubEmulator, waits: list[float], mode: str
) -> None:
    tokenhub_emulator.fail_next(500)
    message, _ = await call(ChatTokenHub(), "hi", mode)
    assert message.content
    assert len(waits) == 1
    assert [r.status for r in tokenhub_emulator.requests] == [500, 200]


@pytest.mark.parametrize("mode", MODES)
async def test_retries_exhausted_surface_as_both_error_classes(
    tokenhub_emulator: TokenHubEmulator, waits: list[float], mode: str
) -> None:
    tokenhub_emulator.fail_next(429, times=3)
    with pytest.raises(RateLimitError) as info:
        await call(ChatTokenHub(max_retries=2), "hi", mode)
    assert isinstance(info.value, ModelRateLimitError)
    assert info.value.is_retryable
    assert info.value.status_code == 429
    assert len(tokenhub_emulator.requests) == 3


@pytest.mark.parametrize("mode", MODES)
async def test_401_is_not_retried_and_does_not_leak_the_key(
    tokenhub_emulator: TokenHubEmulator, waits: list[float], mode: str
) -> None:
    key = tokenhub_emulator.api_key
    tokenhub_emulator.fail_next(401, message=f"Invalid API key {key}")
    with pytest.raises(AuthenticationError) as info:
        await call(ChatTokenHub(), "hi", mode)
    assert isinstance(info.value, ModelAuthenticationError)
    assert info.value.status_code == 401
    assert info.value.request_id == tokenhub_emulator.requests[0].request_id
    _assert_no_key(info.value, key)
    assert len(tokenhub_emulator.requests) == 1
    assert waits == []


async def test_500_exhausted_is_a_model_api_error(
    tokenhub_emulator: TokenHubEmulator, waits: list[float]
) -> None:
    tokenhub_emulator.fail_next(503, times=3)
    with pytest.raises(InternalServerError) as info:
        ChatTokenHub().invoke("hi")
    assert isinstance(info.value, ModelAPIError)


async def test_prompt_too_long_is_a_context_overflow(tokenhub_emulator: TokenHubEmulator) -> None:
    tokenhub_emulator.fail_next(400, message="prompt is too long: 250000 tokens > 200000 maximum")
    with pytest.raises(ContextOverflowError) as info:
        ChatTokenHub().invoke("hi")
    assert isinstance(info.value, ModelInvalidRequestError)
    assert "prompt is too long" in str(info.value)


async def _drain(model: ChatTokenHub, mode: str) -> list[AIMessageChunk]:
    if mode == "stream":
        return list(model.stream("hi"))
    return [c async for c in model.astream("hi")]


@pytest.mark.parametrize("mode", ["stream", "astream"])
async def test_stream_dropped_midway(
    tokenhub_emulator: TokenHubEmulator, waits: list[float], mode: str
) -> None:
    tokenhub_emulator.queue_reply(text="a long answer that will not arrive in full " * 3)
    tokenhub_emulator.drop_stream_after(3)
    with pytest.raises(StreamInterruptedError) as info:
        await _drain(ChatTokenHub(), mode)
    assert isinstance(info.value, ModelConnectionError)
    assert info.value.partial is not None
    assert info.value.partial.choices[0].message.content  # what arrived is kept
    _assert_no_key(info.value, tokenhub_emulator.api_key)
    assert len(tokenhub_emulator.requests) == 1  # nothing is retried once a stream started


@pytest.mark.parametrize("mode", ["stream", "astream"])
async def test_sse_error_event(tokenhub_emulator: TokenHubEmulator, mode: str) -> None:
    tokenhub_emulator.sse_error_after(2, message="overloaded, try later")
    with pytest.raises(APIResponseError, match="overloaded, try later") as info:
        await _drain(ChatTokenHub(), mode)
    assert isinstance(info.value, ModelAPIError)
    _assert_no_key(info.value, tokenhub_emulator.api_key)
    assert len(tokenhub_emulator.requests) == 1


async def test_truncated_body_is_an_api_response_error(
    tokenhub_emulator: TokenHubEmulator,
) -> None:
    tokenhub_emulator.truncate_next()
    with pytest.raises(APIResponseError) as info:
        await ChatTokenHub().ainvoke("hi")
    assert isinstance(info.value, ModelAPIError)
