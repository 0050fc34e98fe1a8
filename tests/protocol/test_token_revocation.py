"""Revoking a session's tokens ends the connections that came in with them (4002), with a
fake clock: the session waits for a terminal with a new token, and the old ones are refused."""

from __future__ import annotations

from dataclasses import replace

from openfrp.protocol.actions import Close, EndSession
from openfrp.protocol.server_session import SessionState
from tests.protocol.harness import (
    FAST,
    ServerHarness,
    closes,
    codes_of,
    logs,
    ms,
    sends,
    token,
)

QUIET = replace(FAST, receive_timeout=100.0, idle_timeout=30.0)
REASON = "tokens revoked by the admin API"


def active() -> ServerHarness:
    h = ServerHarness(QUIET)
    h.run_until(1000)
    h.join("c1")
    assert h.session.state is SessionState.ACTIVE
    return h


def test_revoke_ends_the_live_connection_with_4002_and_says_why() -> None:
    h = active()
    h.run_until(2000)
    out = h.feed(h.session.revoke_tokens(REASON, h.now))
    assert closes(out) == [Close("c1", 4002, "CONFIG_MISMATCH")]
    [revoked] = logs(out, "tokens.revoked")
    assert revoked.attrs == {"reason": REASON, "generation": 1}
    [closed] = logs(out, "connection.closed")
    assert (closed.code, closed.connection_id) == (4002, "c1")
    assert closed.attrs["reason"] == REASON
    # The session waits for a terminal with a new token: an operator's act, not a loss.
    [disconnected] = logs(out, "session.disconnected")
    assert disconnected.code is None and disconnected.attrs["reason"] == REASON
    assert h.session.state is SessionState.DISCONNECTED and h.session.primary is None
    assert h.session.deadlines.get("idle") == 2000 + ms(QUIET.idle_timeout)
    assert h.lose("c1", 4002) == []  # its close coming back is no news


def test_the_old_token_cannot_resume_and_a_new_one_can() -> None:
    h = active()
    h.feed(h.session.revoke_tokens(REASON, h.now))
    h.open("c2")
    out = h.hello("c2", resume=True, previous_connection_id="c1")
    assert closes(out) == [Close("c2", 4002, "CONFIG_MISMATCH")]
    assert logs(out, "connection.rejected")[0].attrs["problem"] == "token has been revoked"
    assert h.session.state is SessionState.DISCONNECTED
    out = h.join("c3", token=token(gen=1), resume=True, previous_connection_id="c1")
    assert sends(out, "welcome", "c3")[0].message["resume"] is True
    assert h.session.primary == "c3" and h.session.state is SessionState.ACTIVE


def test_revoke_closes_secondary_monitors_too() -> None:
    h = active()
    h.join("m1", monitor=1)
    out = h.feed(h.session.revoke_tokens(REASON, h.now))
    assert {(c.connection_id, c.code) for c in closes(out)} == {("c1", 4002), ("m1", 4002)}
    assert not h.session.monitors.secondaries


def test_revoke_of_a_session_nobody_opened_gives_its_new_link_the_whole_wait() -> None:
    h = ServerHarness(QUIET)
    h.run_until(60_000)
    out = h.feed(h.session.revoke_tokens(REASON, h.now))
    assert closes(out) == [] and logs(out, "session.disconnected") == []
    assert h.session.state is SessionState.CREATED
    unopened_at = 60_000 + ms(QUIET.link_ttl)
    assert codes_of(h.run_until(unopened_at - 1)) == []
    assert EndSession(4019) in h.run_until(unopened_at)


def test_revoke_after_the_end_changes_nothing() -> None:
    h = active()
    h.feed(h.session.host_event(4019, "closed from outside", h.now))
    assert h.session.revoke_tokens(REASON, h.now) == []
    assert h.session.token_generation == 0
