"""A hostile client's text goes into the server's log clipped: huge hellos, client strings and
signaling registrations each cost the log a few hundred bytes, and a flood of rejections is
written twenty a window, the next one written saying how many were held back."""

from __future__ import annotations

import json

import pytest
from websockets.sync.client import connect

from openfrp.server import limits
from tests.e2e.conftest import E2E
from tests.e2e.harness import hello_for

HUGE = 100_000


def test_rejected_hellos_and_registrations_are_logged_clipped(e2e: E2E) -> None:
    server = e2e.server()
    ticket = server.launch("alice")
    sid = ticket["session_id"]
    before = server.log.path.stat().st_size

    wrong_version = e2e.raw(server.ws_url)
    wrong_version.send(hello_for(ticket, version=int("9" * 4000)))
    assert wrong_version.wait_closed() == 4002
    rejected = server.log.wait_event(event="connection.rejected", session_id=sid)
    assert rejected["attrs"]["field"] == "version"
    assert len(rejected["attrs"]["problem"]) < 300

    with connect(f"ws://127.0.0.1:{server.port}/signal", open_timeout=5) as ws:
        ws.send(json.dumps({"type": "register", "host": "h" * HUGE, "key": "k"}))
        assert "bad peer key" in json.loads(ws.recv(timeout=5))["error"]
    bad_peer = server.log.wait_event(event="signaling.rejected")
    assert bad_peer["attrs"]["host"].endswith(f"({HUGE} chars)")

    long_client = e2e.raw(server.ws_url)
    long_client.handshake(hello_for(ticket, client="c" * HUGE))
    established = server.log.wait_event(event="connection.established", session_id=sid)
    assert len(established["attrs"]["client"]) < 300

    grown = server.log.path.stat().st_size - before
    assert grown < 8_000, grown


def test_a_flood_of_hellos_for_no_session_is_logged_in_bounded_count(e2e: E2E) -> None:
    server = e2e.server()
    for n in range(40):
        stranger = e2e.raw(server.ws_url)
        stranger.send({"type": "hello", "session_id": f"s-nobody-{n}"})
        assert stranger.wait_closed() == 4002  # every one is refused ...
        stranger.close()
    rejected = [e for e in server.log.find(event="connection.rejected") if not e["session_id"]]
    assert len(rejected) == 20  # ... and twenty a window are written


def test_a_burst_tells_the_next_written_how_many_it_held_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]
    monkeypatch.setattr(limits.time, "monotonic", lambda: now[0])
    burst = limits.Burst(limit=2, window=10.0)
    assert [burst.allow() for _ in range(5)] == [0, 0, None, None, None]
    now[0] += 10.0
    assert [burst.allow() for _ in range(3)] == [3, 0, None]
