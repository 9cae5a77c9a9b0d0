"""What the client shares with its two transports: failures as httpx exceptions, body bytes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import httpx

__all__ = ["ErrorTable", "body_bytes", "body_reader_async", "httpx_error"]

ErrorTable = tuple[tuple[type[BaseException], type[httpx.TransportError]], ...]
"""(library exception, httpx exception) pairs, most specific first: the first match decides."""


def httpx_error(
    exc: BaseException, table: ErrorTable, request: httpx.Request
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


def body_bytes(response: httpx.Response) -> Iterator[bytes]:
    """The response body's bytes as they arrive."""
    raw = getattr(response.stream, "raw", None)
    if raw is None or "content-encoding" in response.headers:
        return response.iter_bytes()
    return raw()  # type: ignore[no-any-return]


def body_reader_async(response: httpx.Response) -> Callable[[], Awaitable[bytes]]:
    """A function that gives the response body's next bytes as they arrive, b"" at its end.

    A function rather than an async iterator: each async generator layer is one more frame to
    resume for every event of a live stream.
    """
    read_some = getattr(response.stream, "read_some", None)
    if read_some is not None and "content-encoding" not in response.headers:
        return read_some  # type: ignore[no-any-return]
    chunks = response.aiter_bytes()

    async def next_bytes() -> bytes:
        async for data in chunks:
            return data
        return b""

    return next_bytes
