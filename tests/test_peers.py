"""Whose socket is at the other end of a local connection (sock_diag), on real sockets: a
session's app (here the run_as user nobody) is told from root, and a closed peer from both."""

from __future__ import annotations

import os
import pwd
import socket
import time
from collections.abc import Iterator

import pytest

from openfrp.server.peers import GONE, Apps, owner
from tests.support.owned import sockets_of

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="another user's socket needs root")
NOBODY = pwd.getpwnam("nobody").pw_uid


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    with socket.create_server(("::", 0), family=socket.AF_INET6, dualstack_ipv6=True) as server:
        yield server


def _connected(server: socket.socket, client: socket.socket, host: str) -> tuple[object, object]:
    """`client` connected to `server` at `host`: the (peer, local) the server sees."""
    client.connect((host, server.getsockname()[1]))
    accepted, peer = server.accept()
    local = accepted.getsockname()
    accepted.close()
    return peer, local


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_owner_is_the_uid_that_made_the_peer_socket(listening: socket.socket, host: str) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    (theirs,) = sockets_of(NOBODY, 1, family)
    with theirs, socket.socket(family) as mine:
        app = _connected(listening, theirs, host)
        root = _connected(listening, mine, host)
        apps = Apps(["nobody"])
        assert owner(*app) == NOBODY and apps.uid(*app) == NOBODY
        assert owner(*root) == 0 and apps.uid(*root) is None
        assert not apps.believed(*app) and apps.believed(*root)
        assert Apps([]).believed(*app)  # nobody is not a session's app here
    for _ in range(50):  # closed: only its address is left, whose owner is no one
        if owner(*app) == GONE:
            break
        time.sleep(0.02)
    assert owner(*app) == GONE and not apps.believed(*app) and apps.uid(*app) is None


def test_a_remote_peer_is_not_looked_up() -> None:
    assert owner(("198.51.100.7", 40000), ("192.0.2.1", 8470)) is None
    assert Apps(["nobody"]).believed(("198.51.100.7", 40000), ("192.0.2.1", 8470))
