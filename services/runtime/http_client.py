"""The httpx client the services' own HTTP clients use: httpx as is, with a cheaper check of a
pooled connection.

Before it reuses a keep-alive connection, httpcore asks its stream whether the socket is readable
(a server that closed it has sent EOF). On anyio's streams that question rebuilds a dict of every
socket attribute each time: 5 % of an incident's CPU in `oncall up` (py-spy, bench/pipeline.py, at 14
requests per incident). The stream below looks the socket up once. If a future httpx or
httpcore no longer has the pool's backend where this expects it, the transport is plain httpx.
"""

# The `timeout` parameters are httpcore's network-stream interface, passed through as they are.
# ruff: noqa: ASYNC109

from __future__ import annotations

import select
import socket
import ssl
from typing import Any

import httpcore
import httpx


def is_socket_readable(sock: socket.socket | None) -> bool:
    """Data or EOF waiting: a pooled connection the server closed. A socket without a descriptor
    counts as readable, so that the connection is dropped rather than used (as httpcore does)."""
    fd = -1 if sock is None else sock.fileno()
    if fd < 0:
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class SocketOnceStream(httpcore.AsyncNetworkStream):
    """A connection's stream whose raw socket is looked up once, not on every reuse check."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        return SocketOnceStream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return is_socket_readable(self._socket)
        if info == "socket":
            return self._socket
        return self._inner.get_extra_info(info)


class SocketOnceBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return SocketOnceStream(stream)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        return SocketOnceStream(await self._inner.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def transport(**options: Any) -> httpx.AsyncHTTPTransport:
    """`httpx.AsyncHTTPTransport(**options)` with its connections' streams wrapped."""
    made = httpx.AsyncHTTPTransport(**options)
    pool = getattr(made, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if isinstance(pool, httpcore.AsyncConnectionPool) and isinstance(backend, httpcore.AsyncNetworkBackend):
        pool._network_backend = SocketOnceBackend(backend)
    return made


def async_client(**options: Any) -> httpx.AsyncClient:
    """`httpx.AsyncClient(**options)` over `transport()`; proxies from the environment still apply."""
    return httpx.AsyncClient(transport=transport(), **options)
