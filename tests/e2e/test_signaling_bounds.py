"""The signaling hub's bounds against the real server: silent sockets are closed after the
handshake timeout, and one join relays one offer."""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from openfrp.server.signaling import peer_key
from tests.e2e.conftest import E2E
from tests.e2e.harness import SECRET, ServerProcess

SILENT = 20


def _open(server: ServerProcess) -> ClientConnection:
    return connect(f"ws://127.0.0.1:{server.port}/signal", open_timeout=5, close_timeout=1)


def _recv(ws: ClientConnection, timeout: float = 2.0) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(ws.recv(timeout=timeout))
    return message


def test_signaling_sockets_that_never_speak_are_closed(e2e: E2E) -> None:
    server = e2e.server()  # handshake_timeout 2 s
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(_open(server)) for _ in range(SILENT)]
        started = time.monotonic()
        with urllib.request.urlopen(f"{server.url}/healthz", timeout=2) as answer:
            assert json.loads(answer.read())["ok"] is True  # served while they sit there
        codes = []
        for ws in sockets:
            try:
                refusal = _recv(ws, timeout=4)
                assert "handshake timeout" in refusal["error"]
                ws.recv(timeout=2)
            except ConnectionClosed as exc:
                codes.append(exc.rcvd.code if exc.rcvd is not None else None)
        assert codes == [1008] * SILENT
        assert time.monotonic() - started < 4
        timeouts = server.log.wait_event(event="signaling.idle_closed", count=SILENT)
        assert timeouts["attrs"]["handshake_timeout"] == 2.0


def test_one_join_relays_one_offer(e2e: E2E) -> None:
    server = e2e.server()
    ticket = server.launch("alice")
    with _open(server) as peer, _open(server) as terminal:
        key = peer_key(SECRET.encode(), "far-host")
        peer.send(json.dumps({"type": "register", "host": "far-host", "key": key}))
        server.log.wait_event(event="signaling.registered", source="signaling")
        join = {"session_id": ticket["session_id"], "token": ticket["token"], "host": "far-host"}
        terminal.send(json.dumps({"type": "join", **join}))
        assert _recv(terminal)["type"] == "peer"
        with contextlib.suppress(ConnectionClosed):  # the server may close before all five
            for n in range(5):
                terminal.send(json.dumps({"type": "offer", "sdp": f"offer {n}"}))
        first = _recv(peer)
        assert (first["type"], first["sdp"]) == ("offer", "offer 0")
        refusal = _recv(terminal)
        assert refusal["type"] == "error" and "one offer per join" in refusal["error"]
        gone = _recv(peer)  # the join ended: the peer may drop its half-made connection
        assert gone == {"type": "gone", "relay": first["relay"]}
        rejected = server.log.wait_event(event="signaling.rejected", source="signaling")
        assert rejected["attrs"]["reason"] == "a second offer on one join"
        assert len(server.log.find(event="signaling.rejected")) == 1
