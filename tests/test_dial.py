"""The FRP7 connect keeps each address's errno, so "nothing listens there" is told from a
path that fails, with no reading of error text."""

from __future__ import annotations

import asyncio
import errno
import socket

import pytest

from openfrp.terminal.dial import Unreachable, open_tcp, refused_connect


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_one_address_refused_is_its_own_error() -> None:
    with pytest.raises(ConnectionRefusedError) as caught:
        asyncio.run(open_tcp(f"ws://127.0.0.1:{_free_port()}/frp7"))
    assert refused_connect(caught.value)


def test_every_address_refused_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name with two addresses (as localhost has where it is also ::1), nothing at either."""
    port = _free_port()
    both = [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in ("127.0.0.1", "127.0.0.2")
    ]

    async def resolve(*_: object, **__: object) -> list[tuple[object, ...]]:
        return both

    async def dial() -> None:
        monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", resolve)
        await open_tcp(f"ws://server.test:{port}/frp7")

    with pytest.raises(Unreachable) as caught:
        asyncio.run(dial())
    assert [e.errno for e in caught.value.errors] == [errno.ECONNREFUSED] * 2
    assert refused_connect(caught.value)


def test_one_address_that_failed_otherwise_is_not_refused() -> None:
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed")
    silent = TimeoutError(errno.ETIMEDOUT, "Connect call failed")
    assert refused_connect(Unreachable([refused, refused]))
    assert not refused_connect(Unreachable([refused, silent]))
    assert not refused_connect(Unreachable([]))
    assert refused_connect(refused) and not refused_connect(OSError("no route"))


def test_a_listener_gives_a_connected_socket() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        sock = asyncio.run(open_tcp(f"ws://127.0.0.1:{port}/frp7"))
        assert sock is not None
        with sock:
            assert sock.getpeername() == ("127.0.0.1", port)


def test_a_proxy_from_the_environment_is_left_to_the_websocket_library(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    assert asyncio.run(open_tcp("wss://example.invalid:443/frp7")) is None
