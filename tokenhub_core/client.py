"""`TokenHubClient`: the one place that talks to TokenHub.

Every decision about a call is made once, in `tokenhub_core._lifecycle` (budget, error mapping,
retry, settlement) and in pure decoders (`sse`, `stream`); the sync and async shells below only
send, read and sleep, and differ only in awaiting.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
import os
import re
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import httpx
from pydantic import SecretStr

from tokenhub_core._lifecycle import (
    DEFAULT_DEADLINE_S,
    MAX_ERROR_BODY_BYTES,
    MAX_REPLY_BYTES,
    AuthHeaders,
    Call,
    Lifecycle,
)
from tokenhub_core._pools import pools as _pools
from tokenhub_core._streams import AsyncChatStream, ChatStream, error_event
from tokenhub_core._transports import Response, body_bytes, body_reader_async
from tokenhub_core._version import __version__
from tokenhub_core.cost import CallMeters
from tokenhub_core.errors import (
    APIResponseError,
    APIStatusError,
    InvalidParameterError,
    MissingAPIKeyError,
    parse_error_body,
    redact,
    request_id_from,
)
from tokenhub_core.native import ANTHROPIC_VERSION, parse_message, to_messages_body
from tokenhub_core.params import (
    MESSAGES,
    build_body,
    cache_write_ttl,
    estimate_tokens,
    normalize_protocol,
    normalize_timeout,
)
from tokenhub_core.wire import ChatCompletion, loads, parse_lenient

__all__ = ["DEFAULT_BASE_URL", "AsyncChatStream", "ChatStream", "ClientSlot", "TokenHubClient"]

DEFAULT_BASE_URL = "https://tokenhub.store/api/v1"
API_KEY_ENV = "TOKENHUB_API_KEY"
BASE_URL_ENV = "TOKENHUB_BASE_URL"

# Module-level so tests can replace the waiting without touching the decisions.
_sleep = time.sleep
_asleep = asyncio.sleep

_KEY_IN_URL = re.compile(r"(?<![A-Za-z0-9])th-[A-Za-z0-9]")
_warned_plain_http: set[str] = set()
_warned_lock = threading.Lock()


def _describe_body(content: bytes, headers: Mapping[str, str]) -> str:
    content_type = headers.get("content-type", "")
    if "html" in content_type or content.lstrip()[:1] == b"<":
        _, error = parse_error_body(content)
        return f"expected a JSON chat completion, got an HTML page ({error['message']})"
    preview = content[:120].decode("utf-8", errors="replace")
    return (
        f"expected a JSON chat completion, got {len(content)} bytes that do not parse: {preview!r}"
    )


def parse_completion(content: bytes, headers: Mapping[str, str]) -> ChatCompletion:
    """The ``chat.completion`` in a 200 body, or `APIResponseError` when it is not one."""
    request_id = request_id_from(headers)
    try:
        completion = parse_lenient(ChatCompletion, content)
    except (ValueError, RecursionError):  # ValidationError is a ValueError
        raise APIResponseError(_describe_body(content, headers), request_id=request_id) from None
    extra = completion.__pydantic_extra__
    if extra and "error" in extra:
        raise error_event(extra["error"], request_id)
    if not completion.choices:
        raise APIResponseError(
            "TokenHub answered 200 with no choices", body=extra, request_id=request_id
        )
    completion._request_id = request_id
    return completion


def parse_reply(content: bytes, headers: Mapping[str, str], protocol: str) -> ChatCompletion:
    """A 200 body of either protocol as ``chat.completion``; `APIResponseError` if it is not."""
    if protocol != MESSAGES:
        return parse_completion(content, headers)
    request_id = request_id_from(headers)
    try:
        data = loads(content)
    except ValueError:
        raise APIResponseError(
            _describe_body(content, headers).replace("chat completion", "message"),
            request_id=request_id,
        ) from None
    return parse_message(data, request_id)


def check_api_key(key: str) -> str:
    """The key with surrounding whitespace removed; `InvalidParameterError` if unusable."""
    key = key.strip()
    if not key or not key.isascii() or not key.isprintable() or any(c.isspace() for c in key):
        raise InvalidParameterError(
            "api_key",
            "<hidden>",
            "printable ASCII with no spaces or line breaks inside (a th-... key)",
        )
    return key


_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")


def check_headers(param: str, headers: Mapping[str, str] | None) -> dict[str, str]:
    """``headers`` as a dict, each one sendable as it is; `InvalidParameterError` names the first
    that is not (a line break in a value could add a header of its own)."""
    checked = dict(headers or {})
    for name, value in checked.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise InvalidParameterError(
                f"{param} name", name, "an HTTP token: letters, digits and !#$%&'*+-.^_`|~"
            )
        if not isinstance(value, str) or not _HEADER_VALUE.fullmatch(value):
            shown = value if name.lower() not in ("authorization", "x-api-key") else "<hidden>"
            raise InvalidParameterError(
                f"{param}[{name!r}]", shown, "a str of printable ASCII, with no line breaks"
            )
    return checked


def check_base_url(url: str) -> str:
    """An http(s) base URL without credentials, trailing slash removed.

    A key in the URL (user info, or a ``th-`` value in its query) would show in every repr and
    serialized model: it is refused, and the error shows the URL with it masked.
    """
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise InvalidParameterError("base_url", redact(str(url)), "an http(s) URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidParameterError("base_url", redact(url), "an http:// or https:// URL")
    if parsed.userinfo or _KEY_IN_URL.search(url):
        shown = str(parsed.copy_with(username=None, password=None, query=None))
        raise InvalidParameterError(
            "base_url",
            shown + " (credentials masked)",
            "a URL without credentials: pass the key as api_key or TOKENHUB_API_KEY",
        )
    return url.rstrip("/")


@functools.lru_cache(maxsize=64)  # parsing the host as an address costs more than the call
def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _warn_if_plain_http(url: httpx.URL) -> None:
    if url.scheme != "http" or _is_loopback(url.host):
        return
    origin = url.host if url.port is None else f"{url.host}:{url.port}"
    with _warned_lock:
        if origin in _warned_plain_http:
            return
        _warned_plain_http.add(origin)
    warnings.warn(
        f"TokenHub base URL http://{origin} is not https: the API key is sent in clear text",
        UserWarning,
        stacklevel=4,
    )


def _check_deadline(deadline: Any) -> None:
    if deadline is not None and (
        isinstance(deadline, bool) or not isinstance(deadline, (int, float)) or deadline <= 0
    ):
        raise InvalidParameterError("deadline", deadline, "seconds > 0, or None")


def _read_timeout_within(timeout: httpx.Timeout, deadline_s: float | None) -> dict[str, Any]:
    extension = timeout.as_dict()
    if deadline_s is not None:
        read = extension.get("read")
        extension["read"] = deadline_s if read is None else min(read, deadline_s)
    return extension


class TokenHubClient:
    """A client for TokenHub: its OpenAI-compatible ``/chat/completions`` endpoint, or Claude's own
    ``/messages`` (prompt caching, extended thinking, PDFs) with ``protocol="messages"``.

    Requests are given, and replies returned, in the same OpenAI shape on both protocols
    (`tokenhub_core.native` translates).

    Args:
        api_key: ``th-...`` key; defaults to ``TOKENHUB_API_KEY``. A missing key is an error at
            call time, not at construction.
        base_url: defaults to ``TOKENHUB_BASE_URL``, then ``https://tokenhub.store/api/v1``.
            Key and base URL are read at the same moment: on every call, the explicit argument
            first, then the environment.
        timeout: seconds (or an ``httpx.Timeout``, or a tuple) for connecting and for each read.
            ``timeout=`` and ``deadline=`` may also be given per call.
        max_retries: retries after the first attempt, for retryable failures only.
        default_headers: sent with every request.
        http_client / http_async_client: your own httpx clients, used as they are (you close
            them). Without them, every client shares one pool per process (async: per event loop).
        deadline: seconds one attempt may take in all, however the server trickles its bytes
            (``timeout`` bounds each read; this bounds their sum). None: no limit.
        protocol: ``"chat/completions"`` (the default) or ``"messages"``: Claude's Messages API,
            at ``{base_url}/messages`` when the base URL ends in ``/v1`` (TokenHub's default),
            else at ``{base_url}/v1/messages`` (an Anthropic-style base such as
            ``https://tokenhub.store/api``).
    """

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        base_url: str | None = None,
        timeout: float | httpx.Timeout | tuple[Any, ...] | None = 60.0,
        max_retries: int = 2,
        default_headers: Mapping[str, str] | None = None,
        http_client: httpx.Client | None = None,
        http_async_client: httpx.AsyncClient | None = None,
        deadline: float | None = DEFAULT_DEADLINE_S,
        protocol: str = "chat/completions",
    ) -> None:
        if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
            raise InvalidParameterError("max_retries", max_retries, "a non-negative integer")
        self.protocol = normalize_protocol(protocol)
        _check_deadline(deadline)
        if isinstance(api_key, SecretStr):
            api_key = api_key.get_secret_value()
        self._api_key = None if not api_key else SecretStr(check_api_key(api_key))
        self._base_url = None if not base_url else check_base_url(base_url)
        self.timeout = normalize_timeout(timeout)
        self.max_retries = max_retries
        self.deadline = None if deadline is None else float(deadline)
        self.default_headers = check_headers("default_headers", default_headers)
        self._timeout_extension = _read_timeout_within(self.timeout, self.deadline)
        self._urls: tuple[str, str, httpx.URL] = ("", "", httpx.URL(DEFAULT_BASE_URL))
        self._http_client = http_client
        self._http_async_client = http_async_client

    @property
    def api_key(self) -> SecretStr | None:
        """The key given at construction (None: ``TOKENHUB_API_KEY`` is read at each call)."""
        return self._api_key

    @property
    def base_url(self) -> str:
        """The base URL calls go to now: the argument, else ``TOKENHUB_BASE_URL``, else TokenHub."""
        return self._url()[0]

    def __repr__(self) -> str:
        key = "set" if self._api_key is not None else "from env"
        protocol = f", protocol={self.protocol!r}" if self.protocol == MESSAGES else ""
        return f"TokenHubClient(base_url={self.base_url!r}, api_key=<{key}>{protocol})"

    # The request path shared by every call.

    def _key(self) -> str:
        if self._api_key is not None:
            return self._api_key.get_secret_value()
        from_env = os.environ.get(API_KEY_ENV)
        if not from_env or not from_env.strip():
            raise MissingAPIKeyError()
        return check_api_key(from_env)

    def _url(self) -> tuple[str, httpx.URL]:
        """The base URL now and its endpoint; the environment is read on every call."""
        given = self._base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
        cached = self._urls
        if given != cached[0]:
            base_url = check_base_url(given)
            cached = self._urls = (given, base_url, httpx.URL(self._endpoint(base_url)))
        return cached[1], cached[2]

    def _endpoint(self, base_url: str) -> str:
        if self.protocol != MESSAGES:
            return f"{base_url}/chat/completions"
        if httpx.URL(base_url).path.rstrip("/").endswith("/v1"):
            return f"{base_url}/messages"
        return f"{base_url}/v1/messages"

    def _lifecycle(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        params: dict[str, Any],
        *,
        stream: bool,
    ) -> Lifecycle:
        extra_headers = params.pop("extra_headers", None)
        timeout = params.pop("timeout", None)
        deadline = params.pop("deadline", self.deadline)
        _check_deadline(deadline)
        protocol = self.protocol
        body = build_body(model, messages, stream=stream, protocol=protocol, **params)
        meters = CallMeters(
            model,
            estimate_tokens(body["messages"], body.get("tools")),
            body["max_tokens"],
            cache_writes=cache_write_ttl(body),
        )
        meters.check()
        wire_body = to_messages_body(body) if protocol == MESSAGES else body
        content = json.dumps(wire_body, separators=(",", ":"), ensure_ascii=False).encode()
        key = self._key()
        headers = AuthHeaders(
            {
                "Authorization": "Bearer " + key,
                "Content-Type": "application/json",
                "Accept": "text/event-stream" if stream else "application/json",
                "User-Agent": f"tokenhub-integrations/{__version__}",
            }
        )
        if protocol == MESSAGES:
            headers["x-api-key"] = key
            headers["anthropic-version"] = ANTHROPIC_VERSION
        headers.update(self.default_headers)
        if extra_headers:
            headers.update(check_headers("extra_headers", extra_headers))
        call = Call(model, content, stream, meters, headers, protocol)
        if timeout is not None or deadline != self.deadline:
            call.timeout = _read_timeout_within(
                self.timeout if timeout is None else normalize_timeout(timeout), deadline
            )
        return Lifecycle(
            call,
            max_retries=self.max_retries,
            deadline_s=deadline,
            secret=headers["Authorization"][7:],
        )

    def _target(self, call: Call) -> tuple[httpx.URL, Mapping[str, float | None]]:
        """Where ``call`` goes now, and its timeouts."""
        url = self._url()[1]
        _warn_if_plain_http(url)
        return url, call.timeout or self._timeout_extension

    def _request(self, http: httpx.Client | httpx.AsyncClient, call: Call) -> httpx.Request:
        """``call`` as a request of a user's httpx client, which merges its own headers and
        settings into it."""
        url, timeout = self._target(call)
        request = http.build_request("POST", url, content=call.content, headers=call.headers)
        request.extensions["timeout"] = dict(timeout)
        return request

    def _sender(
        self,
        http: httpx.Client | httpx.AsyncClient | httpx.BaseTransport | httpx.AsyncBaseTransport,
        call: Call,
    ) -> Callable[[], Any]:
        """A function sending ``call`` once through ``http``, sync or async: a user's httpx
        client (which merges its own settings in), our own pool's ``post`` (no httpx Request or
        Response built), or any other httpx transport."""
        if isinstance(http, (httpx.Client, httpx.AsyncClient)):
            return functools.partial(http.send, self._request(http, call), stream=True)
        url, timeout = self._target(call)
        post = getattr(http, "post", None)  # ours (the async one is not imported here)
        if post is not None:
            return functools.partial(post, url, call.content, call.headers, timeout)
        request = httpx.Request(
            "POST", url, content=call.content, headers=call.headers, extensions={"timeout": timeout}
        )
        if isinstance(http, httpx.BaseTransport):
            return functools.partial(http.handle_request, request)
        return functools.partial(http.handle_async_request, request)

    # Sync shell.

    def _sync_http(self) -> httpx.Client | httpx.BaseTransport:
        return self._http_client if self._http_client is not None else _pools.sync()

    def _open(self, life: Lifecycle) -> Response:
        """Attempts until a success status arrives; settles the call on any other exit."""
        try:
            send: Callable[[], Response] = self._sender(self._sync_http(), life.call)
            while True:
                life.start_attempt()
                try:
                    response = send()
                except httpx.TransportError as exc:
                    _sleep(life.transport_failed(exc, "the request to TokenHub"))
                    continue
                if response.is_success:
                    return response
                try:
                    body = self._read(response, life, MAX_ERROR_BODY_BYTES, truncate=True)
                except httpx.TransportError:
                    body = b""
                finally:
                    response.close()
                _sleep(life.refused(response.status_code, response.headers, body))
        except BaseException:
            life.settle()
            raise

    @staticmethod
    def _read(
        response: Response,
        life: Lifecycle,
        limit: int = MAX_REPLY_BYTES,
        *,
        truncate: bool = False,
    ) -> bytes:
        parts: list[bytes] = []
        size = 0
        for data in body_bytes(response):
            size += len(data)
            if size > limit:
                if truncate:
                    parts.append(data[: limit - size])
                    break
                raise _too_large(limit, response)
            parts.append(data)
            life.check_deadline()
        return b"".join(parts)

    def chat(
        self, *, model: str, messages: Sequence[Mapping[str, Any]], **params: Any
    ) -> ChatCompletion:
        """Send a chat completion and return the parsed ``chat.completion``."""
        life = self._lifecycle(model, messages, params, stream=False)
        try:
            while True:
                response = self._open(life)
                try:
                    content = self._read(response, life)
                except httpx.TransportError as exc:
                    _sleep(life.transport_failed(exc, "reading TokenHub's answer"))
                    continue
                finally:
                    response.close()
                try:
                    completion = parse_reply(content, response.headers, life.call.protocol)
                except APIStatusError as exc:  # Claude's error object in a 200 body
                    _sleep(life.stream_refused(exc))
                    continue
                life.finish(completion.model, completion.usage, completion.request_id)
                return completion
        except BaseException:
            life.settle()
            raise

    def stream(
        self, *, model: str, messages: Sequence[Mapping[str, Any]], **params: Any
    ) -> ChatStream:
        """Stream a chat completion: an iterator of chunks, sent on first use."""
        return ChatStream(self, self._lifecycle(model, messages, params, stream=True))

    # Async shell: the same steps, awaited. The shared pool is per event loop, so a client keeps
    # working across pytest's per-test loops and in Jupyter.

    async def _async_http(self) -> httpx.AsyncClient | httpx.AsyncBaseTransport:
        if self._http_async_client is not None:
            return self._http_async_client
        return await _pools.for_running_loop()

    async def _aopen(self, life: Lifecycle) -> Response:
        """Async `_open`."""
        try:
            http = await self._async_http()
            send: Callable[[], Awaitable[Response]] = self._sender(http, life.call)
            while True:
                life.start_attempt()
                try:
                    response = await send()
                except httpx.TransportError as exc:
                    await _asleep(life.transport_failed(exc, "the request to TokenHub"))
                    continue
                if response.is_success:
                    return response
                try:
                    body = await self._aread(response, life, MAX_ERROR_BODY_BYTES, truncate=True)
                except httpx.TransportError:
                    body = b""
                finally:
                    await response.aclose()
                await _asleep(life.refused(response.status_code, response.headers, body))
        except BaseException:
            life.settle()
            raise

    @staticmethod
    async def _aread(
        response: Response,
        life: Lifecycle,
        limit: int = MAX_REPLY_BYTES,
        *,
        truncate: bool = False,
    ) -> bytes:
        parts: list[bytes] = []
        size = 0
        read_some = body_reader_async(response)
        while data := await read_some():
            size += len(data)
            if size > limit:
                if truncate:
                    parts.append(data[: limit - size])
                    break
                raise _too_large(limit, response)
            parts.append(data)
            life.check_deadline()
        return b"".join(parts)

    async def achat(
        self, *, model: str, messages: Sequence[Mapping[str, Any]], **params: Any
    ) -> ChatCompletion:
        """Async `chat`."""
        life = self._lifecycle(model, messages, params, stream=False)
        try:
            while True:
                response = await self._aopen(life)
                try:
                    content = await self._aread(response, life)
                except httpx.TransportError as exc:
                    await _asleep(life.transport_failed(exc, "reading TokenHub's answer"))
                    continue
                finally:
                    await response.aclose()
                try:
                    completion = parse_reply(content, response.headers, life.call.protocol)
                except APIStatusError as exc:  # Claude's error object in a 200 body
                    await _asleep(life.stream_refused(exc))
                    continue
                life.finish(completion.model, completion.usage, completion.request_id)
                return completion
        except BaseException:
            life.settle()
            raise

    def astream(
        self, *, model: str, messages: Sequence[Mapping[str, Any]], **params: Any
    ) -> AsyncChatStream:
        """Async `stream`: ``async for chunk in client.astream(...)``."""
        return AsyncChatStream(self, self._lifecycle(model, messages, params, stream=True))


def _too_large(limit: int, response: Response) -> APIResponseError:
    return APIResponseError(
        f"the reply is larger than {limit:,} bytes, more than any legal reply; reading stopped",
        request_id=request_id_from(response.headers),
    )


class ClientSlot:
    """One adapter instance's `TokenHubClient`: built on first use, rebuilt when settings change.

    Framework models are mutable (``llm.base_url = ...``), so the slot compares the connection
    settings on each call; a client is cheap (the pools are shared), so a rare race that builds
    two is harmless and needs no lock. Copies start empty, never sharing a user's httpx client.
    """

    __slots__ = ("_client", "_settings")

    def __init__(self) -> None:
        self._client: TokenHubClient | None = None
        self._settings: tuple[Any, ...] = ()

    def get(
        self,
        *,
        api_key: str | SecretStr | None,
        base_url: str | None,
        timeout: float | httpx.Timeout | tuple[Any, ...] | None,
        max_retries: int,
        default_headers: Mapping[str, str] | None,
        http_client: httpx.Client | None,
        http_async_client: httpx.AsyncClient | None,
        deadline: float | None = DEFAULT_DEADLINE_S,
        protocol: str = "chat/completions",
    ) -> TokenHubClient:
        settings = (
            api_key,
            base_url,
            timeout,
            max_retries,
            tuple(sorted((default_headers or {}).items())),
            http_client,
            http_async_client,
            deadline,
            protocol,
        )
        client = self._client
        if client is None or settings != self._settings:
            client = TokenHubClient(
                api_key=api_key,
                base_url=base_url,
                timeout=timeout,
                max_retries=max_retries,
                default_headers=default_headers,
                http_client=http_client,
                http_async_client=http_async_client,
                deadline=deadline,
                protocol=protocol,
            )
            self._client, self._settings = client, settings
        return client

    def __copy__(self) -> ClientSlot:
        return ClientSlot()

    def __deepcopy__(self, memo: dict[int, Any]) -> ClientSlot:
        return ClientSlot()
