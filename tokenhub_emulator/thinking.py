"""Extended thinking: the deterministic reasoning text, and the signatures that vouch for it.

A thinking block's ``signature`` is an HMAC-SHA256 of its text under a secret of one emulator
(`Signer`), so the emulator can tell a block it wrote, passed back unchanged, from an edited or
invented one, as Claude does. Pure apart from drawing the secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from tokenhub_emulator.checks import ChatRequest
from tokenhub_emulator.replies import Reply, text_of, token_pieces

__all__ = ["Signer", "thinking_text"]

_TAG = b"emu1"
_QUOTE_CHARS = 300


class Signer:
    """Signs thinking text and checks signatures, with a secret of its own."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)

    def sign(self, thinking: str) -> str:
        """The signature of ``thinking``: base64 text, opaque to clients."""
        digest = hmac.new(self._secret, thinking.encode(), hashlib.sha256).digest()
        return base64.b64encode(_TAG + digest).decode()

    def verify(self, thinking: str, signature: str) -> bool:
        """Whether ``signature`` is this signer's signature of ``thinking``."""
        return hmac.compare_digest(self.sign(thinking), signature)


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _QUOTE_CHARS else text[:_QUOTE_CHARS] + "…"


def thinking_text(request: ChatRequest, reply: Reply, budget_tokens: int) -> str:
    """What the emulator "thinks" before ``reply``: the question, then the plan; at most
    ``budget_tokens`` of the emulator's tokens."""
    messages = request.messages
    user = next((m for m in reversed(messages) if m["role"] == "user"), None)
    question = _clip(text_of(user["content"])) if user is not None else ""
    steps = [f'The user asks: "{question}".' if question else "There is no user text."]
    if messages and messages[-1]["role"] == "tool":
        steps.append("The tool results are in; I will report what they returned.")
    if reply.tool_calls:
        for call in reply.tool_calls:
            steps.append(f"The {call.name} tool fits; I will call it with {call.arguments}.")
    elif request.response_format != "text":
        steps.append("The answer must be JSON; I will fill each field from the prompt.")
    elif not (messages and messages[-1]["role"] == "tool"):
        steps.append("I will answer directly.")
    text = " ".join(steps)
    pieces = token_pieces(text)
    return "".join(pieces[: max(1, budget_tokens)]).strip()
