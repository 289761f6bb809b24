"""The services' httpx client: keep-alive connections are reused, and one the server closed while
it sat in the pool is noticed before use (the next request goes out on a new connection, it does
not fail). A real HTTP/1.1 server on loopback, with its own count of connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest_asyncio

from services.runtime.http_client import SocketOnceBackend, async_client


@dataclass
class KeepAliveServer:
    """Answers every request 200 `ok`; with `close_after_answer` it closes the connection right
    after the answer, without saying so (no `Connection: close`), as a server's idle timeout does."""

    close_after_answer: bool = False
    connections: int = 0
    port: int = 0
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        while await reader.readuntil(b"\r\n\r\n"):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok")
            await writer.drain()
            if self.close_after_answer:
                writer.close()
                return


@pytest_asyncio.fixture
async def server() -> AsyncIterator[KeepAliveServer]:
    state = KeepAliveServer()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await state.serve(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    listening = await asyncio.start_server(serve, "127.0.0.1", 0)
    state.port = listening.sockets[0].getsockname()[1]
    async with listening:
        yield state
        for writer in state.writers:
            writer.close()


async def test_connections_are_reused(server: KeepAliveServer) -> None:
    async with async_client(timeout=5) as client:
        assert isinstance(client._transport._pool._network_backend, SocketOnceBackend)  # type: ignore[attr-defined]
        answers = [await client.get(f"http://127.0.0.1:{server.port}/{n}") for n in range(5)]
    assert [a.text for a in answers] == ["ok"] * 5
    assert server.connections == 1


async def test_a_connection_the_server_closed_in_the_pool_is_not_used(server: KeepAliveServer) -> None:
    requests = 3
    server.close_after_answer = True
    async with async_client(timeout=5) as client:
        answers = []
        for n in range(requests):
            answers.append(await client.get(f"http://127.0.0.1:{server.port}/{n}"))
            await asyncio.sleep(0.05)  # the server's FIN reaches the pooled socket
    assert [a.status_code for a in answers] == [200] * requests
    assert server.connections == requests
