"""`ChatTokenHub`: TokenHub's Claude models as a LangChain chat model, thin over `tokenhub_core`."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import httpx
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.language_models.model_profile import ModelProfile
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult, Generation
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)

from langchain_tokenhub.claude import MESSAGES, thinking_is_on
from langchain_tokenhub.errors import translate_errors
from langchain_tokenhub.messages import (
    MODEL_PROVIDER,
    StreamConverter,
    completion_to_message,
    convert_messages,
    convert_tools,
    generation_chunk,
    normalize_tool_choice,
    tool_names,
)
from langchain_tokenhub.structured import (
    json_parser,
    schema_instructions,
    structured_runnable,
    tool_call_parser,
)
from tokenhub_core import DEFAULT_MODEL, ChatCompletion, TokenHubClient, resolve_model
from tokenhub_core._lifecycle import DEFAULT_DEADLINE_S
from tokenhub_core.client import API_KEY_ENV, ClientSlot, check_base_url
from tokenhub_core.params import (
    DEFAULT_MAX_TOKENS,
    REQUEST_PARAMS,
    apply_aliases,
    check_known,
    check_max_retries,
    check_no_secrets,
    check_sampling_params,
    estimate_tokens,
    normalize_protocol,
    normalize_stop,
    normalize_thinking,
    normalize_timeout,
)

__all__ = ["ChatTokenHub"]

# Per-call keywords that are ours rather than request fields.
_CALL_OPTIONS = frozenset(
    {
        "model",
        "protocol",
        "extra_body",
        "extra_headers",
        "stream_usage",
        "stream",
        "timeout",
        "deadline",
    }
)
_CALL_KEYWORDS = REQUEST_PARAMS | _CALL_OPTIONS
Timeout = float | httpx.Timeout | tuple[float | None, ...] | None

_F = TypeVar("_F", bound=Callable[..., Any])


def _presigned(function: _F) -> _F:
    """``function`` with its signature computed once: LangChain inspects ``_generate`` on every
    call (does it take ``run_manager``?), and `inspect.signature` reads ``__signature__`` first."""
    function.__signature__ = inspect.signature(function)  # type: ignore[attr-defined]
    return function


@dataclass(frozen=True)
class _Request:
    model: str
    messages: list[dict[str, Any]]
    params: dict[str, Any]
    stream_usage: bool
    protocol: str


class ChatTokenHub(BaseChatModel):
    """Claude through TokenHub, as a LangChain chat model.

    Drop-in for ``ChatOpenAI(base_url=..., api_key=...)``: streaming with usage, tool calling,
    structured output, images, cost per reply, and errors LangChain recognizes. With
    ``protocol="messages"`` it speaks Claude's own Messages API, as ``ChatAnthropic`` does:
    prompt caching with cache usage and prices, extended thinking, PDFs.

    Example:
        ```python
        from langchain_tokenhub import ChatTokenHub

        llm = ChatTokenHub(model="anthropic/claude-haiku-4-5", temperature=0)
        reply = llm.invoke("Explain CAP theorem in 3 bullets.")
        reply.response_metadata["cost_usd"]
        ```
    """

    model: str = Field(default=DEFAULT_MODEL, alias="model_name")
    """Model id, ``anthropic/claude-...`` or the bare short name (alias ``model_name``)."""
    api_key: SecretStr | None = None
    """``th-...`` key (alias ``openai_api_key``); when unset, ``TOKENHUB_API_KEY`` is read at the
    first call (not at construction, like the base URL). Missing is an error at call time."""
    base_url: str | None = None
    """When unset, ``TOKENHUB_BASE_URL`` (read at the first call), then
    ``https://tokenhub.store/api/v1`` (aliases ``openai_api_base``, ``api_base``)."""
    max_tokens: int = DEFAULT_MAX_TOKENS
    """Maximum output tokens, always sent (Claude requires it); None means 1024, TokenHub's
    default (alias ``max_completion_tokens``)."""
    temperature: float | None = None
    """0.0-1.0. Set temperature or top_p, not both."""
    top_p: float | None = None
    """0.0-1.0. Set temperature or top_p, not both."""
    stop: list[str] | None = Field(default=None, alias="stop_sequences")
    """At most 4 stop sequences."""
    top_k: int | None = None
    """Sample from the k likeliest tokens (``protocol="messages"`` only; not with thinking)."""
    protocol: str = "chat/completions"
    """``"chat/completions"`` (OpenAI-compatible, the default) or ``"messages"``: Claude's own
    Messages API, for prompt caching with cache usage, extended thinking and PDFs. Also per call."""
    thinking: int | str | dict[str, Any] | None = None
    """Extended thinking (``protocol="messages"``): a token budget (>= 1024, below
    ``max_tokens``), ``"adaptive"``, or ChatAnthropic's dict (``{"type": "enabled",
    "budget_tokens": 2048}``, ``{"type": "adaptive"}``). Also per call; None: off."""
    timeout: Timeout = 60.0
    """Seconds per attempt (None waits forever), an ``httpx.Timeout`` or a ``(connect, read)``
    pair (alias ``request_timeout``)."""
    deadline: float | None = DEFAULT_DEADLINE_S
    """Seconds one attempt may take in all, however slowly the server sends (``timeout`` bounds
    each read, this their sum); None: no limit."""
    max_retries: int = 2
    """Retries of retryable failures (429, 5xx, connection errors), inside the core only."""
    default_headers: dict[str, str] | None = Field(default=None, exclude=True, repr=False)
    """Headers sent with every request; never serialized (they may carry credentials)."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Other request fields (``user``, ``seed``, ``metadata``... or anything TokenHub accepts);
    provider extras are better in ``extra_body``. A credential-looking name is refused."""
    extra_body: dict[str, Any] | None = None
    """Fields merged into the request body as they are."""
    streaming: bool = False
    """Stream even from ``invoke`` (callbacks then see every token)."""
    stream_usage: bool = True
    """Attach usage to the last streamed chunk."""
    http_client: httpx.Client | None = Field(default=None, exclude=True)
    """Your own ``httpx.Client``, used as it is."""
    http_async_client: httpx.AsyncClient | None = Field(default=None, exclude=True)
    """Your own ``httpx.AsyncClient``, used as it is."""

    # A validation error must not echo the input: it would hold the api_key.
    model_config = ConfigDict(
        populate_by_name=True, arbitrary_types_allowed=True, hide_input_in_errors=True
    )

    _clients: ClientSlot = PrivateAttr(default_factory=ClientSlot)

    # --- construction -------------------------------------------------------------------------

    @model_validator(mode="before")
    @classmethod
    def _known_fields_only(cls, values: Any) -> Any:
        """Rename ChatOpenAI's names to ours; an unknown field is an error naming it."""
        if not isinstance(values, dict):
            return values
        values = apply_aliases(values, where="ChatTokenHub")
        known = set(cls.model_fields) | {f.alias for f in cls.model_fields.values() if f.alias}
        check_known(values, known | REQUEST_PARAMS, where="ChatTokenHub")
        if request_fields := [k for k in values if k in REQUEST_PARAMS and k not in known]:
            # Request fields without a field of their own (seed, user, n...): sent every call.
            model_kwargs = dict(values.get("model_kwargs") or {})
            model_kwargs.update({k: values.pop(k) for k in request_fields})
            values["model_kwargs"] = model_kwargs
        check_no_secrets(values.get("model_kwargs") or {}, param="model_kwargs")
        check_no_secrets(values.get("extra_body") or {}, param="extra_body")
        if values.get("max_tokens", DEFAULT_MAX_TOKENS) is None:
            values["max_tokens"] = DEFAULT_MAX_TOKENS
        return values

    @field_validator("timeout")
    @classmethod
    def _check_timeout(cls, timeout: Timeout) -> Timeout:
        normalize_timeout(timeout)
        return timeout

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, base_url: str | None) -> str | None:
        return None if base_url is None else check_base_url(base_url)

    @field_validator("max_retries", mode="before")
    @classmethod
    def _check_max_retries(cls, max_retries: Any) -> int:
        return check_max_retries(max_retries)

    @field_validator("protocol", mode="before")
    @classmethod
    def _check_protocol(cls, protocol: Any) -> str:
        return normalize_protocol(protocol)

    @field_validator("thinking")
    @classmethod
    def _check_thinking(cls, thinking: Any) -> Any:
        normalize_thinking(thinking)
        return thinking

    @field_validator("stop", mode="before")
    @classmethod
    def _normalize_stop(cls, stop: Any) -> Any:
        return normalize_stop(stop) or None

    @model_validator(mode="after")
    def _check_claude_rules(self) -> ChatTokenHub:
        check_sampling_params(
            temperature=self.temperature,
            top_p=self.top_p,
            stop=self.stop,
            max_tokens=self.max_tokens,
        )
        return self

    # --- LangChain plumbing -------------------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "tokenhub-chat"

    @property
    def lc_secrets(self) -> dict[str, str]:
        return {"api_key": API_KEY_ENV}

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return True

    @classmethod
    def get_lc_namespace(cls) -> list[str]:
        """``["langchain_tokenhub", "chat_models"]``."""
        return ["langchain_tokenhub", "chat_models"]

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "base_url": self.base_url,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "stop": self.stop,
            "top_k": self.top_k,
            "protocol": self.protocol,
            "thinking": self.thinking,
            "model_kwargs": self.model_kwargs,
            "streaming": self.streaming,
            "stream_usage": self.stream_usage,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider=MODEL_PROVIDER,
            ls_model_name=kwargs.get("model") or self.model,
            ls_model_type="chat",
        )
        temperature = kwargs.get("temperature", self.temperature)
        if temperature is not None:
            params["ls_temperature"] = temperature
        max_tokens = kwargs.get("max_tokens") or self.max_tokens
        params["ls_max_tokens"] = max_tokens
        if stop := stop or kwargs.get("stop") or self.stop:
            params["ls_stop"] = stop
        return params

    def get_num_tokens(self, text: str) -> int:
        """An offline *estimate* of the tokens in ``text`` (as one user message)."""
        return estimate_tokens([{"role": "user", "content": text}])

    def get_num_tokens_from_messages(
        self,
        messages: list[BaseMessage],
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool] | None = None,
    ) -> int:
        """An offline *estimate* of the prompt's tokens (Claude's tokenizer is not public).

        About four characters a token, a fixed cost per image; errs on the high side.
        """
        wire = convert_messages(messages, protocol=self.protocol)
        return estimate_tokens(wire, convert_tools(tools) if tools else None)

    # --- the request path ---------------------------------------------------------------------

    def _resolve_model_profile(self) -> ModelProfile | None:
        """What the catalog knows of the model (None for a model it does not know)."""
        info = resolve_model(self.model)
        if info is None:
            return None
        native = self.protocol == MESSAGES
        return ModelProfile(
            max_input_tokens=info.context_window,
            max_output_tokens=info.max_output_tokens,
            text_inputs=True,
            image_inputs=info.supports_vision,
            image_url_inputs=info.supports_vision,
            pdf_inputs=native,
            pdf_tool_message=native,
            image_tool_message=info.supports_vision,
            reasoning_output=native and bool(info.thinking_modes),
            audio_inputs=False,
            video_inputs=False,
            text_outputs=True,
            tool_calling=info.supports_tools,
            tool_choice=info.supports_tools,
            tool_call_streaming=info.supports_tools,
            structured_output=info.supports_tools,
        )

    def _get_client(self, protocol: str) -> TokenHubClient:
        """The instance's client, built on first use and rebuilt if its settings change."""
        return self._clients.get(
            protocol=protocol,
            api_key=self.api_key,
            base_url=self.base_url,
            timeout=self.timeout,  # the client checks it as it is built
            max_retries=self.max_retries,
            default_headers=self.default_headers,
            http_client=self.http_client,
            http_async_client=self.http_async_client,
            deadline=self.deadline,
        )

    def _request(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> _Request:
        """The one payload builder shared by the four generate/stream methods.

        Per-call values win over the instance's; a per-call None keeps the instance's value.
        """
        kwargs = apply_aliases(kwargs, where="the call")
        check_known(kwargs, _CALL_KEYWORDS, where="ChatTokenHub call")
        params: dict[str, Any] = {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "stop": self.stop,
            "top_k": self.top_k,
            "thinking": self.thinking,
        }
        extra_body = dict(self.extra_body or {})
        for key, value in self.model_kwargs.items():
            (params if key in REQUEST_PARAMS else extra_body)[key] = value
        for key, value in kwargs.items():
            if key in REQUEST_PARAMS and value is not None:
                params[key] = value
        if stop is not None:
            params["stop"] = stop or None
        if extra := kwargs.get("extra_body"):
            extra_body.update(extra)
        if extra_body:
            params["extra_body"] = extra_body
        if kwargs.get("extra_headers"):
            params["extra_headers"] = kwargs["extra_headers"]
        for option in ("timeout", "deadline"):
            if kwargs.get(option) is not None:
                params[option] = kwargs[option]
        if params.get("tool_choice") is not None:
            params["tool_choice"] = normalize_tool_choice(
                params["tool_choice"], tool_names(params.get("tools") or ())
            )
        protocol = normalize_protocol(kwargs.get("protocol") or self.protocol)
        return _Request(
            model=kwargs.get("model") or self.model,
            messages=convert_messages(messages, protocol=protocol),
            params=params,
            stream_usage=kwargs.get("stream_usage", self.stream_usage),
            protocol=protocol,
        )

    @_presigned
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        with translate_errors():
            request = self._request(messages, stop, kwargs)
            completion = self._get_client(request.protocol).chat(
                model=request.model, messages=request.messages, **request.params
            )
        return _chat_result(completion, request.model)

    @_presigned
    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        with translate_errors():
            request = self._request(messages, stop, kwargs)
            completion = await self._get_client(request.protocol).achat(
                model=request.model, messages=request.messages, **request.params
            )
        return _chat_result(completion, request.model)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        with translate_errors():
            request = self._request(messages, stop, kwargs)
            converter = _stream_converter(request)
            with self._get_client(request.protocol).stream(
                model=request.model, messages=request.messages, **request.params
            ) as stream:
                for part in stream.parts():
                    message = converter.convert(part, stream.request_id)
                    if message is not None:
                        generation = generation_chunk(message)
                        if run_manager:
                            run_manager.on_llm_new_token(generation.text, chunk=generation)
                        yield generation
                yield generation_chunk(converter.finish(stream.usage))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        with translate_errors():
            request = self._request(messages, stop, kwargs)
            converter = _stream_converter(request)
            async with self._get_client(request.protocol).astream(
                model=request.model, messages=request.messages, **request.params
            ) as stream:
                async for part in stream.parts():
                    message = converter.convert(part, stream.request_id)
                    if message is not None:
                        generation = generation_chunk(message)
                        if run_manager:
                            await run_manager.on_llm_new_token(generation.text, chunk=generation)
                        yield generation
                yield generation_chunk(converter.finish(stream.usage))

    def _combine_llm_outputs(self, llm_outputs: list[dict[str, Any] | None]) -> dict[str, Any]:
        """One ``llm_output`` for a batch: token usage summed, the first model name."""
        token_usage: dict[str, Any] = {}
        combined: dict[str, Any] = {}
        for output in llm_outputs:
            if not output:
                continue
            combined.setdefault("model_name", output.get("model_name"))
            combined.setdefault("system_fingerprint", output.get("system_fingerprint"))
            _add_token_usage(token_usage, output.get("token_usage") or {})
        combined["token_usage"] = token_usage
        combined.setdefault("model_name", self.model)
        return combined

    def _convert_cached_generations(self, cache_val: list[Generation]) -> list[ChatGeneration]:
        """A cache hit cost nothing: ``cost_usd`` 0.0, as langchain-core zeroes ``total_cost``."""
        generations = super()._convert_cached_generations(cache_val)
        for generation in generations:
            metadata = generation.message.response_metadata
            if metadata.get("model_provider") == MODEL_PROVIDER and "cost_usd" in metadata:
                generation.message.response_metadata = {**metadata, "cost_usd": 0.0}
        return generations

    # --- binding ------------------------------------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: dict[str, Any] | str | bool | None = None,
        strict: bool | None = None,
        parallel_tool_calls: bool | None = None,
        response_format: dict[str, Any] | type | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (BaseTool, functions, pydantic models, TypedDicts or tool dicts).

        Args:
            tools: the tools.
            tool_choice: ``"auto"``, ``"none"``, ``"required"``, ``"any"`` (= required),
                ``True`` (required; with one tool, that tool), a tool name, or the dict form.
            strict: passed through on each tool (Claude's compatibility layer may ignore it).
            parallel_tool_calls: allow or forbid several calls in one reply.
            response_format: a wire ``response_format`` dict, or a schema for JSON-schema output.
            **kwargs: other per-call parameters.
        """
        with translate_errors():
            wire_tools = convert_tools(tools, strict=strict)
            choice = normalize_tool_choice(tool_choice, tool_names(wire_tools))
            check_sampling_params(
                temperature=kwargs.get("temperature", self.temperature),
                top_p=kwargs.get("top_p", self.top_p),
                stop=kwargs.get("stop", self.stop) or None,
                max_tokens=kwargs.get("max_tokens", self.max_tokens),
            )
        if choice is not None:
            kwargs["tool_choice"] = choice
        if parallel_tool_calls is not None:
            kwargs["parallel_tool_calls"] = parallel_tool_calls
        if response_format is not None:
            kwargs["response_format"] = _response_format(response_format, strict)
        return self.bind(tools=wire_tools, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type | None = None,
        *,
        method: Literal["function_calling", "json_mode", "json_schema"] = "function_calling",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """A runnable whose output is validated against ``schema``.

        Args:
            schema: a pydantic class, a TypedDict or a JSON schema (optional for ``json_mode``).
            method: ``function_calling`` (default: a forced tool call, the gateway's reliable
                path), ``json_mode`` (``response_format`` json_object; describe the keys in
                your prompt) or ``json_schema`` (``response_format`` json_schema, with the schema
                also put in the system prompt, since Claude's layer may ignore response_format).
            include_raw: return ``{"raw", "parsed", "parsing_error"}`` instead of raising.
            strict: passed through to the tool / response format.
            **kwargs: must be empty.

        Streaming yields partial objects as they arrive (pydantic objects once complete).
        """
        if kwargs:
            raise ValueError(f"unsupported arguments: {sorted(kwargs)}")
        if method not in ("function_calling", "json_mode", "json_schema"):
            raise ValueError(
                f"method={method!r}: use 'function_calling', 'json_mode' or 'json_schema'"
            )
        if schema is None and method != "json_mode":
            raise ValueError(f"method={method!r} needs a schema")
        trace = {"kwargs": {"method": method, "strict": strict}, "schema": schema}
        llm: Runnable[LanguageModelInput, BaseMessage]
        if method == "function_calling":
            assert schema is not None
            name = convert_to_openai_tool(schema)["function"]["name"]
            # Claude cannot be forced to a tool while thinking: it is asked, and a reply
            # without the call raises OutputParserException (as with ChatAnthropic).
            forced = None if thinking_is_on(self.thinking) else name
            llm = self.bind_tools(
                [schema], tool_choice=forced, strict=strict, ls_structured_output_format=trace
            )
            parser = tool_call_parser(schema, name)
        elif method == "json_mode":
            llm = self.bind(
                response_format={"type": "json_object"}, ls_structured_output_format=trace
            )
            parser = json_parser(schema)
        else:
            assert schema is not None
            instructions = SystemMessage(schema_instructions(convert_to_json_schema(schema)))
            bound = self.bind(
                response_format=_response_format(schema, strict), ls_structured_output_format=trace
            )
            add_instructions: Runnable[LanguageModelInput, list[BaseMessage]] = RunnableLambda(
                lambda value: [*self._convert_input(value).to_messages(), instructions],
                name="add_schema_instructions",
            )
            llm = add_instructions | bound
            parser = json_parser(schema)
        return structured_runnable(llm, parser, include_raw=include_raw)


def _stream_converter(request: _Request) -> StreamConverter:
    # Content streams as blocks when thinking is on, as ChatAnthropic's does.
    blocks = thinking_is_on(request.params.get("thinking"))
    return StreamConverter(request.model, usage=request.stream_usage, blocks=blocks)


def _chat_result(completion: ChatCompletion, model: str) -> ChatResult:
    """The result, with ``llm_output`` shaped as ChatOpenAI's (``token_usage``, ``model_name``)."""
    message = completion_to_message(completion, model=model, request_id=completion.request_id)
    llm_output: dict[str, Any] = {
        "model_name": message.response_metadata["model_name"],
        "id": completion.id,
        "system_fingerprint": completion.system_fingerprint,
    }
    if completion.usage is not None:
        llm_output["token_usage"] = completion.usage.model_dump(exclude_none=True)
    return ChatResult(generations=[ChatGeneration(message=message)], llm_output=llm_output)


def _add_token_usage(total: dict[str, Any], usage: Mapping[str, Any]) -> None:
    for key, value in usage.items():
        if isinstance(value, int):  # tested first: most values are counts, and Mapping is an ABC
            if not isinstance(value, bool):
                total[key] = total.get(key, 0) + value
        elif isinstance(value, Mapping):
            _add_token_usage(total.setdefault(key, {}), value)


def _response_format(schema: dict[str, Any] | type, strict: bool | None) -> dict[str, Any]:
    """A wire ``response_format``: wire dicts pass through, schemas become ``json_schema``."""
    if isinstance(schema, dict) and schema.get("type") in ("json_object", "json_schema", "text"):
        return schema
    json_schema = convert_to_json_schema(schema)
    spec: dict[str, Any] = {"name": json_schema.get("title") or "response", "schema": json_schema}
    if strict is not None:
        spec["strict"] = strict
    return {"type": "json_schema", "json_schema": spec}
