"""The contenders: what each one calls, built against the benchmark server's two endpoints.

Every contender sends the same request (model, one user message, ``max_tokens=1024``; streams
ask for usage where the library allows it) and has its answer checked before it is timed. The
framework imports happen inside the builders, so a broken package fails its own rows only.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from benchserver import Endpoint
from canned import build_langchain_alone, build_llamaindex_alone
from ops import (
    CALL_PROMPT,
    CONTEXT_WINDOW,
    MAX_TOKENS,
    MODEL,
    STREAM_PROMPT,
    AsyncOps,
    Contender,
    SyncOps,
    heard,
)

__all__ = ["CONTENDERS"]


def _wire_messages(prompt: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": prompt}]


def _openai_piece(chunk: Any) -> str | None:
    return chunk.choices[0].delta.content if chunk.choices else None


def _dict_piece(chunk: dict[str, Any]) -> str | None:
    choices = chunk["choices"]
    return choices[0]["delta"].get("content") if choices else None


def _dict_text(body: dict[str, Any]) -> str:
    return str(body["choices"][0]["message"]["content"])


def _openai_text(completion: Any) -> str:
    return str(completion.choices[0].message.content)


# -- raw httpx: the floor ------------------------------------------------------------------------


def _httpx_request(ep: Endpoint, stream: bool) -> tuple[str, dict[str, str], dict[str, Any]]:
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": _wire_messages(STREAM_PROMPT if stream else CALL_PROMPT),
        "max_tokens": MAX_TOKENS,
    }
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    headers = {"Authorization": f"Bearer {ep.api_key}"}
    return f"{ep.base_url}/chat/completions", headers, body


def _build_httpx(short: Endpoint, long: Endpoint) -> SyncOps:
    import httpx

    client = httpx.Client(timeout=60.0)
    call_url, call_headers, call_body = _httpx_request(short, stream=False)
    stream_url, stream_headers, stream_body = _httpx_request(long, stream=True)
    loads = json.loads

    def call() -> Any:
        response = client.post(call_url, headers=call_headers, json=call_body)
        response.raise_for_status()
        return loads(response.content)

    def open_stream() -> Iterator[Any]:
        with client.stream("POST", stream_url, headers=stream_headers, json=stream_body) as r:
            r.raise_for_status()
            for line in r.iter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    yield loads(line[6:])

    return SyncOps(call, _dict_text, open_stream, _dict_piece)


def _build_httpx_async(short: Endpoint, long: Endpoint) -> AsyncOps:
    import httpx

    client = httpx.AsyncClient(timeout=60.0)
    call_url, call_headers, call_body = _httpx_request(short, stream=False)
    stream_url, stream_headers, stream_body = _httpx_request(long, stream=True)
    loads = json.loads

    async def call() -> Any:
        response = await client.post(call_url, headers=call_headers, json=call_body)
        response.raise_for_status()
        return loads(response.content)

    async def lines() -> AsyncIterator[Any]:
        async with client.stream("POST", stream_url, headers=stream_headers, json=stream_body) as r:
            r.raise_for_status()
            async for line in r.aiter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    yield loads(line[6:])

    async def open_stream() -> AsyncIterable[Any]:
        return lines()

    return AsyncOps(call, _dict_text, open_stream, _dict_piece)


# -- the openai SDK: for reference ---------------------------------------------------------------


def _build_openai(short: Endpoint, long: Endpoint) -> SyncOps:
    from openai import OpenAI

    call_client = OpenAI(base_url=short.base_url, api_key=short.api_key, max_retries=0)
    stream_client = OpenAI(base_url=long.base_url, api_key=long.api_key, max_retries=0)
    call_messages: Any = _wire_messages(CALL_PROMPT)
    stream_messages: Any = _wire_messages(STREAM_PROMPT)

    def call() -> Any:
        return call_client.chat.completions.create(
            model=MODEL, messages=call_messages, max_tokens=MAX_TOKENS
        )

    def open_stream() -> Iterable[Any]:
        return stream_client.chat.completions.create(
            model=MODEL,
            messages=stream_messages,
            max_tokens=MAX_TOKENS,
            stream=True,
            stream_options={"include_usage": True},
        )

    return SyncOps(call, _openai_text, open_stream, _openai_piece)


def _build_openai_async(short: Endpoint, long: Endpoint) -> AsyncOps:
    from openai import AsyncOpenAI

    call_client = AsyncOpenAI(base_url=short.base_url, api_key=short.api_key, max_retries=0)
    stream_client = AsyncOpenAI(base_url=long.base_url, api_key=long.api_key, max_retries=0)
    call_messages: Any = _wire_messages(CALL_PROMPT)
    stream_messages: Any = _wire_messages(STREAM_PROMPT)

    async def call() -> Any:
        return await call_client.chat.completions.create(
            model=MODEL, messages=call_messages, max_tokens=MAX_TOKENS
        )

    async def open_stream() -> AsyncIterable[Any]:
        return await stream_client.chat.completions.create(
            model=MODEL,
            messages=stream_messages,
            max_tokens=MAX_TOKENS,
            stream=True,
            stream_options={"include_usage": True},
        )

    return AsyncOps(call, _openai_text, open_stream, _openai_piece)


# -- our core ------------------------------------------------------------------------------------


def _build_core(short: Endpoint, long: Endpoint) -> SyncOps:
    from tokenhub_core import TokenHubClient

    call_client = TokenHubClient(api_key=short.api_key, base_url=short.base_url)
    stream_client = TokenHubClient(api_key=long.api_key, base_url=long.base_url)
    call_messages = _wire_messages(CALL_PROMPT)
    stream_messages = _wire_messages(STREAM_PROMPT)

    def call() -> Any:
        return call_client.chat(model=MODEL, messages=call_messages)

    def open_stream() -> Iterable[Any]:
        return stream_client.stream(model=MODEL, messages=stream_messages)

    return SyncOps(call, _openai_text, open_stream, _openai_piece)


def _build_core_async(short: Endpoint, long: Endpoint) -> AsyncOps:
    from tokenhub_core import TokenHubClient

    call_client = TokenHubClient(api_key=short.api_key, base_url=short.base_url)
    stream_client = TokenHubClient(api_key=long.api_key, base_url=long.base_url)
    call_messages = _wire_messages(CALL_PROMPT)
    stream_messages = _wire_messages(STREAM_PROMPT)

    async def call() -> Any:
        return await call_client.achat(model=MODEL, messages=call_messages)

    async def open_stream() -> AsyncIterable[Any]:
        return stream_client.astream(model=MODEL, messages=stream_messages)

    return AsyncOps(call, _openai_text, open_stream, _openai_piece)


# -- LangChain -----------------------------------------------------------------------------------


def _langchain_models(short: Endpoint, long: Endpoint, ours: bool) -> tuple[Any, Any]:
    if ours:
        from langchain_tokenhub import ChatTokenHub

        ours_cls: Any = ChatTokenHub  # Any: mypy does not see pydantic's aliases and coercions

        def make(ep: Endpoint) -> Any:
            return ours_cls(model=MODEL, base_url=ep.base_url, api_key=ep.api_key)

    else:
        from langchain_openai import ChatOpenAI

        anchor_cls: Any = ChatOpenAI

        def make(ep: Endpoint) -> Any:
            # stream_usage: ChatOpenAI turns streamed usage off for a custom base_url.
            return anchor_cls(
                model=MODEL,
                base_url=ep.base_url,
                api_key=ep.api_key,
                max_retries=0,
                stream_usage=True,
                max_tokens=MAX_TOKENS,
            )

    return make(short), make(long)


def _lc_text(message: Any) -> str:
    return str(message.content)


def _lc_piece(chunk: Any) -> str | None:
    return chunk.content if isinstance(chunk.content, str) else None


def _build_langchain(ours: bool) -> Callable[[Endpoint, Endpoint], SyncOps]:
    def build(short: Endpoint, long: Endpoint) -> SyncOps:
        from langchain_core.messages import HumanMessage

        call_model, stream_model = _langchain_models(short, long, ours)
        call_messages = [HumanMessage(CALL_PROMPT)]
        stream_messages = [HumanMessage(STREAM_PROMPT)]
        return SyncOps(
            lambda: call_model.invoke(call_messages),
            _lc_text,
            lambda: stream_model.stream(stream_messages),
            _lc_piece,
        )

    return build


def _build_langchain_async(ours: bool) -> Callable[[Endpoint, Endpoint], AsyncOps]:
    def build(short: Endpoint, long: Endpoint) -> AsyncOps:
        from langchain_core.messages import HumanMessage

        call_model, stream_model = _langchain_models(short, long, ours)
        call_messages = [HumanMessage(CALL_PROMPT)]
        stream_messages = [HumanMessage(STREAM_PROMPT)]

        async def call() -> Any:
            return await call_model.ainvoke(call_messages)

        async def open_stream() -> AsyncIterable[Any]:
            return stream_model.astream(stream_messages)  # type: ignore[no-any-return]

        return AsyncOps(call, _lc_text, open_stream, _lc_piece)

    return build


# -- LlamaIndex ----------------------------------------------------------------------------------


def _llamaindex_models(short: Endpoint, long: Endpoint, ours: bool) -> tuple[Any, Any]:
    if ours:
        from llama_index_tokenhub import TokenHub

        ours_cls: Any = TokenHub

        def make(ep: Endpoint) -> Any:
            return ours_cls(model=MODEL, base_url=ep.base_url, api_key=ep.api_key)

    else:
        from llama_index.core.base.llms.types import LLMMetadata
        from llama_index.llms.openai import OpenAI

        class ClaudeThroughOpenAI(OpenAI):
            """What a user must write: OpenAI's metadata raises "Unknown model" for Claude ids.

            Without ``is_chat_model=True`` it would also post to ``/completions``.
            """

            @property
            def metadata(self) -> LLMMetadata:
                return LLMMetadata(
                    context_window=CONTEXT_WINDOW,
                    num_output=self.max_tokens or -1,
                    is_chat_model=True,
                    is_function_calling_model=True,
                    model_name=self.model,
                )

        def make(ep: Endpoint) -> Any:
            return ClaudeThroughOpenAI(
                model=MODEL,
                api_base=ep.base_url,
                api_key=ep.api_key,
                max_retries=0,
                max_tokens=MAX_TOKENS,
            )

    return make(short), make(long)


def _li_text(response: Any) -> str:
    return str(response.message.content)


def _li_piece(response: Any) -> str | None:
    return response.delta  # type: ignore[no-any-return]


def _li_messages() -> tuple[list[Any], list[Any]]:
    from llama_index.core.base.llms.types import ChatMessage

    return (
        [ChatMessage(role="user", content=CALL_PROMPT)],
        [ChatMessage(role="user", content=STREAM_PROMPT)],
    )


def _build_llamaindex(ours: bool) -> Callable[[Endpoint, Endpoint], SyncOps]:
    def build(short: Endpoint, long: Endpoint) -> SyncOps:
        call_llm, stream_llm = _llamaindex_models(short, long, ours)
        call_messages, stream_messages = _li_messages()
        return SyncOps(
            lambda: call_llm.chat(call_messages),
            _li_text,
            lambda: stream_llm.stream_chat(stream_messages),
            _li_piece,
        )

    return build


def _build_llamaindex_async(ours: bool) -> Callable[[Endpoint, Endpoint], AsyncOps]:
    def build(short: Endpoint, long: Endpoint) -> AsyncOps:
        call_llm, stream_llm = _llamaindex_models(short, long, ours)
        call_messages, stream_messages = _li_messages()

        async def call() -> Any:
            return await call_llm.achat(call_messages)

        async def open_stream() -> AsyncIterable[Any]:
            return await stream_llm.astream_chat(stream_messages)  # type: ignore[no-any-return]

        return AsyncOps(call, _li_text, open_stream, _li_piece)

    return build


CONTENDERS: tuple[Contender, ...] = (
    Contender("httpx", "raw httpx", "Client.post / .stream", "floor", "floor", False, _build_httpx),
    Contender(
        "openai",
        "openai SDK",
        "chat.completions.create",
        "reference",
        "reference",
        False,
        _build_openai,
    ),
    Contender(
        "core", "TokenHubClient (ours)", "chat / stream", "reference", "ours", False, _build_core
    ),
    Contender(
        "langchain-openai",
        "ChatOpenAI (langchain-openai)",
        "invoke / stream",
        "langchain",
        "anchor",
        False,
        _build_langchain(ours=False),
    ),
    Contender(
        "langchain",
        "ChatTokenHub (ours)",
        "invoke / stream",
        "langchain",
        "ours",
        False,
        _build_langchain(ours=True),
    ),
    Contender(
        "langchain-alone",
        "LangChain alone (canned model, no HTTP)",
        "invoke / stream",
        "langchain",
        "framework",
        False,
        build_langchain_alone(is_async=False),
    ),
    Contender(
        "llamaindex-openai",
        "OpenAI (llama-index-llms-openai)",
        "chat / stream_chat",
        "llamaindex",
        "anchor",
        False,
        _build_llamaindex(ours=False),
    ),
    Contender(
        "llamaindex",
        "TokenHub (ours)",
        "chat / stream_chat",
        "llamaindex",
        "ours",
        False,
        _build_llamaindex(ours=True),
    ),
    Contender(
        "llamaindex-heard",
        "TokenHub (ours), an event handler listening",
        "chat / stream_chat",
        "llamaindex",
        "ours-heard",
        False,
        heard(_build_llamaindex(ours=True)),
    ),
    Contender(
        "llamaindex-alone",
        "LlamaIndex alone (canned LLM, no HTTP)",
        "chat / stream_chat",
        "llamaindex",
        "framework",
        False,
        build_llamaindex_alone(is_async=False),
    ),
    Contender(
        "httpx-async",
        "raw httpx",
        "AsyncClient.post / .stream",
        "floor",
        "floor",
        True,
        _build_httpx_async,
    ),
    Contender(
        "openai-async",
        "openai SDK",
        "AsyncOpenAI chat.completions.create",
        "reference",
        "reference",
        True,
        _build_openai_async,
    ),
    Contender(
        "core-async",
        "TokenHubClient (ours)",
        "achat / astream",
        "reference",
        "ours",
        True,
        _build_core_async,
    ),
    Contender(
        "langchain-openai-async",
        "ChatOpenAI (langchain-openai)",
        "ainvoke / astream",
        "langchain",
        "anchor",
        True,
        _build_langchain_async(ours=False),
    ),
    Contender(
        "langchain-async",
        "ChatTokenHub (ours)",
        "ainvoke / astream",
        "langchain",
        "ours",
        True,
        _build_langchain_async(ours=True),
    ),
    Contender(
        "langchain-alone-async",
        "LangChain alone (canned model, no HTTP)",
        "ainvoke / astream",
        "langchain",
        "framework",
        True,
        build_langchain_alone(is_async=True),
    ),
    Contender(
        "llamaindex-openai-async",
        "OpenAI (llama-index-llms-openai)",
        "achat / astream_chat",
        "llamaindex",
        "anchor",
        True,
        _build_llamaindex_async(ours=False),
    ),
    Contender(
        "llamaindex-async",
        "TokenHub (ours)",
        "achat / astream_chat",
        "llamaindex",
        "ours",
        True,
        _build_llamaindex_async(ours=True),
    ),
    Contender(
        "llamaindex-heard-async",
        "TokenHub (ours), an event handler listening",
        "achat / astream_chat",
        "llamaindex",
        "ours-heard",
        True,
        heard(_build_llamaindex_async(ours=True)),
    ),
    Contender(
        "llamaindex-alone-async",
        "LlamaIndex alone (canned LLM, no HTTP)",
        "achat / astream_chat",
        "llamaindex",
        "framework",
        True,
        build_llamaindex_alone(is_async=True),
    ),
)
