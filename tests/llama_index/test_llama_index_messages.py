"""LlamaIndex -> wire conversion (`llama_index_tokenhub.messages`), on plain objects."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    AudioBlock,
    CacheControl,
    CachePoint,
    ChatMessage,
    CitableBlock,
    CitationBlock,
    ImageBlock,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
    VideoBlock,
)
from llama_index.core.tools import FunctionTool

from llama_index_tokenhub.messages import (
    image_block_to_part,
    sniff_image_type,
    to_wire_message,
    to_wire_messages,
    to_wire_tool_choice,
    to_wire_tools,
)
from tests.llama_index._images import BMP_HEAD, GIF_HEAD, JPEG_HEAD, PNG_1X1, WEBP_HEAD
from tokenhub_core.errors import InvalidParameterError
from tokenhub_core.params import normalize_tool_call_id


def _data_url_bytes(url: str) -> tuple[str, bytes]:
    head, data = url.split(",", 1)
    return head, base64.b64decode(data)


# Roles and text.


@pytest.mark.parametrize(
    ("role", "wire_role"),
    [
        (MessageRole.SYSTEM, "system"),
        (MessageRole.DEVELOPER, "system"),
        (MessageRole.USER, "user"),
        (MessageRole.ASSISTANT, "assistant"),
        (MessageRole.CHATBOT, "assistant"),
        (MessageRole.MODEL, "assistant"),
        (MessageRole.TOOL, "tool"),
        (MessageRole.FUNCTION, "tool"),
    ],
)
def test_every_role_has_a_wire_role(role: MessageRole, wire_role: str) -> None:
    message = ChatMessage(role=role, content="hi", additional_kwargs={"tool_call_id": "call_1"})
    wire = to_wire_message(message)
    assert wire["role"] == wire_role
    assert wire["content"] == "hi"


def test_text_blocks_join_like_chat_message_content() -> None:
    message = ChatMessage(role="user", blocks=[TextBlock(text="one"), TextBlock(text="two")])
    assert to_wire_message(message) == {"role": "user", "content": "one\ntwo"}
    assert to_wire_message(message)["content"] == message.content


def test_a_message_without_blocks_sends_empty_text() -> None:
    assert to_wire_message(ChatMessage(role="user")) == {"role": "user", "content": ""}


def test_conversion_leaves_the_callers_messages_unchanged() -> None:
    history = [
        ChatMessage(role="system", content="be brief"),
        ChatMessage(
            role="assistant",
            blocks=[ToolCallBlock(tool_call_id="a.b", tool_name="f", tool_kwargs={"x": 1})],
        ),
        ChatMessage(role="tool", content="42", additional_kwargs={"tool_call_id": "a.b"}),
    ]
    before = [m.model_dump() for m in history]
    wire = to_wire_messages(history)
    assert [m.model_dump() for m in history] == before
    assert [m["role"] for m in wire] == ["system", "assistant", "tool"]


# Images.


def test_https_image_url_is_passed_through_not_downloaded() -> None:
    url = "https://example.com/cat.png"
    message = ChatMessage(
        role="user", blocks=[TextBlock(text="what is this?"), ImageBlock(url=url, detail="low")]
    )
    wire = to_wire_message(message)
    assert wire["content"] == [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": url, "detail": "low"}},
    ]


def test_image_path_becomes_a_data_url(tmp_path: Path) -> None:
    path = tmp_path / "dot.png"
    path.write_bytes(PNG_1X1)
    part = image_block_to_part(ImageBlock(path=path))
    head, data = _data_url_bytes(part["image_url"]["url"])
    assert head == "data:image/png;base64"
    assert data == PNG_1X1


def test_image_path_without_suffix_is_sniffed(tmp_path: Path) -> None:
    path = tmp_path / "photo"
    path.write_bytes(JPEG_HEAD)
    head, data = _data_url_bytes(image_block_to_part(ImageBlock(path=path))["image_url"]["url"])
    assert head == "data:image/jpeg;base64"
    assert data == JPEG_HEAD


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (PNG_1X1, "image/png"),
        (JPEG_HEAD, "image/jpeg"),
        (GIF_HEAD, "image/gif"),
        (WEBP_HEAD, "image/webp"),
    ],
)
def test_image_bytes_become_a_data_url_of_their_type(data: bytes, mime: str) -> None:
    head, sent = _data_url_bytes(image_block_to_part(ImageBlock(image=data))["image_url"]["url"])
    assert head == f"data:{mime};base64"
    assert sent == data


def test_image_bytes_with_a_declared_type() -> None:
    url = image_block_to_part(ImageBlock(image=PNG_1X1, image_mimetype="image/png"))["image_url"]
    assert url["url"].startswith("data:image/png;base64,")


def test_the_bytes_signature_wins_over_a_wrong_declared_type() -> None:
    part = image_block_to_part(ImageBlock(image=JPEG_HEAD, image_mimetype="image/png"))
    assert part["image_url"]["url"].startswith("data:image/jpeg;base64,")


def test_image_jpg_alias_is_normalised() -> None:
    data = b"\x00\x01 not a known signature"
    part = image_block_to_part(ImageBlock(image=data, image_mimetype="image/JPG"))
    assert part["image_url"]["url"].startswith("data:image/jpeg;base64,")


def test_already_base64_bytes_are_not_encoded_twice() -> None:
    block = ImageBlock(image=base64.b64encode(PNG_1X1), image_mimetype="image/png")
    _, data = _data_url_bytes(image_block_to_part(block)["image_url"]["url"])
    assert data == PNG_1X1


def test_base64_data_url_in_url_is_accepted() -> None:
    url = "data:image/png;base64," + base64.b64encode(PNG_1X1).decode()
    assert image_block_to_part(ImageBlock(url=url))["image_url"]["url"] == url


@pytest.mark.parametrize(
    "block",
    [
        pytest.param(lambda: ImageBlock(image=BMP_HEAD), id="bmp-bytes"),
        pytest.param(
            lambda: ImageBlock(image=BMP_HEAD, image_mimetype="image/bmp"), id="bmp-declared"
        ),
        pytest.param(lambda: ImageBlock(image=b"just some text, no image"), id="unknown-bytes"),
        pytest.param(
            lambda: ImageBlock(url="data:image/bmp;base64," + base64.b64encode(BMP_HEAD).decode()),
            id="bmp-data-url",
        ),
        pytest.param(lambda: ImageBlock(url="ftp://example.com/a.png"), id="ftp-url"),
    ],
)
def test_unsupported_images_fail_clearly_before_sending(block: Any) -> None:
    with pytest.raises(InvalidParameterError) as info:
        to_wire_message(ChatMessage(role="user", blocks=[block()]))
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert "image" in message
    assert len(message) < 400  # the image bytes are never dumped into the error


def test_unsupported_image_type_names_the_supported_ones() -> None:
    with pytest.raises(
        InvalidParameterError, match=r"image/jpeg, image/png, image/gif, image/webp"
    ):
        image_block_to_part(ImageBlock(image=BMP_HEAD))


def test_empty_image_is_an_error() -> None:
    with pytest.raises(InvalidParameterError, match="non-empty"):
        image_block_to_part(ImageBlock.model_construct(image=b"", path=None, url=None))


@pytest.mark.parametrize("role", ["system", "assistant"])
def test_images_outside_user_messages_and_tool_results_are_refused(role: str) -> None:
    message = ChatMessage(role=role, blocks=[ImageBlock(url="https://example.com/a.png")])
    with pytest.raises(InvalidParameterError, match="user messages"):
        to_wire_message(message)


def test_a_tool_result_may_carry_an_image() -> None:
    message = ChatMessage(
        role="tool",
        blocks=[TextBlock(text="screenshot:"), ImageBlock(image=PNG_1X1)],
        additional_kwargs={"tool_call_id": "call_1"},
    )
    wire = to_wire_message(message)
    assert wire["tool_call_id"] == "call_1"
    assert [p["type"] for p in wire["content"]] == ["text", "image_url"]


def test_sniff_image_type() -> None:
    assert sniff_image_type(PNG_1X1) == "image/png"
    assert sniff_image_type(JPEG_HEAD) == "image/jpeg"
    assert sniff_image_type(GIF_HEAD) == "image/gif"
    assert sniff_image_type(WEBP_HEAD) == "image/webp"
    assert sniff_image_type(BMP_HEAD) is None
    assert sniff_image_type(b"") is None


# Blocks the wire cannot carry.


@pytest.mark.parametrize(
    ("block", "name"),
    [
        (AudioBlock(audio=b"RIFF....WAVEfmt ", format="wav"), "AudioBlock"),
        (VideoBlock(video=b"\x00\x00\x00\x18ftypmp42", video_mimetype="video/mp4"), "VideoBlock"),
        (CitableBlock(title="t", source="s", content="cite me"), "CitableBlock"),
    ],
)
def test_unsendable_blocks_are_a_clear_error(block: Any, name: str) -> None:
    message = ChatMessage(role="user", blocks=[TextBlock(text="look:"), block])
    with pytest.raises(InvalidParameterError) as info:
        to_wire_messages([ChatMessage(role="system", content="s"), message])
    text = str(info.value)
    assert "messages[1].blocks[1]" in text
    assert name in text
    assert "text, image, document, thinking, tool-call and cache-point blocks" in text


def test_hint_blocks_are_dropped() -> None:
    message = ChatMessage(
        role="assistant",
        blocks=[
            ThinkingBlock(content="let me think"),
            TextBlock(text="answer"),
            CitationBlock(
                cited_content="src", source="doc", title="t", additional_location_info={}
            ),
        ],
    )
    assert to_wire_message(message) == {"role": "assistant", "content": "answer"}


def test_cache_point_marks_the_text_before_it() -> None:
    message = ChatMessage(
        role="user",
        blocks=[
            TextBlock(text="long context"),
            CachePoint(cache_control=CacheControl(type="ephemeral", ttl="1h")),
            TextBlock(text="question"),
        ],
    )
    assert to_wire_message(message) == {
        "role": "user",
        "content": [
            {
                "type": "text",
                "text": "long context",
                "cache_control": {"type": "ephemeral", "ttl": "1h"},
            },
            {"type": "text", "text": "question"},
        ],
    }
    system = ChatMessage(
        role="system",
        blocks=[TextBlock(text="rules"), CachePoint(cache_control=CacheControl(type="ephemeral"))],
    )
    assert to_wire_message(system)["content"] == [
        {"type": "text", "text": "rules", "cache_control": {"type": "ephemeral"}}
    ]


# Tool calls and tool results.


def test_tool_call_blocks_become_wire_tool_calls() -> None:
    message = ChatMessage(
        role="assistant",
        blocks=[
            ToolCallBlock(tool_call_id="call_1", tool_name="add", tool_kwargs={"a": 1, "b": 2}),
            ToolCallBlock(tool_call_id="call_2", tool_name="echo", tool_kwargs='{"s": "x"}'),
        ],
    )
    wire = to_wire_message(message)
    assert wire["content"] is None  # a call-only turn carries no empty text
    assert wire["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'},
        },
        {
            "id": "call_2",
            "type": "function",
            "function": {"name": "echo", "arguments": '{"s": "x"}'},
        },
    ]


def test_text_and_tool_calls_together() -> None:
    message = ChatMessage(
        role="assistant",
        blocks=[TextBlock(text="Let me add."), ToolCallBlock(tool_call_id="c", tool_name="add")],
    )
    wire = to_wire_message(message)
    assert wire["content"] == "Let me add."
    assert wire["tool_calls"][0]["function"] == {"name": "add", "arguments": "{}"}


def test_additional_kwargs_tool_calls_are_used_without_blocks() -> None:
    calls = [
        {"id": "call_9", "type": "function", "function": {"name": "f", "arguments": '{"q": 1}'}}
    ]
    wire = to_wire_message(
        ChatMessage(role="assistant", content="", additional_kwargs={"tool_calls": calls})
    )
    assert wire == {"role": "assistant", "content": None, "tool_calls": calls}


def test_additional_kwargs_tool_calls_may_be_sdk_objects() -> None:
    from tokenhub_core.wire import FunctionCall, ToolCall

    call = ToolCall(id="call_3", function=FunctionCall(name="f", arguments='{"q": 2}'))
    wire = to_wire_message(ChatMessage(role="assistant", additional_kwargs={"tool_calls": [call]}))
    assert wire["tool_calls"] == [
        {"id": "call_3", "type": "function", "function": {"name": "f", "arguments": '{"q": 2}'}}
    ]


def test_blocks_win_over_additional_kwargs_so_calls_are_not_doubled() -> None:
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    message = ChatMessage(
        role="assistant",
        blocks=[ToolCallBlock(tool_call_id="c1", tool_name="f")],
        additional_kwargs={"tool_calls": calls},
    )
    assert len(to_wire_message(message)["tool_calls"]) == 1


def test_foreign_tool_call_ids_are_normalised_the_same_on_both_sides() -> None:
    foreign = "toolu:01/abc.def"
    history = [
        ChatMessage(role="assistant", blocks=[ToolCallBlock(tool_call_id=foreign, tool_name="f")]),
        ChatMessage(role="tool", content="ok", additional_kwargs={"tool_call_id": foreign}),
    ]
    call, result = to_wire_messages(history)
    assert call["tool_calls"][0]["id"] == result["tool_call_id"] == normalize_tool_call_id(foreign)
    assert all(c.isalnum() or c in "_-" for c in result["tool_call_id"])


def test_tool_result_joins_its_text_blocks() -> None:
    message = ChatMessage(
        role="tool",
        blocks=[TextBlock(text="line 1"), TextBlock(text="line 2")],
        additional_kwargs={"tool_call_id": "call_1"},
    )
    assert to_wire_message(message) == {
        "role": "tool",
        "content": "line 1\nline 2",
        "tool_call_id": "call_1",
    }


def test_tool_result_without_an_id_is_refused() -> None:
    with pytest.raises(InvalidParameterError, match="tool_call_id"):
        to_wire_message(ChatMessage(role="tool", content="42"))


def test_tool_call_without_an_id_is_refused() -> None:
    message = ChatMessage(role="assistant", blocks=[ToolCallBlock(tool_name="f")])
    with pytest.raises(InvalidParameterError, match="an id for the call to 'f'"):
        to_wire_message(message)


def test_tool_call_block_outside_an_assistant_message_is_refused() -> None:
    message = ChatMessage(role="user", blocks=[ToolCallBlock(tool_call_id="c", tool_name="f")])
    with pytest.raises(InvalidParameterError, match="assistant messages"):
        to_wire_message(message)


def test_assistant_return_direct_tool_call_id_is_not_sent() -> None:
    # FunctionAgent marks a return_direct answer with additional_kwargs["tool_call_id"].
    message = ChatMessage(role="assistant", content="done", additional_kwargs={"tool_call_id": "c"})
    assert to_wire_message(message) == {"role": "assistant", "content": "done"}


# Tools and tool_choice.


def _add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def test_tools_become_openai_shaped_definitions() -> None:
    long_doc = "x" * 2000  # Claude has no 1024-character description limit
    tools = [
        FunctionTool.from_defaults(_add),
        FunctionTool.from_defaults(_add, name="big", description=long_doc),
    ]
    wire = to_wire_tools(tools)
    assert wire[0]["type"] == "function"
    assert wire[0]["function"]["name"] == "_add"
    assert wire[0]["function"]["parameters"]["required"] == ["a", "b"]
    assert wire[1]["function"]["description"] == long_doc
    json.dumps(wire)


@pytest.mark.parametrize(
    ("choice", "required", "expected"),
    [
        (None, False, None),
        (None, True, "required"),
        ("auto", False, "auto"),
        ("auto", True, "auto"),
        ("none", False, "none"),
        ("required", False, "required"),
        ("add", False, {"type": "function", "function": {"name": "add"}}),
        ("add", True, {"type": "function", "function": {"name": "add"}}),
        (
            {"type": "function", "function": {"name": "add"}},
            False,
            {"type": "function", "function": {"name": "add"}},
        ),
        ({"name": "add"}, False, {"type": "function", "function": {"name": "add"}}),
        ({"type": "tool", "name": "add"}, False, {"type": "function", "function": {"name": "add"}}),
        ({"type": "any"}, False, "required"),
        ({"type": "auto"}, False, "auto"),
    ],
)
def test_tool_choice_normalisation(choice: Any, required: bool, expected: Any) -> None:
    assert (
        to_wire_tool_choice(choice, tool_required=required, tool_names=["add", "echo"]) == expected
    )


@pytest.mark.parametrize(
    "choice", ["nope", {"type": "function", "function": {"name": "nope"}}, {"type": 3}, 7]
)
def test_bad_tool_choice_is_refused(choice: Any) -> None:
    with pytest.raises(InvalidParameterError, match="tool_choice"):
        to_wire_tool_choice(choice, tool_names=["add"])
