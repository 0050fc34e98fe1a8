"""A session's app connects from 127.0.0.1 like the operator's local clients: it has its own
per-address count, so holding its connections leaves theirs alone, and its X-Forwarded-For is
not believed though loopback is a trusted proxy. The app is the run_as user nobody, whose
sockets are made by a child switched to it (tests/support/owned.py)."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import socket

import pytest
from websockets.sync.client import connect

from tests.e2e.conftest import E2E
from tests.e2e.harness import ServerProcess, healthy
from tests.support.owned import sockets_of

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="another user's socket needs root")
NOBODY = pwd.getpwnam("nobody").pw_uid
APP = {"kiosk": {"run_as": "nobody"}}


def test_an_apps_connections_leave_the_loopback_address_its_own(e2e: E2E) -> None:
    server = e2e.server(launchpads=APP, server={"max_connections_per_address": 5})
    with contextlib.ExitStack() as stack:
        for sock in sockets_of(NOBODY, 8):  # over its limit, held open
            stack.enter_context(sock).connect(("127.0.0.1", server.port))
        refused = server.log.wait_event(event="server.connections_refused")
        assert healthy(server.url)  # root's own local client still gets in
        assert refused["attrs"]["address"] == f"127.0.0.1 uid {NOBODY}"
        assert refused["attrs"]["limit"] == 5


def _rejected_remote(server: ServerProcess, sock: socket.socket) -> str:
    """Where the server says a connection on `sock` came from, which claims 198.51.100.7."""
    before = len(server.log.find(event="connection.rejected"))
    sock.connect(("127.0.0.1", server.port))
    spoof = {"X-Forwarded-For": "198.51.100.7"}
    with connect(server.ws_url, sock=sock, additional_headers=spoof, open_timeout=5) as ws:
        ws.send(json.dumps({"type": "hello", "session_id": "s-nowhere"}))
        event = server.log.wait_event(event="connection.rejected", count=before + 1)
    remote: str = event["attrs"]["remote"]
    return remote


def test_an_app_cannot_pose_as_another_address_through_loopback(e2e: E2E) -> None:
    server = e2e.server(launchpads=APP)  # trusted_proxies: 127.0.0.1 and ::1
    assert _rejected_remote(server, socket.socket()).startswith("198.51.100.7:")  # root's
    (app,) = sockets_of(NOBODY, 1)
    assert _rejected_remote(server, app).startswith("127.0.0.1:")
