"""Two server processes sharing one Redis registry (a redis-server of the test's own), with
real terminals over real sockets: 4006 refuse and takeover across hosts, 4019 through the other
host's admin API, the listing from either host, a terminal routed to the wrong host (4002),
and a killed host whose owner record lapses after `live_connection_ttl`.

Each test asserts the code the terminal saw and what each host's event log holds.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass

import pytest
import redis

from tests.e2e.conftest import E2E
from tests.e2e.harness import ServerProcess, bounded, hello_for
from tests.support.redis_server import RedisServer

TTL = 3.0  # live_connection_ttl: renewed every second, lapses 2-3 s after its host dies


def popup(code: int) -> str:
    return rf"^\[{code} [A-Z_]+\] "


@dataclass
class Fleet:
    a: ServerProcess
    b: ServerProcess
    redis: RedisServer


@pytest.fixture
def fleet(e2e: E2E) -> Fleet:
    redis_server = e2e.redis()

    def host(name: str) -> ServerProcess:
        return e2e.server(
            launchpads={"shared": {"duplicate_policy": "takeover"}},
            account={"idle_timeout": 30.0},  # a session waits for its terminal past the TTL
            server={"name": name, "registry": redis_server.url, "live_connection_ttl": TTL},
        )

    return Fleet(host("host-a"), host("host-b"), redis_server)


def test_4006_refused_on_b_while_the_owner_is_live_on_a(e2e: E2E, fleet: Fleet) -> None:
    a, b = fleet.a, fleet.b
    on_a, on_b = a.launch("alice"), b.launch("alice")
    first = e2e.connected(a, on_a, name="first")
    live = a.log.wait_event(event="connection.established", session_id=on_a["session_id"])

    second = e2e.terminal(on_b["connect_url"], name="second")
    second.wait_line(popup(4006))
    second.wait_line(r"^open elsewhere: 4006 ALREADY_IN_SESSION")
    assert second.wait_exit() == 1  # refused: it joined nothing
    second.log.wait_event(event="connection.closed", code=4006)
    assert second.count(r"^connected to ") == 0

    rejected = b.log.wait_event(
        event="connection.rejected", code=4006, session_id=on_b["session_id"]
    )
    assert rejected["attrs"]["live_connection_id"] == live["connection_id"]
    assert rejected["attrs"]["live_session_id"] == on_a["session_id"]
    assert rejected["attrs"]["live_host"] == "host-a"
    # Host A was never disturbed: its terminal still gets messages, nothing closed there.
    a.push(on_a["session_id"], {"still": "first"})
    first.wait_line(r'^msg 1 \{"still": "first"\}$')
    assert not a.log.find(event="connection.closed", session_id=on_a["session_id"])
    assert b.session(on_b["session_id"])["state"] == "created"

    # Once alice leaves host A, host B lets her in at once (the record is released).
    first.send("close")
    first.wait_line(r"^session over: 4000 USER_CLOSED")
    third = e2e.connected(b, on_b, name="third")
    b.push(on_b["session_id"], {"now": "b"})
    third.wait_line(r'^msg 1 \{"now": "b"\}$')
    assert len(b.log.find(event="connection.rejected", code=4006)) == 1


def test_4006_takeover_from_b_closes_the_older_connection_on_a(e2e: E2E, fleet: Fleet) -> None:
    a, b = fleet.a, fleet.b
    older_ticket, newer_ticket = a.launch("alice", "shared"), b.launch("alice", "shared")
    older_sid, newer_sid = older_ticket["session_id"], newer_ticket["session_id"]
    older = e2e.connected(a, older_ticket, name="older")

    newer = e2e.connected(b, newer_ticket, name="newer")
    older.wait_line(popup(4006))
    older.wait_line(r"^open elsewhere: 4006 ALREADY_IN_SESSION")
    assert older.wait_exit() == 0
    older.log.wait_event(event="connection.closed", code=4006)

    displaced = a.log.wait_event(event="connection.closed", code=4006, session_id=older_sid)
    assert displaced["attrs"]["reason"] == f"taken over by session {newer_sid} on host host-b"
    a.log.wait_event(event="session.disconnected", code=4006, session_id=older_sid)
    assert len(a.log.find(event="connection.closed", code=4006)) == 1
    assert not b.log.find(event="connection.rejected")
    assert not b.log.find(event="connection.closed", session_id=newer_sid)

    b.push(newer_sid, {"now": "newer"})
    newer.wait_line(r'^msg 1 \{"now": "newer"\}$')
    # Either host answers for either session, from the shared registry.
    for host in (a, b):
        assert host.session(older_sid)["state"] == "disconnected"  # resumable, not ended
        assert host.session(newer_sid)["state"] == "active"
    for log, sid in ((a.log, older_sid), (b.log, newer_sid)):
        assert not log.find(event="session.ended", session_id=sid)


def test_4019_closed_through_the_other_hosts_admin_api(e2e: E2E, fleet: Fleet) -> None:
    a, b = fleet.a, fleet.b
    ticket = a.launch("alice")
    sid = ticket["session_id"]
    term = e2e.connected(a, ticket)

    pushed = b.push(sid, {"via": "b"})  # a message through host B reaches the session too
    assert (pushed.status, pushed.body["host"]) == (202, "host-a")
    term.wait_line(r'^msg 1 \{"via": "b"\}$')

    result = b.api("DELETE", f"/api/sessions/{sid}")
    assert result.status == 200, result
    assert result.body == {"session_id": sid, "final_code": 4019, "host": "host-a"}
    term.wait_line(r"^\[4019 CLOSED_REMOTELY\] ")
    term.wait_line(r"^session over: 4019 CLOSED_REMOTELY")
    assert term.wait_exit() == 0
    term.log.wait_event(event="connection.closed", code=4019)

    closed = a.log.wait_event(event="connection.closed", code=4019, session_id=sid)
    assert closed["attrs"]["reason"] == "closed from outside by admin API via host host-b"
    a.log.wait_event(event="session.ended", code=4019, session_id=sid)
    assert not b.log.find(session_id=sid)  # host B only passed the request on
    again = b.api("DELETE", f"/api/sessions/{sid}")
    assert again.status == 409, again
    assert b.session(sid)["final_code"] == 4019


def test_either_host_lists_every_hosts_sessions(fleet: Fleet) -> None:
    a, b = fleet.a, fleet.b
    alice = a.launch("alice")
    bob = b.launch("bob")
    alice_2 = b.launch("alice")
    expected = {
        (alice["session_id"], "alice", "host-a"),
        (bob["session_id"], "bob", "host-b"),
        (alice_2["session_id"], "alice", "host-b"),
    }
    for host in (a, b):
        listed = host.api("GET", "/api/sessions")
        assert listed.status == 200
        assert {(s["session_id"], s["user"], s["host"]) for s in listed.body["sessions"]} == (
            expected
        )
        assert all(s["host_up"] for s in listed.body["sessions"])
        # A token lists the one session it names, from every host, and nothing else.
        for ticket in (alice, alice_2):
            own = host.api("GET", "/api/sessions", key=ticket["token"])
            assert [s["session_id"] for s in own.body["sessions"]] == [ticket["session_id"]]
        one = host.api("GET", f"/api/sessions/{bob['session_id']}")
        assert (one.status, one.body["host"], one.body["state"]) == (200, "host-b", "created")
        assert host.api("GET", f"/api/sessions/{bob['session_id']}", key=alice["token"]).status == (
            404
        )
    # A ticket is issued by the host that serves the session; another host names it.
    misdirected = a.api("GET", f"/api/sessions/{bob['session_id']}/ticket", key=bob["token"])
    assert (misdirected.status, misdirected.body["host"]) == (421, "host-b")
    assert b.api("GET", f"/api/sessions/{bob['session_id']}/ticket", key=bob["token"]).status == (
        200
    )


def test_a_terminal_routed_to_the_wrong_host_is_refused_naming_the_owner(
    e2e: E2E, fleet: Fleet
) -> None:
    a, b = fleet.a, fleet.b
    ticket = a.launch("alice")
    sid = ticket["session_id"]

    lost = e2e.terminal(ticket["connect_url"], ws_url=b.ws_url, name="lost")
    lost.wait_line(popup(4002))
    lost.wait_line(r"^session over: 4002 CONFIG_MISMATCH")
    assert lost.wait_exit() == 1  # an Error code: the terminal exits non-zero
    lost.log.wait_event(event="connection.closed", code=4002)

    rejected = b.log.wait_event(event="connection.rejected", code=4002, session_id=sid)
    assert rejected["attrs"]["owner_host"] == "host-a"
    assert rejected["attrs"]["field"] == "session_id"
    assert "lives on host host-a" in rejected["message"]
    assert rejected["user"] == "alice"
    assert not a.log.find(event="connection.opened", session_id=sid)

    # The session itself is untouched: the right host serves it.
    term = e2e.connected(a, ticket)
    a.push(sid, {"n": 1})
    term.wait_line(r'^msg 1 \{"n": 1\}$')

    # A session id no registry could hold (a lone surrogate) names no session: 4002, no crash.
    raw = e2e.raw(b.ws_url)
    raw.send('{"type": "hello", "session_id": "\\ud800"}')
    assert raw.wait_closed() == 4002
    assert "Traceback" not in b.stderr()


def test_a_killed_hosts_owner_record_lapses_after_the_ttl(e2e: E2E, fleet: Fleet) -> None:
    a, b = fleet.a, fleet.b
    on_a, on_b = a.launch("alice"), b.launch("alice")
    e2e.connected(a, on_a, name="on-a")
    owner = redis.Redis.from_url(fleet.redis.url, decode_responses=True)
    key = "openfrp:owner:alice"
    assert '"host": "host-a"' in str(owner.get(key))

    a.process.kill()  # SIGKILL by PID: host A renews nothing and releases nothing
    killed = time.monotonic()
    a.wait_exit(5)
    # Still recorded: a newcomer on B is refused with 4006 naming host A.
    raw = e2e.raw(b.ws_url)
    raw.send(hello_for(on_b))
    assert raw.wait_closed() == 4006
    rejected = b.log.wait_event(
        event="connection.rejected", code=4006, session_id=on_b["session_id"]
    )
    assert rejected["attrs"]["live_host"] == "host-a"
    assert time.monotonic() - killed < TTL
    # B's listing says host A is gone: its session's last recorded state may not hold.
    listed = {x["session_id"]: x for x in b.api("GET", "/api/sessions").body["sessions"]}
    assert listed[on_a["session_id"]]["host_up"] is False
    assert listed[on_b["session_id"]]["host_up"] is True

    for _ in bounded(TTL + 3):
        if owner.get(key) is None:
            break
    lapsed = time.monotonic() - killed
    assert owner.get(key) is None and lapsed <= TTL + 0.5, lapsed
    owner.close()

    term = e2e.connected(b, on_b, name="on-b")
    b.log.wait_event(event="connection.established", session_id=on_b["session_id"])
    b.push(on_b["session_id"], {"after": "lapse"})
    term.wait_line(r'^msg 1 \{"after": "lapse"\}$')
    assert len(b.log.find(event="connection.rejected", code=4006)) == 1


def test_a_stopped_host_releases_its_owner_records_at_once(e2e: E2E, fleet: Fleet) -> None:
    a, b = fleet.a, fleet.b
    on_a, on_b = a.launch("alice"), b.launch("alice")
    term = e2e.connected(a, on_a, name="on-a")

    a.signal(signal.SIGTERM)
    term.wait_line(r"^session over: 4019 CLOSED_REMOTELY")
    assert a.wait_exit(10) == 0
    a.log.wait_event(event="session.ended", code=4019, session_id=on_a["session_id"])
    owner = redis.Redis.from_url(fleet.redis.url, decode_responses=True)
    assert owner.get("openfrp:owner:alice") is None  # released on the way out, no TTL wait
    owner.close()
    e2e.connected(b, on_b, name="on-b")
    assert not b.log.find(event="connection.rejected")


def test_sessions_go_on_when_redis_goes_away(e2e: E2E, fleet: Fleet) -> None:
    a = fleet.a
    alice, bob = a.launch("alice"), a.launch("bob")
    first = e2e.connected(a, alice, name="alice")

    fleet.redis.stop()
    error = a.log.wait_event(event="error.exception", timeout=TTL + 5)
    assert error["attrs"]["where"].startswith("registry "), error
    listed = a.api("GET", "/api/sessions")
    assert listed.status == 503 and "registry unavailable" in listed.body["error"], listed
    assert "redis" not in listed.body["error"].lower()  # no internal address in an answer
    assert "127.0.0.1" not in listed.body["error"]

    # A newcomer is admitted by this host's own sessions alone; the live one is untouched.
    second = e2e.connected(a, bob, name="bob")
    assert second.count(r"^\[") == 0 and first.count(r"^\[") == 0
    assert not a.log.find(event="connection.closed")
    assert not a.log.find(event="connection.rejected")
    assert a.api("GET", "/healthz").body["live_sessions"] == 2


def test_tokens_revoked_on_a_are_refused_on_b(e2e: E2E, fleet: Fleet) -> None:
    a, b = fleet.a, fleet.b
    ticket = a.launch("alice")
    sid, path = ticket["session_id"], f"/api/sessions/{ticket['session_id']}"
    link = ticket["connect_url"].split("#token=", 1)[1]
    assert b.api("GET", path, key=ticket["token"]).status == 200
    fresh = a.api("POST", f"{path}/revoke")
    assert fresh.status == 200
    for old in (ticket["token"], link):
        for method, where in (
            ("GET", path),
            ("GET", f"{path}/ticket"),
            ("GET", "/api/sessions"),
            ("DELETE", path),
        ):
            answer = b.api(method, where, key=old)
            assert answer.status == 401, (method, where, answer)
            assert "revoked" in answer.body["error"]
    assert a.session(sid)["state"] == "created"  # the old token closed nothing through B
    assert b.api("GET", path, key=fresh.body["token"]).status == 200
    assert b.api("DELETE", path, key=fresh.body["token"]).status == 200
    assert a.log.wait_event(event="session.ended", session_id=sid)["code"] == 4019


def test_revoke_through_b_ends_the_terminal_on_a(e2e: E2E, fleet: Fleet) -> None:
    """The admin asks host B; host A, which carries the session, ends its terminal (4002) and
    says so; B answers once the fleet refuses the old tokens, with a link that works."""
    a, b = fleet.a, fleet.b
    ticket = a.launch("alice")
    sid, path = ticket["session_id"], f"/api/sessions/{ticket['session_id']}"
    term = e2e.connected(a, ticket, name="revoked")
    live = a.log.wait_event(event="connection.established", session_id=sid)

    fresh = b.api("POST", f"{path}/revoke")
    assert fresh.status == 200, fresh
    for host in (a, b):  # refused everywhere by the time B answered
        assert host.api("GET", f"{path}/ticket", key=ticket["token"]).status == 401
    term.wait_line(popup(4002))
    assert term.wait_exit() == 1
    closed = a.log.wait_event(event="connection.closed", code=4002, session_id=sid)
    assert closed["connection_id"] == live["connection_id"]
    assert closed["attrs"]["reason"] == "tokens revoked by the admin API via host host-b"
    assert not b.log.find(event="connection.closed", session_id=sid)

    back = e2e.terminal(fresh.body["connect_url"].replace(b.url, a.url), name="fresh")
    back.wait_line(rf"^connected to {sid} as c-\w+ \(resumed\)$")
    assert a.session(sid)["state"] == "active"
