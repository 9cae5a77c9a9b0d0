"""Shared bits for the emulator tests: request bodies and an independent SSE reader."""

from __future__ import annotations

import json
from typing import Any

MODEL = "anthropic/claude-haiku-4-5"

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a place.",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        },
    },
}
ADD_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}


def chat(content: str | list[dict[str, Any]] = "Hello there", **params: Any) -> dict[str, Any]:
    """A chat-completions body with one user message."""
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], **params}


def sse(raw: str) -> tuple[list[str], int]:
    """The ``data`` payloads of an SSE body, and how many comment lines it had."""
    datas: list[str] = []
    comments = 0
    for block in raw.split("\n\n"):
        lines = [line for line in block.split("\n") if line]
        comments += sum(1 for line in lines if line.startswith(":"))
        data = [line[len("data: ") :] for line in lines if line.startswith("data: ")]
        if data:
            datas.append("\n".join(data))
    return datas, comments


def chunks(raw: str) -> list[dict[str, Any]]:
    """The JSON chunks of a complete stream; asserts it ends with ``[DONE]``."""
    datas, _ = sse(raw)
    assert datas[-1] == "[DONE]", datas[-3:]
    return [json.loads(d) for d in datas[:-1]]


def streamed_text(parsed: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in parsed if c["choices"])
