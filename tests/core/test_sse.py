"""SSEDecoder: WHATWG event-stream parsing, fed bytes split every way."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenhub_core.errors import APIResponseError
from tokenhub_core.sse import ServerSentEvent, SSEDecoder, SSEError

BOM = b"\xef\xbb\xbf"


def decode_chunks(chunks: list[bytes], **caps: int) -> list[ServerSentEvent]:
    decoder = SSEDecoder(**caps)
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events += decoder.decode(chunk)
    events += decoder.flush()
    return events


def split_at(stream: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(cuts), len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds)]


def reference_decode(stream: bytes) -> list[ServerSentEvent]:
    """The WHATWG algorithm transcribed literally, on the whole stream at once (the test oracle)."""
    text = stream.decode("utf-8", "replace")
    text = text.removeprefix("\ufeff")
    lines = re.split(r"\r\n|\r|\n", text)
    lines.pop()  # end of file: pending data is discarded
    data_buffer, event_type, last_id, retry = "", "", "", None
    events = []
    for line in lines:
        if line == "":
            if data_buffer == "":
                event_type = ""
                continue
            data_buffer = data_buffer.removesuffix("\n")
            events.append(ServerSentEvent(data_buffer, event_type or "message", last_id, retry))
            data_buffer, event_type, retry = "", "", None
            continue
        if line.startswith(":"):
            continue
        if ":" in line:
            field, value = line.split(":", 1)
            value = value.removeprefix(" ")
        else:
            field, value = line, ""
        if field == "data":
            data_buffer += value + "\n"
        elif field == "event":
            event_type = value
        elif field == "id" and "\0" not in value:
            last_id = value
        elif field == "retry" and value and all(c in "0123456789" for c in value):
            retry = int(value)
    return events


# A fixed stream exercising every feature at once: BOM, all three line ends, comments, multi-line
# data, event/id/retry fields, emoji and CJK (multi-byte characters), an event-only block.
SAMPLE = (
    BOM
    + b": keep-alive\r\n"
    + b'data: {"a": 1}\n\n'
    + b"event: update\rid: 7\rdata: first\rdata:  two spaces\r\r"
    + "data: 😀 中文 ✓\r\ndata: end\r\n\r\n".encode()
    + b"event: ping\n\n"
    + b"retry: 2500\ndata\n\n"
    + b"id\ndata: [DONE]\n\n"
)
SAMPLE_EVENTS = [
    ServerSentEvent('{"a": 1}'),
    ServerSentEvent("first\n two spaces", event="update", id="7"),
    ServerSentEvent("😀 中文 ✓\nend", id="7"),
    ServerSentEvent("", id="7", retry=2500),
    ServerSentEvent("[DONE]"),
]


def test_sample_decodes_in_one_chunk() -> None:
    assert decode_chunks([SAMPLE]) == SAMPLE_EVENTS
    assert reference_decode(SAMPLE) == SAMPLE_EVENTS


def test_sample_decodes_identically_at_every_split_point() -> None:
    for cut in range(len(SAMPLE) + 1):
        assert decode_chunks(split_at(SAMPLE, [cut])) == SAMPLE_EVENTS, cut


def test_sample_decodes_identically_one_byte_at_a_time() -> None:
    assert decode_chunks([SAMPLE[i : i + 1] for i in range(len(SAMPLE))]) == SAMPLE_EVENTS


# --- hypothesis: structured events, encoded every way ------------------------------------------

_VALUE = st.one_of(
    st.text(
        st.characters(codec="utf-8", exclude_characters="\r\n"),
        max_size=12,
    ),
    st.sampled_from(["", " ", "  lead", "a:b", "😀🎉", "中文字符", "{}", "x\0y", "\ufeff"]),
)
_SAFE_ID = st.text(st.characters(codec="utf-8", exclude_characters="\r\n\0"))


@dataclass
class Field:
    kind: str  # data | event | id | retry | comment | unknown
    value: str


_FIELD = st.one_of(
    st.builds(Field, st.just("data"), _VALUE),
    st.builds(Field, st.just("data"), _VALUE),
    st.builds(Field, st.just("event"), _VALUE),
    st.builds(Field, st.just("id"), _SAFE_ID),
    st.builds(Field, st.just("retry"), st.integers(0, 10**12).map(str)),
    st.builds(Field, st.just("comment"), _VALUE),
    st.builds(Field, st.just("unknown"), _VALUE),
)


def _encode_line(draw: st.DrawFn, field: Field) -> str:
    if field.kind == "comment":
        return ":" + field.value
    name = {"unknown": "Data"}.get(field.kind, field.kind)  # field names are case-sensitive
    value = field.value
    if value == "":
        return draw(st.sampled_from([name, name + ":", name + ": "]))
    if value.startswith(" "):
        return f"{name}: {value}"  # the one optional space is eaten, the value's own one stays
    return draw(st.sampled_from([f"{name}:{value}", f"{name}: {value}"]))


@st.composite
def event_streams(draw: st.DrawFn) -> tuple[bytes, list[ServerSentEvent]]:
    """A stream built from random blocks, and the events it must decode to."""
    blocks = draw(st.lists(st.lists(_FIELD, max_size=5), max_size=6))
    unterminated_tail = draw(st.booleans())
    lines: list[str] = []
    expected: list[ServerSentEvent] = []
    last_id, retry = "", None
    for number, block in enumerate(blocks):
        data: list[str] = []
        event_type = ""
        for field in block:
            lines.append(_encode_line(draw, field))
            if field.kind == "data":
                data.append(field.value)
            elif field.kind == "event":
                event_type = field.value
            elif field.kind == "id":
                last_id = field.value
            elif field.kind == "retry":
                retry = int(field.value)
        if unterminated_tail and number == len(blocks) - 1:
            break  # the last block never gets its blank line: it must not be dispatched
        lines.append("")
        if data:
            expected.append(
                ServerSentEvent("\n".join(data), event_type or "message", last_id, retry)
            )
            retry = None
    text = ""
    previous_end = ""
    for line in lines:
        choices = ["\n", "\r\n", "\r"]
        if previous_end == "\r" and line == "":
            choices = ["\r\n", "\r"]  # CR then an empty LF-ended line would read as one CRLF
        previous_end = draw(st.sampled_from(choices))
        text += line + previous_end
    cut_last_line_end = draw(st.booleans())
    if unterminated_tail and blocks and blocks[-1] and cut_last_line_end:
        text = text[: -len(previous_end)]  # and maybe not even its last line's end
    prefix = BOM if draw(st.booleans()) else b""
    return prefix + text.encode(), expected


@settings(max_examples=100, deadline=None)
@given(event_streams(), st.data())
def test_random_streams_decode_to_their_events_however_split(
    case: tuple[bytes, list[ServerSentEvent]], data: st.DataObject
) -> None:
    stream, expected = case
    assert decode_chunks([stream]) == expected
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    assert decode_chunks(split_at(stream, cuts)) == expected


_PIECES = [
    b"data",
    b"event",
    b"data: ",  # whole field prefixes and event ends: the decoder's fast path for whole events
    b"event: ",
    b"\n\n",
    b"id",
    b"retry",
    b"x",
    b"12",
    b":",
    b" ",
    b"\r",
    b"\n",
    b"\r\n",
    BOM,
    b"\x00",
    "é".encode(),
    "😀".encode(),
    "中".encode(),
    b"\xf0\x9f",  # a truncated 4-byte character
    b"\xff",
    b"\x80",
]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=40).map(b"".join), st.data())
def test_arbitrary_bytes_match_the_spec_transcription(stream: bytes, data: st.DataObject) -> None:
    expected = reference_decode(stream)
    assert decode_chunks([stream]) == expected
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=10))
    assert decode_chunks(split_at(stream, cuts)) == expected


# --- line ends ---------------------------------------------------------------------------------


def test_cr_ending_one_chunk_and_lf_starting_the_next_are_one_line_end() -> None:
    # Read as two line ends, the LF would be a blank line and dispatch "a" alone.
    assert decode_chunks([b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]) == [
        ServerSentEvent("a\nb")
    ]


def test_lone_cr_dispatches_without_waiting_for_more_bytes() -> None:
    decoder = SSEDecoder()
    assert decoder.decode(b"data: a\r\r") == [ServerSentEvent("a")]
    assert decoder.decode(b"\ndata: b\r\r") == [ServerSentEvent("b")]  # that LF only ended CRLF


def test_cr_cr_is_two_line_ends() -> None:
    assert decode_chunks([b"data: a\r", b"\rdata: b\n\n"]) == [
        ServerSentEvent("a"),
        ServerSentEvent("b"),
    ]


def test_other_unicode_line_breaks_are_data() -> None:
    stream = "data: a\u2028b\x85c\x0bd\n\n".encode()
    assert decode_chunks([stream]) == [ServerSentEvent("a\u2028b\x85c\x0bd")]


# --- encoding ----------------------------------------------------------------------------------


def test_multibyte_characters_split_anywhere() -> None:
    stream = "data: 😀中文é\n\n".encode()
    for cut in range(len(stream) + 1):
        for cut2 in range(cut, len(stream) + 1):
            assert decode_chunks(split_at(stream, [cut, cut2])) == [ServerSentEvent("😀中文é")]


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert decode_chunks([b"data: \xff\xfe ok \xc3\n\n"]) == [
        ServerSentEvent("\ufffd\ufffd ok \ufffd")
    ]


def test_bom_split_across_chunks_is_stripped_and_first_event_kept() -> None:
    assert decode_chunks([b"\xef", b"\xbb", b"\xbfdata: first\n\n"]) == [ServerSentEvent("first")]


def test_only_one_leading_bom_is_stripped() -> None:
    # The second BOM becomes part of the field name "\ufeffdata", which is not a field.
    assert decode_chunks([BOM + BOM + b"data: x\n\ndata: y\n\n"]) == [ServerSentEvent("y")]


def test_bom_later_in_the_stream_is_data() -> None:
    assert decode_chunks([b"data: " + BOM + b"x\n\n"]) == [ServerSentEvent("\ufeffx")]


# --- fields ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "block",
    [
        b"event: ping\n\n",
        b"id: 5\n\n",
        b": keep-alive\n\n",
        b"retry: 10\n\n",
        b"\n\n\n",
        b"x: 1\n\n",
    ],
)
def test_blocks_without_data_are_not_dispatched(block: bytes) -> None:
    assert decode_chunks([block]) == []


def test_event_type_of_an_undispatched_block_does_not_leak() -> None:
    assert decode_chunks([b"event: ping\n\ndata: x\n\n"]) == [ServerSentEvent("x")]


def test_comment_after_id_does_not_dispatch_an_empty_event() -> None:
    assert decode_chunks([b"id: 1\n: hi\n\ndata: x\n\n"]) == [ServerSentEvent("x", id="1")]


def test_explicit_empty_data_line_is_an_event_with_empty_data() -> None:
    # WHATWG: "data:" appends "" plus LF, so the buffer is not empty and the event is dispatched.
    assert decode_chunks([b"data:\n\n", b"data\n\n"]) == [ServerSentEvent(""), ServerSentEvent("")]


def test_multiline_data_joined_with_lf_and_one_space_stripped() -> None:
    stream = b"data:a\ndata: b\ndata:  c\ndata: \ndata\n\n"
    assert decode_chunks([stream]) == [ServerSentEvent("a\nb\n c\n\n")]


def test_colon_in_value_and_case_sensitive_field_names() -> None:
    stream = b'Data: no\nDATA: no\ndata: {"k": "v:w"}\nevent:x:y\n\n'
    assert decode_chunks([stream]) == [ServerSentEvent('{"k": "v:w"}', event="x:y")]


def test_id_persists_and_id_with_nul_is_ignored() -> None:
    stream = b"id: 1\ndata: a\n\ndata: b\n\nid: 2\x003\ndata: c\n\nid\ndata: d\n\n"
    assert decode_chunks([stream]) == [
        ServerSentEvent("a", id="1"),
        ServerSentEvent("b", id="1"),
        ServerSentEvent("c", id="1"),
        ServerSentEvent("d", id=""),
    ]


def test_last_event_id_property_tracks_id_fields() -> None:
    decoder = SSEDecoder()
    decoder.decode(b"id: abc\n\n")
    assert decoder.last_event_id == "abc"


@pytest.mark.parametrize(
    ("line", "retry"),
    [
        (b"retry: 1500", 1500),
        (b"retry:0", 0),
        (b"retry: 15x0", None),
        (b"retry: -1", None),
        (b"retry: 1.5", None),
        (b"retry:  15", None),  # the second space is part of the value
        (b"retry:", None),
        ("retry: ١٢".encode(), None),  # Arabic-Indic digits are not ASCII digits
        (b"retry: " + b"9" * 10_000, None),  # beyond int()'s digit limit: ignored, no crash
    ],
)
def test_retry_accepts_ascii_digits_only(line: bytes, retry: int | None) -> None:
    assert decode_chunks([line + b"\ndata: x\n\n"]) == [ServerSentEvent("x", retry=retry)]


def test_retry_is_reported_once_on_the_next_dispatched_event() -> None:
    stream = b"retry: 10\n\ndata: a\n\ndata: b\n\n"
    assert decode_chunks([stream]) == [ServerSentEvent("a", retry=10), ServerSentEvent("b")]


# --- end of stream -----------------------------------------------------------------------------


@pytest.mark.parametrize("tail", [b"data: a", b"data: a\n", b"data: a\r\n", b"data: a\n\r"[:-1]])
def test_flush_discards_an_event_missing_its_blank_line(tail: bytes) -> None:
    decoder = SSEDecoder()
    assert decoder.decode(b"data: done\n\n" + tail) == [ServerSentEvent("done")]
    assert decoder.flush() == []


def test_decoder_is_reusable_after_flush() -> None:
    decoder = SSEDecoder()
    decoder.decode(b"id: 9\ndata: half")
    decoder.flush()
    assert decoder.decode(BOM + b"data: new\n\n") == [ServerSentEvent("new", id="9")]


# --- caps --------------------------------------------------------------------------------------


def test_line_at_the_cap_passes_and_one_more_char_raises() -> None:
    ten = b"data: 1234"  # 10 characters
    assert decode_chunks([ten + b"\n\n"], max_line_chars=10) == [ServerSentEvent("1234")]
    with pytest.raises(SSEError, match="max_line_chars=10"):
        decode_chunks([ten + b"5\n\n"], max_line_chars=10)


def test_line_cap_counts_characters_not_bytes() -> None:
    line = "data: 中中中中".encode()  # 10 characters, 18 bytes
    assert decode_chunks([line + b"\n\n"], max_line_chars=10) == [ServerSentEvent("中中中中")]


def test_unterminated_line_trickling_in_raises_once_past_the_cap() -> None:
    decoder = SSEDecoder(max_line_chars=100)
    for _ in range(100):
        decoder.decode(b"x")
    with pytest.raises(SSEError, match="max_line_chars=100") as raised:
        decoder.decode(b"x")
    assert isinstance(raised.value, APIResponseError)


def test_comment_lines_are_capped_too() -> None:
    with pytest.raises(SSEError, match="max_line_chars"):
        decode_chunks([b":" + b"k" * 50 + b"\n"], max_line_chars=20)


def test_event_at_the_cap_passes_and_one_more_char_raises() -> None:
    ok = b"data: 1234\ndata: 12345\n\n"  # "1234\n12345": 10 characters
    assert decode_chunks([ok], max_event_chars=10) == [ServerSentEvent("1234\n12345")]
    with pytest.raises(SSEError, match="max_event_chars=10"):
        decode_chunks([b"data: 12345\ndata: 12345\n\n"], max_event_chars=10)


def test_event_cap_resets_between_events() -> None:
    stream = b"data: 12345678\n\n" * 5
    assert len(decode_chunks([stream], max_event_chars=10)) == 5


# --- linear time -------------------------------------------------------------------------------


def test_huge_line_in_tiny_chunks_decodes_in_linear_time() -> None:
    # One 5 MB line of 4-byte characters in 6-byte chunks: ~830k calls, each splitting a character.
    # Linear: about a second. Re-joining the pending line per chunk (measured with such a variant)
    # takes three and a half minutes, past the suite's per-test timeout.
    payload = "😀" * 1_250_000
    stream = b"data: " + payload.encode() + b"\n\n"
    decoder = SSEDecoder(max_line_chars=len(payload) + 6)
    events = []
    for start in range(0, len(stream), 6):
        events += decoder.decode(stream[start : start + 6])
    assert events == [ServerSentEvent(payload)]


# --- one whole event per read (the stream readers' shortcut) -----------------------------------


def _lone_or_decoded(chunks: list[bytes], head: bytes) -> list[tuple[str, str]]:
    """Each chunk through `lone_data` when it takes it, else `decode_fields`, as a reader does."""
    decoder, events = SSEDecoder(), []
    name = head[7:-7].decode() if head.startswith(b"event: ") else "message"
    for chunk in chunks:
        lone = decoder.lone_data(chunk, head)
        if lone is not None:
            events.append((lone.decode("utf-8", "replace"), name))
        else:
            events.extend((data, event) for data, event, _, _ in decoder.decode_fields(chunk))
    return events


@pytest.mark.parametrize("head", [b"data: ", b"event: content_block_delta\ndata: "])
@settings(max_examples=200, deadline=None)
@given(stream=st.lists(st.sampled_from(_PIECES), max_size=40).map(b"".join), data=st.data())
def test_lone_data_reads_a_chunk_as_the_decoder_would(
    head: bytes, stream: bytes, data: st.DataObject
) -> None:
    stream = head + b'{"a": 1}\n\n' + stream + head + b"x\n\n"
    expected = [(e.data, e.event) for e in reference_decode(stream)]
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=10))
    assert _lone_or_decoded(split_at(stream, cuts), head) == expected


def test_lone_data_takes_only_one_whole_event_with_nothing_pending() -> None:
    head = b"event: content_block_delta\ndata: "
    decoder = SSEDecoder()
    assert decoder.lone_data(head + b"{}\n\n", head) is None  # the stream's start: a BOM may come
    decoder.decode_fields(b": hello\n\n")
    assert decoder.lone_data(head + b'{"t": 1}\n\n', head) == b'{"t": 1}'
    for not_lone in [
        head + b"{}\n\n" + head + b"{}\n\n",  # two events
        head + b"{}\n",  # not yet dispatched
        head + b"{}\r\n\r\n",  # CR line ends
        b"event: ping\ndata: {}\n\n",  # another event
        b"id: 7\n" + head + b"{}\n\n",
        head + b"{}\ndata: more\n\n",  # two data lines
    ]:
        assert decoder.lone_data(not_lone, head) is None, not_lone
    decoder.decode_fields(b"data: half")  # a line pending from an earlier read
    assert decoder.lone_data(head + b"{}\n\n", head) is None
    capped = SSEDecoder(max_event_chars=4)
    capped.decode_fields(b"\n")
    assert capped.lone_data(b"data: 1234\n\n", b"data: ") == b"1234"
    assert capped.lone_data(b"data: 12345\n\n", b"data: ") is None  # the cap's error is decode's
