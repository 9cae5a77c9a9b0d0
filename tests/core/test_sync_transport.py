"""The sync pool (http.client behind httpx's transport interface) over real loopback HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import socket
import socketserver
import ssl
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import trustme

import tokenhub_core._pools as pools_module
from tokenhub_core import TokenHubClient, errors
from tokenhub_core._sync_transport import SyncTransport, _BrokenBody, _Dechunker
from tokenhub_emulator import TokenHubEmulator

from .helpers import unreachable_client

MODEL = "anthropic/claude-haiku-4-5"
USER = [{"role": "user", "content": "Say something about pools."}]
LONG = [{"role": "user", "content": "word " * 300}]


def test_the_default_sync_pool_is_http_client(tokenhub_emulator: TokenHubEmulator) -> None:
    assert isinstance(pools_module.pools.sync(), SyncTransport)
    completion = TokenHubClient().chat(model=MODEL, messages=USER)
    assert completion.choices[0].message.content
    assert completion.request_id  # headers crossed the transport


def test_faults_over_real_http(tokenhub_emulator: TokenHubEmulator) -> None:
    client = TokenHubClient()
    tokenhub_emulator.fail_next(429, headers={"retry-after-ms": "20"})
    tokenhub_emulator.fail_next_html(502)
    assert client.chat(model=MODEL, messages=USER).choices[0].message.content
    assert [r.status for r in tokenhub_emulator.requests] == [429, 502, 200]

    tokenhub_emulator.truncate_next()
    with pytest.raises(errors.APIResponseError):
        client.chat(model=MODEL, messages=USER)

    tokenhub_emulator.drop_stream_after(3)
    with pytest.raises(errors.StreamInterruptedError) as caught:
        _ = list(client.stream(model=MODEL, messages=LONG))
    assert caught.value.partial is not None and caught.value.partial.choices[0].message.content

    tokenhub_emulator.sse_error_after(2, message="overloaded mid-stream")
    with pytest.raises(errors.APIResponseError, match="overloaded mid-stream"):
        _ = list(client.stream(model=MODEL, messages=USER))


def test_read_timeouts_before_headers_and_mid_stream(tokenhub_emulator: TokenHubEmulator) -> None:
    client = TokenHubClient(timeout=0.3, max_retries=1)
    tokenhub_emulator.delay_headers(1.0, times=2)
    with pytest.raises(errors.APITimeoutError):
        client.chat(model=MODEL, messages=USER)
    assert len(tokenhub_emulator.requests) == 2

    client = TokenHubClient(timeout=httpx.Timeout(5.0, read=0.3), max_retries=0)
    tokenhub_emulator.slow_drip(1.0)
    with pytest.raises(errors.StreamInterruptedError, match="ReadTimeout"):
        _ = list(client.stream(model=MODEL, messages=USER))


def test_connection_refused_is_a_connection_error_not_a_timeout() -> None:
    client = unreachable_client()
    with pytest.raises(errors.APIConnectionError) as caught:
        client.chat(model=MODEL, messages=USER)
    assert not isinstance(caught.value, errors.APITimeoutError)


_EVENT = (
    b'data: {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {"content": "%s"}}]}\n\n'
)
_DONE = (
    b'data: {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {}, '
    b'"finish_reason": "stop"}]}\n\ndata: [DONE]\n\n'
)


_CHUNKED_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
)


def _chunk(data: bytes, extension: bytes = b"") -> bytes:
    return b"%x%s\r\n%s\r\n" % (len(data), extension, data)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, mode: str, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode = mode
        self.script = b""  # mode "script": the chunked body sent, as is
        self.head = _CHUNKED_HEAD  # mode "script": the head sent before it
        self.accepted = 0
        self.closed = threading.Semaphore(0)  # released once each connection is closed here
        self.first_event_read = threading.Event()
        self._tls = tls

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        super().shutdown_request(request)
        self.closed.release()  # after the close: the client can see it from now on

    def get_request(self) -> tuple[socket.socket, object]:
        connection, address = super().get_request()
        if self._tls is not None:
            connection = self._tls.wrap_socket(connection, server_side=True)
        return connection, address

    @property
    def base_url(self) -> str:
        scheme, host = ("https", "localhost") if self._tls else ("http", "127.0.0.1")
        return f"{scheme}://{host}:{self.server_address[1]}/api/v1"


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        self.server.accepted += 1
        while head := self._head():
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            self.rfile.read(length)
            mode = self.server.mode
            if mode == "hang-up":
                return
            if mode == "chat":
                self._answer_chat()
                continue
            if mode == "chat-then-close":  # as a server does with a connection idle too long
                self._answer_chat()
                return
            if mode == "short":
                self.wfile.write(b'HTTP/1.1 200 OK\r\ncontent-length: 400\r\n\r\n{"id": ')
                return
            if mode == "script":
                self.wfile.write(self.server.head + self.server.script)
                self.wfile.flush()
                if b"connection: close" in self.server.head:
                    return
                if self.server.script.endswith(b"\r\n\r\n"):
                    continue  # a whole body: the connection stays open for the next request
                return
            # A stream whose second event is sent only once the client has read the first:
            # a transport that waits to fill a buffer would never get it.
            chunked = mode == "chunked"
            head_lines = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            head_lines += b"transfer-encoding: chunked\r\n\r\n" if chunked else b"\r\n"
            self.wfile.write(head_lines)
            self._send(_EVENT % b"first", chunked)
            self.server.first_event_read.wait(10)
            self._send(_EVENT % b" second" + _DONE, chunked)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
            return

    def _head(self) -> bytes:
        lines = []
        while (line := self.rfile.readline()) not in (b"\r\n", b""):
            lines.append(line)
        return b"".join(lines)

    def _send(self, data: bytes, chunked: bool) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
        self.wfile.flush()

    def _answer_chat(self) -> None:
        body = json.dumps(
            {
                "id": "c1",
                "object": "chat.completion",
                "model": MODEL,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "hi"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        ).encode()
        self.wfile.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body)
        )
        self.wfile.flush()


@contextlib.contextmanager
def _serving(mode: str, tls: ssl.SSLContext | None = None) -> Iterator[_Server]:
    server = _Server(mode, tls)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.first_event_read.set()
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("mode", ["chunked", "until-close"])
def test_each_event_is_handed_over_as_it_arrives(mode: str) -> None:
    with _serving(mode) as server:
        client = TokenHubClient(api_key="th-test", base_url=server.base_url, max_retries=0)
        with client.stream(model=MODEL, messages=USER) as stream:
            first = next(stream)
            server.first_event_read.set()
            rest = list(stream)
    assert first.choices[0].delta.content == "first"
    assert stream.completion().choices[0].message.content == "first second"
    assert rest[-1].choices[0].finish_reason == "stop"


def test_a_server_hanging_up_is_a_connection_error_not_a_timeout() -> None:
    with _serving("hang-up") as server:
        client = TokenHubClient(api_key="th-test", base_url=server.base_url, max_retries=1)
        with pytest.raises(errors.APIConnectionError) as caught:
            client.chat(model=MODEL, messages=USER)
    assert not isinstance(caught.value, errors.APITimeoutError)


def test_connections_are_reused_from_one_thread_and_from_many() -> None:
    with _serving("chat") as server:
        transport = SyncTransport(keep=4, ssl_context=pools_module.pools.ssl_context())
        with httpx.Client(transport=transport) as http:
            client = TokenHubClient(api_key="th-test", base_url=server.base_url, http_client=http)
            for _ in range(10):
                client.chat(model=MODEL, messages=USER)
            assert server.accepted == 1
            threads = [
                threading.Thread(target=client.chat, kwargs={"model": MODEL, "messages": USER})
                for _ in range(8)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert server.accepted <= 9  # at most one new connection per thread at once


def _tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for localhost, and a client context trusting it."""
    ca = trustme.CA()
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost").configure_cert(server_tls)
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    return server_tls, trusting


def client_on(context: ssl.SSLContext, base_url: str) -> TokenHubClient:
    """A client on its own `SyncTransport` using ``context`` for https."""
    http = httpx.Client(transport=SyncTransport(keep=2, ssl_context=context))
    return TokenHubClient(api_key="th-test", base_url=base_url, http_client=http, max_retries=0)


def _stream_first_second(client: TokenHubClient, times: int) -> None:
    """Stream ``times`` times, each reading "first second" whole."""
    for _ in range(times):
        with client.stream(model=MODEL, messages=USER) as stream:
            _ = list(stream)
        assert stream.completion().choices[0].message.content == "first second"


def test_https_verifies_the_certificate_and_its_host() -> None:
    server_tls, trusting = _tls_contexts()
    with _serving("chat", server_tls) as server:
        reply = client_on(trusting, server.base_url).chat(model=MODEL, messages=USER)
        assert reply.choices[0].message.content == "hi"
        with pytest.raises(errors.APIConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            client_on(ssl.create_default_context(), server.base_url).chat(
                model=MODEL, messages=USER
            )
        wrong_host = server.base_url.replace("localhost", "127.0.0.1")  # the cert names localhost
        with pytest.raises(errors.APIConnectionError, match=r"(?i)mismatch|doesn't match"):
            client_on(trusting, wrong_host).chat(model=MODEL, messages=USER)


def test_a_chunked_stream_over_tls_is_read_whole_and_its_connection_reused() -> None:
    server_tls, trusting = _tls_contexts()
    with _serving("script", server_tls) as server:
        server.script = (
            _chunk(_EVENT % b"first")
            + _chunk(_EVENT % b" second" + _DONE, b";name=value")
            + b"0\r\n\r\n"
        )
        _stream_first_second(client_on(trusting, server.base_url), 3)
        assert server.accepted == 1


@pytest.mark.parametrize("tls", [False, True])
def test_a_chunked_stream_that_closes_its_connection_is_read_whole(tls: bool) -> None:
    # "Connection: close": http.client hands the socket to the response and drops its own.
    server_tls, trusting = _tls_contexts()
    with _serving("script", server_tls if tls else None) as server:
        server.head = _CHUNKED_HEAD.replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n")
        server.script = _chunk(_EVENT % b"first") + _chunk(_EVENT % b" second" + _DONE)
        server.script += b"0\r\n\r\n"
        _stream_first_second(client_on(trusting, server.base_url), 2)
        assert server.accepted == 2  # a connection the server closes is not reused


def test_chunk_extensions_and_trailers_are_read_past_and_the_connection_reused() -> None:
    with _serving("script") as server:
        server.script = (
            _chunk(_EVENT % b"first", b";name=value")
            + _chunk(_EVENT % b" second" + _DONE)
            + b"0\r\nx-checksum: 1f\r\n\r\n"
        )
        client = TokenHubClient(api_key="th-test", base_url=server.base_url, max_retries=0)
        _stream_first_second(client, 3)
        assert server.accepted == 1


_FRAMED = (
    b"5\r\nhello\r\n"
    + b"6;name=value\r\n world\r\n"  # an extension
    + b"1A\r\n"
    + b"x" * 26
    + b"\r\n"  # upper-case hex
    + b"3\n"
    + b"end\r\n"  # a bare LF after the size
    + b"0\r\nx-checksum: 1f\r\n\r\n"  # a trailer field
)
_UNFRAMED = b"hello world" + b"x" * 26 + b"end"


def _dechunk(pieces: list[bytes]) -> tuple[bytes, _Dechunker]:
    dechunker, out = _Dechunker(), []
    for piece in pieces:
        out.append(dechunker.feed(piece))
        if dechunker.done:
            break
    return b"".join(out), dechunker


def test_the_dechunker_gives_the_data_however_the_reads_split_the_framing() -> None:
    whole, dechunker = _dechunk([_FRAMED])
    assert (whole, dechunker.done) == (_UNFRAMED, True)
    for cut in range(1, len(_FRAMED)):  # every split in two, inside sizes, data, CRLFs, trailers
        assert _dechunk([_FRAMED[:cut], _FRAMED[cut:]])[0] == _UNFRAMED, cut
    one_by_one, dechunker = _dechunk([_FRAMED[i : i + 1] for i in range(len(_FRAMED))])
    assert (one_by_one, dechunker.done) == (_UNFRAMED, True)
    # What follows the last chunk's trailers is not body.
    assert _dechunk([_FRAMED + b"HTTP/1.1 200 OK\r\n"])[0] == _UNFRAMED


@pytest.mark.parametrize(
    ("framing", "message"),
    [
        (b"zz\r\n", "invalid chunk size"),
        (b"-5\r\n", "invalid chunk size"),
        (b"fffffffffffff\r\n", "invalid chunk size"),  # beyond any reply: never allocated
        (b"1" * 5000, "invalid chunk size"),  # a size line with no end in sight
    ],
)
def test_the_dechunker_refuses_broken_sizes_after_giving_the_data_before_them(
    framing: bytes, message: str
) -> None:
    dechunker = _Dechunker()
    assert dechunker.feed(b"5\r\nhello\r\n" + framing) == b"hello"
    assert dechunker.done and dechunker.error is not None
    assert message in str(dechunker.error)
    with pytest.raises(_BrokenBody, match=message):
        _Dechunker().feed(framing)


def test_the_dechunker_tells_where_a_closed_connection_cut_the_body() -> None:
    inside = _Dechunker()
    assert inside.feed(b"a\r\nhalf") == b"half"
    with pytest.raises(_BrokenBody, match="inside a chunk"):
        inside.end()
    between = _Dechunker()
    assert between.feed(b"4\r\nwhol\r\n") == b"whol"
    with pytest.raises(_BrokenBody, match="the connection closed"):
        between.end()
    in_trailers = _Dechunker()
    in_trailers.feed(b"0\r\nx-checksum: 1f\r\n")
    in_trailers.end()  # the body was whole; only trailers were cut
    assert in_trailers.done


@pytest.mark.parametrize(
    "broken",
    [
        b"zz\r\n",  # not a size
        b"-5\r\n",
        b"fffffffffffff\r\n",  # more than any reply: refused, not allocated
        b"40\r\nonly ten b",  # the connection closes inside a chunk
        b"",  # the connection closes where a size line should be
    ],
)
def test_broken_chunked_framing_interrupts_the_stream_and_keeps_what_came(broken: bytes) -> None:
    with _serving("script") as server:
        server.script = _chunk(_EVENT % b"first") + broken
        client = TokenHubClient(api_key="th-test", base_url=server.base_url, max_retries=0)
        with pytest.raises(errors.StreamInterruptedError, match="RemoteProtocolError") as caught:
            _ = list(client.stream(model=MODEL, messages=USER))
    assert caught.value.partial is not None
    assert caught.value.partial.choices[0].message.content == "first"


def test_a_body_shorter_than_its_length_is_an_error_not_a_short_reply() -> None:
    with _serving("short") as server:
        client = TokenHubClient(api_key="th-test", base_url=server.base_url, max_retries=0)
        with pytest.raises(errors.APIConnectionError, match="bytes short"):
            client.chat(model=MODEL, messages=USER)


def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    with _serving("chat-then-close") as server:
        client = TokenHubClient(api_key="th-test", base_url=server.base_url, max_retries=0)
        for _ in range(3):
            assert client.chat(model=MODEL, messages=USER).choices[0].message.content == "hi"
            assert server.closed.acquire(timeout=5)  # closed by the server, then idle here
        assert server.accepted == 3  # each call found the last connection gone and opened one


def test_a_transport_left_to_the_collector_closes_its_idle_connections() -> None:
    with _serving("chat") as server:
        transport = SyncTransport(keep=4, ssl_context=pools_module.pools.ssl_context())
        client = TokenHubClient(
            api_key="th-test",
            base_url=server.base_url,
            http_client=httpx.Client(transport=transport),
        )
        client.chat(model=MODEL, messages=USER)
        assert not server.closed.acquire(timeout=0.05)  # idle in the pool, still open
        del client, transport
        gc.collect()
        assert server.closed.acquire(timeout=5)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_any_httpx_transport_can_be_the_pool(
    mode: str, tokenhub_emulator: TokenHubEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ours answer with a light Reply; another httpx transport (as the benchmarks swap in) is
    # sent an httpx.Request and answers with an httpx.Response.
    client = TokenHubClient()
    if mode == "sync":
        with httpx.HTTPTransport() as transport:
            monkeypatch.setattr(pools_module.pools, "_sync", transport)
            reply = client.chat(model=MODEL, messages=USER)
            with client.stream(model=MODEL, messages=USER) as stream:
                streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    else:
        monkeypatch.setattr(pools_module.pools, "_new_async_pool", httpx.AsyncHTTPTransport)

        async def calls() -> tuple[Any, str]:
            reply = await client.achat(model=MODEL, messages=USER)
            async with client.astream(model=MODEL, messages=USER) as stream:
                pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]
            return reply, "".join(pieces)

        reply, streamed = asyncio.run(calls())
    assert reply.choices[0].message.content and reply.request_id
    assert streamed  # the emulator's answer, streamed


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_a_forked_child_opens_connections_of_its_own() -> None:
    with _serving("chat") as server:
        client = TokenHubClient(api_key="th-test", base_url=server.base_url, max_retries=0)
        client.chat(model=MODEL, messages=USER)  # its connection is now idle in the shared pool
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
            pid = os.fork()
        if pid == 0:  # the child: report through the exit code only
            code = 1
            try:
                code = 0 if client.chat(model=MODEL, messages=USER).choices else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert server.accepted == 2  # the child's call came on a connection of its own
        client.chat(model=MODEL, messages=USER)
        assert server.accepted == 2  # and the parent's connection is still the parent's
