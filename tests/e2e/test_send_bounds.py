"""Every byte queued to a terminal that never reads counts toward send_buffer_limit (4003),
and the socket of a terminal closed that way is aborted, not held until it reads."""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.request

from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import E2E
from tests.e2e.harness import RawClient, ServerProcess, bounded, hello_for

LIMIT = 64 * 1024
PATIENT = {"receive_timeout": 30.0, "keepalive_timeout": 30.0, "idle_timeout": 30.0}


def _sockets(server: ServerProcess) -> int:
    """Sockets the server holds; a descriptor closed while the folder is read is not one."""
    fds = f"/proc/{server.process.pid}/fd"
    count = 0
    for fd in os.listdir(fds):
        try:
            count += os.readlink(f"{fds}/{fd}").startswith("socket:")
        except FileNotFoundError:
            continue
    return count


def test_pongs_to_a_terminal_that_never_reads_end_in_4003_and_its_socket_is_aborted(
    e2e: E2E,
) -> None:
    server = e2e.server(account=PATIENT, launchpads={"tight": {"send_buffer_limit": LIMIT}})
    ticket = server.launch("mallory", "tight")
    sid = ticket["session_id"]
    baseline = _sockets(server)
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client = RawClient.open(server.ws_url, max_queue=1, sock=sock)
    client.handshake(hello_for(ticket))
    # Each ping asks for a pong of about 1 kB; the client reads none of them.
    ping = json.dumps({"type": "ping", "id": 10**1000})
    started = time.monotonic()
    sent = 0
    # A server slowed by a loaded machine may leave a send blocked for seconds: a client that
    # gave up after 5 s closed its socket, and the server saw a lost connection (4029) before
    # its queue passed the limit (CI, once).
    sock.settimeout(20)
    try:
        while sent < 20_000 and not server.log.find(event="connection.closed", session_id=sid):
            client.ws.send(ping)
            sent += 1
    except (OSError, TimeoutError, ConnectionClosed):
        pass  # the server dropped the socket under the flood (a send there can time out)
    closed = server.log.wait_event(event="connection.closed", code=4003, session_id=sid)
    assert closed["attrs"]["queue"] == "transport"
    assert closed["attrs"]["queued_bytes"] > LIMIT == closed["attrs"]["limit"]
    assert time.monotonic() - started < 25  # not held until the peer reads (60 s and more)
    server.log.wait_event(event="session.disconnected", code=4003, session_id=sid)
    # The server holds no socket for it, though the client still has not read a byte (before
    # the abort it was held for 60 s and more; on a loaded machine closing can take seconds).
    for _ in bounded(15.0):
        if _sockets(server) <= baseline:
            break
    assert _sockets(server) <= baseline
    with urllib.request.urlopen(f"{server.url}/healthz", timeout=2) as answer:
        assert json.loads(answer.read())["ok"] is True
    # A resume from a terminal that reads is welcome: the session was only disconnected.
    client.close()
    again = e2e.raw(server.ws_url)
    assert again.handshake(hello_for(ticket, resume=True))["resume"] is True
