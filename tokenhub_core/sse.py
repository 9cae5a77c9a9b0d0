"""Incremental server-sent events decoder: network bytes in, complete events out.

Follows the WHATWG HTML Living Standard, section 9.2 "Server-sent events", subsections "Parsing an
event stream" and "Interpreting an event stream":
https://html.spec.whatwg.org/multipage/server-sent-events.html#parsing-an-event-stream

Pure and socket-free, like httpx's ``LineDecoder``: feed it whatever byte chunks the network gives
(split anywhere, even inside a UTF-8 character or between the CR and LF of one line end) and it
returns the events those bytes complete. Work is linear in the stream's length: a line's pieces are
kept in a list and joined once when its line end arrives.
"""

from __future__ import annotations

import codecs
import contextlib
import re
from dataclasses import dataclass

from tokenhub_core.errors import APIResponseError

__all__ = ["EventFields", "SSEDecoder", "SSEError", "ServerSentEvent"]

# One whole event as every chat stream sends them: an optional "event:" line, one "data:" line
# and the blank line that dispatches it (line ends already normalized to "\n").
_WHOLE_EVENT = re.compile(r"(?:event: ([^\n]*)\n)?data: ([^\n]*)\n\n")


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event.

    ``id`` is the stream's last event ID, which persists across events until an ``id`` field
    changes it (WHATWG). ``retry`` is the reconnection time (ms) from a ``retry`` field seen since
    the previous dispatched event, else None. Blocks without any ``data`` line are never
    dispatched, but an explicit empty ``data:`` line is an event whose data is "" (WHATWG), so a
    caller that parses JSON should skip blank data.
    """

    data: str
    event: str = "message"
    id: str = ""
    retry: int | None = None


EventFields = tuple[str, str, str, "int | None"]
"""One event's ``(data, event, id, retry)``: `ServerSentEvent`'s fields, in its order."""


class SSEError(APIResponseError):
    """The event stream broke a size cap: a line, or one event's data, is too long."""


class SSEDecoder:
    """Turn an event stream's bytes into `ServerSentEvent`s, incrementally.

    Args:
        max_line_chars: Longest line accepted (characters, line end excluded).
        max_event_chars: Longest data accepted for one event (its ``data`` lines joined by "\\n").

    After `SSEError` is raised the stream is unusable; the decoder's state is undefined.
    """

    def __init__(self, *, max_line_chars: int = 1 << 20, max_event_chars: int = 8 << 20) -> None:
        self._max_line_chars = max_line_chars
        self._max_event_chars = max_event_chars
        self._last_event_id = ""
        self._reset()

    def _reset(self) -> None:
        self._undecoded = b""  # the start of a UTF-8 character split across chunks
        self._at_start = True  # no character decoded yet: a BOM may come
        self._line_parts: list[str] = []
        self._line_chars = 0
        self._after_cr = False
        self._data: list[str] = []
        self._data_chars = 0
        self._event_type = ""
        self._retry: int | None = None

    def decode(self, data: bytes) -> list[ServerSentEvent]:
        """Feed the next bytes of the stream; return the events they complete (often none)."""
        return [ServerSentEvent(*fields) for fields in self.decode_fields(data)]

    def decode_fields(self, data: bytes) -> list[EventFields]:
        """`decode`, with each event as a ``(data, event, id, retry)`` tuple: a tenth of the
        cost of a `ServerSentEvent`, for the stream readers' per-event path."""
        # WHATWG "UTF-8 decode": invalid bytes become U+FFFD (never an error) and one leading BOM
        # is dropped. utf_8_decode(final=False) leaves an incomplete trailing character unconsumed.
        if self._undecoded:
            data = self._undecoded + data
            self._undecoded = b""
        text, used = codecs.utf_8_decode(data, "replace", False)
        if used != len(data):
            self._undecoded = data[used:]
        if self._at_start or self._after_cr:
            text = self._strip_start(text)
        if not text:
            return []
        if "\r" in text:
            self._after_cr = text[-1] == "\r"
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        events: list[EventFields] = []
        if not (self._line_parts or self._data or self._event_type or self._retry is not None):
            # Whole events at the start of a clean read ("event: name\ndata: {...}\n\n", one
            # per read on a live stream): one regular-expression match each.
            end = self._whole_events(text, events)
            if end:
                if end == len(text):
                    return events
                text = text[end:]
        if "\n" not in text:
            # No line end: the common case for a long line trickling in, kept O(len(chunk)).
            self._line_chars += len(text)
            self._check_line(self._line_chars)
            self._line_parts.append(text)
            return events
        lines = text.split("\n")
        tail = lines.pop()
        if lines:
            if self._line_parts:
                self._check_line(self._line_chars + len(lines[0]))
                self._line_parts.append(lines[0])
                lines[0] = "".join(self._line_parts)
                self._line_parts = []
                self._line_chars = 0
            max_line = self._max_line_chars
            for line in lines:
                # Inline fast path for the lines every chat event has: "data: {...}", the blank
                # line that ends it and Claude's "event: ...". The rest takes the general path.
                if line[:6] == "data: " and len(line) <= max_line:
                    self._data_chars += len(line) - 6 + (1 if self._data else 0)
                    if self._data_chars > self._max_event_chars:
                        raise SSEError(
                            "server-sent event data longer than "
                            f"max_event_chars={self._max_event_chars}"
                        )
                    self._data.append(line[6:])
                elif not line and self._data:
                    events.append(self._dispatch())
                elif line[:7] == "event: " and len(line) <= max_line:
                    self._event_type = line[7:]  # Claude's protocol names every event
                else:
                    self._process_line(line, events)
        if tail:
            self._line_chars += len(tail)
            self._check_line(self._line_chars)
            self._line_parts.append(tail)
        return events

    def lone_data(self, data: bytes, head: bytes) -> bytes | None:
        """``data``'s event data, undecoded, when ``data`` is one whole event and nothing more.

        That is: ``head`` (the event's ``event:`` line if it has one, then ``data: ``), one data
        line, the blank line; no CR; nothing pending from earlier bytes; within the size caps.
        Else None, and ``data`` is to be fed to `decode_fields` as usual. The decoder's state is
        not touched either way: such an event leaves it as it was. A live stream's read is
        often exactly one event; this reads it without decoding its text or walking its lines.
        """
        if (
            self._at_start
            or self._after_cr
            or self._undecoded
            or self._line_parts
            or self._data
            or self._event_type
            or self._retry is not None
        ):
            return None
        start, end = len(head), len(data) - 2
        if (
            not data.startswith(head)
            or data.find(b"\n", start) != end
            or data[end + 1 :] != b"\n"
            or b"\r" in data
            or end - start > min(self._max_line_chars - 6, self._max_event_chars)
        ):
            return None
        return data[start:end]

    def _whole_events(self, text: str, events: list[EventFields]) -> int:
        """Append the complete events ``text`` starts with; where the rest begins."""
        end = 0
        max_data = min(self._max_line_chars - 6, self._max_event_chars)
        while (match := _WHOLE_EVENT.match(text, end)) is not None:
            name, data = match.groups()
            if len(data) > max_data or (name is not None and len(name) > self._max_line_chars - 7):
                break  # the general path raises the size error
            events.append((data, name or "message", self._last_event_id, None))
            end = match.end()
        return end

    def flush(self) -> list[ServerSentEvent]:
        """Signal the end of the stream; the decoder is then ready for a new stream.

        WHATWG: "Once the end of the file is reached, any pending data must be discarded. (If the
        file ends in the middle of an event, before the final empty line, the incomplete event is
        not dispatched.)" Only a blank line dispatches, so a final line lacking its line ending can
        never complete an event: flush always returns ``[]`` and drops the pending line and event.
        The last event ID is kept, as an EventSource keeps it across reconnections.
        """
        self._reset()
        return []

    @property
    def last_event_id(self) -> str:
        """The last event ID seen so far (to send as ``Last-Event-ID`` when reconnecting)."""
        return self._last_event_id

    def _strip_start(self, text: str) -> str:
        if not text:
            return text
        if self._at_start:
            self._at_start = False
            if text[0] == "\ufeff":
                text = text[1:]
                if not text:
                    return text
        if self._after_cr:
            # The previous chunk ended with CR, already taken as a line end; an LF right after it
            # belongs to the same CRLF.
            self._after_cr = False
            if text[0] == "\n":
                text = text[1:]
        return text

    def _check_line(self, chars: int) -> None:
        if chars > self._max_line_chars:
            raise SSEError(
                f"server-sent event line longer than max_line_chars={self._max_line_chars}"
            )

    def _process_line(self, line: str, events: list[EventFields]) -> None:
        if not line:
            if self._data:
                events.append(self._dispatch())
            else:
                # "If the data buffer is an empty string, set the data buffer and the event type
                # buffer to the empty string and return": event:/id:-only blocks and keep-alives
                # never reach the caller (no json.loads("") downstream).
                self._event_type = ""
            return
        self._check_line(len(line))
        if line[0] == ":":
            return
        field, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if field == "data":
            self._data_chars += len(value) + (1 if self._data else 0)
            if self._data_chars > self._max_event_chars:
                raise SSEError(
                    f"server-sent event data longer than max_event_chars={self._max_event_chars}"
                )
            self._data.append(value)
        elif field == "event":
            self._event_type = value
        elif field == "id":
            if "\0" not in value:
                self._last_event_id = value
        elif field == "retry" and value.isascii() and value.isdigit():
            # More digits than int() accepts (sys.get_int_max_str_digits) is no sane delay: ignored.
            with contextlib.suppress(ValueError):
                self._retry = int(value)

    def _dispatch(self) -> EventFields:
        data = self._data[0] if len(self._data) == 1 else "\n".join(self._data)
        event = (data, self._event_type or "message", self._last_event_id, self._retry)
        self._data = []
        self._data_chars = 0
        self._event_type = ""
        self._retry = None
        return event
