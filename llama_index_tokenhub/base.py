"""`TokenHub`: TokenHub's Claude models as a LlamaIndex function-calling LLM.

The class holds parameters, builds one request (`TokenHub._request`) and hands it to the core's
`TokenHubClient`; conversion lives in `messages` and `responses`. Retries, validation, SSE and
cost metering are the core's.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import httpx
from llama_index.core.base.llms.generic_utils import (
    achat_to_completion_decorator,
    astream_chat_to_completion_decorator,
    chat_to_completion_decorator,
    stream_chat_to_completion_decorator,
)
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.bridge.pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection
from pydantic import ConfigDict

from llama_index_tokenhub._instrumentation import stream_chat_callback, stream_completion_callback
from llama_index_tokenhub.messages import to_wire_messages, to_wire_tool_choice, to_wire_tools
from llama_index_tokenhub.responses import (
    ChunkConverter,
    keep_first_tool_call,
    response_from_completion,
    tool_selections,
)
from tokenhub_core import DEFAULT_BASE_URL, DEFAULT_MODEL, TokenHubClient, resolve_model
from tokenhub_core._lifecycle import DEFAULT_DEADLINE_S
from tokenhub_core.client import (
    BASE_URL_ENV,
    AsyncChatStream,
    ChatStream,
    ClientSlot,
    check_base_url,
)
from tokenhub_core.errors import InvalidParameterError
from tokenhub_core.params import (
    DEFAULT_MAX_TOKENS,
    REQUEST_PARAMS,
    apply_aliases,
    check_known,
    check_max_retries,
    check_no_secrets,
    check_sampling_params,
    normalize_protocol,
    normalize_stop,
    normalize_thinking,
    normalize_timeout,
)

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

__all__ = ["DEFAULT_CONTEXT_WINDOW", "TokenHub"]

DEFAULT_CONTEXT_WINDOW = 200_000
"""Context window assumed for a model the catalog does not know (Claude's standard window)."""

# Per-call keywords besides the request fields.
_CALL_OPTIONS = frozenset(
    {
        "model",
        "extra_body",
        "extra_headers",
        "timeout",
        "deadline",
        "protocol",
        "thinking",
        "thinking_dict",
        "cache_idx",
    }
)
_CALL_KEYWORDS = REQUEST_PARAMS | _CALL_OPTIONS
_F = TypeVar("_F", bound=Callable[..., Any])


def _presigned(function: _F) -> _F:
    """``function`` with its signature computed once: LlamaIndex's dispatcher inspects every
    instrumented call's signature, and `inspect.signature` reads ``__signature__`` first."""
    function.__signature__ = inspect.signature(function)  # type: ignore[attr-defined]
    return function


Timeout = float | httpx.Timeout | tuple[float | None, ...] | None
Thinking = int | str | dict[str, Any] | None


def _thinking_on(thinking: Thinking) -> bool:
    """Whether a thinking setting turns thinking on (Claude then refuses a forced tool)."""
    normalized = normalize_thinking(thinking)
    return normalized is not None and normalized["type"] != "disabled"


def _take_alias(values: dict[str, Any], alias: str, name: str, where: str) -> None:
    """Rename llama-index Anthropic's ``alias`` to our ``name`` in place; both given is an error."""
    if alias in values:
        value = values.pop(alias)
        if values.get(name) is not None and values[name] != value:
            raise InvalidParameterError(alias, value, f"{where} also got {name}={values[name]!r}")
        if value is not None or name not in values:
            values[name] = value


class TokenHub(FunctionCallingLLM):
    """TokenHub (Claude, over OpenAI's chat-completions schema or Claude's own Messages API) as a
    LlamaIndex LLM.

    ``Settings.llm = TokenHub()`` reads ``TOKENHUB_API_KEY`` and ``TOKENHUB_BASE_URL`` when it
    first calls, not when it is built. OpenAILike's names are accepted too (``api_base``,
    ``openai_api_key``, ``request_timeout``, ``max_completion_tokens``, ``model_name``), and
    the model may be given by position: ``TokenHub("claude-haiku-4-5")``. Query engines, chat
    engines, structured output and agents all work, streamed or not. Every final response
    carries the server's usage in ``raw["usage"]`` and ``prompt_tokens``, ``completion_tokens``,
    ``total_tokens``, the cache's tokens and ``cost_usd`` in ``additional_kwargs``.

    ``protocol="messages"`` speaks Claude's native protocol, for what the chat-completions layer
    drops: prompt caching (``CachePoint`` blocks, ``cache_idx``), extended thinking (``thinking``,
    also called ``thinking_dict`` as llama-index's ``Anthropic`` names it; ``ThinkingBlock``s in
    replies) and PDF ``DocumentBlock``s.

    Example:
        ```python
        from llama_index_tokenhub import TokenHub

        llm = TokenHub(model="anthropic/claude-haiku-4-5", temperature=0.2)
        print(llm.complete("Say hi").text)
        ```
    """

    # A validation error must not echo the input: it would hold the api_key.
    model_config = ConfigDict(hide_input_in_errors=True)

    model: str = Field(default=DEFAULT_MODEL, description="Model id, either id form.")
    api_key: SecretStr | None = Field(
        default=None,
        exclude=True,
        repr=False,
        description="TokenHub key (th-...); TOKENHUB_API_KEY is read at first use when unset.",
    )
    base_url: str | None = Field(
        default=None,
        description="API base URL; when unset, TOKENHUB_BASE_URL (read at first use), then "
        "TokenHub's. Alias api_base.",
    )
    max_tokens: int = Field(
        default=DEFAULT_MAX_TOKENS, description="Maximum output tokens; None means 1024."
    )
    temperature: float | None = Field(default=None, description="0.0-1.0; not with top_p.")
    top_p: float | None = Field(default=None, description="Nucleus sampling; not with temperature.")
    stop: list[str] | None = Field(default=None, description="Up to 4 stop sequences.")
    timeout: Timeout = Field(
        default=60.0,
        description="Seconds per attempt (None waits forever), an httpx.Timeout or a "
        "(connect, read) pair; per call too.",
    )
    max_retries: int = Field(default=2, description="Retries in the core (the only layer).")
    deadline: float | None = Field(
        default=DEFAULT_DEADLINE_S,
        description="Seconds one attempt may take in all (timeout bounds each read); None: none.",
    )
    default_headers: dict[str, str] | None = Field(
        default=None,
        exclude=True,
        repr=False,
        description="Headers sent with every request; never serialized (they may carry auth).",
    )
    additional_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra request-body fields sent with every call (e.g. user, seed).",
    )
    context_window: int = Field(
        default=0,
        description="Defaults to the catalog's window for the model, else 200,000.",
    )
    protocol: str = Field(
        default="chat/completions",
        description='"chat/completions" (OpenAI\'s schema) or "messages" (Claude\'s own, for '
        "caching, thinking and PDFs); per call too.",
    )
    thinking: Thinking = Field(
        default=None,
        description='Extended thinking (protocol="messages"): a token budget (>= 1024, below '
        'max_tokens), "adaptive", or Claude\'s dict; None is off. Alias thinking_dict; per call.',
    )
    cache_idx: int | None = Field(
        default=None,
        description="Cache the conversation up to and including the message at this index (-1: "
        "all of it), as llama-index's Anthropic does; per call too.",
    )
    http_client: httpx.Client | None = Field(default=None, exclude=True, repr=False)
    async_http_client: httpx.AsyncClient | None = Field(default=None, exclude=True, repr=False)

    _clients: ClientSlot = PrivateAttr(default_factory=ClientSlot)

    def __init__(self, model: str | None = None, /, **kwargs: Any) -> None:
        """Build it; the model may come first by position, as with OpenAILike."""
        if model is not None:
            if "model" in kwargs or "model_name" in kwargs:
                raise TypeError("TokenHub() got the model both by position and by name")
            kwargs["model"] = model
        super().__init__(**kwargs)

    @model_validator(mode="before")
    @classmethod
    def _known_fields_only(cls, values: Any) -> Any:
        """Rename OpenAILike's names to ours; an unknown field is an error naming it."""
        if not isinstance(values, dict):
            return values
        values = apply_aliases(values, where="TokenHub")
        _take_alias(values, "thinking_dict", "thinking", "TokenHub")
        known = set(cls.model_fields)
        check_known(values, known | REQUEST_PARAMS, where="TokenHub")
        if request_fields := [k for k in values if k in REQUEST_PARAMS and k not in known]:
            extra = dict(values.get("additional_kwargs") or {})
            extra.update({k: values.pop(k) for k in request_fields})
            values["additional_kwargs"] = extra
        check_no_secrets(values.get("additional_kwargs") or {}, param="additional_kwargs")
        if "max_tokens" in values and values["max_tokens"] is None:
            values["max_tokens"] = DEFAULT_MAX_TOKENS
        return values

    @field_validator("stop", mode="before")
    @classmethod
    def _normalize_stop(cls, stop: Any) -> list[str] | None:
        return normalize_stop(stop)

    @field_validator("protocol", mode="before")
    @classmethod
    def _check_protocol(cls, protocol: Any) -> str:
        return normalize_protocol(protocol)

    @field_validator("thinking", mode="before")
    @classmethod
    def _check_thinking(cls, thinking: Any) -> Thinking:
        normalize_thinking(thinking)  # its shape now; the rules that need the call, then
        return cast("Thinking", thinking)

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, base_url: str | None) -> str | None:
        return None if base_url is None else check_base_url(base_url)

    @field_validator("timeout")
    @classmethod
    def _check_timeout(cls, timeout: Timeout) -> Timeout:
        normalize_timeout(timeout)
        return timeout

    @field_validator("max_retries", mode="before")
    @classmethod
    def _check_max_retries(cls, max_retries: Any) -> int:
        return check_max_retries(max_retries)

    @model_validator(mode="after")
    def _check_and_fill(self) -> TokenHub:
        check_sampling_params(
            temperature=self.temperature,
            top_p=self.top_p,
            stop=self.stop,
            max_tokens=self.max_tokens,
        )
        if not self.context_window:
            info = resolve_model(self.model)
            self.context_window = info.context_window if info else DEFAULT_CONTEXT_WINDOW
        return self

    @classmethod
    def class_name(cls) -> str:
        return "TokenHub_llm"

    @property
    def api_base(self) -> str:
        """The base URL a call made now goes to (OpenAILike's name; setting it sets base_url)."""
        return self.base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL

    @api_base.setter
    def api_base(self, value: str | None) -> None:
        self.base_url = value

    @property
    def thinking_dict(self) -> dict[str, Any] | None:
        """The thinking setting as Claude's dict (llama-index Anthropic's name for it)."""
        return normalize_thinking(self.thinking)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            context_window=self.context_window,
            num_output=self.max_tokens,
            is_chat_model=True,
            is_function_calling_model=True,
            model_name=self.model,
        )

    # The one request path.

    def _get_client(self, protocol: str | None = None) -> TokenHubClient:
        """The instance's client, built on first use and rebuilt if its settings change."""
        return self._clients.get(
            protocol=protocol or self.protocol,
            api_key=self.api_key,
            base_url=self.base_url,
            timeout=self.timeout,  # the client checks it as it is built
            max_retries=self.max_retries,
            default_headers=self.default_headers,
            http_client=self.http_client,
            http_async_client=self.async_http_client,
            deadline=self.deadline,
        )

    def _request(
        self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]
    ) -> tuple[TokenHubClient, dict[str, Any]]:
        """The client and the core's keyword arguments: the instance's settings, then the
        per-call ones (which win; a per-call None keeps the instance's value)."""
        kwargs = apply_aliases(kwargs, where="the call")
        _take_alias(kwargs, "thinking_dict", "thinking", "the call")
        check_known(kwargs, _CALL_KEYWORDS, where="TokenHub call")
        params: dict[str, Any] = {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "stop": self.stop,
        }
        extra_body: dict[str, Any] = {}
        for key, value in self.additional_kwargs.items():
            (params if key in REQUEST_PARAMS else extra_body)[key] = value
        extra_body.update(kwargs.get("extra_body") or {})
        for key, value in kwargs.items():
            if key in REQUEST_PARAMS and value is not None:
                params[key] = value
        for option in ("extra_headers", "timeout", "deadline"):
            if kwargs.get(option) is not None:
                params[option] = kwargs[option]
        thinking = kwargs.get("thinking")
        if thinking is None:
            thinking = self.thinking
        if thinking is not None:
            params["thinking"] = thinking
        cache_idx = kwargs.get("cache_idx")
        wire_messages = to_wire_messages(
            messages, cache_idx=self.cache_idx if cache_idx is None else cache_idx
        )
        protocol = kwargs.get("protocol")
        client = self._get_client(None if protocol is None else normalize_protocol(protocol))
        request = {
            "model": kwargs.get("model") or self.model,
            "messages": wire_messages,
            "extra_body": extra_body or None,
            **params,
        }
        return client, request

    def _chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        client, request = self._request(messages, kwargs)
        completion = client.chat(**request)
        return response_from_completion(completion, model=request["model"])

    async def _achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        client, request = self._request(messages, kwargs)
        completion = await client.achat(**request)
        return response_from_completion(completion, model=request["model"])

    def _stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        client, request = self._request(messages, kwargs)
        stream = client.stream(**request)  # validated now, sent on first next()
        return _stream_responses(stream, ChunkConverter(model=request["model"]))

    async def _astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        client, request = self._request(messages, kwargs)
        stream = client.astream(**request)
        return _astream_responses(stream, ChunkConverter(model=request["model"]))

    # Chat: instrumented. The streaming methods use LlamaIndex's events through our decorators,
    # which build a per-response event only when a handler listens (`_instrumentation`).

    @_presigned
    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self._chat(messages, **kwargs)

    @_presigned
    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return await self._achat(messages, **kwargs)

    @_presigned
    @stream_chat_callback
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        return self._stream_chat(messages, **kwargs)

    @_presigned
    @stream_chat_callback
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        return await self._astream_chat(messages, **kwargs)

    # Completion: derived from the undecorated chat methods, so each call emits one event pair.

    @_presigned
    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return chat_to_completion_decorator(self._chat)(prompt, **kwargs)

    @_presigned
    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        return await achat_to_completion_decorator(self._achat)(prompt, **kwargs)

    @_presigned
    @stream_completion_callback
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        return stream_chat_to_completion_decorator(self._stream_chat)(prompt, **kwargs)

    @_presigned
    @stream_completion_callback
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        return await astream_chat_to_completion_decorator(self._astream_chat)(prompt, **kwargs)

    # Tools.

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        tool_choice: str | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Chat arguments with tools; the caller's ``chat_history`` is copied, never changed."""
        kwargs.pop(
            "strict", None
        )  # OpenAI's strict schemas: Claude's compatibility layer ignores it
        messages = list(chat_history or [])
        if isinstance(user_msg, str):
            messages.append(ChatMessage(role=MessageRole.USER, content=user_msg))
        elif user_msg is not None:
            messages.append(user_msg)
        request: dict[str, Any] = {"messages": messages, **kwargs}
        if tools:
            # llama-index Anthropic's switch for caching the tools: a prompt-caching beta header.
            beta = str((kwargs.get("extra_headers") or {}).get("anthropic-beta", ""))
            cache = {"type": "ephemeral"} if "prompt-caching" in beta else None
            wire_tools = to_wire_tools(tools, cache_control=cache)
            request["tools"] = wire_tools
            thinking = kwargs.get("thinking", kwargs.get("thinking_dict"))
            # Claude refuses a forced tool while thinking; the framework's tool_required then
            # asks for "auto", as llama-index's Anthropic does (an explicit tool_choice is the
            # user's, and the core's check reports it).
            required = tool_required and not _thinking_on(
                self.thinking if thinking is None else thinking
            )
            choice = to_wire_tool_choice(
                tool_choice,
                tool_required=required,
                tool_names=[t["function"]["name"] for t in wire_tools],
            )
            if choice is not None:
                request["tool_choice"] = choice
            if not allow_parallel_tool_calls:
                request["parallel_tool_calls"] = False
        return request

    def _validate_chat_with_tools_response(
        self,
        response: ChatResponse,
        tools: Sequence[BaseTool],
        allow_parallel_tool_calls: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        """Keep only the first tool call unless parallel calls are allowed."""
        return response if allow_parallel_tool_calls else keep_first_tool_call(response)

    def get_tool_calls_from_response(
        self,
        response: ChatResponse,
        error_on_no_tool_call: bool = True,
        **kwargs: Any,
    ) -> list[ToolSelection]:
        """The response's tool calls, with ids; arguments still streaming in parse partially.

        Raises:
            IncompleteToolCallError: in a whole reply (one that has a ``finish_reason``), a call
                whose arguments are not complete JSON, as when ``max_tokens`` cut it off: it
                must not run with half its arguments.
        """
        finish_reason = response.additional_kwargs.get("finish_reason")
        return tool_selections(
            response.message,
            error_on_no_tool_call=error_on_no_tool_call,
            final=finish_reason is not None,
            finish_reason=finish_reason,
        )


# Module-level, not closures inside the methods: they hold the stream and the converter only,
# never the LLM, and closing them closes the stream at once.


def _stream_responses(stream: ChatStream, converter: ChunkConverter) -> ChatResponseGen:
    with stream:
        for part in stream.parts():
            response = converter.add(part)
            if response is not None:
                yield response
        yield converter.finish(stream.completion())


class _AsyncResponses:
    """One async stream's responses: an async iterator object, deliberately not an async
    generator. At ``asyncio.run``'s shutdown the loop acloses every unfinished async generator
    at once; a generator of ours wrapped around the core's would be closed while it closes the
    core's, which asyncio reports as "aclose(): asynchronous generator is already running".
    An object is not on that list: breaking out of ``astream_chat`` stays silent, and
    ``aclose()`` (or the end of the stream, or an error) closes the connection.
    """

    __slots__ = ("_converter", "_done", "_parts", "_stream")

    def __init__(self, stream: AsyncChatStream, converter: ChunkConverter) -> None:
        self._stream = stream
        self._parts = stream.parts()
        self._converter = converter
        self._done = False

    def __aiter__(self) -> _AsyncResponses:
        return self

    async def __anext__(self) -> ChatResponse:
        if self._done:
            raise StopAsyncIteration
        try:
            while True:
                response = self._converter.add(await self._parts.__anext__())
                if response is not None:
                    return response
        except StopAsyncIteration:
            self._done = True
            final = self._converter.finish(self._stream.completion())
            await self._stream.aclose()
            return final
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Stop reading and release the connection."""
        self._done = True
        await self._stream.aclose()

    # asend and athrow complete the async generator protocol: LlamaIndex's callbacks wrap the
    # result only when ``isinstance(result, collections.abc.AsyncGenerator)``.

    async def asend(self, value: None) -> ChatResponse:
        """Like ``__anext__`` (a stream takes no values)."""
        return await self.__anext__()

    async def athrow(self, error: BaseException, *args: Any) -> ChatResponse:
        """Close the stream and raise ``error`` here, as a generator would."""
        await self.aclose()
        raise error


def _astream_responses(stream: AsyncChatStream, converter: ChunkConverter) -> ChatResponseAsyncGen:
    return cast("ChatResponseAsyncGen", _AsyncResponses(stream, converter))
