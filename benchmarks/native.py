"""Claude's native Messages protocol: ours against ChatAnthropic and llama-index's Anthropic.

The same method as the main table (client CPU per call and per streamed content delta), against
`loadserver.py`'s pre-encoded ``/v1/messages`` answers: the emulator serves chat/completions for
the main table, and a pre-encoded server keeps the server's own work out of the comparison
either way. Every contender is given the same Anthropic-style base URL
(``http://127.0.0.1:PORT/d0/w2000/api``) and so posts to the same ``.../api/v1/messages``;
every one sends one user message with ``max_tokens=1024``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from types import TracebackType
from typing import Any

from benchserver import DRIP_GAP_S, SHORT_TEXT, Endpoint
from canned import build_langchain_alone, build_llamaindex_alone
from loadserver import NATIVE_MODEL, REPLY_TEXT, LoadServer, native_stream_events
from ops import (
    CALL_PROMPT,
    MAX_TOKENS,
    MODEL,
    STREAM_PROMPT,
    AsyncOps,
    Contender,
    SyncOps,
    heard,
)

__all__ = ["NATIVE_CONTENDERS", "NativeServer"]

_API_KEY = "th-bench-native"
assert REPLY_TEXT == SHORT_TEXT  # the call answer is the same in both tables


class NativeServer:
    """`loadserver.LoadServer` seen as the runner's three endpoints; a context manager."""

    def __init__(self, *, long_words: int = 2000, drip_words: int = 300) -> None:
        self._words = (long_words, drip_words)
        self._server = LoadServer()
        self.short: Endpoint
        self.long: Endpoint
        self.drip: Endpoint

    def __enter__(self) -> NativeServer:
        server = self._server.__enter__()
        long_words, drip_words = self._words
        short_url = server.native_base_url(1)

        def endpoint(base_url: str, text: str, deltas: int) -> Endpoint:
            return Endpoint(base_url=base_url, api_key=_API_KEY, text=text, deltas=deltas)

        self.short = endpoint(short_url, REPLY_TEXT, len(REPLY_TEXT.split(" ")))
        self.long = endpoint(
            server.native_base_url(long_words), native_stream_events(long_words)[0], long_words
        )
        self.drip = endpoint(
            server.native_base_url(drip_words, DRIP_GAP_S * 1000),
            native_stream_events(drip_words)[0],
            drip_words,
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.__exit__(exc_type, exc, tb)

    def reset(self) -> None:
        """Nothing to forget: the server records no requests."""


def _user(prompt: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": prompt}]


def _event_piece(event: Any) -> str | None:
    """The text of an anthropic SDK stream event, if it is a text delta."""
    if event.type == "content_block_delta" and event.delta.type == "text_delta":
        return event.delta.text  # type: ignore[no-any-return]
    return None


def _sdk_text(message: Any) -> str:
    return str(message.content[0].text)


def _completion_text(completion: Any) -> str:
    return str(completion.choices[0].message.content)


def _completion_piece(chunk: Any) -> str | None:
    return chunk.choices[0].delta.content if chunk.choices else None


# -- raw httpx: the floor ------------------------------------------------------------------------


def _httpx_request(ep: Endpoint, stream: bool) -> tuple[str, dict[str, str], dict[str, Any]]:
    body: dict[str, Any] = {
        "model": NATIVE_MODEL,
        "messages": _user(STREAM_PROMPT if stream else CALL_PROMPT),
        "max_tokens": MAX_TOKENS,
    }
    if stream:
        body["stream"] = True
    headers = {"x-api-key": ep.api_key, "anthropic-version": "2023-06-01"}
    return f"{ep.base_url}/v1/messages", headers, body


def _dict_piece(event: dict[str, Any]) -> str | None:
    if event["type"] == "content_block_delta":
        return event["delta"].get("text")  # type: ignore[no-any-return]
    return None


def _dict_text(body: dict[str, Any]) -> str:
    return str(body["content"][0]["text"])


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
                if line.startswith("data: "):
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
                if line.startswith("data: "):
                    yield loads(line[6:])

    async def open_stream() -> AsyncIterable[Any]:
        return lines()

    return AsyncOps(call, _dict_text, open_stream, _dict_piece)


# -- the anthropic SDK: for reference ------------------------------------------------------------


def _build_sdk(short: Endpoint, long: Endpoint) -> SyncOps:
    from anthropic import Anthropic

    call_client = Anthropic(base_url=short.base_url, api_key=short.api_key, max_retries=0)
    stream_client = Anthropic(base_url=long.base_url, api_key=long.api_key, max_retries=0)
    call_messages: Any = _user(CALL_PROMPT)
    stream_messages: Any = _user(STREAM_PROMPT)

    def call() -> Any:
        return call_client.messages.create(
            model=NATIVE_MODEL, messages=call_messages, max_tokens=MAX_TOKENS
        )

    def open_stream() -> Iterable[Any]:
        return stream_client.messages.create(
            model=NATIVE_MODEL, messages=stream_messages, max_tokens=MAX_TOKENS, stream=True
        )

    return SyncOps(call, _sdk_text, open_stream, _event_piece)


def _build_sdk_async(short: Endpoint, long: Endpoint) -> AsyncOps:
    from anthropic import AsyncAnthropic

    call_client = AsyncAnthropic(base_url=short.base_url, api_key=short.api_key, max_retries=0)
    stream_client = AsyncAnthropic(base_url=long.base_url, api_key=long.api_key, max_retries=0)
    call_messages: Any = _user(CALL_PROMPT)
    stream_messages: Any = _user(STREAM_PROMPT)

    async def call() -> Any:
        return await call_client.messages.create(
            model=NATIVE_MODEL, messages=call_messages, max_tokens=MAX_TOKENS
        )

    async def open_stream() -> AsyncIterable[Any]:
        return await stream_client.messages.create(
            model=NATIVE_MODEL, messages=stream_messages, max_tokens=MAX_TOKENS, stream=True
        )

    return AsyncOps(call, _sdk_text, open_stream, _event_piece)


# -- our core ------------------------------------------------------------------------------------


def _core_clients(short: Endpoint, long: Endpoint) -> tuple[Any, Any]:
    from tokenhub_core import TokenHubClient

    client_cls: Any = TokenHubClient  # Any: built before the core had `protocol` too
    return (
        client_cls(api_key=short.api_key, base_url=short.base_url, protocol="messages"),
        client_cls(api_key=long.api_key, base_url=long.base_url, protocol="messages"),
    )


def _build_core(short: Endpoint, long: Endpoint) -> SyncOps:
    call_client, stream_client = _core_clients(short, long)
    call_messages, stream_messages = _user(CALL_PROMPT), _user(STREAM_PROMPT)

    def call() -> Any:
        return call_client.chat(model=MODEL, messages=call_messages)

    def open_stream() -> Iterable[Any]:
        return stream_client.stream(model=MODEL, messages=stream_messages)  # type: ignore[no-any-return]

    return SyncOps(call, _completion_text, open_stream, _completion_piece)


def _build_core_async(short: Endpoint, long: Endpoint) -> AsyncOps:
    call_client, stream_client = _core_clients(short, long)
    call_messages, stream_messages = _user(CALL_PROMPT), _user(STREAM_PROMPT)

    async def call() -> Any:
        return await call_client.achat(model=MODEL, messages=call_messages)

    async def open_stream() -> AsyncIterable[Any]:
        return stream_client.astream(model=MODEL, messages=stream_messages)  # type: ignore[no-any-return]

    return AsyncOps(call, _completion_text, open_stream, _completion_piece)


# -- LangChain -----------------------------------------------------------------------------------


def _langchain_models(short: Endpoint, long: Endpoint, ours: bool) -> tuple[Any, Any]:
    if ours:
        from langchain_tokenhub import ChatTokenHub

        ours_cls: Any = ChatTokenHub

        def make(ep: Endpoint) -> Any:
            return ours_cls(
                model=MODEL, base_url=ep.base_url, api_key=ep.api_key, protocol="messages"
            )

    else:
        from langchain_anthropic import ChatAnthropic

        anchor_cls: Any = ChatAnthropic

        def make(ep: Endpoint) -> Any:
            return anchor_cls(
                model=NATIVE_MODEL,
                base_url=ep.base_url,
                api_key=ep.api_key,
                max_retries=0,
                max_tokens=MAX_TOKENS,
            )

    return make(short), make(long)


def _lc_text(message: Any) -> str:
    return str(message.content)


def _lc_piece(chunk: Any) -> str | None:
    """The chunk's text, whether its content is a string or a list of blocks."""
    content = chunk.content
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content if isinstance(b, dict)) or None


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


def _llamaindex_anthropic() -> Any:
    """llama-index's ``Anthropic`` as a user must write it to run on the anthropic SDK 2.x.

    llama-index-llms-anthropic 0.12.3 (the latest) fails every chat with anthropic >= 2 (which
    its own requirement, ``anthropic>=0.75``, installs): it builds each message by calling
    anthropic's ``MessageParam(...)``, now a Union of TypedDicts ("Cannot instantiate
    typing.Union"), and passes ``temperature=`` to ``messages.create``, which no longer takes
    it. So: ``dict`` in place of ``MessageParam`` (a TypedDict call builds a plain dict: the
    same work), and no temperature (ChatAnthropic sends none by default either).
    """
    import llama_index.llms.anthropic.utils as anthropic_utils
    from llama_index.llms.anthropic import Anthropic

    anthropic_utils.MessageParam = dict  # type: ignore[misc,assignment]

    class AnthropicOnSdk2(Anthropic):
        @property
        def _model_kwargs(self) -> dict[str, Any]:
            kwargs = dict(super()._model_kwargs)
            kwargs.pop("temperature", None)
            return kwargs

    return AnthropicOnSdk2


def _llamaindex_models(short: Endpoint, long: Endpoint, ours: bool) -> tuple[Any, Any]:
    if ours:
        from llama_index_tokenhub import TokenHub

        ours_cls: Any = TokenHub

        def make(ep: Endpoint) -> Any:
            return ours_cls(
                model=MODEL, base_url=ep.base_url, api_key=ep.api_key, protocol="messages"
            )

    else:
        anchor_cls = _llamaindex_anthropic()

        def make(ep: Endpoint) -> Any:
            # max_retries=0: its default is 10 (the SDK's own retries).
            return anchor_cls(
                model=NATIVE_MODEL,
                base_url=ep.base_url,
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


def _both(
    key: str,
    label: str,
    apis: tuple[str, str],
    family: str,
    role: str,
    builds: tuple[Callable[..., SyncOps | AsyncOps], Callable[..., SyncOps | AsyncOps]],
) -> tuple[Contender, Contender]:
    """A contender and its ``-async`` twin."""
    return (
        Contender(key, label, apis[0], family, role, False, builds[0]),
        Contender(f"{key}-async", label, apis[1], family, role, True, builds[1]),
    )


_ROWS = (
    _both(
        "native-httpx",
        "raw httpx",
        ("Client.post / .stream", "AsyncClient.post / .stream"),
        "floor",
        "floor",
        (_build_httpx, _build_httpx_async),
    ),
    _both(
        "anthropic",
        "anthropic SDK",
        ("messages.create", "AsyncAnthropic messages.create"),
        "reference",
        "reference",
        (_build_sdk, _build_sdk_async),
    ),
    _both(
        "native-core",
        'TokenHubClient(protocol="messages") (ours)',
        ("chat / stream", "achat / astream"),
        "reference",
        "ours",
        (_build_core, _build_core_async),
    ),
    _both(
        "langchain-anthropic",
        "ChatAnthropic (langchain-anthropic)",
        ("invoke / stream", "ainvoke / astream"),
        "langchain",
        "anchor",
        (_build_langchain(ours=False), _build_langchain_async(ours=False)),
    ),
    _both(
        "native-langchain",
        'ChatTokenHub(protocol="messages") (ours)',
        ("invoke / stream", "ainvoke / astream"),
        "langchain",
        "ours",
        (_build_langchain(ours=True), _build_langchain_async(ours=True)),
    ),
    _both(
        "native-langchain-alone",
        "LangChain alone (canned model, no HTTP)",
        ("invoke / stream", "ainvoke / astream"),
        "langchain",
        "framework",
        (build_langchain_alone(is_async=False), build_langchain_alone(is_async=True)),
    ),
    _both(
        "llamaindex-anthropic",
        "Anthropic (llama-index-llms-anthropic)",
        ("chat / stream_chat", "achat / astream_chat"),
        "llamaindex",
        "anchor",
        (_build_llamaindex(ours=False), _build_llamaindex_async(ours=False)),
    ),
    _both(
        "native-llamaindex",
        'TokenHub(protocol="messages") (ours)',
        ("chat / stream_chat", "achat / astream_chat"),
        "llamaindex",
        "ours",
        (_build_llamaindex(ours=True), _build_llamaindex_async(ours=True)),
    ),
    _both(
        "native-llamaindex-heard",
        'TokenHub(protocol="messages") (ours), an event handler listening',
        ("chat / stream_chat", "achat / astream_chat"),
        "llamaindex",
        "ours-heard",
        (heard(_build_llamaindex(ours=True)), heard(_build_llamaindex_async(ours=True))),
    ),
    _both(
        "native-llamaindex-alone",
        "LlamaIndex alone (canned LLM, no HTTP)",
        ("chat / stream_chat", "achat / astream_chat"),
        "llamaindex",
        "framework",
        (build_llamaindex_alone(is_async=False), build_llamaindex_alone(is_async=True)),
    ),
)
# Sync rows first, then their async twins, as in the main table.
NATIVE_CONTENDERS: tuple[Contender, ...] = tuple(r[0] for r in _ROWS) + tuple(r[1] for r in _ROWS)
