"""Unit tests of langchain_tokenhub.messages: pure conversion on plain objects, no server."""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any

import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.tools import tool
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from langchain_tokenhub.messages import (
    MODEL_PROVIDER,
    StreamConverter,
    TokenHubMessageChunk,
    completion_to_message,
    convert_messages,
    convert_tools,
    generation_chunk,
    normalize_tool_choice,
    text_chunk,
    tool_names,
    usage_to_metadata,
)
from tokenhub_core.errors import InvalidParameterError
from tokenhub_core.wire import ChatCompletion, ChatCompletionChunk, Usage

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()
PNG_URL = f"data:image/png;base64,{PNG}"


def _image(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


# --- system, user, names ------------------------------------------------------------------------


def test_system_messages_are_joined_into_one_leading_message() -> None:
    wire = convert_messages(
        [
            SystemMessage("Be brief."),
            HumanMessage("hi"),
            SystemMessage([{"type": "text", "text": "Answer in French."}]),
            AIMessage("salut"),
        ]
    )
    assert wire == [
        {"role": "system", "content": "Be brief.\nAnswer in French."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "salut"},
    ]


def test_empty_system_message_is_omitted() -> None:
    assert convert_messages([SystemMessage(""), HumanMessage("hi")]) == [
        {"role": "user", "content": "hi"}
    ]


def test_system_message_with_an_image_is_refused() -> None:
    with pytest.raises(InvalidParameterError, match="system messages take text only"):
        convert_messages([SystemMessage([_image(PNG_URL)]), HumanMessage("hi")])


def test_user_string_content_and_name() -> None:
    assert convert_messages([HumanMessage("hello", name="example_user")]) == [
        {"role": "user", "content": "hello", "name": "example_user"}
    ]


def test_user_list_content_drops_empty_text_blocks() -> None:
    wire = convert_messages(
        [HumanMessage(["first", {"type": "text", "text": ""}, {"type": "text", "text": "  "}, ""])]
    )
    assert wire == [{"role": "user", "content": [{"type": "text", "text": "first"}]}]


def test_user_text_blocks_keep_cache_control_and_lose_other_extras() -> None:
    block = {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}, "x": 1}
    assert convert_messages([HumanMessage([block])])[0]["content"] == [
        {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}
    ]


def test_system_cache_control_keeps_the_system_prompt_as_parts() -> None:
    marked = {"type": "text", "text": "long rules", "cache_control": {"type": "ephemeral"}}
    wire = convert_messages([SystemMessage([marked]), SystemMessage("more"), HumanMessage("hi")])
    assert wire[0] == {"role": "system", "content": [marked, {"type": "text", "text": "more"}]}


def test_user_list_with_only_empty_blocks_becomes_empty_string() -> None:
    assert convert_messages([HumanMessage([{"type": "text", "text": ""}])])[0]["content"] == ""


@pytest.mark.parametrize(
    ("role", "expected"),
    [("user", "user"), ("human", "user"), ("assistant", "assistant"), ("ai", "assistant")],
)
def test_chat_message_roles(role: str, expected: str) -> None:
    assert convert_messages([ChatMessage(role=role, content="x")])[0]["role"] == expected


def test_chat_message_system_role_is_hoisted() -> None:
    wire = convert_messages([HumanMessage("a"), ChatMessage(role="developer", content="rules")])
    assert wire[0] == {"role": "system", "content": "rules"}


def test_unknown_role_and_message_type_are_refused() -> None:
    with pytest.raises(InvalidParameterError, match=r"messages\[0\]\.role"):
        convert_messages([ChatMessage(role="critic", content="x")])
    with pytest.raises(InvalidParameterError, match="FunctionMessage"):
        convert_messages([FunctionMessage(name="f", content="x")])


# --- images -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("block", "url"),
    [
        (
            {"type": "image_url", "image_url": {"url": "https://x.test/cat.png"}},
            "https://x.test/cat.png",
        ),
        ({"type": "image_url", "image_url": {"url": PNG_URL, "detail": "low"}}, PNG_URL),
        ({"type": "image_url", "image_url": "https://x.test/a.jpg"}, "https://x.test/a.jpg"),
        ({"type": "image", "url": "https://x.test/cat.png"}, "https://x.test/cat.png"),
        ({"type": "image", "base64": PNG, "mime_type": "image/png"}, PNG_URL),
        (
            {"type": "image", "source_type": "base64", "data": PNG, "mime_type": "image/png"},
            PNG_URL,
        ),
        (
            {"type": "image", "source_type": "url", "url": "https://x.test/b.gif"},
            "https://x.test/b.gif",
        ),
        (
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            PNG_URL,
        ),
        (
            {"type": "image", "source": {"type": "url", "url": "https://x.test/c.webp"}},
            "https://x.test/c.webp",
        ),
    ],
    ids=[
        "openai-https",
        "openai-data-url",
        "openai-bare-string",
        "standard-url",
        "standard-base64",
        "v0-base64",
        "v0-url",
        "anthropic-base64",
        "anthropic-url",
    ],
)
def test_every_image_form_becomes_an_image_url_part(block: dict[str, Any], url: str) -> None:
    wire = convert_messages([HumanMessage([{"type": "text", "text": "describe"}, block])])
    assert wire[0]["content"] == [{"type": "text", "text": "describe"}, _image(url)]


@pytest.mark.parametrize(
    "block",
    [
        {"type": "image", "base64": PNG, "mime_type": "image/bmp"},
        {"type": "image", "source_type": "base64", "data": PNG, "mime_type": "image/tiff"},
        {"type": "image", "url": "https://x.test/a.svg", "mime_type": "image/svg+xml"},
        {"type": "image_url", "image_url": {"url": f"data:image/bmp;base64,{PNG}"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/heic", "data": PNG}},
    ],
    ids=["standard-bmp", "v0-tiff", "url-svg", "data-url-bmp", "anthropic-heic"],
)
def test_unsupported_media_types_are_a_clear_error(block: dict[str, Any]) -> None:
    with pytest.raises(InvalidParameterError, match=r"image/(jpeg|png)") as info:
        convert_messages([HumanMessage([block])])
    assert PNG not in str(info.value)  # the error does not dump the image


def test_base64_image_without_mime_type_is_refused() -> None:
    with pytest.raises(InvalidParameterError, match="mime_type"):
        convert_messages([HumanMessage([{"type": "image", "base64": PNG}])])


def test_image_by_file_id_is_refused() -> None:
    with pytest.raises(InvalidParameterError, match="file ids are not supported"):
        convert_messages([HumanMessage([{"type": "image", "file_id": "file-123"}])])


def test_not_a_url_is_refused() -> None:
    with pytest.raises(InvalidParameterError):
        convert_messages([HumanMessage([_image("ftp://x.test/a.png")])])


@pytest.mark.parametrize(
    "block",
    [
        {"type": "audio", "base64": "AAAA", "mime_type": "audio/wav"},
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
    ],
)
def test_other_media_in_user_messages_are_refused(block: dict[str, Any]) -> None:
    with pytest.raises(InvalidParameterError, match="text and images"):
        convert_messages([HumanMessage([block])])


# --- assistant messages and tool calls ----------------------------------------------------------


def test_assistant_tool_calls_go_out_with_json_arguments_and_safe_ids() -> None:
    ai = AIMessage(
        "",
        tool_calls=[
            {"name": "get_weather", "args": {"city": "Zürich"}, "id": "toolu:01/ab"},
            {"name": "noop", "args": {}, "id": "call_2"},
        ],
    )
    tool_msg = ToolMessage("sunny", tool_call_id="toolu:01/ab")
    wire = convert_messages([HumanMessage("weather?"), ai, tool_msg])
    assistant, tool_result = wire[1], wire[2]
    assert "content" not in assistant  # no null content on the wire
    first, second = assistant["tool_calls"]
    assert first["type"] == "function"
    assert first["function"] == {"name": "get_weather", "arguments": '{"city": "Zürich"}'}
    assert json.loads(second["function"]["arguments"]) == {}
    assert second["id"] == "call_2"
    assert first["id"] != "toolu:01/ab"
    assert all(c.isalnum() or c in "_-" for c in first["id"])
    assert tool_result == {"role": "tool", "tool_call_id": first["id"], "content": "sunny"}


def test_assistant_text_and_tool_calls_together() -> None:
    ai = AIMessage("Let me check.", tool_calls=[{"name": "f", "args": {"a": 1}, "id": "c1"}])
    wire = convert_messages([ai])[0]
    assert wire["content"] == "Let me check."
    assert wire["tool_calls"][0]["id"] == "c1"


def test_assistant_list_content_keeps_text_and_drops_tool_use_and_thinking() -> None:
    ai = AIMessage(
        [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "text", "text": "some "},
            {"type": "tool_use", "id": "abc123", "name": "adder", "input": {"a": 1}},
            {"type": "text", "text": "text"},
        ],
        tool_calls=[{"name": "adder", "args": {"a": 1}, "id": "abc123"}],
    )
    wire = convert_messages([ai])[0]
    assert wire["content"] == "some text"
    assert [c["function"]["name"] for c in wire["tool_calls"]] == ["adder"]


def test_assistant_v1_content_blocks_convert_back() -> None:
    ai = AIMessage(
        [
            {"type": "text", "text": "ok"},
            {"type": "tool_call", "id": "c1", "name": "f", "args": {"x": 1}},
        ],
        tool_calls=[{"name": "f", "args": {"x": 1}, "id": "c1"}],
        response_metadata={"output_version": "v1"},
    )
    wire = convert_messages([ai])[0]
    assert wire["content"] == "ok"
    assert wire["tool_calls"][0]["function"]["arguments"] == '{"x": 1}'


def test_empty_assistant_message_without_tool_calls_is_dropped() -> None:
    wire = convert_messages([HumanMessage("a"), AIMessage(""), HumanMessage("b")])
    assert [m["role"] for m in wire] == ["user", "user"]


def test_assistant_name_is_kept() -> None:
    assert convert_messages([AIMessage("hi", name="bot")])[0]["name"] == "bot"


def test_invalid_tool_calls_round_trip() -> None:
    ai = AIMessage(
        "",
        invalid_tool_calls=[
            {
                "name": "f",
                "args": '{"a": 1',
                "id": "bad1",
                "error": "bad json",
                "type": "invalid_tool_call",
            },
            {
                "name": "g",
                "args": '{"b": 2}',
                "id": "ok2",
                "error": None,
                "type": "invalid_tool_call",
            },
        ],
    )
    calls = convert_messages([ai, ToolMessage("error", tool_call_id="bad1")])[0]["tool_calls"]
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in calls] == [
        ("bad1", "f", "{}"),
        ("ok2", "g", '{"b": 2}'),
    ]


def test_completion_with_bad_json_converts_back_into_a_valid_request() -> None:
    completion = ChatCompletion.model_validate(
        {
            "id": "c",
            "model": "anthropic/claude-sonnet-4-6",
            "choices": [
                {
                    "message": {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "call_1", "function": {"name": "f", "arguments": "{oops"}}
                        ],
                    },
                    "finish_reason": "tool_calls",
                }
            ],
        }
    )
    message = completion_to_message(completion, model="m")
    wire = convert_messages(
        [HumanMessage("go"), message, ToolMessage("bad args", tool_call_id="call_1")]
    )
    assert wire[1]["tool_calls"][0]["function"] == {"name": "f", "arguments": "{}"}
    assert wire[2]["tool_call_id"] == wire[1]["tool_calls"][0]["id"]


# --- tool results -------------------------------------------------------------------------------


def test_tool_message_list_content_is_joined_text() -> None:
    msg = ToolMessage(
        [{"type": "text", "text": "line one"}, "line two", {"type": "text", "text": ""}, {"k": 1}],
        tool_call_id="c1",
        name="search",
    )
    assert convert_messages([msg]) == [
        {"role": "tool", "tool_call_id": "c1", "content": 'line one\nline two\n{"k": 1}'}
    ]


def test_tool_message_error_status_keeps_content() -> None:
    msg = ToolMessage("Error: missing b", tool_call_id="c1", status="error")
    assert convert_messages([msg])[0]["content"] == "Error: missing b"


def test_images_in_tool_results_follow_the_run_of_tool_messages_as_a_user_message() -> None:
    ai = AIMessage(
        "",
        tool_calls=[
            {"name": "shot", "args": {}, "id": "c1"},
            {"name": "shot", "args": {}, "id": "c2"},
        ],
    )
    wire = convert_messages(
        [
            HumanMessage("screenshots please"),
            ai,
            ToolMessage(
                [{"type": "image", "base64": PNG, "mime_type": "image/png"}], tool_call_id="c1"
            ),
            ToolMessage(
                [{"type": "text", "text": "second"}, _image("https://x.test/2.png")],
                tool_call_id="c2",
            ),
            HumanMessage("what do you see?"),
        ]
    )
    assert [m["role"] for m in wire] == ["user", "assistant", "tool", "tool", "user", "user"]
    assert wire[2]["content"] == ""
    assert wire[3]["content"] == "second"
    images = wire[4]["content"]
    assert images == [
        {"type": "text", "text": "Image(s) returned by tool call c1:"},
        _image(PNG_URL),
        {"type": "text", "text": "Image(s) returned by tool call c2:"},
        _image("https://x.test/2.png"),
    ]


def test_images_in_the_last_tool_result_are_flushed_at_the_end() -> None:
    wire = convert_messages([ToolMessage([_image("https://x.test/1.png")], tool_call_id="c1")])
    assert wire[-1]["role"] == "user"
    assert wire[-1]["content"][1] == _image("https://x.test/1.png")


def test_unsupported_image_in_tool_result_is_refused() -> None:
    block = {"type": "image", "base64": PNG, "mime_type": "image/bmp"}
    with pytest.raises(InvalidParameterError):
        convert_messages([ToolMessage([block], tool_call_id="c1")])


# --- tools and tool_choice ----------------------------------------------------------------------


class Adder(BaseModel):
    """Add two integers."""

    a: int = Field(description="first")
    b: int


class Lookup(TypedDict):
    """Look a word up."""

    word: Annotated[str, ..., "the word"]


@tool
def get_weather(location: str) -> str:
    """Get the weather for a location."""
    return "sunny"


def multiply(x: int, y: int) -> int:
    """Multiply two integers."""
    return x * y


def test_convert_tools_accepts_every_form() -> None:
    openai_dict = {
        "type": "function",
        "function": {
            "name": "raw",
            "description": "d",
            "parameters": {"type": "object", "properties": {}},
        },
    }
    anthropic_dict = {
        "name": "color_picker",
        "description": "pick",
        "input_schema": {"type": "object", "properties": {"c": {"type": "string"}}},
    }
    wire = convert_tools([get_weather, multiply, Adder, Lookup, openai_dict, anthropic_dict])
    assert tool_names(wire) == ["get_weather", "multiply", "Adder", "Lookup", "raw", "color_picker"]
    assert all(t["type"] == "function" for t in wire)
    adder = wire[2]["function"]
    assert adder["description"] == "Add two integers."
    assert adder["parameters"]["required"] == ["a", "b"]
    assert wire[3]["function"]["parameters"]["properties"]["word"]["type"] == "string"
    assert wire[5]["function"]["parameters"]["properties"] == {"c": {"type": "string"}}


def test_strict_is_passed_through() -> None:
    assert convert_tools([Adder], strict=True)[0]["function"]["strict"] is True
    assert "strict" not in convert_tools([Adder])[0]["function"]


@pytest.mark.parametrize(
    ("choice", "names", "expected"),
    [
        (None, ["a"], None),
        (False, ["a"], None),
        ("auto", ["a"], "auto"),
        ("none", ["a"], "none"),
        ("required", ["a", "b"], "required"),
        ("any", ["a", "b"], "required"),
        (True, ["a", "b"], "required"),
        (True, ["a"], {"type": "function", "function": {"name": "a"}}),
        ("b", ["a", "b"], {"type": "function", "function": {"name": "b"}}),
        (
            {"type": "function", "function": {"name": "a"}},
            ["a"],
            {"type": "function", "function": {"name": "a"}},
        ),
        ({"type": "tool", "name": "a"}, ["a"], {"type": "function", "function": {"name": "a"}}),
        ({"type": "any"}, ["a"], "required"),
    ],
)
def test_tool_choice_forms(choice: Any, names: list[str], expected: Any) -> None:
    assert normalize_tool_choice(choice, names) == expected


def test_unknown_tool_choice_names_the_options() -> None:
    with pytest.raises(InvalidParameterError, match="auto, none, required, any, a, b"):
        normalize_tool_choice("c", ["a", "b"])
    with pytest.raises(InvalidParameterError):
        normalize_tool_choice(3, ["a"])


# --- wire -> LangChain: completions -------------------------------------------------------------


def _completion(**message: Any) -> ChatCompletion:
    body = {
        "id": "chatcmpl-1",
        "model": "anthropic/claude-haiku-4-5",
        "choices": [
            {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": 1000,
            "completion_tokens": 200,
            "total_tokens": 1200,
            "prompt_tokens_details": {"cached_tokens": 300},
        },
    }
    completion = ChatCompletion.model_validate(body)
    completion._request_id = "req-9"
    return completion


def test_completion_to_message_text_usage_and_metadata() -> None:
    message = completion_to_message(
        _completion(content="Hello!"), model="claude-sonnet-4-6", request_id="req-9"
    )
    assert message.content == "Hello!"
    assert message.id == "chatcmpl-1"
    assert message.usage_metadata == {
        "input_tokens": 1000,
        "output_tokens": 200,
        "total_tokens": 1200,
        "input_token_details": {"cache_read": 300},
    }
    meta = message.response_metadata
    assert meta["model_name"] == "anthropic/claude-haiku-4-5"  # what the server served
    assert meta["finish_reason"] == "stop"
    assert meta["id"] == "chatcmpl-1"
    assert meta["request_id"] == "req-9"
    assert meta["model_provider"] == "tokenhub"
    # 300 of the 1,000 prompt tokens read from the cache, at a tenth of the input price
    assert meta["cost_usd"] == pytest.approx((700 * 1.00 + 300 * 0.10 + 200 * 5.00) / 1e6)
    assert message.content_blocks == [{"type": "text", "text": "Hello!"}]


def test_no_cache_details_when_nothing_was_cached() -> None:
    usage = usage_to_metadata(Usage(prompt_tokens=3, completion_tokens=4))
    assert usage == {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}


def test_reasoning_tokens_are_reported() -> None:
    usage = Usage.model_validate(
        {
            "prompt_tokens": 1,
            "completion_tokens": 9,
            "completion_tokens_details": {"reasoning_tokens": 5},
        }
    )
    assert usage_to_metadata(usage)["output_token_details"] == {"reasoning": 5}


def test_cost_is_none_for_a_model_the_catalog_does_not_know() -> None:
    completion = _completion(content="x")
    completion.model = "someone/else-1"
    assert (
        completion_to_message(completion, model="someone/else-1").response_metadata["cost_usd"]
        is None
    )


def test_served_model_falls_back_to_the_requested_one() -> None:
    completion = _completion(content="x")
    completion.model = ""
    assert (
        completion_to_message(completion, model="m-requested").response_metadata["model_name"]
        == "m-requested"
    )


def test_tool_calls_and_invalid_tool_calls_never_raise() -> None:
    message = completion_to_message(
        _completion(
            content=None,
            tool_calls=[
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "f", "arguments": '{"x": 1}'},
                },
                {"id": "call_b", "type": "function", "function": {"name": "g", "arguments": ""}},
                {
                    "id": "call_c",
                    "type": "function",
                    "function": {"name": "h", "arguments": '{"x": '},
                },
                {
                    "id": "call_d",
                    "type": "function",
                    "function": {"name": "k", "arguments": "[1, 2]"},
                },
            ],
        ),
        model="m",
    )
    assert message.content == ""
    assert [(c["name"], c["args"], c["id"]) for c in message.tool_calls] == [
        ("f", {"x": 1}, "call_a"),
        ("g", {}, "call_b"),
    ]
    assert [(c["name"], c["args"], c["id"]) for c in message.invalid_tool_calls] == [
        ("h", '{"x": ', "call_c"),
        ("k", "[1, 2]", "call_d"),
    ]
    assert all(c["error"] for c in message.invalid_tool_calls)
    kinds = [b["type"] for b in message.content_blocks]
    assert kinds == ["tool_call", "tool_call", "invalid_tool_call", "invalid_tool_call"]


def test_refusal_is_kept_and_shown_as_a_block() -> None:
    message = completion_to_message(_completion(content=None, refusal="I can't help."), model="m")
    assert message.additional_kwargs["refusal"] == "I can't help."
    assert {"type": "refusal", "refusal": "I can't help."} in message.content_blocks


# --- wire -> LangChain: streams -----------------------------------------------------------------


def _chunk(
    delta: dict[str, Any] | None = None,
    finish: str | None = None,
    usage: dict[str, Any] | None = None,
) -> ChatCompletionChunk:
    body: dict[str, Any] = {
        "id": "chatcmpl-s",
        "model": "anthropic/claude-sonnet-4-6",
        "choices": [],
    }
    if delta is not None or finish is not None:
        body["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish}]
    if usage is not None:
        body["usage"] = usage
    return ChatCompletionChunk.model_validate(body)


def _tc(
    index: int | None, *, id: str | None = None, name: str | None = None, args: str | None = None
) -> dict[str, Any]:
    call: dict[str, Any] = {"index": index, "function": {}}
    if id is not None:
        call["id"] = id
        call["type"] = "function"
    if name is not None:
        call["function"]["name"] = name
    if args is not None:
        call["function"]["arguments"] = args
    return call


def _merge(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    full = chunks[0]
    for c in chunks[1:]:
        full = full + c
    return full


def _run(
    conv: StreamConverter, wire: list[Any], request_id: str | None = None
) -> list[AIMessageChunk]:
    """What the adapter yields: each wire chunk's message (if any), then the closing chunk with
    the last usage the server reported (the core's accumulator keeps it)."""
    chunks = [m for c in wire if (m := conv.convert(c, request_id=request_id)) is not None]
    usages = [c.usage for c in wire if c.usage is not None]
    return [*chunks, conv.finish(usages[-1] if usages else None)]


def test_text_stream_usage_on_exactly_one_chunk_which_is_last() -> None:
    conv = StreamConverter("anthropic/claude-sonnet-4-6")
    wire = [
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"content": "Hel"}),
        _chunk({"content": "lo"}),
        _chunk({}, finish="stop"),
        _chunk(usage={"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}),
    ]
    assert conv.convert(wire[-1]) is None  # the usage-only chunk has nothing of its own to say
    conv = StreamConverter("anthropic/claude-sonnet-4-6")
    chunks = _run(conv, wire, request_id="req-1")
    assert [c.content for c in chunks] == ["", "Hel", "lo", "", ""]
    assert [c.usage_metadata is not None for c in chunks] == [False, False, False, False, True]
    assert [c.chunk_position for c in chunks] == [None, None, None, None, "last"]
    full = _merge(chunks)
    assert full.content == "Hello"
    assert full.usage_metadata == {"input_tokens": 10, "output_tokens": 2, "total_tokens": 12}
    meta = full.response_metadata
    assert meta["model_name"] == "anthropic/claude-sonnet-4-6"
    assert meta["finish_reason"] == "stop"
    assert meta["request_id"] == "req-1"
    assert meta["id"] == "chatcmpl-s"
    assert meta["model_provider"] == "tokenhub"
    assert meta["cost_usd"] == pytest.approx((10 * 3 + 2 * 15) / 1e6)
    assert full.id == "chatcmpl-s"
    assert [b["type"] for b in full.content_blocks] == ["text"]


def test_streamed_cached_tokens() -> None:
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 2,
        "prompt_tokens_details": {"cached_tokens": 4},
    }
    chunk = _run(StreamConverter("m"), [_chunk(usage=usage)])[-1]
    assert chunk.usage_metadata is not None
    assert chunk.usage_metadata["input_token_details"] == {"cache_read": 4}


def _tool_stream(deltas: list[list[dict[str, Any]]]) -> AIMessageChunk:
    wire = [_chunk({"tool_calls": d}) for d in deltas]
    wire.append(_chunk({}, finish="tool_calls"))
    wire.append(_chunk(usage={"prompt_tokens": 1, "completion_tokens": 1}))
    return _merge(_run(StreamConverter("m"), wire))


def _calls(message: AIMessageChunk) -> list[tuple[str, dict[str, Any], str | None]]:
    return [(c["name"], c["args"], c["id"]) for c in message.tool_calls]


def test_parallel_tool_calls_by_index_merge_like_invoke() -> None:
    full = _tool_stream(
        [
            [_tc(0, id="call_a", name="get_weather", args="")],
            [_tc(0, args='{"loc')],
            [_tc(1, id="call_b", name="get_time", args="")],
            [_tc(0, args='ation": "Paris"}'), _tc(1, args='{"tz": "CET"}')],
        ]
    )
    assert _calls(full) == [
        ("get_weather", {"location": "Paris"}, "call_a"),
        ("get_time", {"tz": "CET"}, "call_b"),
    ]
    assert full.invalid_tool_calls == []
    assert [b["type"] for b in full.content_blocks] == ["tool_call", "tool_call"]


def test_servers_reusing_index_zero_for_parallel_calls() -> None:
    full = _tool_stream(
        [
            [_tc(0, id="call_a", name="f", args='{"a": 1}')],
            [_tc(0, id="call_b", name="g", args='{"b":')],
            [_tc(0, args=" 2}")],
        ]
    )
    assert _calls(full) == [("f", {"a": 1}, "call_a"), ("g", {"b": 2}, "call_b")]


def test_servers_starting_at_index_one_or_minus_one() -> None:
    full = _tool_stream(
        [
            [_tc(1, id="c1", name="f", args='{"a"')],
            [_tc(1, args=": 1}")],
            [_tc(-1, id="c2", name="g", args="{}")],
        ]
    )
    assert _calls(full) == [("f", {"a": 1}, "c1"), ("g", {}, "c2")]


def test_repeated_name_and_id_are_not_doubled() -> None:
    full = _tool_stream(
        [
            [_tc(0, id="call_a", name="lookup", args='{"q": ')],
            [_tc(0, id="call_a", name="lookup", args='"x"}')],
        ]
    )
    assert _calls(full) == [("lookup", {"q": "x"}, "call_a")]


def test_deltas_without_index_continue_the_last_call() -> None:
    full = _tool_stream([[_tc(None, id="c1", name="f", args='{"a": ')], [_tc(None, args="1}")]])
    assert _calls(full) == [("f", {"a": 1}, "c1")]


def test_streamed_invalid_json_lands_in_invalid_tool_calls() -> None:
    full = _tool_stream([[_tc(0, id="c1", name="f", args='{"a": 1')], [_tc(0, args="}}")]])
    assert full.tool_calls == []
    assert [(c["name"], c["args"]) for c in full.invalid_tool_calls] == [("f", '{"a": 1}}')]
    assert any(b["type"] == "invalid_tool_call" for b in full.content_blocks)


def test_tool_call_chunks_carry_index_and_first_name_only() -> None:
    conv = StreamConverter("m")
    first = conv.convert(_chunk({"tool_calls": [_tc(0, id="c1", name="f", args="")]}))
    second = conv.convert(_chunk({"tool_calls": [_tc(0, args="{}")]}))
    assert first.tool_call_chunks == [
        {"name": "f", "args": "", "id": "c1", "index": 0, "type": "tool_call_chunk"}
    ]
    assert second.tool_call_chunks == [
        {"name": None, "args": "{}", "id": None, "index": 0, "type": "tool_call_chunk"}
    ]


def test_invoke_and_stream_give_the_same_tool_calls() -> None:
    completion = _completion(
        content="Checking.",
        tool_calls=[
            {
                "id": "call_a",
                "type": "function",
                "function": {"name": "f", "arguments": '{"a": [1, 2]}'},
            },
            {"id": "call_b", "type": "function", "function": {"name": "g", "arguments": "{}"}},
        ],
    )
    invoked = completion_to_message(completion, model="m")
    streamed = _merge(
        _run(
            StreamConverter("m"),
            [
                _chunk({"content": "Check"}),
                _chunk({"content": "ing."}),
                _chunk({"tool_calls": [_tc(0, id="call_a", name="f", args='{"a": [1,')]}),
                _chunk(
                    {"tool_calls": [_tc(0, args=" 2]}"), _tc(1, id="call_b", name="g", args="{}")]}
                ),
                _chunk({}, finish="tool_calls"),
                _chunk(usage={"prompt_tokens": 1, "completion_tokens": 1}),
            ],
        )
    )
    assert streamed.content == invoked.content
    assert streamed.tool_calls == invoked.tool_calls


def test_refusal_delta_is_kept() -> None:
    chunk = StreamConverter("m").convert(_chunk({"refusal": "no"}))
    assert chunk.additional_kwargs == {"refusal": "no"}


def test_usage_riding_on_the_finish_chunk_goes_out_once_on_the_last_chunk() -> None:
    finish = _chunk({}, finish="stop", usage={"prompt_tokens": 1, "completion_tokens": 1})
    chunks = _run(StreamConverter("m"), [_chunk({"content": "hi"}), finish])
    assert [c.usage_metadata is not None for c in chunks] == [False, False, True]
    assert [c.chunk_position for c in chunks] == [None, None, "last"]


def test_cumulative_usage_on_every_chunk_is_counted_once() -> None:
    """Some servers repeat running totals on each chunk; LangChain would add them all up and
    fail to merge two ``cost_usd`` floats."""
    wire = [
        _chunk({"content": "a"}, usage={"prompt_tokens": 10, "completion_tokens": 1}),
        _chunk({"content": "b"}, usage={"prompt_tokens": 10, "completion_tokens": 2}),
        _chunk({}, finish="stop", usage={"prompt_tokens": 10, "completion_tokens": 3}),
    ]
    full = _merge(_run(StreamConverter("anthropic/claude-haiku-4-5"), wire))
    assert full.content == "ab"
    assert full.usage_metadata == {"input_tokens": 10, "output_tokens": 3, "total_tokens": 13}
    # Priced as the model the server says it served (Sonnet), not the one asked for (Haiku).
    assert full.response_metadata["cost_usd"] == pytest.approx((10 * 3 + 3 * 15) / 1e6)


def test_stream_usage_off_still_marks_the_last_chunk() -> None:
    chunk = _run(
        StreamConverter("m", usage=False),
        [_chunk(usage={"prompt_tokens": 1, "completion_tokens": 1})],
    )[-1]
    assert chunk.usage_metadata is None
    assert "cost_usd" not in chunk.response_metadata
    assert chunk.chunk_position == "last"


def test_single_chunks_show_tool_call_chunk_blocks() -> None:
    chunk = StreamConverter("m").convert(
        _chunk({"tool_calls": [_tc(0, id="c1", name="f", args='{"a"')]})
    )
    assert chunk.content_blocks == [
        {"type": "tool_call_chunk", "id": "c1", "name": "f", "args": '{"a"', "index": 0}
    ]


# --- text chunks built without validation ------------------------------------------------------


def _same_model(built: Any, validated: Any) -> None:
    assert built == validated
    assert type(built) is type(validated)
    assert built.model_dump() == validated.model_dump()
    assert built.model_fields_set == validated.model_fields_set


def test_unvalidated_text_chunks_equal_validated_ones_and_share_nothing() -> None:
    validated = TokenHubMessageChunk(
        content=" word", response_metadata={"model_provider": MODEL_PROVIDER}, id="msg_1"
    )
    first, second = text_chunk(" word", "msg_1"), text_chunk(" word", "msg_1")
    _same_model(first, validated)
    assert text_chunk("", None) == TokenHubMessageChunk(
        content="", response_metadata={"model_provider": MODEL_PROVIDER}, id=None
    )
    for field in (
        "additional_kwargs",
        "response_metadata",
        "tool_calls",
        "invalid_tool_calls",
        "tool_call_chunks",
    ):
        assert getattr(first, field) is not getattr(second, field), field
    first.response_metadata["seen"] = True  # as LangChain's stream() rewrites it
    assert (
        "seen" not in second.response_metadata
        and "seen" not in text_chunk("x", None).response_metadata
    )
    merged = first + second  # LangChain's aggregation sees an ordinary chunk
    assert merged.content == " word word" and merged.id == "msg_1"


def test_unvalidated_generation_chunks_equal_validated_ones() -> None:
    message = text_chunk("hello", "msg_1")
    generation = generation_chunk(message)
    _same_model(generation, ChatGenerationChunk(message=message))
    assert generation.text == "hello" and generation.message is message
    blocks = TokenHubMessageChunk(content=[{"type": "text", "text": "hi", "index": 0}])
    assert generation_chunk(blocks) == ChatGenerationChunk(message=blocks)  # validated path
