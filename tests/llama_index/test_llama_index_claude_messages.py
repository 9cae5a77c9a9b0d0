"""LlamaIndex -> wire conversion of Claude's own blocks: documents, thinking, cache points."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    CacheControl,
    CachePoint,
    ChatMessage,
    DocumentBlock,
    ImageBlock,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)
from llama_index.core.tools import FunctionTool

from llama_index_tokenhub.messages import (
    document_block_to_part,
    to_wire_message,
    to_wire_messages,
    to_wire_tools,
)
from tests.llama_index._images import PNG_1X1
from tokenhub_core.errors import InvalidParameterError

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
EPHEMERAL = {"type": "ephemeral"}


def _cache(ttl: str = "5m") -> CachePoint:
    return CachePoint(cache_control=CacheControl(type="ephemeral", ttl=ttl))


# Documents.


def test_pdf_bytes_become_a_base64_document() -> None:
    part = document_block_to_part(DocumentBlock(data=PDF))
    assert part == {
        "type": "document",
        "source": {
            "type": "base64",
            "media_type": "application/pdf",
            "data": base64.b64encode(PDF).decode(),
        },
    }


def test_already_base64_pdf_data_is_not_encoded_twice() -> None:
    block = DocumentBlock(data=base64.b64encode(PDF), document_mimetype="application/pdf")
    assert base64.b64decode(document_block_to_part(block)["source"]["data"]) == PDF


def test_pdf_path_and_title(tmp_path: Path) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(PDF)
    part = document_block_to_part(DocumentBlock(path=path, title="Q3 report"))
    assert part["source"]["media_type"] == "application/pdf"
    assert base64.b64decode(part["source"]["data"]) == PDF
    assert part["title"] == "Q3 report"


def test_text_documents_are_sent_as_text() -> None:
    by_type = DocumentBlock(data=b"Grass is green.", document_mimetype="text/plain")
    assert document_block_to_part(by_type)["source"] == {
        "type": "text",
        "media_type": "text/plain",
        "data": "Grass is green.",
    }
    # No declared type: UTF-8 bytes are text.
    guessed = document_block_to_part(DocumentBlock(data="Café notes".encode()))
    assert guessed["source"]["data"] == "Café notes"


def test_text_file_by_suffix(tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    path.write_text("# Notes\nline", encoding="utf-8")
    assert document_block_to_part(DocumentBlock(path=path))["source"] == {
        "type": "text",
        "media_type": "text/plain",
        "data": "# Notes\nline",
    }


def test_https_document_url_is_passed_through_not_downloaded() -> None:
    url = "https://example.com/paper.pdf"
    assert document_block_to_part(DocumentBlock(url=url)) == {
        "type": "document",
        "source": {"type": "url", "url": url},
    }


@pytest.mark.parametrize(
    ("block", "match"),
    [
        (DocumentBlock(data=b"\x00\xff\xfe binary"), "application/pdf or text/plain"),
        (
            DocumentBlock(data=PNG_1X1, document_mimetype="image/png"),
            "application/pdf or text/plain",
        ),
        (DocumentBlock(data=b"\xff\xfe", document_mimetype="text/plain"), "UTF-8"),
    ],
)
def test_unreadable_documents_fail_clearly(block: DocumentBlock, match: str) -> None:
    message = ChatMessage(role="user", blocks=[TextBlock(text="read"), block])
    with pytest.raises(InvalidParameterError, match=match) as info:
        to_wire_messages([message])
    assert "messages[0].blocks[1]" in str(info.value)


def test_a_missing_document_file_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "gone.pdf"
    path.write_bytes(PDF)
    block = DocumentBlock(path=path)
    path.unlink()
    with pytest.raises(InvalidParameterError, match="readable document"):
        to_wire_message(ChatMessage(role="user", blocks=[block]))


def test_documents_sit_in_user_messages_and_tool_results_only() -> None:
    user = ChatMessage(role="user", blocks=[DocumentBlock(data=PDF), TextBlock(text="Summarize.")])
    content = to_wire_message(user)["content"]
    assert [p["type"] for p in content] == ["document", "text"]
    result = ChatMessage(
        role="tool", blocks=[DocumentBlock(data=PDF)], additional_kwargs={"tool_call_id": "c1"}
    )
    assert to_wire_message(result)["content"][0]["type"] == "document"
    assistant = ChatMessage(role="assistant", blocks=[DocumentBlock(data=PDF)])
    with pytest.raises(InvalidParameterError, match="not assistant"):
        to_wire_message(assistant)


# Thinking.


def _thinking(text: str, signature: str) -> ThinkingBlock:
    # As our responses (and llama-index's Anthropic) build it.
    return ThinkingBlock(
        content=text, additional_information={"type": "thinking", "signature": signature}
    )


def test_thinking_goes_back_first_with_its_signature() -> None:
    message = ChatMessage(
        role="assistant",
        blocks=[
            _thinking("The user wants 2+3.", "sig-1"),
            ThinkingBlock(additional_information={"type": "redacted_thinking", "data": "enc"}),
            TextBlock(text="Let me add."),
            ToolCallBlock(tool_call_id="call_1", tool_name="add", tool_kwargs={"a": 2, "b": 3}),
        ],
    )
    assert to_wire_message(message) == {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "The user wants 2+3.", "signature": "sig-1"},
            {"type": "redacted_thinking", "data": "enc"},
            {"type": "text", "text": "Let me add."},
        ],
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'},
            }
        ],
    }


def test_thinking_before_a_call_only_turn_keeps_the_calls() -> None:
    message = ChatMessage(
        role="assistant",
        blocks=[_thinking("plan", "s"), ToolCallBlock(tool_call_id="c", tool_name="f")],
    )
    wire = to_wire_message(message)
    assert wire["content"] == [{"type": "thinking", "thinking": "plan", "signature": "s"}]
    assert wire["tool_calls"][0]["id"] == "c"


def test_anthropic_style_signature_only_information_is_enough() -> None:
    # llama-index's Anthropic streams build {"signature": ...} without "type".
    block = ThinkingBlock(content="hmm", additional_information={"signature": "abc"})
    wire = to_wire_message(ChatMessage(role="assistant", blocks=[block, TextBlock(text="hi")]))
    assert wire["content"][0] == {"type": "thinking", "thinking": "hmm", "signature": "abc"}


def test_unsigned_thinking_and_thinking_outside_assistant_turns_are_dropped() -> None:
    unsigned = ChatMessage(
        role="assistant", blocks=[ThinkingBlock(content="other provider"), TextBlock(text="ok")]
    )
    assert to_wire_message(unsigned) == {"role": "assistant", "content": "ok"}
    user = ChatMessage(role="user", blocks=[_thinking("x", "s"), TextBlock(text="q")])
    assert to_wire_message(user) == {"role": "user", "content": "q"}


# Cache points.


def test_cache_point_marks_images_and_documents_too() -> None:
    message = ChatMessage(
        role="user",
        blocks=[ImageBlock(image=PNG_1X1), _cache(), DocumentBlock(data=PDF), _cache("1h")],
    )
    image, document = to_wire_message(message)["content"]
    assert image["cache_control"] == EPHEMERAL
    assert document["cache_control"] == {"type": "ephemeral", "ttl": "1h"}


def test_cache_point_in_a_tool_result() -> None:
    message = ChatMessage(
        role="tool",
        blocks=[TextBlock(text="42 rows"), _cache()],
        additional_kwargs={"tool_call_id": "c1"},
    )
    assert to_wire_message(message) == {
        "role": "tool",
        "content": [{"type": "text", "text": "42 rows", "cache_control": EPHEMERAL}],
        "tool_call_id": "c1",
    }


def test_cache_point_after_tool_calls_marks_the_message() -> None:
    message = ChatMessage(
        role="assistant",
        blocks=[
            TextBlock(text="calling"),
            ToolCallBlock(tool_call_id="c", tool_name="f"),
            _cache(),
        ],
    )
    wire = to_wire_message(message)
    assert wire["content"] == "calling"
    assert wire["cache_control"] == EPHEMERAL


def test_a_leading_cache_point_marks_the_end_of_the_message_before() -> None:
    messages = [
        ChatMessage(role="system", content="long rules"),
        ChatMessage(role="user", blocks=[_cache(), TextBlock(text="question")]),
    ]
    system, user = to_wire_messages(messages)
    assert system["content"] == [{"type": "text", "text": "long rules", "cache_control": EPHEMERAL}]
    assert user["content"] == "question"
    # With no message before it there is nothing to cache.
    assert to_wire_messages(messages[1:]) == [{"role": "user", "content": "question"}]


def test_message_cache_control_marks_its_last_block() -> None:
    # What llama-index's Anthropic reads from additional_kwargs (its cache_idx sets it).
    message = ChatMessage(
        role="user",
        blocks=[TextBlock(text="a"), TextBlock(text="b")],
        additional_kwargs={"cache_control": {"type": "ephemeral", "ttl": "1h"}},
    )
    # A text-only message is one text (joined as ChatMessage.content joins it).
    assert to_wire_message(message)["content"] == [
        {"type": "text", "text": "a\nb", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
    ]
    with pytest.raises(InvalidParameterError, match="cache_control"):
        to_wire_message(
            ChatMessage(role="user", content="x", additional_kwargs={"cache_control": 1})
        )


@pytest.mark.parametrize(("cache_idx", "marked"), [(0, 0), (1, 1), (-1, 2)])
def test_cache_idx_sets_one_breakpoint(cache_idx: int, marked: int) -> None:
    messages = [
        ChatMessage(role="system", content="rules"),
        ChatMessage(role="user", content="q1"),
        ChatMessage(role="assistant", content="a1"),
    ]
    wire = to_wire_messages(messages, cache_idx=cache_idx)
    cached = [i for i, m in enumerate(wire) if isinstance(m["content"], list)]
    assert cached == [marked]
    assert wire[marked]["content"][-1]["cache_control"] == EPHEMERAL
    assert all("cache_control" not in m.additional_kwargs for m in messages)  # untouched


def test_cache_idx_out_of_range_is_refused() -> None:
    with pytest.raises(InvalidParameterError, match="cache_idx"):
        to_wire_messages([ChatMessage(role="user", content="q")], cache_idx=3)


def test_cache_on_a_thinking_ended_turn_goes_on_the_message() -> None:
    message = ChatMessage(role="assistant", blocks=[_thinking("t", "s")])
    wire = to_wire_messages([message], cache_idx=0)[0]
    assert wire["content"] == [{"type": "thinking", "thinking": "t", "signature": "s"}]
    assert wire["cache_control"] == EPHEMERAL


def _lookup(city: str) -> str:
    """Look a city up."""
    return city


def test_tools_may_carry_a_cache_breakpoint_on_the_last() -> None:
    tools = [
        FunctionTool.from_defaults(fn=_lookup),
        FunctionTool.from_defaults(fn=_lookup, name="b"),
    ]
    first, last = to_wire_tools(tools, cache_control=EPHEMERAL)
    assert "cache_control" not in first
    assert last["cache_control"] == EPHEMERAL
    assert last["function"]["name"] == "b"


def test_blocks_are_not_changed_by_conversion() -> None:
    blocks: list[Any] = [TextBlock(text="x"), _cache()]
    message = ChatMessage(role="user", blocks=blocks)
    before = message.model_dump()
    to_wire_messages([message], cache_idx=0)
    assert message.model_dump() == before
