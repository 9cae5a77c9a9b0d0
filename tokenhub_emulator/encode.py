"""A `Reply` on the wire: one JSON body, or the Server-Sent Events of a stream.

Stream events are spliced from prefixes built once per response, with only each delta's text
escaped, so a long stream costs one small string operation per chunk rather than a JSON dump.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring
from typing import Any

from tokenhub_emulator.replies import Reply, token_pieces

__all__ = ["DONE_EVENT", "completion_body", "error_body", "error_event", "stream_events"]

DONE_EVENT = "data: [DONE]\n\n"
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_ARGUMENT_PIECE_CHARS = 8


def completion_body(reply: Reply, *, completion_id: str, created: int) -> bytes:
    """The JSON body of a non-streamed ``chat.completion``."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in reply.tool_calls
        ]
    body = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": reply.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": reply.finish_reason,
            }
        ],
        "usage": reply.usage(),
    }
    return _COMPACT.encode(body).encode()


def _argument_pieces(arguments: str) -> list[str]:
    step = _ARGUMENT_PIECE_CHARS
    return [arguments[i : i + step] for i in range(0, len(arguments), step)]


def stream_events(
    reply: Reply, *, completion_id: str, created: int, include_usage: bool
) -> list[str]:
    """Every SSE event of the streamed reply, ``data: [DONE]`` last."""
    head = (
        f'data: {{"id":{encode_basestring(completion_id)},"object":"chat.completion.chunk",'
        f'"created":{created},"model":{encode_basestring(reply.model)},"choices":'
    )
    delta_open = head + '[{"index":0,"delta":{'
    delta_close = '},"logprobs":null,"finish_reason":null}]}\n\n'
    events = [delta_open + '"role":"assistant","content":""' + delta_close]
    if reply.content:
        content_open = delta_open + '"content":'
        events.extend(
            [content_open + encode_basestring(p) + delta_close for p in token_pieces(reply.content)]
        )
    for index, call in enumerate(reply.tool_calls):
        calls_open = f'{delta_open}"tool_calls":[{{"index":{index},'
        events.append(
            f'{calls_open}"id":{encode_basestring(call.id)},"type":"function","function":'
            f'{{"name":{encode_basestring(call.name)},"arguments":""}}}}]{delta_close}'
        )
        args_open = calls_open + '"function":{"arguments":'
        events.extend(
            [
                args_open + encode_basestring(p) + "}}]" + delta_close
                for p in _argument_pieces(call.arguments)
            ]
        )
    events.append(
        f'{delta_open}}},"logprobs":null,"finish_reason":'
        f"{encode_basestring(reply.finish_reason)}}}]}}\n\n"
    )
    if include_usage:
        usage = _COMPACT.encode(reply.usage())
        events.append(f'{head}[],"usage":{usage}}}\n\n')
    events.append(DONE_EVENT)
    return events


def error_body(message: str, type: str, code: str | int | None, param: str | None = None) -> bytes:
    """An OpenAI-shaped error body."""
    error = {"message": message, "type": type, "param": param, "code": code}
    return json.dumps({"error": error}, ensure_ascii=False).encode()


def error_event(message: str, type: str, code: str | int | None) -> str:
    """An SSE event carrying an error, as services send one mid-stream."""
    error = {"message": message, "type": type, "code": code}
    return f"data: {json.dumps({'error': error}, ensure_ascii=False)}\n\n"
