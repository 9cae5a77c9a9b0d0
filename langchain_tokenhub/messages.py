"""Pure conversion between LangChain objects and TokenHub's OpenAI-schema wire format.

Requests: `convert_messages`, `convert_tools`, `normalize_tool_choice`. Replies:
`completion_to_message` and `StreamConverter` (one `AIMessageChunk` per wire chunk). Nothing here
performs I/O or imports the client.

Decisions where the wire leaves room:

- System messages anywhere in the history are hoisted into one leading system message, their
  texts joined with ``"\\n"`` — what Claude's OpenAI-compatibility layer does server-side, done
  here so the request says what the model will see.
- Empty (or whitespace-only) text blocks are dropped: Claude rejects them. An assistant message
  left with neither text nor tool calls is dropped for the same reason.
- Images inside a tool result move into a user message right after that run of tool results
  (Claude reads consecutive user-side turns as one), since the OpenAI schema gives tool messages
  text only.
- An invalid tool call sent back goes out with its raw arguments when they are a JSON object,
  else with ``{}``: Claude needs an object, and the paired ToolMessage carries the error.
- On Claude's native protocol (``protocol="messages"``) documents, thinking blocks and tool
  results with images or documents travel as parts (`langchain_tokenhub.claude`); on
  chat/completions a document is refused before sending and thinking blocks stay home.
- A reply with thinking has ChatAnthropic's content: a list of the thinking blocks, then a text
  block; streamed, its fragments are indexed blocks that merge into the same list.
- Replies carry ``response_metadata["model_provider"] = "tokenhub"``. Its content-block
  translator (registered below) is langchain-core's Chat Completions translator, the schema
  TokenHub speaks, plus invalid tool calls (for list content, langchain-core's Anthropic
  translator reads the thinking and text blocks); tracing (``ls_provider``) names the same
  provider.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal, cast

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    BaseMessageChunk,
    ChatMessage,
    HumanMessage,
    InvalidToolCall,
    SystemMessage,
    ToolCall,
    ToolCallChunk,
    ToolMessage,
)
from langchain_core.messages import content as types
from langchain_core.messages.ai import UsageMetadata, add_ai_message_chunks
from langchain_core.messages.block_translators import register_translator
from langchain_core.messages.block_translators.anthropic import (
    translate_content as _anthropic_translate_content,
)
from langchain_core.messages.block_translators.anthropic import (
    translate_content_chunk as _anthropic_translate_content_chunk,
)
from langchain_core.messages.block_translators.openai import (
    translate_content as _openai_translate_content,
)
from langchain_core.messages.block_translators.openai import (
    translate_content_chunk as _openai_translate_content_chunk,
)
from langchain_core.messages.tool import invalid_tool_call, tool_call, tool_call_chunk
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import model_validator

from langchain_tokenhub.claude import (
    MESSAGES,
    NEEDS_MESSAGES,
    BlockStream,
    document_part,
    is_document_block,
    reply_content,
    thinking_parts,
    tool_cache_control,
)
from tokenhub_core._templates import filled
from tokenhub_core.catalog import price_usage
from tokenhub_core.errors import (
    InvalidParameterError,
    complete_json_object,
    incomplete_call_message,
)
from tokenhub_core.params import SUPPORTED_IMAGE_TYPES, check_image_url, normalize_tool_call_id
from tokenhub_core.stream import StreamPart, ToolCallPart, ToolCallRouter
from tokenhub_core.wire import ChatCompletion, ChatCompletionChunk, Usage

__all__ = [
    "MODEL_PROVIDER",
    "StreamConverter",
    "TokenHubMessageChunk",
    "cache_creation_by_ttl",
    "completion_to_message",
    "convert_messages",
    "convert_tools",
    "generation_chunk",
    "image_part",
    "normalize_tool_choice",
    "text_chunk",
    "tool_names",
    "usage_to_metadata",
]

MODEL_PROVIDER = "tokenhub"

_SUPPORTED = ", ".join(SUPPORTED_IMAGE_TYPES)
_USER_ROLES = {"user", "human"}
_ASSISTANT_ROLES = {"assistant", "ai"}
_SYSTEM_ROLES = {"system", "developer"}

# ---------------------------------------------------------------------------------------------
# LangChain -> wire
# ---------------------------------------------------------------------------------------------


def convert_messages(
    messages: Sequence[BaseMessage], *, protocol: str = "chat/completions"
) -> list[dict[str, Any]]:
    """LangChain messages as TokenHub wire messages (OpenAI chat-completions dicts).

    With ``protocol="messages"`` the result also carries what only Claude's native protocol
    takes (see `langchain_tokenhub.claude`): document parts, thinking parts in assistant turns,
    and tool results as parts (images and documents included).

    Raises:
        InvalidParameterError: a message or content block TokenHub cannot take (unsupported
            media type, audio, a document on chat/completions, an unknown role), before
            anything is sent.
    """
    native = protocol == MESSAGES
    system_parts: list[list[dict[str, Any]]] = []
    wire: list[dict[str, Any]] = []
    pending_images: list[dict[str, Any]] = []

    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        role = _role_of(message, where)
        if role != "tool" and pending_images:
            wire.append({"role": "user", "content": pending_images})
            pending_images = []
        if role == "system":
            system_parts.append(_system_parts(message.content, where))
        elif role == "user":
            content = _user_content(message, where, native)
            wire.append(_with_name({"role": "user", "content": content}, message))
        elif role == "assistant":
            if (converted := _assistant_message(message, native)) is not None:
                wire.append(converted)
        elif native:
            assert isinstance(message, ToolMessage)
            call_id = normalize_tool_call_id(message.tool_call_id)
            content = _native_tool_content(message.content, where)
            wire.append({"role": "tool", "tool_call_id": call_id, "content": content})
        else:
            assert isinstance(message, ToolMessage)
            text, images = _tool_content(message.content, where)
            call_id = normalize_tool_call_id(message.tool_call_id)
            wire.append({"role": "tool", "tool_call_id": call_id, "content": text})
            if images:
                label = {"type": "text", "text": f"Image(s) returned by tool call {call_id}:"}
                pending_images += [label, *images]
    if pending_images:
        wire.append({"role": "user", "content": pending_images})
    flat = [part for parts in system_parts for part in parts if not _is_blank(part["text"])]
    if any("cache_control" in part for part in flat):
        wire.insert(0, {"role": "system", "content": flat})
    elif flat:  # one string: each message's blocks joined, messages joined by newlines
        texts = ["".join(part["text"] for part in parts) for parts in system_parts]
        wire.insert(0, {"role": "system", "content": "\n".join(t for t in texts if t)})
    return wire


def _role_of(message: BaseMessage, where: str) -> Literal["system", "user", "assistant", "tool"]:
    if isinstance(message, SystemMessage):
        return "system"
    if isinstance(message, HumanMessage):
        return "user"
    if isinstance(message, AIMessage):
        return "assistant"
    if isinstance(message, ToolMessage):
        return "tool"
    if isinstance(message, ChatMessage):
        role = message.role.lower()
        if role in _USER_ROLES:
            return "user"
        if role in _ASSISTANT_ROLES:
            return "assistant"
        if role in _SYSTEM_ROLES:
            return "system"
        raise InvalidParameterError(f"{where}.role", message.role, "one of user, assistant, system")
    raise InvalidParameterError(
        where,
        type(message).__name__,
        "SystemMessage, HumanMessage, AIMessage, ToolMessage or ChatMessage",
    )


def _with_name(wire: dict[str, Any], message: BaseMessage) -> dict[str, Any]:
    if message.name:
        wire["name"] = message.name
    return wire


def _is_blank(text: Any) -> bool:
    return not isinstance(text, str) or not text.strip()


def _system_parts(content: str | list[str | dict[str, Any]], where: str) -> list[dict[str, Any]]:
    """A system message's text parts; ``cache_control`` on a block is kept."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        if isinstance(block, str):
            parts.append({"type": "text", "text": block})
        elif block.get("type") == "text":
            parts.append(_text_part(block.get("text") or "", block))
        else:
            raise InvalidParameterError(
                f"{where}.content[{j}].type", block.get("type"), "system messages take text only"
            )
    return parts


def _text_part(text: str, block: Mapping[str, Any]) -> dict[str, Any]:
    part: dict[str, Any] = {"type": "text", "text": text}
    if block.get("cache_control") is not None:
        part["cache_control"] = block["cache_control"]
    return part


def _user_content(message: BaseMessage, where: str, native: bool) -> str | list[dict[str, Any]]:
    content = message.content
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        part = _user_part(block, f"{where}.content[{j}]", native)
        if part is not None:
            parts.append(part)
    return parts or ""


def _user_part(block: str | dict[str, Any], where: str, native: bool) -> dict[str, Any] | None:
    """One content block of a user message as a wire part; None for an empty text block."""
    if isinstance(block, str):
        return None if _is_blank(block) else {"type": "text", "text": block}
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        return None if _is_blank(text) else _text_part(str(text), block)
    if kind in ("image_url", "image"):
        return _cached(image_part(block, where), block)
    if is_document_block(block):
        if not native:
            raise InvalidParameterError(
                where, "document", f"PDF and text files need {NEEDS_MESSAGES}"
            )
        return document_part(block, where)
    also = " (and PDF or text files)" if native else ""
    raise InvalidParameterError(
        f"{where}.type",
        kind,
        f"TokenHub takes text and images ({_SUPPORTED}){also} in user messages",
    )


def _cached(part: dict[str, Any], block: Mapping[str, Any]) -> dict[str, Any]:
    """``part`` with the ``cache_control`` of the block it came from (also from its extras)."""
    extras = block.get("extras")
    cache_control = block.get("cache_control")
    if cache_control is None and isinstance(extras, Mapping):
        cache_control = extras.get("cache_control")
    if cache_control is not None:
        part["cache_control"] = cache_control
    return part


def image_part(block: Mapping[str, Any], where: str = "image") -> dict[str, Any]:
    """Any image block LangChain users write, as a wire ``image_url`` part.

    Accepts OpenAI ``image_url`` parts, standard blocks (``url`` or ``base64`` + ``mime_type``),
    the older ``source_type`` form and Anthropic ``source`` blocks.

    Raises:
        InvalidParameterError: a media type Claude does not take, or an image given by file id.
    """
    url = _image_url(block, where)
    check_image_url(url)
    return {"type": "image_url", "image_url": {"url": url}}


def _image_url(block: Mapping[str, Any], where: str) -> str:
    if block.get("type") == "image_url":
        image_url = block.get("image_url")
        url = image_url.get("url") if isinstance(image_url, Mapping) else image_url
        if isinstance(url, str) and url:
            return url
        raise InvalidParameterError(f"{where}.image_url", image_url, "an object with a url")
    source = block.get("source")
    if isinstance(source, Mapping):  # Anthropic form
        if source.get("type") == "base64":
            return _data_url(source.get("media_type"), source.get("data"), where)
        if source.get("type") == "url" and isinstance(source.get("url"), str):
            return _checked_url(source["url"], None, where)
        raise InvalidParameterError(f"{where}.source.type", source.get("type"), "base64 or url")
    source_type = block.get("source_type")
    if block.get("base64") is not None or source_type == "base64":
        data = block.get("base64") if block.get("base64") is not None else block.get("data")
        return _data_url(block.get("mime_type"), data, where)
    if block.get("url") is not None or source_type == "url":
        url = block.get("url") if block.get("url") is not None else block.get("data")
        if isinstance(url, str) and url:
            return _checked_url(url, block.get("mime_type"), where)
    raise InvalidParameterError(
        where,
        {k: v for k, v in block.items() if k in ("type", "source_type", "file_id", "id")},
        "an image given by url or by base64 data with a mime_type (file ids are not supported)",
    )


def _data_url(mime_type: Any, data: Any, where: str) -> str:
    if mime_type not in SUPPORTED_IMAGE_TYPES:
        raise InvalidParameterError(f"{where}.mime_type", mime_type, f"one of {_SUPPORTED}")
    if not isinstance(data, str) or not data:
        raise InvalidParameterError(f"{where}.base64", type(data).__name__, "base64 text")
    return f"data:{mime_type};base64,{data}"


def _checked_url(url: str, mime_type: Any, where: str) -> str:
    if mime_type is not None and mime_type not in SUPPORTED_IMAGE_TYPES:
        raise InvalidParameterError(f"{where}.mime_type", mime_type, f"one of {_SUPPORTED}")
    return url


def _assistant_message(message: BaseMessage, native: bool) -> dict[str, Any] | None:
    content = message.content
    # Text parts; kept as parts (not joined) only when one carries cache_control.
    parts = [{"type": "text", "text": content}] if isinstance(content, str) else []
    if not isinstance(content, str):  # tool_use / reasoning / tool_call: see tool_calls
        for block in content:
            if isinstance(block, str):
                parts.append({"type": "text", "text": block})
            elif block.get("type") == "text":
                parts.append(_text_part(block.get("text") or "", block))
    text = "".join(part["text"] for part in parts)
    thinking = thinking_parts(content) if native else []
    calls: list[dict[str, Any]] = []
    if isinstance(message, AIMessage):
        calls = [_wire_tool_call(tc) for tc in message.tool_calls]
        calls += [_wire_invalid_tool_call(tc) for tc in message.invalid_tool_calls]
    if not calls and _is_blank(text):
        return None
    wire: dict[str, Any] = {"role": "assistant"}
    if thinking or any("cache_control" in part for part in parts):
        # Thinking first, in the order the model gave it, then the text.
        text_parts = [p for p in parts if not _is_blank(p["text"])]
        if not any("cache_control" in part for part in parts) and text_parts:
            text_parts = [{"type": "text", "text": text}]
        wire["content"] = [*thinking, *text_parts]
    elif text:
        wire["content"] = text
    if calls:
        wire["tool_calls"] = calls
    return _with_name(wire, message)


def _wire_tool_call(call: ToolCall) -> dict[str, Any]:
    return {
        "id": normalize_tool_call_id(call.get("id") or ""),
        "type": "function",
        "function": {
            "name": call["name"],
            "arguments": json.dumps(call["args"], ensure_ascii=False),
        },
    }


def _wire_invalid_tool_call(call: InvalidToolCall) -> dict[str, Any]:
    args = call.get("args") or ""
    is_object = bool(args.strip()) and complete_json_object(args) is not None
    return {
        "id": normalize_tool_call_id(call.get("id") or ""),
        "type": "function",
        "function": {"name": call.get("name") or "", "arguments": args if is_object else "{}"},
    }


def _tool_content(
    content: str | list[str | dict[str, Any]], where: str
) -> tuple[str, list[dict[str, Any]]]:
    """A tool result's text (blocks joined with newlines) and the images it carries."""
    if isinstance(content, str):
        return content, []
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        if isinstance(block, str):
            texts.append(block)
        elif block.get("type") == "text":
            if not _is_blank(block.get("text")):
                texts.append(block["text"])
        elif block.get("type") in ("image_url", "image"):
            images.append(image_part(block, f"{where}.content[{j}]"))
        else:  # an untyped or unknown block is data the tool returned: keep it as JSON text
            texts.append(json.dumps(block, ensure_ascii=False, default=str))
    return "\n".join(texts), images


def _native_tool_content(
    content: str | list[str | dict[str, Any]], where: str
) -> str | list[dict[str, Any]]:
    """A tool result for Claude's native protocol: text, images and documents as parts."""
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        at = f"{where}.content[{j}]"
        if isinstance(block, str):
            if not _is_blank(block):
                parts.append({"type": "text", "text": block})
        elif block.get("type") == "text":
            if not _is_blank(block.get("text")):
                parts.append(_text_part(block["text"], block))
        elif block.get("type") in ("image_url", "image"):
            parts.append(_cached(image_part(block, at), block))
        elif is_document_block(block):
            parts.append(document_part(block, at))
        else:  # an untyped or unknown block is data the tool returned: keep it as JSON text
            parts.append(
                {"type": "text", "text": json.dumps(block, ensure_ascii=False, default=str)}
            )
    return parts


def convert_tools(tools: Sequence[Any], *, strict: bool | None = None) -> list[dict[str, Any]]:
    """BaseTools, functions, pydantic models, TypedDicts and tool dicts as wire tools.

    A tool's ``cache_control`` (a dict tool's key, a ``BaseTool``'s ``extras``) is kept on the
    wire tool, where the core's protocols read it.
    """
    wire_tools = []
    for tool in tools:
        wire = convert_to_openai_tool(tool, strict=strict)
        if (cache_control := tool_cache_control(tool)) is not None:
            wire = {**wire, "cache_control": cache_control}
        wire_tools.append(wire)
    return wire_tools


def tool_names(wire_tools: Sequence[Mapping[str, Any]]) -> list[str]:
    """The function names of wire tools, in order."""
    return [t["function"]["name"] for t in wire_tools if isinstance(t.get("function"), Mapping)]


def normalize_tool_choice(tool_choice: Any, names: Sequence[str]) -> str | dict[str, Any] | None:
    """A LangChain ``tool_choice`` as TokenHub's: ``auto``, ``none``, ``required`` or a function.

    ``any`` and ``True`` mean required (``True`` with one tool forces that tool); a tool name
    forces that tool; ``None`` and ``False`` leave the choice to the model.

    Raises:
        InvalidParameterError: an unknown name or form.
    """
    if tool_choice is None or tool_choice is False:
        return None
    if tool_choice is True:
        return _force(names[0]) if len(names) == 1 else "required"
    if isinstance(tool_choice, str):
        if tool_choice in ("auto", "none", "required"):
            return tool_choice
        if tool_choice == "any":
            return "required"
        if tool_choice in names:
            return _force(tool_choice)
        allowed = ", ".join(["auto", "none", "required", "any", *names])
        raise InvalidParameterError("tool_choice", tool_choice, f"one of {allowed}")
    if isinstance(tool_choice, Mapping):
        function = tool_choice.get("function")
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            return _force(function["name"])
        if isinstance(tool_choice.get("name"), str):  # {"type": "tool", "name": ...} form
            return _force(tool_choice["name"])
        if tool_choice.get("type") in ("auto", "none", "required", "any"):
            return normalize_tool_choice(tool_choice["type"], names)
    raise InvalidParameterError(
        "tool_choice", tool_choice, 'a string, a bool or {"type": "function", "function": {...}}'
    )


def _force(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name}}


# ---------------------------------------------------------------------------------------------
# wire -> LangChain
# ---------------------------------------------------------------------------------------------


def usage_to_metadata(usage: Usage) -> UsageMetadata:
    """Wire usage as LangChain usage.

    ``input_tokens`` is the whole prompt (cache reads and writes included, each counted once).
    ``input_token_details`` has ``cache_read`` and ``cache_creation`` (all writes, whatever their
    TTL), always on Claude's native protocol, else when non-zero: the details never add up to more
    than the prompt. (ChatAnthropic reports TTL-split writes under ``ephemeral_*`` keys with
    ``cache_creation`` 0; that split is in ``response_metadata["cache_creation"]`` here, see
    `cache_creation_by_ttl`.)
    """
    metadata: dict[str, Any] = {
        "input_tokens": usage.prompt_tokens,
        "output_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
    }
    input_details: dict[str, int] = {}
    details = usage.prompt_tokens_details
    # Claude's native usage always reports both cache counts (zeros too), as ChatAnthropic
    # passes them on; the OpenAI-compatible layer reports reads, at most.
    native = details is not None and details.cache_creation_tokens is not None
    if usage.cache_read_tokens > 0 or native:
        input_details["cache_read"] = usage.cache_read_tokens
    if usage.cache_creation_tokens > 0 or native:
        input_details["cache_creation"] = usage.cache_creation_tokens
    if input_details:
        metadata["input_token_details"] = input_details
    if usage.reasoning_tokens > 0:
        metadata["output_token_details"] = {"reasoning": usage.reasoning_tokens}
    # A cast, not a TypedDict literal: mypy (python_version 3.10) reads langchain-core's
    # typing.NotRequired keys as required.
    return cast("UsageMetadata", metadata)


def cache_creation_by_ttl(usage: Usage) -> dict[str, int] | None:
    """The cache writes split by TTL, as Claude reports them, when there were writes."""
    if usage.cache_creation_tokens <= 0:
        return None
    return {
        "ephemeral_5m_input_tokens": usage.cache_creation_5m_tokens,
        "ephemeral_1h_input_tokens": usage.cache_creation_1h_tokens,
    }


def _cost(requested: str, served: str | None, usage: Usage) -> float | None:
    """The call's USD cost by the core's one pricing rule, cache reads and writes included."""
    _, cost = price_usage(requested, served, usage)
    return None if cost is None else float(cost)


def completion_to_message(
    completion: ChatCompletion, *, model: str, request_id: str | None = None
) -> AIMessage:
    """A complete reply as an `AIMessage`; invalid tool-call JSON lands in ``invalid_tool_calls``.

    Args:
        completion: the wire reply.
        model: the model requested, used when the server does not name the model it served.
        request_id: the server's request id.
    """
    served = completion.model or model
    metadata: dict[str, Any] = {
        "model_name": served,
        "model_provider": MODEL_PROVIDER,
        "id": completion.id,
        "request_id": request_id,
        "finish_reason": None,
        "cost_usd": None,
    }
    if completion.system_fingerprint:
        metadata["system_fingerprint"] = completion.system_fingerprint
    content: str | list[str | dict[str, Any]] = ""
    calls: list[ToolCall] = []
    invalid: list[InvalidToolCall] = []
    extra: dict[str, Any] = {}
    if completion.choices:
        choice = completion.choices[0]
        metadata["finish_reason"] = choice.finish_reason
        content = reply_content(choice.message.content or "", choice.message.thinking_blocks)
        for wire_call in choice.message.tool_calls or []:
            name, raw = wire_call.function.name, wire_call.function.arguments
            args = complete_json_object(raw)
            if args is not None:
                calls.append(tool_call(name=name, args=args, id=wire_call.id))
            else:
                error = incomplete_call_message(name, raw, choice.finish_reason)
                invalid.append(invalid_tool_call(name=name, args=raw, id=wire_call.id, error=error))
        if choice.message.refusal:
            extra["refusal"] = choice.message.refusal
    usage = None
    if completion.usage is not None:
        usage = usage_to_metadata(completion.usage)
        metadata["cost_usd"] = _cost(model, completion.model or None, completion.usage)
        if (by_ttl := cache_creation_by_ttl(completion.usage)) is not None:
            metadata["cache_creation"] = by_ttl
    return AIMessage(
        content=content,
        tool_calls=calls,
        invalid_tool_calls=invalid,
        additional_kwargs=extra,
        usage_metadata=usage,
        response_metadata=metadata,
        id=completion.id or None,
    )


class StreamConverter:
    """Turns each wire chunk of one stream into one `AIMessageChunk`, in constant time.

    Tool-call deltas become ``tool_call_chunks`` indexed by the call's position under the
    core's `ToolCallRouter` (the rule the core's accumulator uses), so LangChain merges them
    into the same calls `completion_to_message` gives, whatever indexes the server sends; a
    call's name and id go out once each (LangChain concatenates repeated strings when merging).
    ``model_name``, ``finish_reason``, ``id`` and ``request_id`` ride on the chunk carrying the
    finish reason. Usage goes out once, on the closing chunk `finish` makes after the stream
    ends (marked ``chunk_position="last"``), whether the server sent it in a usage-only chunk,
    on the finish chunk, or cumulatively on every chunk: LangChain adds usage up across chunks
    and cannot merge two ``cost_usd`` floats.
    """

    __slots__ = (
        "_blocks",
        "_finish_reason",
        "_id",
        "_identified",
        "_model",
        "_named",
        "_router",
        "_served",
        "_usage",
    )

    def __init__(self, model: str, *, usage: bool = True, blocks: bool = False) -> None:
        """Create the converter for one stream.

        Args:
            model: the model requested.
            usage: False drops the usage (``stream_usage``).
            blocks: stream content as blocks from the start (thinking was asked for), as
                ChatAnthropic does; otherwise text is a string until a thinking fragment comes.
        """
        self._model = model
        self._blocks = BlockStream(on=blocks)
        self._served = ""
        self._id = ""  # the first id the server gave: every chunk of the reply carries it
        self._finish_reason: str | None = None
        self._usage = usage
        self._router = ToolCallRouter()
        self._named: set[int] = set()
        self._identified: set[int] = set()

    def convert(
        self, part: StreamPart | ChatCompletionChunk, request_id: str | None = None
    ) -> AIMessageChunk | None:
        """The LangChain chunk for one streamed part (or wire chunk); None for one with nothing
        but usage."""
        if not isinstance(part, StreamPart):
            part = StreamPart.from_chunk(part)
        if not self._id and part.id:
            self._id = part.id
        if not part.has_choice:
            if part.model:
                self._served = part.model
            return None
        if not (
            self._blocks.on
            or part.thinking
            or part.tool_calls
            or part.refusal
            or part.finish_reason is not None
        ):
            # The stream's bulk: a text fragment (or nothing but a role), built unvalidated.
            return text_chunk(part.content or "", self._id or None)
        metadata: dict[str, Any] = {"model_provider": MODEL_PROVIDER}
        # Only the fields that differ from their defaults: pydantic validates every one passed.
        fields: dict[str, Any] = {"response_metadata": metadata}
        if self._id:
            fields["id"] = self._id
        if part.tool_calls:
            fields["tool_call_chunks"] = [self._call_chunk(d) for d in part.tool_calls]
        if part.refusal:
            fields["additional_kwargs"] = {"refusal": part.refusal}
        finish = part.finish_reason
        if finish is not None:
            self._served = part.model or self._served
            self._finish_reason = finish
            metadata["finish_reason"] = finish
            metadata["model_name"] = part.model or self._model
            metadata["id"] = self._id or part.id
            metadata["request_id"] = request_id
            if part.system_fingerprint:
                metadata["system_fingerprint"] = part.system_fingerprint
        content = self._blocks.content(part.content, part.thinking)
        return TokenHubMessageChunk(content=content, **fields)

    def finish(self, usage: Usage | None) -> AIMessageChunk:
        """The closing chunk: the stream's final usage and its cost (unless usage is off)."""
        metadata: dict[str, Any] = {"model_provider": MODEL_PROVIDER}
        usage_metadata = None
        if usage is not None and self._usage:
            usage_metadata = usage_to_metadata(usage)
            metadata["cost_usd"] = _cost(self._model, self._served or None, usage)
            if (by_ttl := cache_creation_by_ttl(usage)) is not None:
                metadata["cache_creation"] = by_ttl
        fields: dict[str, Any] = {"id": self._id} if self._id else {}
        return TokenHubMessageChunk(
            content=[] if self._blocks.on else "",
            usage_metadata=usage_metadata,
            response_metadata=metadata,
            chunk_position="last",
            **fields,
        )

    def _call_chunk(self, delta: ToolCallPart) -> ToolCallChunk:
        # The call's position (the core's rule) is the index LangChain merges by; its name and
        # id go out once each, since LangChain concatenates repeated strings when merging.
        position, _ = self._router.route(delta.index, delta.id)
        name = delta.name
        if name and position not in self._named:
            self._named.add(position)
        else:
            name = None
        call_id = delta.id or None
        if call_id and position not in self._identified:
            self._identified.add(position)
        else:
            call_id = None
        return tool_call_chunk(name=name, args=delta.arguments, id=call_id, index=position)


def text_chunk(text: str, message_id: str | None) -> TokenHubMessageChunk:
    """``TokenHubMessageChunk(content=text, id=message_id, ...)`` for a plain text fragment,
    without validation (see `tokenhub_core._templates`): a stream's bulk is these."""
    return filled(
        _EMPTY_TEXT_CHUNK,
        content=text,
        id=message_id,
        additional_kwargs={},
        response_metadata={"model_provider": MODEL_PROVIDER},
        tool_calls=[],
        invalid_tool_calls=[],
        tool_call_chunks=[],
    )


def generation_chunk(message: AIMessageChunk) -> ChatGenerationChunk:
    """``ChatGenerationChunk(message=message)``; for text content without validation, whose
    only work (``text`` from the message) is then the content itself."""
    if isinstance(message.content, str):
        return filled(_EMPTY_GENERATION, message=message, text=message.content)
    return ChatGenerationChunk(message=message)


class TokenHubMessageChunk(AIMessageChunk):
    """An `AIMessageChunk` whose aggregate never holds a half-made tool call as a valid call.

    LangChain merges chunks with ``+`` into the first chunk's class and parses merged tool-call
    arguments with ``parse_partial_json``, which completes ``'{"to": "DE89 37'`` into a "valid"
    call. Once the stream is whole (``chunk_position="last"``), arguments that are not one
    complete JSON object become an invalid tool call naming the cut-off. Mid-stream aggregates
    keep LangChain's partial parsing, for UIs that show arguments as they arrive. Serialized, it
    is an ordinary ``AIMessageChunk``.
    """

    @model_validator(mode="after")
    def _refuse_incomplete_calls(self) -> TokenHubMessageChunk:
        if self.chunk_position != "last" or not self.tool_call_chunks:
            return self
        finish_reason = self.response_metadata.get("finish_reason")
        calls: list[ToolCall] = []
        invalid = [c for c in self.invalid_tool_calls if c.get("error")]
        for chunk in self.tool_call_chunks:
            raw = chunk.get("args") or ""
            name = chunk.get("name") or ""
            args = complete_json_object(raw)
            if args is None:
                error = incomplete_call_message(name, raw, finish_reason)
                invalid.append(invalid_tool_call(name=name, args=raw, id=chunk["id"], error=error))
            else:
                calls.append(tool_call(name=name, args=args, id=chunk.get("id")))
        self.tool_calls = calls
        self.invalid_tool_calls = invalid
        return self

    def __add__(self, other: Any) -> BaseMessageChunk:  # type: ignore[override]
        # A stream that turns to blocks (a thinking fragment) after its empty first chunks
        # merges into a list of blocks, not ["", {...}].
        if (
            self.content == ""
            and isinstance(other, AIMessageChunk)
            and isinstance(other.content, list)
            and other.content
        ):
            return add_ai_message_chunks(self.model_copy(update={"content": []}), other)
        merged: BaseMessageChunk = super().__add__(other)
        return merged

    @classmethod
    def lc_id(cls) -> list[str]:
        return AIMessageChunk.lc_id()


# ---------------------------------------------------------------------------------------------
# content blocks
# ---------------------------------------------------------------------------------------------


def _invalid_call_blocks(message: AIMessage) -> list[types.ContentBlock]:
    blocks: list[types.ContentBlock] = []
    for call in message.invalid_tool_calls:
        block = {
            "type": "invalid_tool_call",
            "id": call.get("id"),
            "name": call.get("name"),
            "args": call.get("args"),
            "error": call.get("error"),
        }
        blocks.append(cast("types.InvalidToolCall", block))
    return blocks


def _translate_content(message: AIMessage) -> list[types.ContentBlock]:
    if isinstance(message.content, str):
        return _openai_translate_content(message) + _invalid_call_blocks(message)
    # Claude's blocks (thinking, text) as ChatAnthropic's are read; tool calls as ours.
    calls = _openai_translate_content(message.model_copy(update={"content": ""}))
    return _anthropic_translate_content(message) + calls + _invalid_call_blocks(message)


def _translate_content_chunk(message: AIMessageChunk) -> list[types.ContentBlock]:
    if isinstance(message.content, str):
        blocks = _openai_translate_content_chunk(message)
    else:
        calls = _openai_translate_content_chunk(message.model_copy(update={"content": ""}))
        blocks = _anthropic_translate_content_chunk(message) + calls
    if message.chunk_position == "last":
        blocks += _invalid_call_blocks(message)
    return blocks


register_translator(MODEL_PROVIDER, _translate_content, _translate_content_chunk)


_EMPTY_TEXT_CHUNK = TokenHubMessageChunk(
    content="", response_metadata={"model_provider": MODEL_PROVIDER}, id=None
)
_EMPTY_GENERATION = ChatGenerationChunk(message=_EMPTY_TEXT_CHUNK)
