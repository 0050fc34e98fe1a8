"""An ended session leaves the server's memory; the registry still answers for it."""

from __future__ import annotations

import time

from tests.e2e.conftest import E2E
from tests.e2e.harness import hello_for
from tests.e2e.test_server_codes import popup


def test_forgotten_session_is_still_refused_with_its_final_code(e2e: E2E) -> None:
    server = e2e.server(server={"forget_ended_after": 1})
    ticket = server.launch("alice")
    sid = ticket["session_id"]
    term = e2e.connected(server, ticket)
    term.send("disconnect")
    assert term.wait_exit() == 0
    left = server.log.wait_event(event="session.disconnected", session_id=sid)
    server.log.wait_event(event="session.ended", code=4009, session_id=sid, timeout=8)
    time.sleep(1.5)  # past forget_ended_after: only the registry knows the session now

    # The connect link: the ticket endpoint answers 410 with the final code, shown as such.
    late = e2e.terminal(ticket["connect_url"], name="late")
    late.wait_line(popup(4009))
    assert late.wait_exit() == 1  # refused: it joined nothing, whatever the final code
    # A raw resume gets the final code as its close code, logged with the session's identity.
    raw = e2e.raw(server.ws_url)
    raw.send(hello_for(ticket, resume=True, previous_connection_id=left["connection_id"]))
    assert raw.wait_closed() == 4009
    rejected = server.log.wait_event(event="connection.rejected", code=4009, session_id=sid)
    assert rejected["user"] == "alice"
    assert rejected["attrs"]["reason"] == "session has ended"
    # The API still reports the session from the registry.
    record = server.session(sid)
    assert (record["state"], record["final_code"]) == ("ended", 4009)
    assert server.api("GET", f"/api/sessions/{sid}/ticket", key=ticket["token"]).status == 410
