"""Slowloris past the request head: a body that never completes, and a keep-alive connection
whose next request head never completes, are closed after `body_timeout` and `header_timeout`
(server.body_timed_out, server.head_timed_out), while the server goes on serving others."""

from __future__ import annotations

import contextlib
import json
import socket
import time

from tests.e2e.conftest import E2E
from tests.e2e.harness import healthy

HELD = 20


def _closed_within(sock: socket.socket, wait: float) -> float | None:
    """Seconds until the server closed `sock` (reading and dropping what it sent), or None."""
    begun = time.monotonic()
    deadline = begun + wait
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - begun
        except TimeoutError:
            return None
        except ConnectionResetError:
            return time.monotonic() - begun
    return None


def test_a_body_that_never_arrives_is_closed_after_body_timeout(e2e: E2E) -> None:
    server = e2e.server(server={"body_timeout": 1.0, "header_timeout": 5.0})
    head = (
        f"POST /api/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {server.admin_key}\r\nContent-Type: application/json\r\n"
        "Content-Length: 100\r\n\r\n{"
    ).encode()
    with contextlib.ExitStack() as stack:
        held = []
        for _ in range(HELD):
            sock = stack.enter_context(socket.create_connection(("127.0.0.1", server.port)))
            sock.sendall(head)  # the head and one byte of the body, then nothing
            held.append(sock)
        assert healthy(server.url)  # others are served meanwhile
        waits = [_closed_within(sock, 4.0) for sock in held]
        assert all(w is not None and w < 3.0 for w in waits), waits
    assert healthy(server.url)
    assert server.api("GET", "/api/sessions").body == {"sessions": []}  # no launch half-done
    timed_out = server.log.wait_event(event="server.body_timed_out")
    assert timed_out["attrs"]["limit"] == 1.0 and timed_out["attrs"]["refused"] >= 1
    assert timed_out["attrs"]["address"] == "127.0.0.1"
    assert "Traceback" not in server.stderr()


def test_the_next_request_head_on_a_kept_alive_connection_has_header_timeout(e2e: E2E) -> None:
    server = e2e.server(server={"header_timeout": 1.0})
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        sock.settimeout(5)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # no end of head
        closed = _closed_within(sock, 8.0)
    assert closed is not None and closed < 3.0, closed
    assert healthy(server.url)


def test_a_slow_but_steady_body_within_body_timeout_is_served(e2e: E2E) -> None:
    server = e2e.server(server={"body_timeout": 2.0})
    body = json.dumps({"user": "alice", "launchpad": "desktop"}).encode()
    head = (
        f"POST /api/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {server.admin_key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(head + body[:5])
        time.sleep(1.0)
        sock.sendall(body[5:])
        sock.settimeout(5)
        assert sock.recv(65536).startswith(b"HTTP/1.1 201")
