"""The pure helpers of the native endpoint: PDF text, thinking text and its signatures."""

from __future__ import annotations

import zlib

from tokenhub_emulator.checks import check_request
from tokenhub_emulator.pdf import pdf_text, simple_pdf
from tokenhub_emulator.replies import answer, count_tokens
from tokenhub_emulator.thinking import Signer, thinking_text


def _pdf_with_stream(content: bytes, *, compressed: bool) -> bytes:
    data = zlib.compress(content) if compressed else content
    flate = b" /Filter /FlateDecode" if compressed else b""
    return (
        b"%PDF-1.5\n1 0 obj << /Type /Page >> endobj\n2 0 obj << /Length "
        + str(len(data)).encode()
        + flate
        + b" >>\nstream\n"
        + data
        + b"\nendstream\nendobj\n%%EOF\n"
    )


def test_simple_pdf_round_trips_pages_lines_and_escapes() -> None:
    pdf = simple_pdf("First line (with parens) and a \\ backslash\nSecond line", "Page two")
    assert pdf.startswith(b"%PDF-1.4") and pdf.rstrip().endswith(b"%%EOF")
    found = pdf_text(pdf)
    assert found.pages == 2
    assert found.text.splitlines() == [
        "First line (with parens) and a \\ backslash",
        "Second line",
        "Page two",
    ]


def test_text_operators_in_plain_and_flate_streams() -> None:
    content = (
        b"BT /F1 12 Tf 72 700 Td [(Hel) 20 (lo) -300 (world)] TJ 0 -14 Td <48657821> Tj "
        b"T* (caf\\351 \\(ok\\)) Tj 10 0 Td (same line) Tj ET"
    )
    for compressed in (False, True):
        found = pdf_text(_pdf_with_stream(content, compressed=compressed))
        assert found.text.splitlines() == ["Hello world", "Hex!", "café (ok)same line"]


def test_what_is_not_text_gives_nothing() -> None:
    image = b"%PDF-1.4\n1 0 obj << /Subtype /Image /Length 3 >>\nstream\n(x) Tj\nendstream\n"
    assert pdf_text(image).text == ""
    assert pdf_text(b"not a pdf at all") == pdf_text(b"")
    broken = b"%PDF-1.4\n1 0 obj << /Filter /FlateDecode >>\nstream\nnot zlib\nendstream\n"
    assert pdf_text(broken).text == ""


def test_signatures_verify_only_the_text_they_signed_and_only_for_their_emulator() -> None:
    signer = Signer()
    signature = signer.sign("I should call the tool.")
    assert signer.verify("I should call the tool.", signature)
    assert not signer.verify("I should not call the tool.", signature)
    assert not Signer().verify("I should call the tool.", signature)
    assert not signer.verify("I should call the tool.", "forged")


def test_thinking_text_is_deterministic_and_within_budget() -> None:
    chat = check_request(
        {"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "Why " * 200}]}
    )
    reply = answer(chat, "call_")
    long = thinking_text(chat, reply, 10_000)
    assert long == thinking_text(chat, reply, 10_000)
    assert long.startswith('The user asks: "Why Why') and long.endswith("I will answer directly.")
    assert count_tokens(thinking_text(chat, reply, 12)) <= 12
