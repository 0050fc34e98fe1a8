"""ServerSession: every server code at its exact millisecond, with a fake clock."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from openfrp import PROTOCOL_VERSION, codes
from openfrp.protocol import messages
from openfrp.protocol.actions import Close, Deliver, EndSession, Log, Send, StartSession
from openfrp.protocol.handshake import digest
from openfrp.protocol.server_session import SessionState
from tests.protocol.harness import (
    CONFIG,
    FAST,
    SESSION_ID,
    ServerHarness,
    closes,
    codes_of,
    hello,
    logs,
    ms,
    sends,
    token,
    wire,
)

QUIET = replace(FAST, receive_timeout=100_000.0, idle_timeout=1000.0)
"""FAST without receive timeouts getting in the way of the long timers."""


def active(settings: Any = FAST, at: int = 1000, cid: str = "c1") -> ServerHarness:
    """A session whose first connection `cid` joined and started at `at` ms."""
    h = ServerHarness(settings)
    h.run_until(at)
    h.join(cid)
    assert h.session.state is SessionState.ACTIVE
    assert h.session.primary == cid
    return h


def ended_with(actions: list[Any], code: int) -> bool:
    return EndSession(code) in actions and any(
        log.code == code for log in logs(actions, "session.ended")
    )


# -- start -------------------------------------------------------------------------------------


def test_first_hello_welcomes_and_starts_the_session() -> None:
    h = ServerHarness()
    h.run_until(250)
    out = h.open("c1") + h.hello("c1")
    welcome = sends(out, "welcome", "c1")
    assert welcome[0].message == {
        "type": "welcome",
        "session_id": SESSION_ID,
        "connection_id": "c1",
        "resume": False,
        "state": "starting",
        "last_seq": 0,
    }
    assert StartSession() in out
    assert logs(out, "session.starting")
    assert h.session.state is SessionState.STARTING
    h.run_until(400)
    out = h.start()
    assert sends(out, "started", "c1")
    assert logs(out, "session.started")[0].attrs == {"time_to_start_ms": 400}
    assert h.session.state is SessionState.ACTIVE


def test_heartbeat_pings_every_interval_and_pong_answers_ping() -> None:
    h = active(QUIET, at=0)
    out = h.run_until(ms(FAST.heartbeat_interval) - 1)
    assert sends(out, "ping") == []
    out = h.run_until(ms(FAST.heartbeat_interval) * 3)
    pings = sends(out, "ping", "c1")
    assert [p.message["id"] for p in pings] == [1, 2, 3]
    assert [h.at(p) for p in pings] == [500, 1000, 1500]
    assert h.send("c1", {"type": "ping", "id": 42}) == [Send("c1", {"type": "pong", "id": 42})]


def test_terminal_messages_are_delivered_to_the_host_side() -> None:
    h = active()
    for message in (
        {"type": "input", "kind": "key", "data": {"keysym": 97, "down": True}},
        {"type": "clipboard", "text": "hi"},
        {"type": "events", "items": [{"event": "x"}]},
        {"type": "display_ack", "change_id": 1},
        {"type": "frame_ack", "frame": 9},
    ):
        assert h.send("c1", message) == [Deliver("c1", message)]
    assert h.send("c1", {"type": "pong", "id": 1}) == []


# -- 4008 max session duration -----------------------------------------------------------------


def test_4008_warning_then_end_at_exact_times() -> None:
    h = active(QUIET, at=1000)
    warn_at = 1000 + ms(QUIET.max_session_duration - QUIET.warn_before)
    end_at = 1000 + ms(QUIET.max_session_duration)

    before = h.run_until(warn_at - 1)
    assert sends(before, "warning") == [] and logs(before, "session.warning") == []
    at_warning = h.run_until(warn_at)
    assert Send("c1", {"type": "warning", "code": 4008, "seconds_left": 60}) in at_warning
    warning_log = logs(at_warning, "session.warning")
    assert len(warning_log) == 1
    assert warning_log[0].code == 4008 and warning_log[0].attrs == {"seconds_left": 60}
    assert h.session.state is SessionState.ACTIVE

    before = h.run_until(end_at - 1)
    assert codes_of(before) == []
    at_end = h.run_until(end_at)
    assert Close("c1", 4008, "MAX_SESSION_DURATION") in at_end
    assert ended_with(at_end, 4008)
    assert logs(at_end, "session.ended")[0].attrs["duration_ms"] == end_at - 1000
    assert h.session.ended and h.session.final_code == 4008
    assert h.session.next_deadline() is None


def test_4008_clock_does_not_pause_while_disconnected() -> None:
    h = active(QUIET, at=1000)
    end_at = 1000 + ms(QUIET.max_session_duration)
    warn_at = end_at - ms(QUIET.warn_before)
    h.run_until(100_000)
    h.lose("c1")  # 4029, disconnected
    assert h.session.state is SessionState.DISCONNECTED
    h.run_until(300_000)
    resumed = h.join("c2", resume=True, previous_connection_id="c1")
    assert sends(resumed, "welcome", "c2")[0].message["resume"] is True
    h.run_until(warn_at - 1000)
    h.lose("c2")  # disconnected again across the warning
    out = h.run_until(warn_at)
    assert logs(out, "session.warning")  # logged even with nobody to tell
    assert sends(out) == []
    h.run_until(warn_at + 10_000)
    rejoined = h.join("c3", resume=True, previous_connection_id="c2")
    left = (end_at - (warn_at + 10_000)) // 1000
    assert sends(rejoined, "warning", "c3")[0].message["seconds_left"] == left
    assert codes_of(h.run_until(end_at - 1)) == []
    out = h.run_until(end_at)
    assert Close("c3", 4008, "MAX_SESSION_DURATION") in out
    assert ended_with(out, 4008)


def test_4008_while_disconnected_ends_without_a_close() -> None:
    h = active(replace(QUIET, idle_timeout=10_000.0), at=0)
    end_at = ms(QUIET.max_session_duration)
    h.run_until(end_at - 5000)
    h.lose("c1")
    out = h.run_until(end_at)
    assert closes(out) == []
    assert ended_with(out, 4008)


def test_no_warning_when_warn_before_is_zero() -> None:
    h = active(replace(QUIET, warn_before=0.0), at=0)
    out = h.run_until(ms(QUIET.max_session_duration))
    assert logs(out, "session.warning") == []
    assert ended_with(out, 4008)


# -- 4019 never opened, 4009 idle timeout ------------------------------------------------------


def test_a_session_nobody_opened_waits_as_long_as_its_link_then_ends_4019_saying_so() -> None:
    """idle_timeout counts from a disconnect: a session never opened is not disconnected. It
    waits while its link works (link_ttl), then ends as an expected automation (4019)."""
    h = ServerHarness(FAST, now=500)
    assert FAST.idle_timeout < FAST.link_ttl and FAST.open_timeout == 0
    assert h.run_until(500 + ms(FAST.idle_timeout)) == []  # no 4009 for the unopened
    unopened_at = 500 + ms(FAST.link_ttl)
    assert h.run_until(unopened_at - 1) == []
    out = h.run_until(unopened_at)
    assert closes(out) == [] and ended_with(out, 4019)
    ended = logs(out, "session.ended")[0]
    assert "link was never opened" in ended.attrs["reason"]
    assert ended.attrs["open_timeout_s"] == FAST.link_ttl and ended.attrs["duration_ms"] == 0
    # a terminal that comes after it is told so, as for any ended session
    out = h.open("late") + h.hello("late")
    assert Close("late", 4019, "CLOSED_REMOTELY (session ended)") in out


def test_a_link_opened_after_idle_timeout_starts_the_session_and_idle_counts_from_then() -> None:
    settings = replace(FAST, receive_timeout=100_000.0, max_session_duration=8000.0)
    h = ServerHarness(settings)
    h.run_until(ms(settings.idle_timeout) + 15_000)
    opened = h.join("c1")
    assert sends(opened, "welcome", "c1") and StartSession() in opened
    assert h.session.state is SessionState.ACTIVE
    assert h.session.deadlines.get("unopened") is None
    h.run_until(ms(settings.link_ttl) + 1)  # past the link's lifetime: an opened session goes on
    assert not h.session.ended
    h.lose("c1")
    lost_at = h.now
    assert codes_of(h.run_until(lost_at + ms(settings.idle_timeout) - 1)) == []
    assert ended_with(h.run_until(lost_at + ms(settings.idle_timeout)), 4009)


def test_open_timeout_sets_how_long_an_unopened_session_waits() -> None:
    h = ServerHarness(replace(FAST, open_timeout=90.0))
    assert h.run_until(89_999) == []
    out = h.run_until(90_000)
    assert ended_with(out, 4019)
    assert logs(out, "session.ended")[0].attrs["open_timeout_s"] == 90.0


def test_a_refused_hello_does_not_open_the_session() -> None:
    h = ServerHarness(replace(FAST, open_timeout=90.0))
    h.run_until(1000)
    h.open("bad")
    assert closes(h.hello("bad", token=token(secret=b"x")))[0].code == 4002
    assert h.session.deadlines.get("unopened") == 90_000


def test_4009_disconnected_session_not_resumed_and_later_resume_refused() -> None:
    h = active(FAST, at=1000)
    h.run_until(1200)
    h.lose("c1")
    idle_at = 1200 + ms(FAST.idle_timeout)
    assert codes_of(h.run_until(idle_at - 1)) == []
    out = h.run_until(idle_at)
    assert ended_with(out, 4009)
    assert closes(out) == []
    h.run_until(idle_at + 5000)
    out = h.open("c2") + h.hello("c2", resume=True, last_seq=0, previous_connection_id="c1")
    assert Close("c2", 4009, "IDLE_TIMEOUT (session ended)") in out
    assert logs(out, "connection.rejected")[0].code == 4009
    assert sends(out) == []
    assert h.session.final_code == 4009


def test_resume_just_before_idle_timeout_cancels_it() -> None:
    h = active(FAST, at=0)
    h.lose("c1")
    h.run_until(ms(FAST.idle_timeout) - 1)
    h.join("c2", resume=True, previous_connection_id="c1")
    # keep the connection alive well past the old idle deadline
    for t in range(ms(FAST.idle_timeout), ms(FAST.idle_timeout) + 5000, 500):
        assert codes_of(h.run_until(t)) == []
        h.send("c2", {"type": "pong", "id": 1})
    assert h.session.state is SessionState.ACTIVE


def test_idle_restarts_from_each_disconnect() -> None:
    h = active(FAST, at=0)
    h.lose("c1")
    h.run_until(30_000)
    h.join("c2", resume=True)
    h.run_until(30_100)
    h.lose("c2")
    assert codes_of(h.run_until(30_100 + ms(FAST.idle_timeout) - 1)) == []
    assert ended_with(h.run_until(30_100 + ms(FAST.idle_timeout)), 4009)


def test_left_during_start_becomes_disconnected_when_start_completes() -> None:
    h = ServerHarness(FAST)
    h.open("c1")
    h.hello("c1")
    h.run_until(100)
    out = h.lose("c1")
    assert h.session.state is SessionState.STARTING
    assert logs(out, "session.disconnected")
    h.run_until(300)
    out = h.start()
    assert h.session.state is SessionState.DISCONNECTED
    assert sends(out) == []
    assert codes_of(h.run_until(300 + ms(FAST.idle_timeout) - 1)) == []
    assert ended_with(h.run_until(300 + ms(FAST.idle_timeout)), 4009)


# -- 4023 receive timeouts ---------------------------------------------------------------------


def test_4023_after_exactly_max_receive_timeouts() -> None:
    h = active(FAST, at=1000)
    rt = ms(FAST.receive_timeout)
    for n in range(1, FAST.max_receive_timeouts):
        assert logs(h.run_until(1000 + n * rt - 1), "receive.timeout") == []
        out = h.run_until(1000 + n * rt)
        timeout = logs(out, "receive.timeout")
        assert [t.attrs["count"] for t in timeout] == [n]
        assert timeout[0].connection_id == "c1"
        assert closes(out) == []
    last = 1000 + FAST.max_receive_timeouts * rt
    assert closes(h.run_until(last - 1)) == []
    out = h.run_until(last)
    assert [t.attrs["count"] for t in logs(out, "receive.timeout")] == [3]
    assert Close("c1", 4023, "RECEIVE_TIMEOUTS", abort=True) in out
    disconnected = logs(out, "session.disconnected")
    assert disconnected[0].code == 4023
    assert h.session.state is SessionState.DISCONNECTED
    assert not h.session.ended
    # the connection being closed is ignored from now on, and the session is resumable
    assert h.send("c1", {"type": "ping", "id": 1}) == []
    assert h.lose("c1") == []
    out = h.join("c2", resume=True, previous_connection_id="c1")
    assert sends(out, "welcome", "c2")[0].message["resume"] is True


@pytest.mark.parametrize(
    "message",
    [
        {"type": "pong", "id": 1},
        {"type": "ack", "seq": 0},
        {"type": "input", "kind": "release"},
        {"type": "ping", "id": 5},
    ],
)
def test_any_message_resets_the_receive_timeout_count(message: dict[str, Any]) -> None:
    h = active(FAST, at=0)
    rt = ms(FAST.receive_timeout)
    h.run_until(2 * rt)  # two misses counted
    h.run_until(2 * rt + 300)
    h.send("c1", message)
    out = h.run_until(2 * rt + 300 + rt)
    assert [t.attrs["count"] for t in logs(out, "receive.timeout")] == [1]
    last = 2 * rt + 300 + FAST.max_receive_timeouts * rt
    assert closes(h.run_until(last - 1)) == []
    assert Close("c1", 4023, "RECEIVE_TIMEOUTS", abort=True) in h.run_until(last)


# -- 4002 handshake ----------------------------------------------------------------------------

_TAMPERED = {**CONFIG, "width": 3840}


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"version": PROTOCOL_VERSION + 1}, "version"),
        ({"session_id": "sess-2"}, "session_id"),
        ({"token": token(secret=b"not the server secret")}, "token"),
        ({"token": token(user="mallory@example.com")}, "token"),
        ({"token": token(session_id="sess-2")}, "token"),
        ({"token": "not-a-token"}, "token"),
        ({"config": _TAMPERED}, "config"),
        ({"config": _TAMPERED, "config_digest": digest(_TAMPERED)}, "config_digest"),
        (b"\x00\xff\x00garbage", "hello"),
        ("this is not json", "hello"),
        ('{"type": "ping", "id": 1}', "hello"),
        ('{"type": "hello", "version": 1}', "hello"),
        ('{"type": "close"}', "hello"),
    ],
)
def test_4002_bad_hello_is_rejected_and_the_session_is_unaffected(
    data: dict[str, Any] | str | bytes, field: str
) -> None:
    h = ServerHarness(FAST)
    h.run_until(100)
    h.open("bad")
    out = h.hello("bad", **data) if isinstance(data, dict) else h.send("bad", data)
    assert out[-1] == Close("bad", 4002, "CONFIG_MISMATCH")
    rejected = logs(out, "connection.rejected")
    assert rejected[0].code == 4002 and rejected[0].attrs["field"] == field
    assert sends(out) == [] and StartSession() not in out
    assert h.session.state is SessionState.CREATED
    assert h.session.primary is None
    # the rejected connection is ignored; its end is not news
    assert h.send("bad", messages.encode({"type": "ping", "id": 1})) == []
    assert h.lose("bad") == []
    # another, correct hello still works
    out = h.open("good") + h.hello("good")
    assert sends(out, "welcome", "good") and StartSession() in out
    # and the launched session's wait for its first terminal ended with it
    assert h.session.deadlines.get("unopened") is None


def test_4002_bad_hello_on_an_active_session_leaves_it_active() -> None:
    h = active(FAST, at=0)
    h.open("bad")
    out = h.hello("bad", token=token(secret=b"x"))
    assert closes(out) == [Close("bad", 4002, "CONFIG_MISMATCH")]
    assert h.session.primary == "c1" and h.session.state is SessionState.ACTIVE


def test_4002_no_hello_within_handshake_timeout() -> None:
    h = ServerHarness(FAST)
    h.run_until(700)
    h.open("slow")
    deadline = 700 + ms(FAST.handshake_timeout)
    assert h.run_until(deadline - 1) == []
    out = h.run_until(deadline)
    assert out[-1] == Close("slow", 4002, "CONFIG_MISMATCH")
    assert logs(out, "connection.rejected")[0].attrs == {
        "field": "hello",
        "problem": "no hello in time",
    }
    assert h.hello("slow") == []  # too late: ignored
    out = h.open("next") + h.hello("next")
    assert sends(out, "welcome", "next")


def test_hello_cancels_the_handshake_deadline() -> None:
    h = active(QUIET, at=0)
    assert h.session.deadlines.get("handshake:c1") is None
    assert codes_of(h.run_until(ms(FAST.handshake_timeout) * 3)) == []


def test_connection_closed_before_hello_is_logged() -> None:
    h = ServerHarness(FAST)
    h.open("c1")
    out = h.lose("c1", 1001)
    assert logs(out, "connection.closed")[0].attrs == {"peer_code": 1001, "before_hello": True}
    assert h.run_until(ms(FAST.handshake_timeout)) == []


def test_handshake_timeout_still_fires_after_the_session_ended() -> None:
    h = active(FAST, at=0)
    h.send("c1", {"type": "close"})
    assert h.session.ended
    h.run_until(1000)
    h.open("late")
    deadline = 1000 + ms(FAST.handshake_timeout)
    assert h.run_until(deadline - 1) == []
    out = h.run_until(deadline)
    assert Close("late", 4002, "CONFIG_MISMATCH") in out


def test_handshake_timeout_due_together_with_the_end_of_the_session() -> None:
    h = active(QUIET, at=0)
    end_at = ms(QUIET.max_session_duration)
    h.run_until(end_at - ms(QUIET.handshake_timeout))
    h.open("late")
    out = h.run_until(end_at)
    assert Close("c1", 4008, "MAX_SESSION_DURATION") in out
    assert Close("late", 4002, "CONFIG_MISMATCH") in out


# -- 4006 duplicate connection -----------------------------------------------------------------


def test_4006_policy_refuse_closes_the_newcomer() -> None:
    h = active(FAST, at=0)
    out = h.open("c2") + h.hello("c2")
    assert closes(out) == [Close("c2", 4006, "ALREADY_IN_SESSION")]
    assert logs(out, "connection.rejected")[0].attrs == {"live_connection_id": "c1"}
    assert sends(out) == []
    assert h.session.primary == "c1"
    assert h.send("c1", {"type": "ping", "id": 3}) == [Send("c1", {"type": "pong", "id": 3})]


def test_4006_resume_naming_another_connection_is_refused() -> None:
    h = active(FAST, at=0)
    out = h.open("c2") + h.hello("c2", resume=True, previous_connection_id="c0")
    assert closes(out) == [Close("c2", 4006, "ALREADY_IN_SESSION")]


def test_4006_policy_takeover_closes_the_older_connection() -> None:
    h = active(replace(FAST, duplicate_policy="takeover"), at=0)
    h.push({"n": 1})
    h.run_until(300)
    out = h.open("c2") + h.hello("c2")
    assert Close("c1", 4006, "ALREADY_IN_SESSION", abort=True) in out
    assert logs(out, "connection.closed")[0].code == 4006
    welcome = sends(out, "welcome", "c2")
    assert welcome and welcome[0].message["state"] == "active"
    # the newcomer gets the unacknowledged message; the displaced one gets nothing more
    assert [s.message["seq"] for s in sends(out, "msg", "c2")] == [1]
    assert h.session.primary == "c2"
    assert h.send("c1", {"type": "close"}) == []
    assert not h.session.ended


def test_resume_from_the_same_terminal_replaces_a_stale_connection() -> None:
    h = active(FAST, at=0)  # policy refuse
    h.run_until(400)
    out = h.open("c2") + h.hello("c2", resume=True, last_seq=0, previous_connection_id="c1")
    assert Close("c1", 4029, "CONNECTION_LOST", abort=True) in out
    welcome = sends(out, "welcome", "c2")[0].message
    assert welcome["resume"] is True and welcome["state"] == "active"
    assert logs(out, "session.resumed")[0].previous_connection_id == "c1"
    assert h.session.primary == "c2"


def test_refuse_duplicate_and_displace_entry_points() -> None:
    h = active(FAST, at=0)
    h.open("c2")
    out = h.feed(h.session.refuse_duplicate("c2", "elsewhere"))
    assert out[-1] == Close("c2", 4006, "ALREADY_IN_SESSION")
    assert h.run_until(ms(FAST.handshake_timeout)) and h.session.primary == "c1"
    out = h.feed(h.session.displace("newer elsewhere", h.now))
    assert Close("c1", 4006, "ALREADY_IN_SESSION") in out
    assert h.session.state is SessionState.DISCONNECTED
    assert h.feed(h.session.displace("again", h.now)) == []


# -- 4003 send buffer --------------------------------------------------------------------------


def _size(seq: int, body: dict[str, Any]) -> int:
    return len(messages.encode({"type": "msg", "seq": seq, "body": body}))


def test_4003_when_unacked_bytes_exceed_the_limit() -> None:
    body = {"data": "x" * 100}
    limit = sum(_size(n, body) for n in (1, 2, 3))
    h = active(replace(FAST, send_buffer_limit=limit), at=0)
    for n in (1, 2, 3):
        out = h.push(body)
        assert out == [Send("c1", {"type": "msg", "seq": n, "body": body})]
    assert h.session.unacked_bytes == limit  # exactly at the limit is fine
    out = h.push(body)
    assert sends(out) == []
    assert Close("c1", 4003, "SEND_BUFFER_OVERFLOW", abort=True) in out
    closed = logs(out, "connection.closed")[0]
    assert closed.attrs == {"unacked_bytes": limit + _size(4, body), "limit": limit}
    assert h.session.state is SessionState.DISCONNECTED and not h.session.ended


def test_acks_keep_the_send_buffer_under_the_limit() -> None:
    body = {"data": "y" * 100}
    h = active(replace(FAST, send_buffer_limit=3 * _size(100, body)), at=0)
    for n in range(1, 201):
        out = h.push(body)
        assert [s.message["seq"] for s in sends(out, "msg")] == [n]
        if n % 2 == 0:
            h.send("c1", {"type": "ack", "seq": n})
    assert h.session.unacked_bytes == 0
    assert h.session.state is SessionState.ACTIVE


def test_4003_overflow_while_disconnected_ends_the_session() -> None:
    body = {"data": "z" * 100}
    h = active(replace(FAST, send_buffer_limit=2 * _size(1, body)), at=0)
    h.lose("c1")
    assert h.push(body) == [] and h.push(body) == []
    out = h.push(body)
    assert ended_with(out, 4003)


def test_push_after_the_end_is_ignored() -> None:
    h = active(FAST, at=0)
    h.send("c1", {"type": "close"})
    assert h.push({"n": 1}) == []


# -- 4024 / 4029 / 4025 / 4000 / disconnect ----------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        "garbage",
        b"\x01\x02",
        '{"type": "ping"}',
        '{"type": "frobnicate"}',
        messages.encode(
            {
                "type": "hello",
                "version": PROTOCOL_VERSION,
                "session_id": SESSION_ID,
                "token": token(),
                "config": CONFIG,
                "config_digest": digest(CONFIG),
            }
        ),
    ],
)
def test_4024_malformed_message_after_the_handshake(data: str | bytes) -> None:
    h = active(FAST, at=0)
    out = h.send("c1", data)
    assert Close("c1", 4024, "RECEIVE_ERROR") in out
    assert logs(out, "connection.closed")[0].attrs["error"]
    assert logs(out, "session.disconnected")[0].code == 4024
    assert h.session.state is SessionState.DISCONNECTED
    out = h.join("c2", resume=True, previous_connection_id="c1")
    assert sends(out, "welcome", "c2")


def test_4029_connection_dropped_without_a_close_frame() -> None:
    h = active(FAST, at=0)
    h.run_until(1234)
    out = h.lose("c1", None)
    assert closes(out) == []  # nothing to close: it is gone
    assert logs(out, "connection.closed")[0].code == 4029
    assert logs(out, "session.disconnected")[0].code == 4029
    assert h.session.state is SessionState.DISCONNECTED
    assert h.session.deadlines.get("idle") == 1234 + ms(FAST.idle_timeout)
    assert sends(h.join("c2", resume=True), "welcome", "c2")


def test_clean_close_by_the_terminal_disconnects_without_a_server_code() -> None:
    h = active(FAST, at=0)
    out = h.lose("c1", 1001)
    assert logs(out, "connection.closed")[0].attrs == {"peer_code": 1001}
    assert logs(out, "session.disconnected")[0].code is None
    assert h.session.state is SessionState.DISCONNECTED


@pytest.mark.parametrize("peer_code", [4102, 4108])
def test_a_terminal_that_gives_the_connection_up_is_4029_with_its_code_beside(
    peer_code: int,
) -> None:
    h = active(FAST, at=0)
    out = h.lose("c1", peer_code)
    closed = logs(out, "connection.closed")[0]
    assert closed.code == 4029 and closed.attrs["peer_code"] == peer_code
    assert logs(out, "session.disconnected")[0].code == 4029
    assert h.session.state is SessionState.DISCONNECTED


def test_4025_send_failure() -> None:
    h = active(FAST, at=0)
    assert h.feed(h.session.send_failed("other", "EPIPE", h.now)) == []
    out = h.feed(h.session.send_failed("c1", "EPIPE", h.now))
    assert Close("c1", 4025, "SEND_ERROR") in out
    assert logs(out, "session.disconnected")[0].code == 4025
    assert h.session.state is SessionState.DISCONNECTED


def test_4000_close_message_ends_the_session() -> None:
    h = active(FAST, at=1000)
    h.run_until(3500)
    out = h.send("c1", {"type": "close"})
    assert Close("c1", 4000, "USER_CLOSED") in out
    assert ended_with(out, 4000)
    assert logs(out, "session.ended")[0].attrs["duration_ms"] == 2500
    assert h.session.next_deadline() is None
    out = h.open("c2") + h.hello("c2", resume=True)
    assert closes(out) == [Close("c2", 4000, "USER_CLOSED (session ended)")]


def test_disconnect_message_keeps_the_session_for_a_resume() -> None:
    h = active(FAST, at=0)
    h.push({"n": 1})
    out = h.send("c1", {"type": "disconnect"})
    assert Close("c1", 1000, "DISCONNECTED") in out
    assert logs(out, "session.disconnected")[0].code is None
    assert h.session.state is SessionState.DISCONNECTED
    assert not any(isinstance(a, EndSession) for a in out)
    assert h.lose("c1", 1000) == []
    h.run_until(5000)
    out = h.join("c2", resume=True, last_seq=0, previous_connection_id="c1")
    assert sends(out, "welcome", "c2")[0].message["resume"] is True
    assert sends(out, "started", "c2")
    assert [s.message["seq"] for s in sends(out, "msg", "c2")] == [1]


# -- start failures, host events, faults -------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "name"),
    [(4001, "SERVER_START_ERROR"), (4022, "PROFILE_MOUNT_FAILED"), (4027, "DISPLAY_NOT_READY")],
)
def test_start_failures_end_the_session(code: int, name: str) -> None:
    h = ServerHarness(FAST)
    h.open("c1")
    h.hello("c1")
    h.run_until(900)
    out = h.feed(h.session.start_failed(code, "boom", h.now))
    assert Close("c1", code, name) in out
    assert ended_with(out, code)
    assert h.session.final_code == code
    assert h.start() == []  # a late success changes nothing


def test_start_failed_rejects_other_codes() -> None:
    h = ServerHarness(FAST)
    with pytest.raises(ValueError):
        h.session.start_failed(4004, "x", 0)


@pytest.mark.parametrize(
    ("code", "name"), [(4015, "GUEST_SHUTDOWN"), (4018, "GUEST_LOGOFF"), (4019, "CLOSED_REMOTELY")]
)
def test_host_events_end_the_session(code: int, name: str) -> None:
    h = active(FAST, at=0)
    out = h.feed(h.session.host_event(code, "because", h.now))
    assert out[:2] == [
        Log("connection.closed", code=code, connection_id="c1", attrs={"reason": "because"}),
        Close("c1", code, name),
    ]
    assert ended_with(out, code)
    with pytest.raises(ValueError):
        h.session.host_event(4000, "x", h.now)


def test_host_event_while_disconnected() -> None:
    h = active(FAST, at=0)
    h.lose("c1")
    out = h.feed(h.session.host_event(4019, "admin", h.now))
    assert closes(out) == [] and ended_with(out, 4019)


@pytest.mark.parametrize("code", [4004, 4005])
def test_ending_faults_end_the_session(code: int) -> None:
    h = active(FAST, at=0)
    out = h.feed(h.session.fault(code, "loop", "KeyError", h.now))
    assert logs(out, "error.exception")[0].code == code
    assert Close("c1", code, messages_name(code)) in out
    assert ended_with(out, code)
    assert h.feed(h.session.fault(4004, "loop", "again", h.now)) == []


@pytest.mark.parametrize("code", [4011, 4024, 4025, 4026])
def test_connection_faults_close_only_the_connection(code: int) -> None:
    h = active(FAST, at=0)
    out = h.feed(h.session.fault(code, "part", "err", h.now))
    assert Close("c1", code, messages_name(code)) in out
    assert h.session.state is SessionState.DISCONNECTED
    # without a connection there is nothing to close: the fault is only logged
    out = h.feed(h.session.fault(code, "part", "err", h.now))
    assert [type(a) for a in out] == [Log]


def test_fault_detail_goes_to_the_log_only() -> None:
    h = active(FAST, at=0)
    out = h.feed(h.session.fault(4004, "control loop", "KeyError: 'x'", h.now, "Traceback..."))
    (log,) = logs(out, "error.exception")
    assert log.attrs == {
        "where": "control loop",
        "error": "KeyError: 'x'",
        "detail": "Traceback...",
    }
    assert all("Traceback" not in str(a.message) for a in sends(out))


def test_fault_rejects_other_codes() -> None:
    h = active(FAST, at=0)
    with pytest.raises(ValueError):
        h.session.fault(4000, "x", "y", h.now)


def test_4011_after_video_failure_limit_consecutive_failures() -> None:
    h = active(FAST, at=0)  # video_failure_limit = 3
    video = h.session.video_result
    for n in (1, 2):
        out = h.feed(video(False, "encode", h.now))
        assert [v.attrs["consecutive"] for v in logs(out, "video.error")] == [n]
        assert closes(out) == []
    assert h.feed(video(True, "", h.now)) == []  # a success resets the count
    for n in (1, 2):
        out = h.feed(video(False, "capture", h.now))
        assert [v.attrs["consecutive"] for v in logs(out, "video.error")] == [n]
        assert closes(out) == []
    out = h.feed(video(False, "capture", h.now))
    assert Close("c1", 4011, "VIDEO_STREAM_ERROR") in out
    assert logs(out, "error.exception")[0].code == 4011
    assert h.session.state is SessionState.DISCONNECTED and not h.session.ended


def messages_name(code: int) -> str:
    return codes.get(code).name


# -- reliable messages -------------------------------------------------------------------------


def test_reliable_messages_replayed_on_resume_exactly_once_and_in_order() -> None:
    h = active(FAST, at=0)
    for n in range(1, 6):
        out = h.push({"n": n})
        assert sends(out, "msg", "c1")[0].message == {"type": "msg", "seq": n, "body": {"n": n}}
    h.send("c1", {"type": "ack", "seq": 2})
    h.lose("c1")
    assert h.push({"n": 6}) == []  # nobody to send to: kept for the resume
    # the terminal got seq 3 but its ack was lost
    out = h.join("c2", resume=True, last_seq=3, previous_connection_id="c1")
    order = [s.message["type"] for s in sends(out, cid="c2")]
    assert order == ["welcome", "started", "msg", "msg", "msg"]
    replay = sends(out, "msg", "c2")
    assert [s.message["seq"] for s in replay] == [4, 5, 6]
    assert [s.message["body"] for s in replay] == [{"n": 4}, {"n": 5}, {"n": 6}]
    assert logs(out, "session.resumed")[0].attrs == {"replayed": 3}
    assert sends(out, "welcome", "c2")[0].message["last_seq"] == 6
    # a second resume after everything was acknowledged replays nothing
    h.send("c2", {"type": "ack", "seq": 6})
    h.lose("c2")
    out = h.join("c3", resume=True, last_seq=6, previous_connection_id="c2")
    assert sends(out, "msg") == []
    assert logs(out, "session.resumed")[0].attrs == {"replayed": 0}
    out = h.push({"n": 7})
    assert [s.message["seq"] for s in sends(out, "msg", "c3")] == [7]


def test_resume_with_an_older_last_seq_replays_only_what_is_unacked() -> None:
    h = active(FAST, at=0)
    for n in range(1, 5):
        h.push({"n": n})
    h.send("c1", {"type": "ack", "seq": 3})
    h.lose("c1")
    out = h.join("c2", resume=True, last_seq=1)
    assert [s.message["seq"] for s in sends(out, "msg")] == [4]


def test_messages_pushed_during_start_are_sent_when_it_completes() -> None:
    h = ServerHarness(FAST)
    h.open("c1")
    h.hello("c1")
    assert h.push({"n": 1}) == []  # not started yet
    out = h.start()
    kinds = [s.message["type"] for s in sends(out, cid="c1")]
    assert kinds == ["started", "msg"]
    assert sends(out, "msg")[0].message["seq"] == 1


def test_resume_while_starting_is_welcomed_as_starting_and_gets_started() -> None:
    h = ServerHarness(FAST)
    h.open("c1")
    h.hello("c1")
    h.run_until(200)
    h.lose("c1")
    h.run_until(400)
    out = h.open("c2") + h.hello("c2", resume=True, previous_connection_id="c1")
    welcome = sends(out, "welcome", "c2")[0].message
    assert welcome["state"] == "starting" and welcome["resume"] is False
    assert StartSession() not in out  # the start is already running
    out = h.start()
    assert sends(out, "started", "c2")
    assert h.session.state is SessionState.ACTIVE and h.session.primary == "c2"


def test_frames_from_unknown_connections_are_ignored() -> None:
    h = active(FAST, at=0)
    assert h.send("stranger", "garbage") == []
    assert h.lose("stranger") == []
    assert h.session.primary == "c1" and h.session.state is SessionState.ACTIVE


def test_hello_fits_checks_without_changing_anything() -> None:
    """The server asks this before applying duplicate_policy across sessions."""
    h = ServerHarness(FAST)
    h.open("c1")
    session = h.session
    assert session.hello_fits(wire(hello()))
    assert not session.hello_fits(wire(hello(version=PROTOCOL_VERSION + 1)))
    assert not session.hello_fits(wire(hello(token=token(user="mallory"))))
    assert not session.hello_fits("not json")
    assert not session.hello_fits(wire({"type": "ping", "id": 1}))
    assert "c1" in session.pending and session.primary is None
    assert session.state is SessionState.CREATED
