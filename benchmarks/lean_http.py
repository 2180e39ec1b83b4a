"""A minimal HTTP/1.1 keep-alive client for the load generator (asyncio protocol + httptools).

The load generator shares the 2-core machine with the server it measures, so every microsecond
of client CPU is taken from the server: httpx spends about 1–2 ms of CPU per request, this client
a few tens of microseconds (the request is written with one ``transport.write``, the response is
parsed by httptools' C parser). One request at a time per connection, like pgbench's clients.
Loopback only; no TLS, no redirects, no chunked request bodies.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import httptools
import orjson


@dataclass
class Response:
    status: int
    headers: dict[bytes, bytes]
    body: bytes

    def json(self) -> object:
        return orjson.loads(self.body)

    def header(self, name: str) -> str | None:
        value = self.headers.get(name.lower().encode())
        return value.decode("latin-1") if value is not None else None


class ConnectionClosed(ConnectionError):
    """The server closed the connection before answering."""


@dataclass
class _Pending:
    future: asyncio.Future[Response]
    status: int = 0
    headers: dict[bytes, bytes] = field(default_factory=dict)
    chunks: list[bytes] = field(default_factory=list)


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.pending: _Pending | None = None
        self.closed = False

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's TCPTransport is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self.pending is not None and not self.pending.future.done():
                self.pending.future.set_exception(exc)
            self._close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.pending is not None and not self.pending.future.done():
            self.pending.future.set_exception(ConnectionClosed(str(exc) if exc else "closed by the server"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.pending is not None
        self.pending.headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        assert self.pending is not None
        self.pending.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        assert self.pending is not None
        self.pending.chunks.append(body)

    def on_message_complete(self) -> None:
        pending, self.pending = self.pending, None
        assert pending is not None
        if not self.parser.should_keep_alive():
            self._close()
        if not pending.future.done():
            pending.future.set_result(Response(pending.status, pending.headers, b"".join(pending.chunks)))

    def _close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


CONNECT_TIMEOUT = 10.0
"""Seconds a TCP connect may take before the request fails with TimeoutError."""


class LeanClient:
    """One keep-alive connection to ``host:port``; reconnects after the server closes it."""

    def __init__(self, host: str, port: int, *, default_headers: dict[str, str] | None = None) -> None:
        self.host, self.port = host, port
        self.default = "".join(f"{k}: {v}\r\n" for k, v in (default_headers or {}).items())
        self._proto: _Protocol | None = None

    async def _connection(self, timeout: float) -> _Protocol:
        if self._proto is None or self._proto.closed:
            loop = asyncio.get_running_loop()
            # Bounded like a browser's connect timeout: under overload the kernel drops SYNs when the
            # server's accept queue is full, and the kernel's own retries take up to ~2 minutes.
            _, proto = await asyncio.wait_for(
                loop.create_connection(_Protocol, self.host, self.port), min(timeout, CONNECT_TIMEOUT)
            )
            self._proto = proto
        return self._proto

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        json: object | None = None,
        timeout: float = 30.0,
    ) -> Response:
        if json is not None:
            body = orjson.dumps(json)
            headers = {**(headers or {}), "Content-Type": "application/json"}
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{self.default}{extra}"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode("latin-1")
        proto = await self._connection(timeout)
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        proto.pending = _Pending(future)
        proto.parser = httptools.HttpResponseParser(proto)
        assert proto.transport is not None
        proto.transport.write(head + body)
        try:
            return await asyncio.wait_for(future, timeout)
        except BaseException:
            proto._close()  # a timed-out or cancelled exchange leaves the connection unusable
            raise

    async def close(self) -> None:
        if self._proto is not None:
            self._proto._close()
            self._proto = None

    async def __aenter__(self) -> LeanClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
