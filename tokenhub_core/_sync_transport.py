"""httpx's sync transport interface over the standard library's ``http.client``, pooled per host.

The client's own calls go through `SyncTransport.post`, which answers with a light `Reply`; a
request built as an `httpx.Request` (an `httpx.Client` given this transport) goes through
``handle_request``. Both send on ``http.client`` connections, whose responses are parsed and
buffered in C where it counts. Against urllib3 (the transport before, which drives the same
``http.client`` underneath) it skips the wrapper objects, header dictionaries and checks urllib3
adds to every request, and it sends a request in one write: about a third less CPU per call
than urllib3 or httpcore + h11, and under half of httpcore's per network read
(benchmarks/transport-decision.md, benchmarks/sync_transports.py). Failures are raised as httpx's
exceptions, so the client's one mapping to `APIConnectionError` / `APITimeoutError` /
`StreamInterruptedError` holds unchanged.
"""

from __future__ import annotations

import collections
import http.client
import select
import ssl
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import httpx

from tokenhub_core._transports import ErrorTable, Reply, httpx_error

__all__ = ["SyncTransport"]

# Most specific first: the first class that matches decides. One table per phase, because the
# same failure means a different thing while connecting, sending, waiting for the head or in the
# middle of the body (only the last two can follow a request the server took and billed).
_CONNECT_ERRORS: ErrorTable = (
    (TimeoutError, httpx.ConnectTimeout),
    (OSError, httpx.ConnectError),  # refused, unreachable, no such host, a refused certificate
)
_WRITE_ERRORS: ErrorTable = (
    (TimeoutError, httpx.WriteTimeout),
    (ValueError, httpx.LocalProtocolError),  # a header http.client refuses (a line break in it)
    (http.client.HTTPException, httpx.LocalProtocolError),
    (OSError, httpx.WriteError),
)
_HEAD_ERRORS: ErrorTable = (
    (TimeoutError, httpx.ReadTimeout),
    (http.client.HTTPException, httpx.RemoteProtocolError),  # hung up, or no valid status line
    (OSError, httpx.ReadError),
)
_READ_ERRORS: ErrorTable = (
    (TimeoutError, httpx.ReadTimeout),
    (http.client.HTTPException, httpx.RemoteProtocolError),  # the body ended short
    (OSError, httpx.ReadError),
)
_CATCH = (http.client.HTTPException, OSError, ValueError)
_MAX_CHUNK_LINE = 4096  # a chunk-size line: hex digits and perhaps extensions
_MAX_CHUNK = 64 << 20  # more than any reply (the client's cap); a bigger size is a broken line
_READ_SIZE = 1 << 16


class _BrokenBody(http.client.HTTPException):
    """The body's framing broke off; seen by the client as `httpx.RemoteProtocolError`."""


def _chunk_size(line: bytes) -> int:
    """The size a chunk-size line gives (``1a\r\n``, ``1a;name=value\r\n``), or raise."""
    try:
        size = int(line.split(b";", 1)[0], 16)  # int() strips the line end
    except ValueError:
        raise _broken(line) from None
    if not 0 <= size <= _MAX_CHUNK:  # negative, or more than any reply: not to be allocated
        raise _broken(line)
    return size


def _broken(line: bytes) -> _BrokenBody:
    detail = "the connection closed" if not line else f"invalid chunk size line {line[:40]!r}"
    return _BrokenBody(f"the chunked body broke off: {detail}")


class _Dechunker:
    """A chunked body's framing taken off as it arrives: received bytes in, the data out.

    Chunk extensions and trailer fields are read past; the CRLF after a chunk's data is not
    checked (as http.client does not). A size line that is not a size, is negative, longer
    than `_MAX_CHUNK_LINE` or beyond any reply (`_MAX_CHUNK`) is `_BrokenBody`: refused,
    never allocated. Bytes after the last chunk's trailers are ignored.
    """

    __slots__ = ("_line", "_need", "_skip", "_trailers", "done", "error")

    def __init__(self) -> None:
        self._need = 0  # data bytes of the current chunk still to come
        self._skip = 0  # bytes of the line end after a chunk's data still to come
        self._line = b""  # a size or trailer line begun in an earlier read
        self._trailers = False  # past the last chunk: trailer lines, up to a blank one
        self.done = False  # the body ended, or broke (then ``error`` says how)
        self.error: _BrokenBody | None = None

    def feed(self, data: bytes) -> bytes:
        """The body data in ``data``, the next bytes received (b"" when it holds none)."""
        if not (self._need or self._skip or self._line or self._trailers):
            # A live stream's read: one whole chunk ("1a\r\n" + data + "\r\n").
            end = data.find(b"\n")
            if end > 0:
                try:
                    size = int(data[:end], 16)  # int() strips the CR
                except ValueError:
                    size = 0
                if size > 0 and end + size + 3 == len(data):
                    return data[end + 1 : end + 1 + size]
        return self._feed(data)

    def _feed(self, data: bytes) -> bytes:
        pieces: list[bytes] = []
        try:
            self._take(data, pieces)
        except _BrokenBody as exc:
            if not pieces:
                raise
            self.done, self.error = True, exc  # the data before the break is given first
        return b"".join(pieces)

    def _take(self, data: bytes, pieces: list[bytes]) -> None:
        position, length = 0, len(data)
        while position < length and not self.done:
            if self._need:
                end = min(position + self._need, length)
                pieces.append(data[position:end])
                self._need -= end - position
                position = end
                if not self._need:
                    self._skip = 2
            elif self._skip:
                step = min(self._skip, length - position)
                self._skip -= step
                position += step
            else:
                end = data.find(b"\n", position)
                if end < 0 or end - position + len(self._line) > _MAX_CHUNK_LINE:
                    self._line += data[position : position + _MAX_CHUNK_LINE + 1]
                    if len(self._line) > _MAX_CHUNK_LINE:
                        raise _broken(self._line)
                    break
                line, self._line = self._line + data[position : end + 1], b""
                position = end + 1
                if self._trailers:
                    self.done = line in (b"\r\n", b"\n")  # trailer fields are not used
                    continue
                size = _chunk_size(line)
                if size:
                    self._need = size
                else:
                    self._trailers = True

    def end(self) -> None:
        """The connection closed: an error unless the body was whole (trailers may be cut)."""
        if self._trailers:
            self.done = True
            return
        if self._need or self._skip:
            raise _BrokenBody("the chunked body broke off inside a chunk")
        raise _broken(b"")


_poll = getattr(select, "poll", None)


def _gone(connection: _Connection) -> bool:
    """Whether an idle connection can no longer be used: closed by the server (it is readable
    while no request is out: the end of the stream, or bytes nobody asked for)."""
    sock = connection.sock
    if sock is None:
        return True
    try:
        if _poll is None:  # Windows: select, which has no fd limit there
            return bool(select.select([sock], [], [], 0)[0])
        poller = _poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


class _Connection(http.client.HTTPConnection):
    """http.client's connection, sending a request's head and body in one write.

    http.client writes them apart: two sends, two TCP segments, and the server woken twice.
    Most of a call's system time is its writes and reads (benchmarks/transport-decision.md).
    """

    hold_head = False  # set for a request with a body: its head waits for it
    _held: bytes | None = None

    def send(self, data: Any) -> None:
        if self.hold_head:
            self.hold_head = False
            self._held = data
            return
        held, self._held = self._held, None
        super().send(data if held is None else held + data)

    def close(self) -> None:
        self.hold_head, self._held = False, None
        super().close()


class _TLSConnection(_Connection, http.client.HTTPSConnection):
    """`_Connection` over TLS."""


class _Origin:
    """Idle connections to one scheme, host and port; the most recently used first."""

    def __init__(
        self, scheme: str, host: str, port: int | None, keep: int, context: ssl.SSLContext
    ) -> None:
        self.scheme = scheme
        self.host = host
        self.port = port
        self._keep = keep
        self._context = context
        self._idle: collections.deque[_Connection] = collections.deque()
        # A transport dropped without close() (a user's httpx.Client left to the collector)
        # closes its idle sockets rather than leaving them to be finalized unclosed.
        weakref.finalize(self, _close_all, self._idle)

    def connection(self, connect_timeout: float | None) -> _Connection:
        """An idle connection still open, or a new one, connected."""
        idle = self._idle
        while idle:
            try:
                connection = idle.pop()  # deque's pop and append are thread-safe
            except IndexError:
                break
            if not _gone(connection):
                return connection
            connection.close()
        connection = (
            _TLSConnection(self.host, self.port, timeout=connect_timeout, context=self._context)
            if self.scheme == "https"
            else _Connection(self.host, self.port, timeout=connect_timeout)
        )
        try:
            connection.connect()
        except BaseException:
            connection.close()  # a refused handshake leaves the plain socket open
            raise
        return connection

    def release(self, connection: _Connection) -> None:
        """Keep a connection whose last response was read to its end, if there is room."""
        if connection.sock is not None and len(self._idle) < self._keep:
            self._idle.append(connection)
        else:
            connection.close()

    def close(self) -> None:
        _close_all(self._idle)


def _close_all(idle: collections.deque[_Connection]) -> None:
    while idle:
        try:
            idle.pop().close()
        except IndexError:
            break


class _Body(httpx.SyncByteStream):
    """A response body as httpx reads it: bytes as they arrive; closing it early closes the
    connection, a fully read one goes back to the pool."""

    def __init__(
        self,
        reply: http.client.HTTPResponse,
        connection: _Connection,
        origin: _Origin,
        request: httpx.Request | None,
        reading: set[_Body],
    ) -> None:
        self._reply = reply
        self._connection: _Connection | None = connection
        self._origin = origin
        self._request = request
        self._complete = False
        self._reading = reading
        reading.add(self)

    def __iter__(self) -> Iterator[bytes]:
        return self.raw()

    def raw(self) -> Iterator[bytes]:
        """The body's bytes as read, without httpx's layers (see `_transports`)."""
        reply = self._reply
        try:
            if reply.chunked:
                # Read from the socket itself once http.client's reader has given what it holds
                # past the head: a live stream's event is then one receive and a few slices,
                # where http.client's chunked reads took a Python-level read, a line and two
                # reads (and its buffered ones would hold an event back).
                assert self._connection is not None
                sock = self._connection.sock
                # A response that closes its connection holds the socket itself (http.client
                # lets go of it): read that one through the response's reader.
                receive = reply.fp.read1 if sock is None else sock.recv
                dechunker = _Dechunker()
                data = reply.fp.read1(_READ_SIZE)
                while data:
                    body = dechunker.feed(data)
                    if body:
                        yield body
                    if dechunker.done:
                        if dechunker.error is not None:
                            raise dechunker.error
                        break
                    data = receive(_READ_SIZE)
                else:
                    dechunker.end()
            else:
                # read1: what one read gives, not a filled buffer (an event must not wait).
                read1 = reply.read1
                while data := read1(_READ_SIZE):
                    yield data
                if reply.length:  # http.client's read1 ends a short body quietly
                    raise _BrokenBody(f"the body ended {reply.length} bytes short")
        except _CATCH as exc:
            raise httpx_error(exc, _READ_ERRORS, self._request) from exc
        reply.close()  # read to its end: the connection can take the next request
        self._complete = True

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        self._reading.discard(self)
        if self._complete:
            self._origin.release(connection)
        else:
            # An unread rest cannot be skipped cheaply on a keep-alive connection.
            self._reply.close()
            connection.close()


class SyncTransport(httpx.BaseTransport):
    """``http.client`` connections, pooled per host, driven through httpx's transport interface.

    Args:
        keep: idle connections kept per host; more may be open at once (one per thread).
        ssl_context: used for every https connection (build one per process: each costs ms).

    The request's ``timeout`` extension applies: ``connect`` to opening a connection, ``read``
    to sending the request and to each read (the pool never makes a call wait, so ``pool`` has
    nothing to bound). Proxies are not read from the environment here (see
    `tokenhub_core._pools`). Redirects are not followed and nothing is retried: the client's
    lifecycle decides.
    """

    def __init__(self, *, keep: int, ssl_context: ssl.SSLContext) -> None:
        self._keep = keep
        self._ssl_context = ssl_context
        self._origins: dict[tuple[str, str, int | None], _Origin] = {}
        self._lock = threading.Lock()
        # The responses being read, held here as httpcore's pool holds its busy connections: a
        # stream dropped in a reference cycle is then closed by the client's deferred close,
        # not finalized by the collector with its socket ("unclosed socket").
        self._reading: set[_Body] = set()

    def _origin(self, url: httpx.URL) -> _Origin:
        key = (url.scheme, url.raw_host.decode("ascii"), url.port)
        origin = self._origins.get(key)
        if origin is None:
            if url.scheme not in ("http", "https"):
                raise httpx.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}")
            with self._lock:
                origin = self._origins.get(key)
                if origin is None:
                    origin = _Origin(*key, keep=self._keep, context=self._ssl_context)
                    self._origins[key] = origin
        return origin

    def post(
        self,
        url: httpx.URL,
        content: bytes,
        headers: Mapping[str, str],
        timeout: Mapping[str, float | None],
    ) -> Reply | httpx.Response:
        """POST ``content`` with ``headers`` (Host and Content-Length are added); the reply's
        body streams from the connection. What the client's own calls use (see `Reply`)."""
        framing = {"Content-Length": str(len(content))}
        reply, body = self._exchange(None, url, content, headers.items(), timeout, framing)
        names = {name.lower(): value for name, value in reply.getheaders()}
        if "content-encoding" in names:
            request = httpx.Request("POST", url, extensions={"timeout": dict(timeout)})
            return self._response(reply, body, request)
        return Reply(reply.status, names, body)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``; the response's body streams from the connection."""
        try:
            content: bytes = request.content
        except httpx.RequestNotRead:
            content = request.read()
        timeout: Mapping[str, float | None] = request.extensions.get("timeout", {})
        # httpx's request already has Host and Content-Length: sent as they are.
        reply, body = self._exchange(
            request, request.url, content, request.headers.raw, timeout, None
        )
        return self._response(reply, body, request)

    def _exchange(
        self,
        request: httpx.Request | None,
        url: httpx.URL,
        content: bytes,
        headers: Iterable[tuple[str, str]] | Iterable[tuple[bytes, bytes]],
        timeout: Mapping[str, float | None],
        framing: Mapping[str, str] | None,
    ) -> tuple[http.client.HTTPResponse, _Body]:
        """Send one request on a pooled connection and read the head of its reply."""
        origin = self._origin(url)
        try:
            connection = origin.connection(timeout.get("connect"))
        except _CATCH as exc:
            raise httpx_error(exc, _CONNECT_ERRORS, request) from exc
        errors = _WRITE_ERRORS
        try:
            read_timeout = timeout.get("read")
            if connection.sock.gettimeout() != read_timeout:  # setting it is a system call
                connection.sock.settimeout(read_timeout)
            connection.putrequest(
                request.method if request is not None else "POST",
                url.raw_path.decode("ascii"),
                skip_host=framing is None,
                skip_accept_encoding=True,
            )
            for name, value in headers:
                connection.putheader(name, value)
            if framing is not None:
                for name, value in framing.items():
                    connection.putheader(name, value)
            connection.hold_head = bool(content)
            connection.endheaders(content or None)
            errors = _HEAD_ERRORS
            reply = connection.getresponse()
        except _CATCH as exc:
            connection.close()
            raise httpx_error(exc, errors, request) from exc
        except BaseException:  # interrupted (KeyboardInterrupt): the connection is in between
            connection.close()
            raise
        return reply, _Body(reply, connection, origin, request, self._reading)

    @staticmethod
    def _response(
        reply: http.client.HTTPResponse, body: _Body, request: httpx.Request
    ) -> httpx.Response:
        return httpx.Response(
            reply.status,
            # Bytes: httpx takes them as they are (str pairs it re-encodes one by one).
            headers=[(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.getheaders()],
            stream=body,
            request=request,
            extensions={
                "http_version": b"HTTP/1.1" if reply.version == 11 else b"HTTP/1.0",
                "reason_phrase": reply.reason.encode("ascii", "replace"),
            },
        )

    def close(self) -> None:
        """Close every idle connection (those being read close as their responses do)."""
        with self._lock:
            origins, self._origins = list(self._origins.values()), {}
        for origin in origins:
            origin.close()
