"""The server out of file descriptors: idle connections that never send a request head hold
them (Slowloris) until header_timeout closes them; meanwhile the server says so once, as an
event and a line, without tracebacks, and serves again while the attackers still hold on."""

from __future__ import annotations

import contextlib
import resource
import socket
import time

import pytest

from tests.e2e.conftest import E2E
from tests.e2e.harness import bounded, healthy, hello_for, outcome

LIMIT = 64
IDLE = 100


def test_out_of_descriptors_is_said_once_and_idle_connections_are_closed(e2e: E2E) -> None:
    server = e2e.server(server={"header_timeout": 1.0})
    started = server.log.wait_event(event="server.started")
    assert started["attrs"]["open_files_limit"] >= 256  # raised toward max_open_files
    try:
        resource.prlimit(server.process.pid, resource.RLIMIT_NOFILE, (LIMIT, LIMIT))
    except (PermissionError, OSError) as exc:
        pytest.skip(f"cannot lower the server's descriptor limit: {exc}")
    with contextlib.ExitStack() as stack:
        for _ in range(IDLE):  # more than the server can hold, none ever sends a byte
            idle = stack.enter_context(socket.create_connection(("127.0.0.1", server.port)))
            idle.setblocking(False)
        exhausted = server.log.wait_event(event="server.fd_exhausted", timeout=5)
        assert exhausted["attrs"]["limit"] == LIMIT and exhausted["attrs"]["failures"] >= 1
        begun = time.monotonic()
        for _ in bounded(12.0, step=0.2):
            if healthy(server.url):
                break
        assert healthy(server.url), "the server never served again"
        assert time.monotonic() - begun < 12
    stderr = server.stderr()
    assert "Traceback" not in stderr
    said = [  # past start-up (its lines, and its doubt of the harness' short idle_timeout)
        line
        for line in stderr.splitlines()
        if " INFO openfrp." not in line and "is shorter than reconnect_window" not in line
    ]
    assert len(said) == 1 and "out of file descriptors" in said[0], stderr[:2000]
    assert len(server.log.find(event="server.fd_exhausted")) <= 2


def test_header_timeout_leaves_upgraded_websockets_and_keep_alive_alone(e2e: E2E) -> None:
    server = e2e.server(account={"receive_timeout": 5.0}, server={"header_timeout": 1.0})
    ticket = server.launch("alice")
    raw = e2e.raw(server.ws_url)
    raw.handshake(hello_for(ticket))
    time.sleep(1.5)
    raw.send({"type": "ping", "id": 3})
    assert outcome(raw) == ("pong", 3)
    assert healthy(server.url)


def _closed_by_server(sock: socket.socket, wait: float) -> bool:
    sock.settimeout(wait)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_one_address_holds_at_most_max_connections_per_address(e2e: E2E) -> None:
    server = e2e.server(server={"max_connections_per_address": 5})
    with contextlib.ExitStack() as stack:
        held = [
            stack.enter_context(socket.create_connection(("127.0.0.1", server.port)))
            for _ in range(5)
        ]
        extra = [
            stack.enter_context(socket.create_connection(("127.0.0.1", server.port)))
            for _ in range(3)
        ]
        assert all(_closed_by_server(sock, 2.0) for sock in extra)
        assert not any(_closed_by_server(sock, 0.2) for sock in held)
        assert not healthy(server.url)  # this address has its five
        for sock in held:
            sock.close()
        for _ in bounded(5.0, step=0.2):
            if healthy(server.url):
                break
        assert healthy(server.url)
    refused = server.log.find(event="server.connections_refused")
    assert len(refused) == 1 and refused[0]["attrs"]["limit"] == 5
    assert refused[0]["attrs"]["address"] == "127.0.0.1"
