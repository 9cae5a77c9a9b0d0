"""Text out of simple PDFs, and a tiny PDF writer for demos and tests. Pure, stdlib only.

`pdf_text` reads the content streams of a PDF (uncompressed or ``/FlateDecode``) and joins the
strings its text-showing operators draw (``Tj``, ``TJ``, ``'``, ``"``; PDF 32000-1, 9.4.3), a
line per text line. It is no PDF engine: fonts with custom encodings, object streams and
encrypted files give little or nothing, which the emulator answers as "no text found".
`simple_pdf` writes the kind of file it reads.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

__all__ = ["PdfText", "pdf_text", "simple_pdf"]

_STREAM = re.compile(rb"<<((?:(?!>>\s*stream).)*?)>>\s*stream\r?\n", re.DOTALL)
_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")
_TOKEN = re.compile(
    rb"\((?P<lit>)|<(?P<hex>[0-9A-Fa-f\s]*)>|\[|\]|(?P<num>[-+]?(?:\d+\.?\d*|\.\d+))"
    rb"|(?P<op>[A-Za-z'\"*]+)|/[^\s/\[\]()<>]*|\S"
)
_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}
_KERN_SPACE = -200  # a TJ offset this negative (thousandths of an em) reads as a space
_MAX_STREAM_BYTES = 8 << 20


@dataclass(frozen=True)
class PdfText:
    """What `pdf_text` found: the page count and the text, lines joined by newlines."""

    pages: int
    text: str


def pdf_text(data: bytes) -> PdfText:
    """The page count and the drawn text of a PDF's content streams."""
    pages = len(_PAGE.findall(data))
    lines: list[str] = []
    for match in _STREAM.finditer(data):
        dictionary = match.group(1)
        if b"/Image" in dictionary or b"/FontFile" in dictionary:
            continue
        start = match.end()
        end = data.find(b"endstream", start)
        if end < 0:
            break
        raw = data[start:end]
        if b"/Filter" in dictionary:
            if b"/FlateDecode" not in dictionary:
                continue
            try:
                raw = zlib.decompressobj().decompress(raw, _MAX_STREAM_BYTES)
            except zlib.error:
                continue
        lines.extend(_shown_lines(raw))
    return PdfText(pages, "\n".join(line for line in lines if line.strip()))


def _literal(data: bytes, start: int) -> tuple[bytes, int]:
    """A literal string's bytes from just after its ``(``; returns them and the end index."""
    out = bytearray()
    depth, i = 1, start
    while i < len(data):
        c = data[i : i + 1]
        if c == b"\\":
            nxt = data[i + 1 : i + 2]
            if nxt in _ESCAPES:
                out += _ESCAPES[nxt]
                i += 2
            elif nxt.isdigit():
                octal = re.match(rb"[0-7]{1,3}", data[i + 1 : i + 4])
                digits = octal.group(0) if octal else b"0"
                out.append(int(digits, 8) & 0xFF)
                i += 1 + len(digits)
            elif nxt in (b"\r", b"\n"):
                i += 2
            else:
                out += nxt
                i += 2
            continue
        if c == b"(":
            depth += 1
        elif c == b")":
            depth -= 1
            if depth == 0:
                return bytes(out), i + 1
        out += c
        i += 1
    return bytes(out), i


def _decode(raw: bytes) -> str:
    if raw.startswith(b"\xfe\xff"):
        return raw[2:].decode("utf-16-be", "replace")
    return raw.decode("latin-1")


def _shown_lines(content: bytes) -> list[str]:
    """The text lines a content stream shows."""
    lines: list[str] = []
    line: list[str] = []
    operands: list[str | float] = []
    array: list[str | float] | None = None
    pos = 0
    while (match := _TOKEN.search(content, pos)) is not None:
        pos = match.end()
        token = match.group(0)
        if match.group("lit") is not None:
            raw, pos = _literal(content, pos)
            (array if array is not None else operands).append(_decode(raw))
        elif match.group("hex") is not None:
            digits = re.sub(rb"\s", b"", match.group("hex"))
            raw = bytes.fromhex((digits + b"0" * (len(digits) % 2)).decode())
            (array if array is not None else operands).append(_decode(raw))
        elif token == b"[":
            array = []
        elif token == b"]":
            operands.append(" ".join(_joined(array or [])))
            array = None
        elif match.group("num") is not None:
            (array if array is not None else operands).append(float(match.group("num")))
        elif match.group("op") is not None:
            op = token
            if op in (b"'", b'"', b"T*") and line:
                lines.append("".join(line))
                line = []
            if op in (b"Tj", b"TJ", b"'", b'"'):
                line.extend(s for s in operands if isinstance(s, str))
            elif line and (
                op in (b"Tm", b"ET") or (op in (b"Td", b"TD") and operands[-1:] != [0.0])
            ):
                lines.append("".join(line))
                line = []
            operands = []
    if line:
        lines.append("".join(line))
    return [" ".join(text.split()) for text in lines]


def _joined(items: list[str | float]) -> list[str]:
    """A TJ array's strings, split where a large negative offset stands for a space."""
    words: list[str] = []
    current = ""
    for item in items:
        if isinstance(item, str):
            current += item
        elif item <= _KERN_SPACE and current:
            words.append(current)
            current = ""
    if current:
        words.append(current)
    return words


def _escape(text: str) -> bytes:
    raw = text.encode("latin-1", "replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def simple_pdf(*pages: str) -> bytes:
    """A minimal valid PDF, one page per argument, each line of its text drawn in Helvetica.

    For demos and tests: `pdf_text` reads it back, and so do real PDF readers.
    """
    if not pages:
        pages = ("",)
    n = len(pages)
    font = 3 + 2 * n
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids ["
        + b" ".join(b"%d 0 R" % (3 + 2 * i) for i in range(n))
        + b"] /Count %d >>" % n,
    ]
    for i, text in enumerate(pages):
        shown = b"".join(b"(" + _escape(line) + b") Tj T* " for line in text.splitlines() or [""])
        stream = b"BT /F1 12 Tf 14 TL 72 720 Td " + shown + b"ET"
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
            b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (4 + 2 * i, font)
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)
