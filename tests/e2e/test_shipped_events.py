"""What a terminal ships into the server's log: only its own session's terminal events, within
a per-session budget; never server events."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import E2E
from tests.e2e.harness import hello_for, outcome

BUDGET = {"terminal_events_per_minute": 20, "terminal_event_bytes_per_minute": 64 * 1024}


def _event(ticket: dict[str, Any], name: str, **fields: Any) -> dict[str, Any]:
    return {
        "event": name,
        "source": "terminal",
        "ts": "2026-12-02T21:00:00.000000Z",
        "session_id": ticket["session_id"],
        "user": "alice",
        "attrs": {"n": fields.pop("n", 0)},
        **fields,
    }


def test_a_terminal_ships_its_own_events_within_a_budget_and_no_server_events(e2e: E2E) -> None:
    server = e2e.server(launchpads={"budget": BUDGET})
    ticket = server.launch("alice", "budget")
    sid = ticket["session_id"]
    raw = e2e.raw(server.ws_url)
    cid = raw.handshake(hello_for(ticket))["connection_id"]
    forged = [
        _event(ticket, "session.ended", code=4000, severity="info"),
        _event(ticket, "connection.rejected", code=4002),
        _event(ticket, "stats", user="bob"),
        _event(ticket, "stats", host="another-host"),
        {**_event(ticket, "stats"), "source": "server"},
        {**_event(ticket, "stats"), "attrs": {"pad": "x" * 20_000}},
    ]
    honest = [_event(ticket, "stats", n=n) for n in range(5)]
    raw.send({"type": "events", "items": forged + honest})
    note = server.log.wait_event(event="events.rejected", session_id=sid)
    assert note["source"] == "server" and note["connection_id"] == cid
    assert note["attrs"]["counts"] == {
        "a server event": 2,
        "names another host, user, account or launchpad": 2,
        "not this session's terminal event": 1,
        "too large": 1,
    }
    # A flood: 200 more in batches; the budget lets 15 more through in this minute.
    for batch in range(20):
        raw.send({"type": "events", "items": [_event(ticket, "stats", n=100 + batch)] * 10})
    raw.send({"type": "ping", "id": 7})
    assert outcome(raw) == ("pong", 7)  # the session serves on
    shipped = server.log.find(event="stats", session_id=sid, source="terminal")
    assert len(shipped) == 20
    assert {e["source"] for e in shipped} == {"terminal"}
    assert [e["attrs"]["n"] for e in shipped[:5]] == list(range(5))
    assert len(server.log.find(event="events.rejected", session_id=sid)) == 1  # said once
    assert not server.log.find(event="session.ended", session_id=sid)
    assert not server.log.find(event="connection.rejected", session_id=sid)
    assert not [e for e in server.log.events() if e.get("user") == "bob"]
