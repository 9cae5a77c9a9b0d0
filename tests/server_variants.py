"""Streams as other OpenAI-compatible servers send them, for the adapters' tests.

The emulator speaks one dialect; gateways in the wild vary (FRAMEWORK-NOTES, "The wire"). Each
variant is the SSE body of one streamed reply: the text "Hello" and/or a get_weather call.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

MODEL = "anthropic/claude-sonnet-4-6"


def _chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {
        "id": "chatcmpl-v",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MODEL,
        "choices": choices,
        **extra,
    }


def _sse(events: list[dict[str, Any]], done: bool = True) -> bytes:
    text = "".join(f"data: {json.dumps(e)}\n\n" for e in events)
    return (text + ("data: [DONE]\n\n" if done else "")).encode()


def _usage(completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": 10,
        "completion_tokens": completion_tokens,
        "total_tokens": 10 + completion_tokens,
    }


def _call_delta(
    index: int | None, *, call_id: str | None = None, name: str | None = None, args: str = ""
) -> dict[str, Any]:
    delta: dict[str, Any] = {"function": {"arguments": args}}
    if index is not None:
        delta["index"] = index
    if call_id is not None:
        delta.update(id=call_id, type="function")
        delta["function"]["name"] = name
    return delta


VARIANTS: dict[str, bytes] = {
    # Running usage totals on every chunk (vLLM's continuous usage stats, some gateways).
    "cumulative-usage": _sse(
        [
            _chunk({"role": "assistant", "content": "Hel"}, usage=_usage(1)),
            _chunk({"content": "lo"}, usage=_usage(2)),
            _chunk({}, "stop", usage=_usage(3)),
        ]
    ),
    # Usage on the finish chunk, no usage-only chunk, no [DONE].
    "usage-on-finish-no-done": _sse(
        [_chunk({"role": "assistant", "content": "Hello"}), _chunk({}, "stop", usage=_usage(3))],
        done=False,
    ),
    # Tool-call indexes starting at 1, the name and id repeated on every delta.
    "tool-index-from-1-repeated-id": _sse(
        [
            _chunk({"role": "assistant", "content": None}),
            _chunk(
                {"tool_calls": [_call_delta(1, call_id="call_w", name="get_weather", args='{"ci')]}
            ),
            _chunk(
                {
                    "tool_calls": [
                        _call_delta(1, call_id="call_w", name="get_weather", args='ty": "Paris"}')
                    ]
                }
            ),
            _chunk({}, "tool_calls"),
            _chunk(None, usage=_usage(3)),
        ]
    ),
    # No index at all: the id on the first delta, bare argument fragments after it.
    "tool-no-index": _sse(
        [
            _chunk(
                {"tool_calls": [_call_delta(None, call_id="call_w", name="get_weather", args="")]}
            ),
            _chunk({"tool_calls": [_call_delta(None, args='{"city": ')]}),
            _chunk({"tool_calls": [_call_delta(None, args='"Paris"}')]}),
            _chunk({}, "tool_calls", usage=_usage(3)),
        ]
    ),
    # Nulls where strings and numbers belong, and arguments sent as an object.
    "nulls-and-object-args": _sse(
        [
            _chunk({"role": "assistant", "content": None, "tool_calls": None})
            | {"id": None, "system_fingerprint": None},
            _chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_w",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
                        }
                    ]
                }
            ),
            _chunk({}, "tool_calls"),
            _chunk(None, usage={"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": None}),
        ]
    ),
}

EXPECTED_TEXT = {"cumulative-usage": "Hello", "usage-on-finish-no-done": "Hello"}
EXPECTED_CALL = ("get_weather", {"city": "Paris"})


def transport(variant: str) -> httpx.MockTransport:
    body = VARIANTS[variant]

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            content=body,
            headers={"content-type": "text/event-stream", "x-request-id": "req_v"},
        )

    return httpx.MockTransport(answer)
