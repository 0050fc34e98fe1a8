"""Network faults between terminal and server, made by the fault proxy (its own process).

blackhole: bytes vanish, no FIN, no RST -> server 4023 (receive timeouts), terminal 4102
(keepalive). cut: RST both ways and new connections reset -> server 4029, terminal 4102, then
4103 for each reconnect attempt and 4106 when they run out. restore: new connections pass again.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from openfrp.events import parse_ts
from tests.e2e.conftest import E2E
from tests.e2e.harness import RESET_CODES, bounded, free_port


def since(start: datetime, event: dict[str, object]) -> float:
    return (parse_ts(str(event["ts"])) - start).total_seconds()


def test_4023_and_4102_on_a_blackholed_path_then_resume(e2e: E2E) -> None:
    server = e2e.server()
    ticket = server.launch("alice")
    sid = ticket["session_id"]
    proxy = e2e.proxy(server.port)
    term = e2e.connected(server, ticket, proxy)
    first = server.log.wait_event(event="connection.established", session_id=sid)

    start = datetime.now(UTC)
    proxy.control("blackhole")

    lost = term.log.wait_event(event="connection.lost", code=4102, timeout=6)
    assert lost["attrs"]["keepalive_timeout_s"] == 1.2
    assert 1.0 <= since(start, lost) <= 3.0, since(start, lost)
    closed = server.log.wait_event(event="connection.closed", code=4023, session_id=sid, timeout=6)
    assert closed["connection_id"] == first["connection_id"]
    assert closed["attrs"]["receive_timeouts"] == 2
    assert 1.0 <= since(start, closed) <= 3.0, since(start, closed)
    timeouts = server.log.find(event="receive.timeout", session_id=sid)
    assert [t["attrs"]["count"] for t in timeouts[-2:]] == [1, 2]
    server.log.wait_event(event="session.disconnected", code=4023, session_id=sid)

    term.wait_line(r"^\[4102 CONNECTION_SEVERED\] ")
    term.wait_line(r"^\[4103 RECONNECTING\] ", timeout=4)
    for _ in bounded(4.0):  # attempt 1 reached the proxy, so it is black-holed too
        if proxy.stats()["accepted"] >= 2:
            break
    assert proxy.stats()["accepted"] >= 2
    proxy.control("restore")

    resumed_line = term.wait_line(rf"^connected to {sid} as (c-\w+) \(resumed\)$", timeout=8)
    succeeded = term.log.wait_event(event="reconnect.succeeded", timeout=5)
    assert succeeded["attrs"]["resumed"] is True
    assert succeeded["attrs"]["attempts"] >= 2
    assert succeeded["previous_connection_id"] == first["connection_id"]
    resumed = server.log.wait_event(event="session.resumed", session_id=sid)
    assert resumed["connection_id"] == resumed_line.group(1)
    assert resumed["previous_connection_id"] == first["connection_id"]
    # The terminal ships its side of the story once it is back.
    shipped = server.log.wait_event(event="connection.lost", code=4102, source="terminal")
    assert shipped["session_id"] == sid
    server.log.wait_event(event="reconnect.attempt", code=4103, source="terminal")

    server.push(sid, {"after": "resume"})
    term.wait_line(r'^msg 1 \{"after": "resume"\}$')
    assert not server.log.find(event="session.ended", session_id=sid)
    assert {e["session_id"] for e in term.log.events()} == {sid}


def test_4029_cut_then_4103_for_each_attempt_then_4106(e2e: E2E) -> None:
    server = e2e.server()
    ticket = server.launch("alice")
    sid = ticket["session_id"]
    proxy = e2e.proxy(server.port)
    term = e2e.connected(server, ticket, proxy)
    first = server.log.wait_event(event="connection.established", session_id=sid)

    proxy.control("cut")  # and it stays cut: every new connection is reset at once

    closed = server.log.wait_event(event="connection.closed", code=4029, session_id=sid)
    assert closed["connection_id"] == first["connection_id"]
    assert closed["attrs"]["reason"] == "no close frame"
    server.log.wait_event(event="session.disconnected", code=4029, session_id=sid)

    term.wait_line(r"^\[4106 RECONNECT_FAILED\] ", timeout=10)
    term.wait_line(r"^could not reconnect: 4106 RECONNECT_FAILED")  # the session waits
    assert term.wait_exit() == 1

    popups = [line for line in term.lines if re.match(r"^\[\d{4} ", line)]
    assert [line[1:5] for line in popups] == ["4102", "4103", "4103", "4103", "4106"]
    lost = term.log.wait_event(event="connection.lost", code=4102)
    assert lost["attrs"]["close_code"] is None  # no close frame came
    attempts = term.log.find(event="reconnect.attempt", code=4103)
    assert [a["attrs"]["attempt"] for a in attempts] == [1, 2, 3]
    gave_up = term.log.wait_event(event="reconnect.gave_up", code=4106)
    assert gave_up["attrs"]["reason"] == "reconnect_attempts exhausted"
    names = [n for n in term.log.names() if n.split(":")[0].startswith(("reconnect", "connection"))]
    assert names[-5:] == [
        "connection.lost:4102",
        "reconnect.attempt:4103",
        "reconnect.attempt:4103",
        "reconnect.attempt:4103",
        "reconnect.gave_up:4106",
    ]
    # The attempts never reached the server; the session is still waiting for a resume.
    assert proxy.stats()["refused"] == 3
    assert not server.log.find(event="session.ended", session_id=sid)
    assert server.session(sid)["state"] == "disconnected"


def test_4101_no_session_within_connect_timeout(e2e: E2E) -> None:
    server = e2e.server()
    ticket = server.launch("alice")
    proxy = e2e.proxy(server.port)
    proxy.control("blackhole")
    dead_path = e2e.terminal(
        ticket["connect_url"], ws_url=f"ws://127.0.0.1:{proxy.port}/frp7", name="blackhole"
    )
    closed_port = e2e.terminal(
        ticket["connect_url"], ws_url=f"ws://127.0.0.1:{free_port()}/frp7", name="closed"
    )
    for term in (dead_path, closed_port):
        term.wait_line(r"^\[4101 CONNECT_TIMEOUT\] ", timeout=6)
        term.wait_line(r"^session over: 4101 CONNECT_TIMEOUT")
        assert term.wait_exit() == 1
        failed = term.log.wait_event(event="connect.failed", code=4101)
        assert failed["attrs"]["connect_timeout_s"] == 1.5
        first = term.log.wait_event(event="connect.attempt")
        waited = (parse_ts(failed["ts"]) - parse_ts(first["ts"])).total_seconds()
        assert 1.4 <= waited <= 3.0, waited
        assert not term.log.find(event="connection.established")
    # A refused port fails fast and is retried inside the window; a dead path just hangs.
    assert closed_port.log.find(event="connect.retry")
    assert not dead_path.log.find(event="connect.retry")
    # The person is told once, at the first retry, why nothing happens yet and for how long.
    said = r"^cannot reach the session yet \(ConnectionRefusedError: .*\); trying again for up to"
    closed_port.wait_line(said + r" 1.5 s \(connect_timeout\)$")
    assert closed_port.count(r"^cannot reach the session yet") == 1
    assert not server.log.find(event="connection.opened", session_id=ticket["session_id"])


def test_resume_after_a_short_cut_delivers_every_message_once_in_order(e2e: E2E) -> None:
    server = e2e.server(
        launchpads={
            "resilient": {
                "reconnect_attempts": 8,
                "reconnect_backoff_initial": 0.3,
                "reconnect_backoff_max": 1.0,
            }
        }
    )
    ticket = server.launch("alice", "resilient")
    sid = ticket["session_id"]
    proxy = e2e.proxy(server.port)
    term = e2e.connected(server, ticket, proxy)

    def push(numbers: range) -> None:
        for n in numbers:
            assert server.push(sid, {"n": n, "text": f"message {n}"}).status == 202

    push(range(1, 6))  # before
    term.wait_line(r"^msg 5 ")
    proxy.control("cut")
    lost = server.log.wait_event(event="session.disconnected", session_id=sid)
    assert lost["code"] in RESET_CODES, lost
    push(range(6, 11))  # during: queued while the path is cut
    term.wait_line(r"^\[4103 RECONNECTING\] ", timeout=5)
    proxy.control("restore")
    term.wait_line(rf"^connected to {sid} as c-\w+ \(resumed\)$", timeout=8)
    push(range(11, 16))  # after
    term.wait_line(r"^msg 15 ", timeout=5)

    received = [line for line in term.lines if line.startswith("msg ")]
    expected = [
        f'msg {n} {{"n": {n}, "text": "message {n}"}}'  # sort_keys: n before text
        for n in range(1, 16)
    ]
    assert received == expected

    resumed = server.log.wait_event(event="session.resumed", session_id=sid)
    assert resumed["attrs"]["replayed"] == 5
    assert not server.log.find(event="session.ended", session_id=sid)
    assert {e["session_id"] for e in term.log.events()} == {sid}
    assert server.session(sid)["state"] == "active"
    term.send("close")
    assert term.wait_exit() == 0


def test_messages_pushed_while_the_session_starts_arrive_after_started(e2e: E2E) -> None:
    server = e2e.server(launchpads={"slow": {"profile_mount_command": "sleep 1"}})
    ticket = server.launch("alice", "slow")
    sid = ticket["session_id"]
    term = e2e.terminal(ticket["connect_url"])
    term.wait_line(rf"^connected to {sid} ")
    server.log.wait_event(event="session.starting", session_id=sid)
    for n in (1, 2):
        assert server.push(sid, {"n": n}).status == 202
    assert not server.log.find(event="session.started", session_id=sid)
    server.log.wait_event(event="session.started", session_id=sid, timeout=5)
    term.wait_line(r'^msg 2 \{"n": 2\}$', timeout=5)
    assert [line for line in term.lines if line.startswith("msg ")] == [
        'msg 1 {"n": 1}',
        'msg 2 {"n": 2}',
    ]


def test_a_resume_before_the_server_noticed_the_loss_replaces_the_old_connection(
    e2e: E2E,
) -> None:
    # The server would need 2 x 10 s to give up on the path; the terminal gives up after 1.2 s.
    server = e2e.server(launchpads={"patient": {"receive_timeout": 10.0}})
    ticket = server.launch("alice", "patient")
    sid = ticket["session_id"]
    proxy = e2e.proxy(server.port)
    term = e2e.connected(server, ticket, proxy)
    old = server.log.wait_event(event="connection.established", session_id=sid)

    proxy.control("blackhole")
    term.wait_line(r"^\[4102 CONNECTION_SEVERED\] ", timeout=5)
    term.wait_line(r"^\[4103 RECONNECTING\] ", timeout=4)
    assert not server.log.find(event="connection.closed", session_id=sid)
    proxy.control("restore")
    term.wait_line(rf"^connected to {sid} as c-\w+ \(resumed\)$", timeout=8)

    replaced = server.log.wait_event(event="connection.closed", code=4029, session_id=sid)
    assert replaced["connection_id"] == old["connection_id"]
    assert replaced["attrs"]["reason"] == "replaced by a resume from the same terminal"
    resumed = server.log.wait_event(event="session.resumed", session_id=sid)
    assert resumed["previous_connection_id"] == old["connection_id"]
    assert not server.log.find(event="receive.timeout", session_id=sid)
    server.push(sid, {"n": 1})
    term.wait_line(r'^msg 1 \{"n": 1\}$')
