"""Server codes produced by their real condition, over real sockets, with separate processes.

Each test asserts the code on both sides: the terminal's pop-up line and its own log, the
server's event log (and, for raw clients, the WebSocket close code on the wire).
"""

from __future__ import annotations

import copy
import json
import signal
import time

from openfrp.events import parse_ts
from openfrp.protocol.handshake import digest
from tests.e2e.conftest import E2E
from tests.e2e.harness import diagnosis, hello_for

POPUP = r"^\[{code} [A-Z_]+\] "


def popup(code: int) -> str:
    return POPUP.format(code=code)


def test_4000_close_from_the_terminal(e2e: E2E) -> None:
    server = e2e.server()
    ticket = server.launch("alice")
    sid = ticket["session_id"]
    proxy = e2e.proxy(server.port)
    term = e2e.connected(server, ticket, proxy)

    term.send("close")
    term.wait_line(r"^\[4000 USER_CLOSED\] You closed the session\.")
    term.wait_line(r"^session over: 4000 USER_CLOSED")
    assert term.wait_exit() == 0

    server.log.wait_event(event="connection.closed", code=4000, session_id=sid)
    ended = server.log.wait_event(event="session.ended", code=4000, session_id=sid)
    assert ended["severity"] == "info"
    closed = term.log.wait_event(event="connection.closed", code=4000)
    assert closed["attrs"]["close_code"] == 4000
    assert server.session(sid)["final_code"] == 4000
    assert server.log.names(sid, "server")[-2:] == ["connection.closed:4000", "session.ended:4000"]


def test_4002_hello_that_does_not_match_the_issued_session(e2e: E2E) -> None:
    server = e2e.server()
    ticket = server.launch("alice")
    sid = ticket["session_id"]

    tampered = copy.deepcopy(ticket["config"])
    tampered["launchpad"] = "admin-desktop"  # edited, digest kept
    stale = copy.deepcopy(ticket["config"])
    stale["terminal"]["reconnect_attempts"] = 99  # edited and re-digested: not what was issued
    variants: list[tuple[str, str | bytes | dict[str, object]]] = [
        ("version", hello_for(ticket, version=ticket["config"]["protocol"] + 1)),
        ("config", hello_for(ticket, config=tampered)),
        ("config_digest", hello_for(ticket, config=stale, config_digest=digest(stale))),
        ("hello", b"\x16\x03\x01\x02\x00garbage instead of a hello\xff\xfe"),
        ("hello", "GET / HTTP/1.1 -- not json at all"),
    ]
    for count, (field, hello) in enumerate(variants, start=1):
        raw = e2e.raw(server.ws_url)
        raw.send(hello)
        assert raw.wait_closed() == 4002, field
        rejected = server.log.wait_event(event="connection.rejected", code=4002, count=count)
        assert rejected["attrs"]["field"] == field, rejected
        if field != "hello":
            assert rejected["session_id"] == sid

    # None of that touched the real session: a proper terminal still joins it.
    term = e2e.connected(server, ticket)
    assert not server.log.find(event="session.ended", session_id=sid)
    assert not server.log.find(event="session.disconnected", session_id=sid)
    server.push(sid, {"n": 1})
    term.wait_line(r'^msg 1 \{"n": 1\}$')
    assert server.session(sid)["state"] == "active"


def test_4003_a_reader_that_never_reads_other_sessions_unaffected(e2e: E2E) -> None:
    server = e2e.server(launchpads={"bulk": {"send_buffer_limit": 131072, "receive_timeout": 10.0}})
    other = server.launch("bob")
    other_term = e2e.connected(server, other)

    ticket = server.launch("alice", "bulk")
    sid = ticket["session_id"]
    raw = e2e.raw(server.ws_url, max_queue=4)
    raw.handshake(hello_for(ticket))
    server.log.wait_event(event="session.started", session_id=sid)
    # From here the raw client never calls recv(): its reader stops once max_queue fills.
    statuses = [server.push(sid, {"i": i, "pad": "x" * 8192}).status for i in range(64)]
    assert statuses[0] == 202
    assert set(statuses) <= {202, 409}, statuses

    closed = server.log.wait_event(event="connection.closed", code=4003, session_id=sid)
    assert closed["attrs"]["unacked_bytes"] > closed["attrs"]["limit"] == 131072
    assert closed["connection_id"] == raw.connection_id
    server.log.wait_event(event="session.disconnected", code=4003, session_id=sid)

    assert raw.wait_closed(timeout=10) == 4003  # it starts reading: the close code is 4003

    # The other session, on the same server, kept working throughout.
    server.push(other["session_id"], {"after": 4003})
    other_term.wait_line(r'^msg 1 \{"after": 4003\}$')
    assert not server.log.find(event="connection.closed", session_id=other["session_id"])

    # More while nobody reads: the session ends with 4003, and a resume is refused with the
    # final code marked as the end, so a terminal stops at once instead of retrying.
    server.push(sid, {"pad": "x" * 8192})
    server.log.wait_event(event="session.ended", code=4003, session_id=sid)
    again = e2e.raw(server.ws_url)
    again.send(hello_for(ticket, resume=True, previous_connection_id=raw.connection_id))
    assert again.wait_closed() == 4003
    assert again.close_reason == "SEND_BUFFER_OVERFLOW (session ended)"


def test_4006_refuse_the_newcomer_or_displace_the_older(e2e: E2E) -> None:
    server = e2e.server(launchpads={"shared": {"duplicate_policy": "takeover"}})
    refuse = server.launch("alice")
    takeover = server.launch("carol", "shared")

    first = e2e.connected(server, refuse, name="first")
    older = e2e.connected(server, takeover, name="older")
    second = e2e.terminal(refuse["connect_url"], name="second")
    newer = e2e.terminal(takeover["connect_url"], name="newer")

    # refuse (default): the second terminal with the same ticket is turned away.
    second.wait_line(popup(4006))
    assert second.wait_exit() == 1  # refused: it joined nothing (README: exit 1)
    assert second.log.wait_event(event="connection.closed", code=4006)
    rejected = server.log.wait_event(
        event="connection.rejected", code=4006, session_id=refuse["session_id"]
    )
    live = server.log.wait_event(event="connection.established", session_id=refuse["session_id"])
    assert rejected["attrs"]["live_connection_id"] == live["connection_id"]
    server.push(refuse["session_id"], {"still": "first"})
    first.wait_line(r'^msg 1 \{"still": "first"\}$')

    # takeover: the newer terminal joins, the older one is closed with 4006.
    newer.wait_line(rf"^connected to {takeover['session_id']} ")
    older.wait_line(popup(4006))
    assert older.wait_exit() == 0
    older.log.wait_event(event="connection.closed", code=4006)
    displaced = server.log.wait_event(
        event="connection.closed", code=4006, session_id=takeover["session_id"]
    )
    assert displaced["attrs"]["reason"] == "taken over by a newer connection"
    server.push(takeover["session_id"], {"now": "newer"})
    newer.wait_line(r'^msg 1 \{"now": "newer"\}$')
    assert older.count(r"^msg ") == 0
    for ticket in (refuse, takeover):
        assert not server.log.find(event="session.ended", session_id=ticket["session_id"])


def test_4008_max_session_duration_warns_first(e2e: E2E) -> None:
    server = e2e.server(launchpads={"short": {"max_session_duration": 3.0, "warn_before": 1.5}})
    ticket = server.launch("alice", "short")
    sid = ticket["session_id"]
    term = e2e.connected(server, ticket)

    warned_at = term.wait_line(popup(4008), timeout=6)
    mark = term.mark()
    term.wait_line(r"^session over: 4008 MAX_SESSION_DURATION", timeout=6, start=mark)
    assert term.count(popup(4008)) == 2  # the warning, then the end
    assert warned_at.string.startswith("[4008 MAX_SESSION_DURATION] Your session will end in 2 s")
    assert term.wait_exit() == 0

    warning = server.log.wait_event(event="session.warning", code=4008, session_id=sid)
    ended = server.log.wait_event(event="session.ended", code=4008, session_id=sid)
    assert warning["attrs"]["seconds_left"] == 2
    gap = (parse_ts(ended["ts"]) - parse_ts(warning["ts"])).total_seconds()
    assert 1.2 <= gap <= 2.5, gap
    started = server.log.wait_event(event="session.started", session_id=sid)
    lasted = (parse_ts(ended["ts"]) - parse_ts(started["ts"])).total_seconds()
    assert 2.8 <= lasted <= 4.5, lasted
    names = server.log.names(sid, "server")
    assert names.index("session.warning:4008") < names.index("session.ended:4008")
    term.log.wait_event(event="session.warning", code=4008)
    term.log.wait_event(event="connection.closed", code=4008)


def test_4009_idle_timeout_then_resume_refused(e2e: E2E) -> None:
    server = e2e.server()
    ticket = server.launch("alice")
    sid = ticket["session_id"]
    term = e2e.connected(server, ticket)

    term.send("disconnect")
    term.wait_line(r"^session over: disconnected \(the session can be resumed\)")
    assert term.wait_exit() == 0
    left = server.log.wait_event(event="session.disconnected", session_id=sid)
    assert left["attrs"]["reason"] == "terminal disconnect"
    ended = server.log.wait_event(event="session.ended", code=4009, session_id=sid, timeout=8)
    idle = (parse_ts(ended["ts"]) - parse_ts(left["ts"])).total_seconds()
    assert 2.8 <= idle <= 5.0, idle

    # A later `openfrp connect` of the same link is refused with 4009 (its token gets the
    # final code instead of a ticket) ...
    late = e2e.terminal(ticket["connect_url"], name="late")
    late.wait_line(popup(4009))
    late.wait_line(r"^session over: 4009 IDLE_TIMEOUT")
    assert late.wait_exit() == 1  # refused: it joined nothing, whatever the final code
    # ... and so is a raw resume naming the previous connection.
    raw = e2e.raw(server.ws_url)
    raw.send(
        hello_for(ticket, resume=True, last_seq=0, previous_connection_id=left["connection_id"])
    )
    assert raw.wait_closed() == 4009
    rejected = server.log.find(event="connection.rejected", code=4009, session_id=sid)
    assert len(rejected) == 1
    assert server.session(sid)["final_code"] == 4009


def test_a_link_first_opened_after_idle_timeout_joins_and_an_unopened_one_ends_4019(
    e2e: E2E,
) -> None:
    """idle_timeout (3 s here) counts from a disconnect, not from the launch: a link opened
    for the first time later still starts its session. A session nobody opens ends after
    open_timeout with 4019, whose message and log say the link was never opened."""
    server = e2e.server(launchpads={"brief": {"open_timeout": 2.0}})
    late = server.launch("alice")
    launched = time.monotonic()
    unopened = server.launch("bob", "brief")
    sid = unopened["session_id"]
    ended = server.log.wait_event(event="session.ended", code=4019, session_id=sid, timeout=8)
    assert "link was never opened" in ended["attrs"]["reason"]
    assert ended["attrs"]["open_timeout_s"] == 2.0
    created = server.log.find(event="session.created", session_id=sid)[0]
    waited = (parse_ts(ended["ts"]) - parse_ts(created["ts"])).total_seconds()
    assert 1.9 <= waited <= 4.0, waited

    time.sleep(max(0.0, launched + 3.5 - time.monotonic()))  # past idle_timeout, unopened
    term = e2e.connected(server, late)
    assert not server.log.find(event="session.ended", session_id=late["session_id"])

    # The unopened session's link still verifies: it gets the final code and its message.
    told = e2e.terminal(unopened["connect_url"], name="unopened")
    told.wait_line(popup(4019) + r".*its link was not opened in time")
    told.wait_line(r"^session over: 4019 CLOSED_REMOTELY")
    assert told.wait_exit() == 1  # refused: it joined nothing
    facts = diagnosis(sid, server.log)
    assert (facts["final_code"], facts["category"]) == (4019, "expected_end")
    term.send("close")
    assert term.wait_exit() == 0


def test_4024_malformed_message_after_a_good_hello(e2e: E2E) -> None:
    server = e2e.server()
    ticket = server.launch("alice")
    sid = ticket["session_id"]

    bad: list[str | bytes] = [
        '{"type": "ack", "seq": "seven"}',
        b"\x00\x01 binary where a control message belongs",
        json.dumps(hello_for(ticket)),  # a second hello on a live connection
    ]
    previous: str | None = None
    for count, message in enumerate(bad, start=1):
        raw = e2e.raw(server.ws_url)
        changes = {"resume": True, "previous_connection_id": previous} if previous else {}
        welcome = raw.handshake(hello_for(ticket, **changes))
        assert welcome["resume"] is (previous is not None)
        if count == 1:
            raw.wait_message("started")
        raw.send({"type": "ping", "id": 7})
        raw.wait_message("pong", where=lambda m: m["id"] == 7)
        raw.send(message)
        assert raw.wait_closed() == 4024
        closed = server.log.wait_event(
            event="connection.closed", code=4024, session_id=sid, count=count
        )
        assert closed["connection_id"] == raw.connection_id
        assert closed["attrs"]["error"]
        server.log.wait_event(event="session.disconnected", code=4024, session_id=sid, count=count)
        previous = raw.connection_id

    # 4024 ends a connection, never the session: it resumes once more and still answers.
    assert len(server.log.find(event="session.resumed", session_id=sid)) == 2
    assert not server.log.find(event="session.ended", session_id=sid)


def test_4019_admin_delete_and_sigterm(e2e: E2E) -> None:
    server = e2e.server()
    doomed = server.launch("alice")
    term = e2e.connected(server, doomed)

    result = server.api("DELETE", f"/api/sessions/{doomed['session_id']}")
    assert (result.status, result.body["final_code"]) == (200, 4019)
    term.wait_line(r"^\[4019 CLOSED_REMOTELY\] ")
    term.wait_line(r"^session over: 4019 CLOSED_REMOTELY")
    assert term.wait_exit() == 0
    ended = server.log.wait_event(event="session.ended", code=4019, session_id=doomed["session_id"])
    assert ended["attrs"]["reason"] == "closed from outside by admin API"
    term.log.wait_event(event="connection.closed", code=4019)
    assert server.api("DELETE", f"/api/sessions/{doomed['session_id']}").status == 409

    # SIGTERM: every live session ends with 4019 before the process exits.
    tickets = [server.launch("bob"), server.launch("carol")]
    proxy = e2e.proxy(server.port)
    terms = [e2e.connected(server, tickets[0]), e2e.connected(server, tickets[1], proxy)]
    server.signal(signal.SIGTERM)
    for t in terms:
        t.wait_line(r"^\[4019 CLOSED_REMOTELY\] ")
        assert t.wait_exit() == 0
        t.log.wait_event(event="connection.closed", code=4019)
    for ticket in tickets:
        ended = server.log.wait_event(
            event="session.ended", code=4019, session_id=ticket["session_id"]
        )
        assert ended["attrs"]["reason"] == "server received SIGTERM"
    assert server.wait_exit(timeout=10) == 0
    stopping = server.log.wait_event(event="server.stopping")
    assert stopping["attrs"]["signal"] == "SIGTERM"
    assert "Traceback" not in server.stderr()
