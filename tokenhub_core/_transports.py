"""What the client shares with its two transports: replies, failures as httpx exceptions, body
bytes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import httpx

__all__ = ["ErrorTable", "Reply", "Response", "body_bytes", "body_reader_async", "httpx_error"]


class Reply:
    """A response from one of the core's own transports (``post``), as the client reads it.

    The client's own pools need none of what an `httpx.Request` and `httpx.Response` carry for
    a user's httpx client (their header normalization, URL and stream objects cost ~40 µs a
    call), so they answer with this: the status, the headers by lowercase name, and the body,
    which has ``raw()`` (sync) or ``read_some()`` (async) and closes as httpx's streams do. A
    body with a Content-Encoding comes as an `httpx.Response` instead, which decodes it.
    """

    __slots__ = ("headers", "status_code", "stream")

    def __init__(self, status_code: int, headers: Mapping[str, str], stream: Any) -> None:
        self.status_code = status_code
        self.headers = headers
        self.stream = stream

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    def close(self) -> None:
        self.stream.close()

    async def aclose(self) -> None:
        await self.stream.aclose()


Response = httpx.Response | Reply
"""What a send gives the client: a user's httpx client's response, or one of our pools' replies."""

ErrorTable = tuple[tuple[type[BaseException], type[httpx.TransportError]], ...]
"""(library exception, httpx exception) pairs, most specific first: the first match decides."""


def httpx_error(
    exc: BaseException, table: ErrorTable, request: httpx.Request | None
) -> httpx.TransportError:
    """The httpx exception for ``exc`` under ``table``; `httpx.NetworkError` when none matches."""
    for library_type, httpx_type in table:
        if isinstance(exc, library_type):
            return httpx_type(str(exc) or type(exc).__name__, request=request)
    return httpx.NetworkError(str(exc) or type(exc).__name__, request=request)


# httpx's iter_bytes / aiter_bytes run each read through four generator layers (raw, decoder,
# chunker, byte count): a few µs per read, paid for every event of a live stream. Our
# transports' bodies offer ``raw()`` (sync) and ``read_some()`` (async), the bytes as read; with
# no Content-Encoding to decode, the client reads those. Any other stream (a user's httpx
# client) takes httpx's path.


def body_bytes(response: Response) -> Iterator[bytes]:
    """The response body's bytes as they arrive."""
    if isinstance(response, Reply):
        return response.stream.raw()  # type: ignore[no-any-return]
    raw = getattr(response.stream, "raw", None)
    if raw is None or "content-encoding" in response.headers:
        return response.iter_bytes()
    return raw()  # type: ignore[no-any-return]


def body_reader_async(response: Response) -> Callable[[], Awaitable[bytes]]:
    """A function that gives the response body's next bytes as they arrive, b"" at its end.

    A function rather than an async iterator: each async generator layer is one more frame to
    resume for every event of a live stream.
    """
    if isinstance(response, Reply):
        return response.stream.read_some  # type: ignore[no-any-return]
    read_some = getattr(response.stream, "read_some", None)
    if read_some is not None and "content-encoding" not in response.headers:
        return read_some  # type: ignore[no-any-return]
    chunks = response.aiter_bytes()

    async def next_bytes() -> bytes:
        async for data in chunks:
            return data
        return b""

    return next_bytes
