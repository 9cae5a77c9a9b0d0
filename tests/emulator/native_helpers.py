"""Shared bits for the native Messages tests: request bodies and an independent SSE reader."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx

MODEL = "claude-sonnet-4-6"
WEATHER: dict[str, Any] = {
    "name": "get_weather",
    "description": "Current weather for a place.",
    "input_schema": {
        "type": "object",
        "properties": {
            "location": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["location"],
    },
}
ADD: dict[str, Any] = {
    "name": "add",
    "description": "Add two integers.",
    "input_schema": {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    },
}
PNG_B64 = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 32).decode()


def body(
    content: str | list[dict[str, Any]] = "Hello there", max_tokens: int = 1024, **params: Any
) -> dict[str, Any]:
    """A Messages body with one user message."""
    return {
        "model": params.pop("model", MODEL),
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": content}],
        **params,
    }


def post(http: httpx.Client, data: dict[str, Any], **headers: str) -> httpx.Response:
    """POST ``data`` to ``/messages`` under the client's base URL (``.../api/v1``)."""
    return http.post("/messages", json=data, headers={"anthropic-version": "2023-06-01", **headers})


def events(raw: str) -> list[tuple[str, dict[str, Any]]]:
    """The (event name, JSON data) pairs of a native SSE body; comments skipped."""
    out: list[tuple[str, dict[str, Any]]] = []
    for block in raw.split("\n\n"):
        lines = [line for line in block.split("\n") if line and not line.startswith(":")]
        if not lines:
            continue
        names = [line[len("event: ") :] for line in lines if line.startswith("event: ")]
        datas = [line[len("data: ") :] for line in lines if line.startswith("data: ")]
        assert len(names) == 1 and len(datas) == 1, block
        data = json.loads(datas[0])
        assert data["type"] == names[0], block  # Claude names each event as its data's type
        out.append((names[0], data))
    return out


def accumulate(parsed: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """A message built from its stream events, written independently of the emulator."""
    message: dict[str, Any] = {}
    partial: dict[int, str] = {}
    for name, data in parsed:
        if name == "message_start":
            message = data["message"]
        elif name == "content_block_start":
            assert data["index"] == len(message["content"])
            message["content"].append(dict(data["content_block"]))
        elif name == "content_block_delta":
            block = message["content"][data["index"]]
            delta = data["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
            elif delta["type"] == "input_json_delta":
                partial[data["index"]] = partial.get(data["index"], "") + delta["partial_json"]
        elif name == "content_block_stop":
            if data["index"] in partial:
                message["content"][data["index"]]["input"] = json.loads(partial[data["index"]])
        elif name == "message_delta":
            message.update(data["delta"])
            message["usage"].update(data["usage"])
    return message
