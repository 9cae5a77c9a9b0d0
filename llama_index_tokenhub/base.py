"""`TokenHub`: TokenHub's Claude models as a LlamaIndex function-calling LLM.

The class holds parameters, builds one request (`TokenHub._request`) and hands it to the core's
`TokenHubClient`; conversion lives in `messages` and `responses`. Retries, validation, SSE and
cost metering are the core's.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

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
from pydantic import AliasChoices, ConfigDict

from llama_index_tokenhub.messages import to_wire_messages, to_wire_tool_choice, to_wire_tools
from llama_index_tokenhub.responses import (
    ChunkConverter,
    keep_first_tool_call,
    response_from_completion,
    tool_selections,
)
from tokenhub_core import DEFAULT_BASE_URL, DEFAULT_MODEL, TokenHubClient, resolve_model
from tokenhub_core.client import ClientSlot
from tokenhub_core.params import (
    DEFAULT_MAX_TOKENS,
    REQUEST_PARAMS,
    check_sampling_params,
    normalize_stop,
)

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

__all__ = ["DEFAULT_CONTEXT_WINDOW", "TokenHub"]

DEFAULT_CONTEXT_WINDOW = 200_000
"""Context window assumed for a model the catalog does not know (Claude's standard window)."""


class TokenHub(FunctionCallingLLM):
    """TokenHub (Claude through one OpenAI-compatible endpoint) as a LlamaIndex LLM.

    ``Settings.llm = TokenHub()`` reads ``TOKENHUB_API_KEY`` (at call time) and
    ``TOKENHUB_BASE_URL``. Query engines, chat engines, structured output and agents all work,
    streamed or not. Every final response carries the server's usage in ``raw["usage"]`` and
    ``prompt_tokens``, ``completion_tokens``, ``total_tokens`` and ``cost_usd`` in
    ``additional_kwargs``.

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
        description="TokenHub key (th-...); TOKENHUB_API_KEY is read at call time when unset.",
    )
    base_url: str = Field(
        default="",
        validation_alias=AliasChoices("base_url", "api_base"),
        description="API base URL; defaults to TOKENHUB_BASE_URL, then TokenHub's. Alias api_base.",
    )
    max_tokens: int = Field(default=DEFAULT_MAX_TOKENS, description="Maximum output tokens.")
    temperature: float | None = Field(default=None, description="0.0-1.0; not with top_p.")
    top_p: float | None = Field(default=None, description="Nucleus sampling; not with temperature.")
    stop: list[str] | None = Field(default=None, description="Up to 4 stop sequences.")
    timeout: float | None = Field(default=60.0, description="Seconds per attempt.")
    max_retries: int = Field(default=2, ge=0, description="Retries in the core (the only layer).")
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
    http_client: httpx.Client | None = Field(default=None, exclude=True, repr=False)
    async_http_client: httpx.AsyncClient | None = Field(default=None, exclude=True, repr=False)

    _clients: ClientSlot = PrivateAttr(default_factory=ClientSlot)

    @field_validator("stop", mode="before")
    @classmethod
    def _normalize_stop(cls, stop: Any) -> list[str] | None:
        return normalize_stop(stop)

    @model_validator(mode="after")
    def _check_and_fill(self) -> TokenHub:
        check_sampling_params(
            temperature=self.temperature,
            top_p=self.top_p,
            stop=self.stop,
            max_tokens=self.max_tokens,
        )
        if not self.base_url:
            self.base_url = os.environ.get("TOKENHUB_BASE_URL") or DEFAULT_BASE_URL
        if not self.context_window:
            info = resolve_model(self.model)
            self.context_window = info.context_window if info else DEFAULT_CONTEXT_WINDOW
        return self

    @classmethod
    def class_name(cls) -> str:
        return "TokenHub_llm"

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

    def _get_client(self) -> TokenHubClient:
        return self._clients.get(
            api_key=self.api_key,
            base_url=self.base_url,
            timeout=self.timeout,
            max_retries=self.max_retries,
            default_headers=self.default_headers,
            http_client=self.http_client,
            http_async_client=self.async_http_client,
        )

    def _request(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Keyword arguments for the core: instance settings, then per-call ones (which win)."""
        kwargs = dict(kwargs)
        model = kwargs.pop("model", None) or self.model
        params: dict[str, Any] = {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "stop": self.stop,
        }
        extra_body: dict[str, Any] = {}
        for key, value in self.additional_kwargs.items():
            (params if key in REQUEST_PARAMS else extra_body)[key] = value
        extra_body.update(kwargs.pop("extra_body", None) or {})
        params.update(kwargs)  # an unknown name is the core's TypeError, naming it
        return {
            "model": model,
            "messages": to_wire_messages(messages),
            "extra_body": extra_body or None,
            **params,
        }

    def _chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        request = self._request(messages, kwargs)
        completion = self._get_client().chat(**request)
        return response_from_completion(completion, model=request["model"])

    async def _achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        request = self._request(messages, kwargs)
        completion = await self._get_client().achat(**request)
        return response_from_completion(completion, model=request["model"])

    def _stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        request = self._request(messages, kwargs)
        stream = self._get_client().stream(**request)  # validated now, sent on first next()
        converter = ChunkConverter(model=request["model"])

        def gen() -> ChatResponseGen:
            with stream:
                for chunk in stream:
                    response = converter.add(chunk)
                    if response is not None:
                        yield response
                yield converter.finish(stream.completion())

        return gen()

    async def _astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        request = self._request(messages, kwargs)
        stream = self._get_client().astream(**request)
        converter = ChunkConverter(model=request["model"])

        async def gen() -> ChatResponseAsyncGen:
            async with stream:
                async for chunk in stream:
                    response = converter.add(chunk)
                    if response is not None:
                        yield response
                yield converter.finish(stream.completion())

        return gen()

    # Chat: instrumented.

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self._chat(messages, **kwargs)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return await self._achat(messages, **kwargs)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        return self._stream_chat(messages, **kwargs)

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        return await self._astream_chat(messages, **kwargs)

    # Completion: derived from the undecorated chat methods, so each call emits one event pair.

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return chat_to_completion_decorator(self._chat)(prompt, **kwargs)

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        return await achat_to_completion_decorator(self._achat)(prompt, **kwargs)

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        return stream_chat_to_completion_decorator(self._stream_chat)(prompt, **kwargs)

    @llm_completion_callback()
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
            wire_tools = to_wire_tools(tools)
            request["tools"] = wire_tools
            choice = to_wire_tool_choice(
                tool_choice,
                tool_required=tool_required,
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
        """The response's tool calls, with ids; arguments still streaming in parse partially."""
        return tool_selections(response.message, error_on_no_tool_call=error_on_no_tool_call)
