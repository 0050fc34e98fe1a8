"""TerminalConnection: connect, keepalive, reconnect with backoff, resume, at exact times."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from openfrp import PROTOCOL_VERSION, codes
from openfrp.protocol.handshake import digest
from openfrp.protocol.terminal_connection import (
    Connect,
    Finished,
    Hangup,
    Receive,
    ShipEvents,
    Show,
    TerminalState,
    Transmit,
    show,
)
from tests.protocol.harness import (
    CONFIG,
    FAST,
    SESSION_ID,
    TerminalHarness,
    logs,
    ms,
    of_type,
    token,
)


def expected_show(code: int) -> Show:
    row = codes.get(code)
    level = "info" if row.kind is codes.Kind.INFO else "error"
    return Show(code, f"[{code} {row.name}] {row.message}", level)


def established(settings: Any = FAST, at: int = 0) -> TerminalHarness:
    t = TerminalHarness(settings, now=at)
    t.establish("c1")
    assert t.term.state is TerminalState.ESTABLISHED
    return t


def lose_at(t: TerminalHarness, at: int) -> list[Any]:
    """Drop the transport without a close code at `at` (a 4102)."""
    t.run_until(at)
    return t.closed(None, "EOF")


def connect_times(t: TerminalHarness) -> list[tuple[int, int]]:
    return [(at, a.attempt) for at, a in t.record if isinstance(a, Connect)]


# -- first connection --------------------------------------------------------------------------


def test_first_connection_sends_hello_and_is_established_by_welcome() -> None:
    t = TerminalHarness(now=100)
    out = t.start()
    assert out == [logs(out, "connect.attempt")[0], Connect(0)]
    assert logs(out)[0].attrs == {"attempt": 0}
    t.run_until(130)
    out = t.opened()
    assert out == [
        Transmit(
            {
                "type": "hello",
                "version": PROTOCOL_VERSION,
                "session_id": SESSION_ID,
                "token": token(),
                "config": CONFIG,
                "config_digest": digest(CONFIG),
                "client": "test",
                "resume": False,
                "last_seq": 0,
            }
        )
    ]
    t.run_until(180)
    out = t.welcome("c1")
    established_log = logs(out, "connection.established")[0]
    assert established_log.connection_id == "c1"
    assert established_log.attrs == {"client": "test", "resume": False, "time_to_connect_ms": 80}
    assert out[-1] == ShipEvents()
    assert logs(out, "reconnect.succeeded") == []
    assert t.term.connection_id == "c1"


def test_heartbeat_and_pong() -> None:
    t = established(at=0)
    t.server_says({"type": "ping", "id": 1})  # keep it alive
    out = t.run_until(ms(FAST.heartbeat_interval) * 2)
    pings = of_type(out, Transmit)
    assert [p.message for p in pings] == [{"type": "ping", "id": 1}, {"type": "ping", "id": 2}]
    assert [t.at(p) for p in pings] == [500, 1000]
    assert t.server_says({"type": "ping", "id": 7}) == [Transmit({"type": "pong", "id": 7})]


def test_messages_before_welcome_are_ignored() -> None:
    t = TerminalHarness()
    t.start()
    t.opened()
    out = t.server_says({"type": "msg", "seq": 1, "body": {}})
    assert [a.event for a in logs(out)] == ["message.invalid"]
    assert of_type(out, Receive) == []
    assert t.term.last_seq == 0


def test_invalid_server_message_is_logged_not_fatal() -> None:
    t = established()
    out = t.server_says("}{")
    assert [a.event for a in logs(out)] == ["message.invalid"]
    assert t.term.state is TerminalState.ESTABLISHED


# -- 4101 --------------------------------------------------------------------------------------


def test_4101_no_welcome_within_connect_timeout() -> None:
    t = TerminalHarness(now=100)
    t.start()
    t.opened()
    deadline = 100 + ms(FAST.connect_timeout)
    assert t.run_until(deadline - 1) == []
    out = t.run_until(deadline)
    assert out[0] == Hangup(4101, "CONNECT_TIMEOUT", abort=True)
    assert logs(out, "connect.failed")[0].code == 4101
    assert out[-2:] == [expected_show(4101), Finished(4101)]
    assert t.term.state is TerminalState.DONE
    assert t.term.next_deadline() is None
    assert t.welcome() == []  # too late


def test_4101_when_the_transport_keeps_failing_inside_the_window() -> None:
    t = TerminalHarness()
    t.start()
    deadline = ms(FAST.connect_timeout)
    step = ms(FAST.reconnect_backoff_initial)
    while t.now < deadline:
        out = t.failed("connection refused")
        assert logs(out, "connect.retry")
        t.run_until(min(t.now + step, deadline - 1))
        if t.now == deadline - 1:
            break
    assert connect_times(t) == [(n * step, 0) for n in range(deadline // step)]
    assert of_type(t.since(0), Finished) == []
    out = t.run_until(deadline)
    assert Finished(4101) in out and expected_show(4101) in out
    assert of_type(out, Connect) == []


def test_a_retry_on_the_first_connection_can_still_succeed() -> None:
    t = TerminalHarness()
    t.start()
    t.failed()
    t.run_until(500)
    t.opened()
    out = t.welcome("c1")
    assert logs(out, "connection.established")[0].attrs["time_to_connect_ms"] == 0
    for at in range(1000, ms(FAST.connect_timeout) + 1000, 1000):  # past the connect window
        out = t.run_until(at)
        assert of_type(out, Finished) == [] and of_type(out, Hangup) == []
        t.server_says({"type": "ping", "id": at})


def test_non_reconnectable_refusal_of_the_first_connection_finishes() -> None:
    t = TerminalHarness()
    t.start()
    t.opened()
    out = t.closed(4002, "CONFIG_MISMATCH")
    assert logs(out, "connection.closed")[0].code == 4002
    assert out[-2:] == [expected_show(4002), Finished(4002)]


# -- 4102 --------------------------------------------------------------------------------------


def test_4102_nothing_received_for_keepalive_timeout() -> None:
    t = established(at=1000)
    deadline = 1000 + ms(FAST.keepalive_timeout)
    out = t.run_until(deadline - 1)
    assert of_type(out, Hangup) == [] and of_type(out, Show) == []
    out = t.run_until(deadline)
    assert of_type(out, Hangup) == [Hangup(4102, "CONNECTION_SEVERED", abort=True)]
    lost = logs(out, "connection.lost")[0]
    assert lost.code == 4102 and lost.connection_id == "c1"
    assert expected_show(4102) in out
    assert t.term.state is TerminalState.WAITING
    assert t.term.lost_at == deadline


@pytest.mark.parametrize(
    "data",
    [
        {"type": "ping", "id": 1},
        {"type": "started"},
        b"\x00video-frame",
        "not json at all",
    ],
)
def test_any_message_resets_keepalive(data: Any) -> None:
    t = established(at=0)
    t.run_until(2000)
    t.server_says(data)
    deadline = 2000 + ms(FAST.keepalive_timeout)
    assert of_type(t.run_until(deadline - 1), Hangup) == []
    assert of_type(t.run_until(deadline), Hangup) == [Hangup(4102, "CONNECTION_SEVERED", True)]


@pytest.mark.parametrize("code", [None, 1006, 1011])
def test_4102_when_the_transport_closes_without_a_code(code: int | None) -> None:
    t = established(at=0)
    t.run_until(700)
    out = t.closed(code, "")
    lost = logs(out, "connection.lost")[0]
    assert lost.code == 4102 and lost.attrs == {"close_code": code, "close_reason": ""}
    assert expected_show(4102) in out
    assert t.term.state is TerminalState.WAITING
    assert t.term.deadlines.get("retry") == 700 + ms(FAST.reconnect_backoff_initial)
    assert t.term.deadlines.get("keepalive") is None


@pytest.mark.parametrize("code", [4003, 4011, 4023, 4024, 4025, 4029])
def test_reconnectable_server_code_is_shown_then_reconnects(code: int) -> None:
    t = established(at=0)
    out = t.closed(code, codes.get(code).name)
    assert logs(out, "connection.closed")[0].code == code
    assert expected_show(code) in out
    assert logs(out, "connection.lost") == []  # not a 4102: the server said why
    assert t.term.state is TerminalState.WAITING
    out = t.run_until(ms(FAST.reconnect_backoff_initial))
    assert Connect(1) in out


@pytest.mark.parametrize("code", [4000, 4006, 4008, 4009, 4015, 4018, 4019, 4004])
def test_final_server_code_is_shown_and_finishes(code: int) -> None:
    t = established(at=0)
    out = t.closed(code, codes.get(code).name)
    assert out[-2:] == [expected_show(code), Finished(code)]
    assert t.term.final_code == code
    assert t.term.next_deadline() is None


def test_close_message_acts_like_a_close_code() -> None:
    t = established(at=0)
    out = t.server_says({"type": "close", "code": 4019, "reason": "CLOSED_REMOTELY"})
    assert out[-2:] == [expected_show(4019), Finished(4019)]


# -- 4103 backoff and 4106 ---------------------------------------------------------------------


def test_4103_backoff_doubles_and_is_capped_then_4106_when_attempts_run_out() -> None:
    s = replace(FAST, reconnect_attempts=7, reconnect_window=60.0)
    t = established(s, at=0)
    lost = 2500
    t.run_until(lost)  # keepalive
    assert t.term.lost_at == lost
    # every attempt fails at once: next = failure + min(initial * 2**n, max)
    expected = [3000, 4000, 6000, 10000, 14000, 18000, 22000]
    for n, at in enumerate(expected, start=1):
        before = t.run_until(at - 1)
        assert of_type(before, Connect) == [] and of_type(before, Show) == []
        out = t.run_until(at)
        attempt = logs(out, "reconnect.attempt")[0]
        assert attempt.code == 4103
        assert attempt.attrs == {"attempt": n, "since_lost_ms": at - lost}
        assert out[-1] == Connect(n)
        assert expected_show(4103) in out
        out = t.failed("unreachable")
        if n < len(expected):
            assert of_type(out, Finished) == []
    assert connect_times(t)[1:] == [(at, n) for n, at in enumerate(expected, start=1)]
    gave_up = logs(out, "reconnect.gave_up")[0]
    assert gave_up.code == 4106
    assert gave_up.attrs["reason"] == "reconnect_attempts exhausted"
    assert gave_up.attrs["attempts"] == 7
    assert gave_up.attrs["since_lost_ms"] == 22000 - lost
    assert out[-2:] == [expected_show(4106), Finished(4106)]
    assert t.run_until(100_000) == []


def test_4106_when_reconnect_window_would_be_exceeded() -> None:
    # lost at 2500: attempts at +500, +1500, +3500; the next one (+7500) is outside 3.5 s
    t = established(replace(FAST, reconnect_window=3.5), at=0)
    t.run_until(2500)
    for at in (3000, 4000, 6000):
        assert t.run_until(at)[-1] == Connect(len(connect_times(t)) - 1)
        out = t.failed()
    gave_up = logs(out, "reconnect.gave_up")[0]
    assert gave_up.code == 4106
    assert gave_up.attrs["reason"] == "reconnect_window exhausted"
    assert out[-1] == Finished(4106)
    assert t.now == 6000


def test_4106_window_boundary_one_millisecond_shorter() -> None:
    t = established(replace(FAST, reconnect_window=3.499), at=0)
    t.run_until(2500)
    for at in (3000, 4000):
        assert isinstance(t.run_until(at)[-1], Connect)
        out = t.failed()
    assert out[-1] == Finished(4106)
    assert [n for _, n in connect_times(t)] == [0, 1, 2]


def test_4106_immediately_when_reconnect_is_disabled() -> None:
    t = established(replace(FAST, reconnect_attempts=0), at=0)
    out = t.closed(None, "")
    assert logs(out, "reconnect.gave_up")[0].attrs["reason"] == "reconnect disabled"
    assert out[-1] == Finished(4106)


def test_reconnect_attempt_that_gets_no_welcome_times_out() -> None:
    t = established(at=0)
    t.run_until(2500)  # lost
    t.run_until(3000)  # attempt 1
    t.opened()
    deadline = 3000 + ms(FAST.connect_timeout)
    assert of_type(t.run_until(deadline - 1), Hangup) == []
    out = t.run_until(deadline)
    assert out[0] == Hangup(4101, "CONNECT_TIMEOUT", abort=True)
    assert of_type(out, Finished) == []
    # the next attempt follows the backoff from the timeout
    assert connect_times(t)[-1] == (3000, 1)
    out = t.run_until(deadline + 1000)
    assert out[-1] == Connect(2) and t.at(Connect(2)) == deadline + 1000


# Every code the server refuses a resume with, and what 4106 must then say (and not say).
REFUSALS = {
    4000: "was closed",
    4001: "failed to start",
    4002: "did not accept this session's details",
    4004: "a server error ended the session",
    4006: "opened in another tab or on another device",
    4008: "maximum length",
    4009: "disconnected too long",
    4015: "shut down",
    4018: "logged off",
    4019: "closed by an administrator",
}


@pytest.mark.parametrize("code", sorted(REFUSALS))
def test_4106_when_the_server_refuses_the_resume(code: int) -> None:
    """The last word is the refusing code's own account: not "check your network" for a
    refusal, not "your network is not the cause" when it was (4009), not "open the link again"
    for a session that ended; the log line says which code turned the resume away."""
    t = established(at=0)
    t.run_until(2500)
    t.run_until(3000)
    t.opened()
    reason = codes.ended_reason(code) if code not in (4002, 4006) else codes.get(code).name
    out = t.closed(code, reason)
    assert logs(out, "connection.closed")[0].code == code
    gave_up = logs(out, "reconnect.gave_up")[0]
    assert gave_up.code == 4106
    assert gave_up.attrs == {"refused_code": code, "refused_reason": reason, "since_lost_ms": 500}
    said = gave_up.message
    assert said is not None and f"({code} {codes.get(code).name}" in said
    assert REFUSALS[code] in said and "Check your network" not in said
    if code in (4000, 4008, 4009, 4015, 4018, 4019):  # the outage or a person ended it
        assert "network is not the cause" not in said and "restarted" not in said
    if code not in (4002, 4006):
        assert "link again" not in said and "resume here" not in said
    assert expected_show(code) in out  # the person learns why the resume was refused
    last = Show(4106, f"[4106 RECONNECT_FAILED] {said}", "error")
    assert out[-2:] == [last, Finished(4106)]
    assert t.term.refusal == code
    assert t.term.may_resume is (code == 4006)  # only 4006 leaves the session going on


def test_after_the_reconnect_window_the_session_may_wait_and_resume_starts_a_new_round() -> None:
    """Gave up on the network, not on the server's word: 4106 says the session may still be
    waiting, and `resume` starts another bounded round on the same connection chain."""
    t = established(replace(FAST, reconnect_window=3.5), at=0)
    t.run_until(2500)
    for at in (3000, 4000, 6000):
        t.run_until(at)
        out = t.failed("ConnectionResetError: reset by peer")
    gave_up = logs(out, "reconnect.gave_up")[0]
    assert gave_up.attrs["all_refused"] is False
    assert gave_up.attrs["last_error"] == "ConnectionResetError: reset by peer"
    assert gave_up.message == codes.get(4106).message
    assert "may still be waiting" in gave_up.message and "start the session" not in gave_up.message
    assert t.term.may_resume and t.term.state is TerminalState.DONE


def test_resume_after_4106_is_a_bounded_round_of_resume_attempts() -> None:
    t = established(replace(FAST, reconnect_attempts=2), at=0)
    t.run_until(2500)
    for at in (3000, 4000):
        t.run_until(at)
        out = t.failed()
    assert out[-1] == Finished(4106) and t.term.may_resume
    t.run_until(50_000)
    out = t.feed(t.term.resume(t.now))
    attempt = logs(out, "reconnect.attempt")[0]
    assert attempt.attrs == {"attempt": 1, "since_lost_ms": 0, "round": 2}
    assert expected_show(4103) in out and out[-1] == Connect(1)
    assert t.term.final_code is None and not t.term.may_resume
    hello = of_type(t.opened(), Transmit)[0].message
    assert hello["resume"] is True and hello["previous_connection_id"] == "c1"
    out = t.welcome("c2", resume=True)
    succeeded = logs(out, "reconnect.succeeded")[0]
    assert succeeded.previous_connection_id == "c1" and succeeded.attrs["resumed"] is True
    assert t.term.state is TerminalState.ESTABLISHED
    # Bounded as the first round: lost again, it gives up after reconnect_attempts again.
    lose_at(t, 51_000)
    for at in (51_500, 52_500):
        t.run_until(at)
        out = t.failed()
    assert out[-1] == Finished(4106)
    attempts = logs([a for _, a in t.record], "reconnect.attempt")
    assert [a.attrs.get("round") for a in attempts] == [None, None, 2, None, None]


def test_resume_is_refused_when_the_server_ended_the_session_or_nothing_was_lost() -> None:
    t = established(at=0)
    assert t.term.resume(0) == []  # connected: nothing to resume
    t.run_until(2500)
    t.run_until(3000)
    t.opened()
    t.closed(4009, codes.ended_reason(4009))
    assert not t.term.may_resume and t.term.resume(t.now) == []


def test_4106_when_every_attempt_found_nothing_listening_says_the_server_is_down() -> None:
    """Every attempt refused by the TCP connect: the server process is gone, which no network
    check mends; the log says so (all_refused, last_error) for the analyzer."""
    t = established(replace(FAST, reconnect_attempts=3), at=0)
    t.run_until(2500)
    error = "ConnectionRefusedError: [Errno 111] Connect call failed ('127.0.0.1', 9)"
    for at in (3000, 4000, 6000):
        t.run_until(at)
        out = t.feed(t.term.transport_failed(error, t.now, refused=True))
    gave_up = logs(out, "reconnect.gave_up")[0]
    assert gave_up.attrs["all_refused"] is True and gave_up.attrs["last_error"] == error
    said = codes.get(4106).message_for(unreachable=True)
    assert gave_up.message == said and "did not accept the connection" in said
    assert "network" not in said
    assert out[-2:] == [Show(4106, f"[4106 RECONNECT_FAILED] {said}", "error"), Finished(4106)]
    assert t.term.may_resume


def test_one_attempt_that_reached_something_is_not_a_server_down() -> None:
    t = established(replace(FAST, reconnect_attempts=3), at=0)
    t.run_until(2500)
    for n, at in enumerate((3000, 4000, 6000)):
        t.run_until(at)
        out = t.feed(t.term.transport_failed("refused", t.now, refused=n != 1))
    assert logs(out, "reconnect.gave_up")[0].attrs["all_refused"] is False
    assert out[-2] == expected_show(4106)


def test_4106_when_the_resume_is_refused_by_a_close_message() -> None:
    """FRP8 carries the server's code as a `close` message; it can come before `welcome`."""
    t = established(at=0)
    t.run_until(2500)
    t.run_until(3000)
    t.opened()
    out = t.server_says({"type": "close", "code": 4009, "reason": "IDLE_TIMEOUT"})
    assert logs(out, "reconnect.gave_up")[0].attrs["refused_code"] == 4009
    assert out[-1] == Finished(4106)


def test_reconnectable_refusal_of_a_resume_keeps_trying() -> None:
    t = established(at=0)
    t.run_until(2500)
    t.run_until(3000)
    t.opened()
    out = t.closed(4029, "CONNECTION_LOST")
    assert of_type(out, Finished) == []
    assert t.run_until(4000)[-1] == Connect(2)


@pytest.mark.parametrize("via", ["close code", "close message"])
def test_a_resume_refused_because_the_session_ended_stops_at_once_even_after_4003(
    via: str,
) -> None:
    """4003 allows a reconnect, but not into a session that is over: no retry loop."""
    t = established(at=0)
    t.run_until(2500)
    t.run_until(3000)
    t.opened()
    reason = codes.ended_reason(4003)
    assert reason == "SEND_BUFFER_OVERFLOW (session ended)"
    if via == "close code":
        out = t.closed(4003, reason)
    else:
        out = t.server_says({"type": "close", "code": 4003, "reason": reason})
    assert logs(out, "reconnect.gave_up")[0].attrs["refused_code"] == 4003
    assert expected_show(4003) in out
    assert out[-1] == Finished(4106)
    assert t.run_until(60_000) == []  # and no further attempt


# -- resume ------------------------------------------------------------------------------------


def test_successful_resume_logs_recovery_and_presents_the_previous_connection() -> None:
    t = established(at=0)
    t.server_says({"type": "msg", "seq": 1, "body": {"n": 1}})
    t.server_says({"type": "msg", "seq": 2, "body": {"n": 2}})
    lost_at = 1000
    lose_at(t, lost_at)
    t.run_until(1500)
    t.failed()
    t.run_until(2500)  # attempt 2
    out = t.opened()
    hello = of_type(out, Transmit)[0].message
    assert hello["resume"] is True
    assert hello["last_seq"] == 2
    assert hello["previous_connection_id"] == "c1"
    t.run_until(2540)
    out = t.welcome("c2", resume=True)
    established_log = logs(out, "connection.established")[0]
    assert established_log.previous_connection_id == "c1"
    assert established_log.attrs["time_to_connect_ms"] == 40
    ok = logs(out, "reconnect.succeeded")[0]
    assert ok.connection_id == "c2" and ok.previous_connection_id == "c1"
    assert ok.attrs == {"attempts": 2, "recovery_ms": 2540 - lost_at, "resumed": True}
    assert out[-1] == ShipEvents()
    assert t.term.lost_at is None and t.term.attempt == 0
    # a later loss starts a fresh count
    lose_at(t, 3000)
    assert t.run_until(3500)[-1] == Connect(1)


def test_reliable_messages_in_order_exactly_once_and_acked() -> None:
    t = established(at=0)
    received: list[Receive] = []

    def say(seq: int) -> list[Any]:
        out = t.server_says({"type": "msg", "seq": seq, "body": {"n": seq}})
        received.extend(of_type(out, Receive))
        return out

    assert say(1) == [Receive(1, {"n": 1}), Transmit({"type": "ack", "seq": 1})]
    assert say(2) == [Receive(2, {"n": 2}), Transmit({"type": "ack", "seq": 2})]
    assert say(2) == [Transmit({"type": "ack", "seq": 2})]  # duplicate: acked, not delivered
    assert say(1) == [Transmit({"type": "ack", "seq": 2})]
    lose_at(t, 1000)
    t.run_until(1500)
    t.opened()
    t.welcome("c2", resume=True)
    for seq in (2, 3, 4):  # the server replays from its view; 2 is a duplicate
        say(seq)
    assert [r.seq for r in received] == [1, 2, 3, 4]
    assert [r.body for r in received] == [{"n": n} for n in (1, 2, 3, 4)]
    assert t.term.last_seq == 4


def test_warning_is_logged_and_shown() -> None:
    t = established(at=0)
    out = t.server_says({"type": "warning", "code": 4008, "seconds_left": 300})
    warning = logs(out, "session.warning")[0]
    assert warning.code == 4008 and warning.attrs == {"seconds_left": 300}
    notice = out[-1]
    assert isinstance(notice, Show) and notice.level == "warning"
    assert notice.text == (
        "[4008 MAX_SESSION_DURATION] Your session will end in 5 min: it reaches its maximum "
        "length then. Save your work now."
    )
    assert "has ended" not in notice.text
    soon = t.server_says({"type": "warning", "code": 4008, "seconds_left": 45})[-1]
    assert isinstance(soon, Show) and "will end in 45 s" in soon.text
    # an unknown code in a warning is ignored, never a crash
    assert t.server_says({"type": "warning", "code": 4007, "seconds_left": 1}) == []


# -- leaving -----------------------------------------------------------------------------------


def test_close_session_ends_with_4000_from_the_server() -> None:
    t = established(at=0)
    assert t.feed(t.term.close_session(t.now)) == [Transmit({"type": "close"})]
    assert t.term.state is TerminalState.CLOSING
    t.run_until(30)
    out = t.closed(4000, "USER_CLOSED")
    assert out[-2:] == [expected_show(4000), Finished(4000)]
    assert t.term.next_deadline() is None


def test_close_session_without_an_answer_finishes_after_the_closing_grace() -> None:
    t = established(at=0)
    t.run_until(2000)  # the last thing received was the welcome at 0
    t.feed(t.term.close_session(t.now))
    out = t.run_until(2000 + 5000)
    # the keepalive deadline (2500) passes while closing: no 4102, no reconnect
    assert of_type(out, Connect) == [] and logs(out, "connection.lost") == []
    assert out[-2:] == [Hangup(1000, "CLOSING", abort=True), Finished(None)]
    assert t.now == 7000 and t.at(Finished(None)) == 7000


def test_disconnect_leaves_the_session_for_later() -> None:
    t = established(at=0)
    assert t.feed(t.term.disconnect(t.now)) == [Transmit({"type": "disconnect"})]
    out = t.closed(1000, "DISCONNECTED")
    assert of_type(out, Show) == []  # nothing to show
    assert out[-1] == Finished(None)
    assert t.term.final_code is None


def test_leaving_while_reconnecting_hangs_up_at_once() -> None:
    t = established(at=0)
    t.closed(None, "")
    out = t.feed(t.term.close_session(t.now))
    assert out == [Hangup(1000, "LEFT", abort=True), Finished(None)]
    assert t.run_until(60_000) == []


def test_every_show_carries_the_message_of_the_code_table() -> None:
    for row in codes.TABLE:
        shown = show(row.number)
        assert row.message in shown.text and str(row.number) in shown.text
        assert shown.level == ("info" if row.kind is codes.Kind.INFO else "error")


def test_leaving_after_the_end_changes_nothing() -> None:
    t = established(at=0)
    t.closed(4008, "MAX_SESSION_DURATION")
    assert t.feed(t.term.close_session(t.now)) == []
    assert t.feed(t.term.disconnect(t.now)) == []
    assert t.term.final_code == 4008


def test_data_before_welcome_on_a_reconnect_does_not_restart_the_count() -> None:
    """Only the attempt timer rules a reconnect attempt: keepalive must not fire there."""
    t = established(at=0)
    t.run_until(2500)  # lost, lost_at = 2500
    t.run_until(3000)  # attempt 1
    t.opened()
    t.server_says({"type": "ping", "id": 1})  # something, but no welcome
    out = t.run_until(3000 + ms(FAST.connect_timeout))
    assert logs(out, "connection.lost") == [] and of_type(out, Show) == []
    assert of_type(out, Hangup) == [Hangup(4101, "CONNECT_TIMEOUT", abort=True)]
    assert t.term.lost_at == 2500 and t.term.attempt == 1
    assert t.run_until(9000)[-1] == Connect(2)
