"""The fault proxy against a real loopback echo server, in process and as its own process."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import socketserver
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from tests.support.faultproxy import FaultProxy, ProxyError, require_local, start_proxy_process

SILENCE = 0.3


class EchoServer:
    """Echoes every byte; records how each connection ended so tests see what the server saw."""

    def __init__(self) -> None:
        self.endings: list[str] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._echo, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()

    async def _echo(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(4096):
                writer.write(data)
                await writer.drain()
            self.endings.append("eof")
        except ConnectionResetError:
            self.endings.append("reset")
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def proxied_echo() -> AsyncIterator[tuple[EchoServer, FaultProxy]]:
    echo = EchoServer()
    await echo.start()
    proxy = FaultProxy()
    await proxy.start(target_port=echo.port)
    try:
        yield echo, proxy
    finally:
        await proxy.stop()
        await echo.stop()


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 20))


async def connect(proxy: FaultProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", proxy.port)


async def echo_once(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes
) -> None:
    writer.write(data)
    await writer.drain()
    assert await asyncio.wait_for(reader.readexactly(len(data)), 5) == data


async def assert_silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Nothing comes back, and the connection is neither closed nor reset."""
    writer.write(b"into the void")
    await writer.drain()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(100), SILENCE)
    assert not reader.at_eof()
    assert not writer.is_closing()


async def assert_dropped(reader: asyncio.StreamReader) -> None:
    """The connection ends without data: a reset, or EOF if the reset was already consumed."""
    with contextlib.suppress(ConnectionResetError):
        assert await asyncio.wait_for(reader.read(100), 5) == b""


async def wait_for_endings(echo: EchoServer, count: int) -> None:
    for _ in range(100):
        if len(echo.endings) >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"echo server saw {echo.endings}, expected {count} endings")


def test_forward_echoes_and_counts() -> None:
    async def body() -> None:
        async with proxied_echo() as (echo, proxy):
            reader, writer = await connect(proxy)
            await echo_once(reader, writer, b"hello")
            await echo_once(reader, writer, b"again")
            writer.write_eof()
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()
            await wait_for_endings(echo, 1)
            assert echo.endings == ["eof"]
            stats = proxy.stats_dict()
            assert stats["mode"] == "forward"
            assert stats["accepted"] == 1
            assert stats["bytes_to_target"] == 10
            assert stats["bytes_to_client"] == 10

    run(body)


def test_blackhole_keeps_connections_open_and_silent() -> None:
    async def body() -> None:
        async with proxied_echo() as (echo, proxy):
            reader, writer = await connect(proxy)
            await echo_once(reader, writer, b"before")
            proxy.blackhole()
            await assert_silent(reader, writer)
            late_reader, late_writer = await connect(proxy)
            await assert_silent(late_reader, late_writer)
            assert echo.endings == []
            assert proxy.stats.bytes_discarded == 2 * len(b"into the void")
            assert proxy.active == 2
            writer.close()
            late_writer.close()

    run(body)


def test_forward_after_blackhole_heals_existing_connections() -> None:
    async def body() -> None:
        async with proxied_echo() as (_, proxy):
            reader, writer = await connect(proxy)
            await echo_once(reader, writer, b"before")
            proxy.blackhole()
            await assert_silent(reader, writer)
            proxy.forward()
            await echo_once(reader, writer, b"after")
            writer.close()

    run(body)


def test_restore_after_blackhole_serves_new_connections_only() -> None:
    async def body() -> None:
        async with proxied_echo() as (_, proxy):
            old_reader, old_writer = await connect(proxy)
            await echo_once(old_reader, old_writer, b"before")
            proxy.blackhole()
            proxy.restore()
            await assert_silent(old_reader, old_writer)
            reader, writer = await connect(proxy)
            await echo_once(reader, writer, b"new path")
            old_writer.close()
            writer.close()

    run(body)


def test_stall_passes_the_clients_bytes_and_holds_the_targets_until_forward() -> None:
    async def body() -> None:
        async with proxied_echo() as (echo, proxy):
            reader, writer = await connect(proxy)
            await echo_once(reader, writer, b"before")
            proxy.stall()
            await assert_silent(reader, writer)
            assert proxy.stats.bytes_to_target == len(b"before") + len(b"into the void")
            assert echo.endings == [] and proxy.stats_dict()["mode"] == "stall"
            proxy.forward()  # the echo held back arrives, nothing lost
            echoed = await asyncio.wait_for(reader.readexactly(len(b"into the void")), 5)
            assert echoed == b"into the void"
            writer.close()

    run(body)


def test_cut_resets_both_sides_and_refuses_new_connections() -> None:
    async def body() -> None:
        async with proxied_echo() as (echo, proxy):
            reader, writer = await connect(proxy)
            await echo_once(reader, writer, b"before")
            proxy.cut()
            await assert_dropped(reader)
            await wait_for_endings(echo, 1)
            assert echo.endings == ["reset"]
            new_reader, new_writer = await connect(proxy)
            await assert_dropped(new_reader)
            assert proxy.stats.refused == 1
            assert proxy.active == 0
            writer.close()
            new_writer.close()

    run(body)


def test_restore_after_cut_echoes_again() -> None:
    async def body() -> None:
        async with proxied_echo() as (_, proxy):
            proxy.cut()
            refused_reader, refused_writer = await connect(proxy)
            await assert_dropped(refused_reader)
            proxy.restore()
            reader, writer = await connect(proxy)
            await echo_once(reader, writer, b"back")
            assert proxy.stats_dict()["accepted"] == 2
            refused_writer.close()
            writer.close()

    run(body)


def test_only_loopback_and_test_namespace_addresses() -> None:
    async def body() -> None:
        for address in ("192.0.2.1", "10.232.0.1", "0.0.0.0"):
            with pytest.raises(ValueError, match="neither loopback nor a test namespace"):
                await FaultProxy().start(target_host=address, target_port=9)
        with pytest.raises(ValueError, match="neither loopback"):
            await FaultProxy().start(listen_host="0.0.0.0", target_port=9)
        assert require_local("10.231.7.2") == "10.231.7.2" and require_local("::1") == "::1"

    run(body)


class _EchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        with contextlib.suppress(OSError):
            while data := self.request.recv(4096):
                self.request.sendall(data)


@pytest.fixture
def threaded_echo() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _EchoHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _sync_connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.settimeout(5)
    return sock


def _sync_echo(sock: socket.socket, data: bytes) -> None:
    sock.sendall(data)
    received = b""
    while len(received) < len(data):
        chunk = sock.recv(len(data) - len(received))
        assert chunk, "connection closed before the echo came back"
        received += chunk
    assert received == data


def test_process_mode_via_control_port(threaded_echo: int) -> None:
    with start_proxy_process(threaded_echo) as proxy:
        assert proxy.port > 0 and proxy.control_port > 0
        with _sync_connect(proxy.port) as sock:
            _sync_echo(sock, b"hello")
            assert proxy.control("blackhole") == "ok"
            sock.sendall(b"lost")
            sock.settimeout(SILENCE)
            with pytest.raises(TimeoutError):
                sock.recv(100)
            assert proxy.control("cut") == "ok"
            sock.settimeout(5)
            with contextlib.suppress(ConnectionResetError):
                assert sock.recv(100) == b""
        assert proxy.control("restore") == "ok"
        with _sync_connect(proxy.port) as sock:
            _sync_echo(sock, b"back again")
        stats = proxy.stats()
        assert stats["mode"] == "forward"
        assert stats["accepted"] == 2
        assert stats["bytes_to_target"] == len(b"hello") + len(b"back again")
        assert stats["bytes_discarded"] == len(b"lost")
        with pytest.raises(ProxyError, match="unknown command"):
            proxy.control("explode")
    assert proxy.process.returncode == 0
