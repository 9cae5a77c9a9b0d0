"""Claude's own Messages protocol (``POST /v1/messages``), both ways, as pure functions.

The client builds every request in the OpenAI shape (`tokenhub_core.params.build_body`) and reads
every reply as OpenAI-shaped `ChatCompletion` / `ChatCompletionChunk` objects, whichever protocol
the call uses. This module is the translation for ``protocol="messages"``:

- `to_messages_body`: a checked OpenAI-shaped body -> Claude's request body;
- `parse_message`: a ``message`` JSON reply -> `ChatCompletion`;
- `MessagesEventReader`: the SSE events (``message_start``, ``content_block_start`` /
  ``_delta`` / ``_stop``, ``message_delta``, ``message_stop``, ``ping``, ``error``) -> chunks,
  one chunk per event that carries something, never more state than the current block's kind.

Usage is reported the same on both protocols: ``prompt_tokens`` is the whole prompt (Claude's
``input_tokens`` counts only the uncached remainder, so cache reads and writes are added back),
with the cache reads in ``prompt_tokens_details.cached_tokens`` and the writes in
``cache_creation_tokens`` / ``cache_creation_1h_tokens``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic_core import from_json

from tokenhub_core.errors import (
    APIResponseError,
    APIStatusError,
    InvalidParameterError,
    status_error_class,
)
from tokenhub_core.params import normalize_tool_call_id
from tokenhub_core.stream import StreamPart, ToolCallPart
from tokenhub_core.wire import (
    ChatCompletion,
    Choice,
    CompletionTokensDetails,
    FunctionCall,
    Message,
    PromptTokensDetails,
    ToolCall,
    Usage,
)

__all__ = [
    "ANTHROPIC_VERSION",
    "MessagesEventReader",
    "finish_reason",
    "native_error",
    "native_usage",
    "parse_message",
    "to_messages_body",
]

ANTHROPIC_VERSION = "2023-06-01"

_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# Claude's error types and the status each one comes with, for an error inside a 200 stream.
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

_JSON_OBJECT_INSTRUCTION = "Answer with one JSON object and nothing else: no prose, no code fences."


def finish_reason(stop_reason: str | None) -> str | None:
    """Claude's ``stop_reason`` in OpenAI's words; unknown ones are passed through."""
    if stop_reason is None:
        return None
    return _FINISH_REASONS.get(stop_reason, stop_reason)


# Request.


def _bare_model(model: str) -> str:
    from tokenhub_core.catalog import resolve_model

    info = resolve_model(model)
    if info is not None and model.removeprefix("anthropic/") == info.short_id:
        return info.short_id
    return model.removeprefix("anthropic/")


def _image_block(part: Mapping[str, Any]) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, Mapping) else image
    assert isinstance(url, str)  # checked by params.check_image_url
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header[5:].split(";")[0].strip().lower()
        block: dict[str, Any] = {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    else:
        block = {"type": "image", "source": {"type": "url", "url": url}}
    return block


def _block(part: Any, where: str) -> dict[str, Any]:
    """One OpenAI content part as a Claude content block (cache_control kept)."""
    if isinstance(part, str):
        return {"type": "text", "text": part}
    if not isinstance(part, Mapping):
        raise InvalidParameterError(where, part, "a content part mapping")
    kind = part.get("type")
    if kind == "text":
        block: dict[str, Any] = {"type": "text", "text": part.get("text", "")}
    elif kind == "image_url":
        block = _image_block(part)
    elif kind in ("document", "image", "thinking", "redacted_thinking", "tool_result"):
        return dict(part)  # Anthropic's own shapes, checked by params
    else:
        raise InvalidParameterError(
            f"{where}.type", kind, "text, image_url or document parts on the messages protocol"
        )
    if part.get("cache_control") is not None:
        block["cache_control"] = dict(part["cache_control"])
    return block


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return [_block(part, f"{where}.content[{j}]") for j, part in enumerate(content)]


def _with_message_cache_control(
    blocks: list[dict[str, Any]], message: Mapping[str, Any]
) -> list[dict[str, Any]]:
    control = message.get("cache_control")
    if control is not None and blocks:
        blocks[-1] = {**blocks[-1], "cache_control": dict(control)}
    return blocks


def _tool_use(call: Mapping[str, Any], where: str) -> dict[str, Any]:
    function = call.get("function") or {}
    arguments = function.get("arguments")
    if isinstance(arguments, Mapping):
        tool_input: Any = dict(arguments)
    else:
        try:
            tool_input = json.loads(arguments) if arguments else {}
        except ValueError:
            raise InvalidParameterError(
                f"{where}.function.arguments",
                arguments,
                "a JSON object (Claude's tool_use input); this call's arguments are not JSON",
            ) from None
    if not isinstance(tool_input, dict):
        raise InvalidParameterError(
            f"{where}.function.arguments", arguments, "a JSON object (Claude's tool_use input)"
        )
    return {
        "type": "tool_use",
        "id": normalize_tool_call_id(str(call.get("id") or "")),
        "name": function.get("name", ""),
        "input": tool_input,
    }


def _tool_result(message: Mapping[str, Any], where: str) -> dict[str, Any]:
    content = message.get("content")
    result: dict[str, Any] = {
        "type": "tool_result",
        "tool_use_id": normalize_tool_call_id(str(message.get("tool_call_id") or "")),
    }
    if isinstance(content, list):
        result["content"] = [
            _block(part, f"{where}.content[{j}]") for j, part in enumerate(content)
        ]
    elif content:
        result["content"] = content
    if message.get("is_error"):
        result["is_error"] = True
    if message.get("cache_control") is not None:
        result["cache_control"] = dict(message["cache_control"])
    return result


def _turns(messages: list[Mapping[str, Any]]) -> tuple[Any, list[dict[str, Any]]]:
    """The top-level ``system`` and the alternating user / assistant turns."""
    system: Any = None
    turns: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        role = message["role"]
        if role == "system":
            content = message.get("content")
            system = (
                content
                if isinstance(content, str)
                else [_block(p, f"{where}.content[{j}]") for j, p in enumerate(content or [])]
            )
            continue
        if role == "tool":
            blocks = [_tool_result(message, where)]
            wire_role = "user"
        elif role == "assistant":
            blocks = _with_message_cache_control(_blocks(message.get("content"), where), message)
            blocks.sort(key=lambda b: b["type"] not in ("thinking", "redacted_thinking"))
            for j, call in enumerate(message.get("tool_calls") or ()):
                blocks.append(_tool_use(call, f"{where}.tool_calls[{j}]"))
            wire_role = "assistant"
        else:
            blocks = _with_message_cache_control(_blocks(message.get("content"), where), message)
            wire_role = "user"
        if turns and turns[-1]["role"] == wire_role:
            # Claude takes one turn per role: tool results and the user's next words join.
            previous = turns[-1]["content"]
            if wire_role == "user" and blocks and blocks[0]["type"] == "tool_result":
                # Tool results lead their turn: Claude reads them as the answer to the calls.
                split = sum(1 for b in previous if b["type"] == "tool_result")
                previous[split:split] = blocks
            else:
                previous.extend(blocks)
        else:
            turns.append({"role": wire_role, "content": blocks})
    for turn in turns:  # a plain one-text turn goes as a string, as most clients send it
        content = turn["content"]
        if len(content) == 1 and content[0]["type"] == "text" and len(content[0]) == 2:
            turn["content"] = content[0]["text"]
    return system, turns


def _tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    function = tool["function"]
    out: dict[str, Any] = {"name": function["name"]}
    if function.get("description"):
        out["description"] = function["description"]
    out["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
    if tool.get("cache_control") is not None:
        out["cache_control"] = dict(tool["cache_control"])
    return out


def _tool_choice(tool_choice: Any, parallel: Any) -> dict[str, Any] | None:
    if tool_choice is None and parallel is not False:
        return None
    if tool_choice in (None, "auto"):
        choice: dict[str, Any] = {"type": "auto"}
    elif tool_choice == "none":
        return {"type": "none"}
    elif tool_choice == "required":
        choice = {"type": "any"}
    else:
        choice = {"type": "tool", "name": tool_choice["function"]["name"]}
    if parallel is False:
        choice["disable_parallel_tool_use"] = True
    return choice


def _add_system_text(system: Any, text: str) -> Any:
    if not system:
        return text
    if isinstance(system, str):
        return f"{system}\n\n{text}"
    return [*system, {"type": "text", "text": text}]


_TRANSLATED = frozenset(
    {
        "model",
        "messages",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "stop",
        "user",
        "response_format",
        "seed",
        "n",
        "stream_options",
    }
)


def to_messages_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """Claude's request body for a body checked by `tokenhub_core.params.build_body`.

    Fields Claude does not have are translated (stop -> stop_sequences, user ->
    metadata.user_id, response_format -> output_config.format or an instruction, tool_choice and
    parallel_tool_calls -> Claude's tool_choice) or, for ``seed`` and ``n=1``, left out; fields
    given in extra_body that are neither are sent as they are (Claude's own extras).
    """
    system, turns = _turns(body["messages"])
    out: dict[str, Any] = {"model": _bare_model(body["model"]), "messages": turns}
    if system:
        out["system"] = system
    for key, value in body.items():
        if key not in _TRANSLATED:  # max_tokens, temperature, thinking... and Claude's extras
            out[key] = value
    if body.get("tools"):
        out["tools"] = [_tool(tool) for tool in body["tools"]]
    choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
    if choice is not None and body.get("tools"):
        out["tool_choice"] = choice
    if body.get("stop"):
        out["stop_sequences"] = list(body["stop"])
    if body.get("user"):
        out["metadata"] = {**(out.get("metadata") or {}), "user_id": body["user"]}
    response_format = body.get("response_format")
    if isinstance(response_format, Mapping):
        kind = response_format.get("type")
        if kind == "json_schema":
            spec = response_format.get("json_schema") or {}
            schema = spec.get("schema") if isinstance(spec, Mapping) else None
            config = dict(out.get("output_config") or {})
            config["format"] = {"type": "json_schema", "schema": schema or {"type": "object"}}
            out["output_config"] = config
        elif kind == "json_object":
            out["system"] = _add_system_text(out.get("system"), _JSON_OBJECT_INSTRUCTION)
    return out


# Replies.


def native_usage(usage: Mapping[str, Any] | None) -> Usage | None:
    """Claude's usage object as `Usage` (see the module docstring); None for none."""
    if not isinstance(usage, Mapping):
        return None

    def count(value: Any) -> int:
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    uncached = count(usage.get("input_tokens"))
    reads = count(usage.get("cache_read_input_tokens"))
    writes = count(usage.get("cache_creation_input_tokens"))
    by_ttl = usage.get("cache_creation")
    writes_1h = count(by_ttl.get("ephemeral_1h_input_tokens")) if isinstance(by_ttl, Mapping) else 0
    output = count(usage.get("output_tokens"))
    prompt = uncached + reads + writes
    details = usage.get("output_tokens_details")
    thinking = count(details.get("thinking_tokens")) if isinstance(details, Mapping) else None
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=output,
        total_tokens=prompt + output,
        prompt_tokens_details=PromptTokensDetails(
            cached_tokens=reads, cache_creation_tokens=writes, cache_creation_1h_tokens=writes_1h
        ),
        completion_tokens_details=(
            CompletionTokensDetails(reasoning_tokens=thinking) if thinking is not None else None
        ),
    )


def _merged_usage(start: Mapping[str, Any] | None, end: Mapping[str, Any] | None) -> Usage | None:
    """``message_start`` usage updated by the final ``message_delta`` usage (which wins).

    None without the final one: the start's output count is a placeholder, not the bill."""
    if end is None:
        return None
    merged = dict(start or {})
    merged.update({k: v for k, v in (end or {}).items() if v is not None})
    return native_usage(merged)


def native_error(error: Any, request_id: str | None) -> APIStatusError | APIResponseError:
    """The typed exception for an ``error`` event (or error body) inside a 200 reply."""
    fields = error.get("error", error) if isinstance(error, Mapping) else {"message": str(error)}
    if not isinstance(fields, Mapping):
        fields = {"message": str(fields)}
    kind = fields.get("type")
    message = str(fields.get("message") or kind or "an error event")
    status = _ERROR_STATUS.get(str(kind))
    if status is None:
        return APIResponseError(
            f"TokenHub reported an error: {message}",
            body=error,
            request_id=request_id,
            error_type=None if kind is None else str(kind),
        )
    return status_error_class(status)(
        message, status_code=status, request_id=request_id, body=error, error_type=str(kind)
    )


def _message_choice(message: Mapping[str, Any]) -> Choice:
    text: list[str] = []
    calls: list[ToolCall] = []
    thinking: list[dict[str, Any]] = []
    for block in message.get("content") or ():
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        if kind == "text":
            text.append(str(block.get("text") or ""))
        elif kind in ("tool_use", "server_tool_use"):
            calls.append(
                ToolCall(
                    id=str(block.get("id") or ""),
                    function=FunctionCall(
                        name=str(block.get("name") or ""),
                        arguments=json.dumps(block.get("input") or {}, ensure_ascii=False),
                    ),
                )
            )
        elif kind == "thinking":
            thinking.append(
                {
                    "type": "thinking",
                    "thinking": str(block.get("thinking") or ""),
                    "signature": str(block.get("signature") or ""),
                }
            )
        elif kind == "redacted_thinking":
            thinking.append({"type": "redacted_thinking", "data": str(block.get("data") or "")})
    joined = "".join(text)
    return Choice(
        index=0,
        message=Message(
            role="assistant",
            content=None if not joined and calls else joined,
            tool_calls=calls or None,
            thinking_blocks=thinking or None,
        ),
        finish_reason=finish_reason(message.get("stop_reason")),
    )


def parse_message(data: Any, request_id: str | None) -> ChatCompletion:
    """A decoded ``message`` reply as `ChatCompletion`; raises `APIResponseError` otherwise."""
    if not isinstance(data, Mapping):
        raise APIResponseError("expected a JSON message object", request_id=request_id)
    if data.get("type") == "error" or ("error" in data and isinstance(data.get("error"), Mapping)):
        raise native_error(data, request_id)
    if data.get("type") not in ("message", None) or not isinstance(data.get("content"), list):
        raise APIResponseError(
            "expected Claude's message object (with a content list)",
            body=dict(data),
            request_id=request_id,
        )
    completion = ChatCompletion(
        id=str(data.get("id") or ""),
        model=str(data.get("model") or ""),
        choices=[_message_choice(data)],
        usage=native_usage(data.get("usage")),
    )
    if data.get("stop_reason") is not None:
        completion.__pydantic_extra__["stop_reason"] = data["stop_reason"]  # type: ignore[index]
    completion._request_id = request_id
    return completion


class MessagesEventReader:
    """Claude's stream events in, `StreamPart`s out (see the module docstring).

    Text deltas become ``content``; ``tool_use`` blocks become tool-call parts numbered by their
    order among the tool calls; thinking and redacted thinking become ``thinking`` fragments
    numbered by their order among the thinking blocks; ``message_delta`` gives the part with the
    finish reason and the whole usage. Each part's ``raw`` is its event. ``done`` turns true at
    ``message_stop``.
    """

    __slots__ = (
        "_blocks",
        "_id",
        "_model",
        "_role_pending",
        "_start_usage",
        "_thinking",
        "_tools",
        "done",
        "request_id",
        "stop_reason",
    )

    def __init__(self, request_id: str | None) -> None:
        self.request_id = request_id
        self.done = False
        self.stop_reason: str | None = None
        self._id = ""
        self._model = ""
        self._start_usage: dict[str, Any] | None = None
        self._blocks: dict[int, tuple[str, int]] = {}  # block index -> (kind, ordinal)
        self._tools = 0
        self._thinking = 0
        self._role_pending = False

    def _part(
        self,
        payload: dict[str, Any],
        content: str | None = None,
        *,
        tool_calls: list[ToolCallPart] | None = None,
        thinking: list[dict[str, Any]] | None = None,
    ) -> StreamPart:
        part = StreamPart(self._id, self._model, payload, content)
        if self._role_pending:
            # message_start's role rides on the first part with content: until then nothing
            # has been handed to the caller, so an error event can still be retried.
            self._role_pending = False
            part.role = "assistant"
        if tool_calls is not None:
            part.tool_calls = tool_calls
        if thinking is not None:
            part.thinking = thinking
        return part

    def event(self, name: str | None, data: str | bytes) -> StreamPart | None:
        """One SSE event (its data as text, or as UTF-8); the part it makes, if any. Raises on
        an ``error`` event."""
        try:
            payload = from_json(data)  # pydantic-core: a third of json.loads per event
        except ValueError:
            raise APIResponseError(
                f"malformed stream event: {data[:120]!r}", request_id=self.request_id
            ) from None
        if not isinstance(payload, dict):
            raise APIResponseError(
                f"malformed stream event: {data[:120]!r}", request_id=self.request_id
            )
        kind = payload.get("type") or name
        if kind == "error" or name == "error":
            raise native_error(payload, self.request_id)
        if kind == "content_block_delta" and not self._role_pending:
            # The stream's bulk: one text fragment, straight to its part.
            delta = payload.get("delta")
            if isinstance(delta, dict) and delta.get("type") == "text_delta":
                part = StreamPart(self._id, self._model, payload, delta.get("text") or "")
                part.text_only = True
                return part
        handler = _HANDLERS.get(str(kind))
        return None if handler is None else handler(self, payload)

    def _message_start(self, payload: dict[str, Any]) -> StreamPart | None:
        message = payload.get("message") or {}
        self._id = str(message.get("id") or "")
        self._model = str(message.get("model") or "")
        usage = message.get("usage")
        self._start_usage = dict(usage) if isinstance(usage, Mapping) else None
        self._role_pending = True
        return None

    def _block_start(self, payload: dict[str, Any]) -> StreamPart | None:
        block = payload.get("content_block") or {}
        index = payload.get("index")
        kind = block.get("type")
        if kind in ("tool_use", "server_tool_use"):
            ordinal = self._tools
            self._tools += 1
            self._blocks[index] = ("tool", ordinal)  # type: ignore[index]
            initial = block.get("input")
            call = ToolCallPart(
                ordinal,
                str(block.get("id") or ""),
                str(block.get("name") or ""),
                json.dumps(initial) if initial else "",
                "function",
            )
            return self._part(payload, tool_calls=[call])
        if kind in ("thinking", "redacted_thinking"):
            ordinal = self._thinking
            self._thinking += 1
            self._blocks[index] = ("thinking", ordinal)  # type: ignore[index]
            fragment: dict[str, Any] = {"index": ordinal, "type": kind}
            if kind == "redacted_thinking":
                fragment["data"] = block.get("data") or ""
            else:
                fragment["thinking"] = block.get("thinking") or ""
                if block.get("signature"):
                    fragment["signature"] = block["signature"]
            return self._part(payload, thinking=[fragment])
        self._blocks[index] = ("text", 0)  # type: ignore[index]
        text = block.get("text")
        return self._part(payload, content=text) if text else None

    def _block_delta(self, payload: dict[str, Any]) -> StreamPart | None:
        delta = payload.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta":
            return self._part(payload, content=delta.get("text") or "")
        _, ordinal = self._blocks.get(payload.get("index"), ("", 0))  # type: ignore[arg-type]
        if kind == "input_json_delta":
            call = ToolCallPart(ordinal, arguments=delta.get("partial_json") or "")
            return self._part(payload, tool_calls=[call])
        if kind == "thinking_delta":
            fragment = {"index": ordinal, "thinking": delta.get("thinking") or ""}
            return self._part(payload, thinking=[fragment])
        if kind == "signature_delta":
            fragment = {"index": ordinal, "signature": delta.get("signature") or ""}
            return self._part(payload, thinking=[fragment])
        return None  # citations and future delta kinds: nothing to accumulate

    def _message_delta(self, payload: dict[str, Any]) -> StreamPart | None:
        delta = payload.get("delta") or {}
        self.stop_reason = delta.get("stop_reason")
        end = payload.get("usage")
        part = self._part(payload)
        part.finish_reason = finish_reason(self.stop_reason) or "stop"
        part.usage = _merged_usage(self._start_usage, end if isinstance(end, Mapping) else None)
        return part

    def _message_stop(self, payload: dict[str, Any]) -> StreamPart | None:
        self.done = True
        return None


_HANDLERS = {
    "message_start": MessagesEventReader._message_start,
    "content_block_start": MessagesEventReader._block_start,
    "content_block_delta": MessagesEventReader._block_delta,
    "message_delta": MessagesEventReader._message_delta,
    "message_stop": MessagesEventReader._message_stop,
}
