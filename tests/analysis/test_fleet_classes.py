"""Sessions in the shapes real fleets log them, each class the analyzer once got wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from openfrp.analysis import sessions, summary
from tests.analysis.conftest import ev, write_log

CRASH = "the server stopped without ending this session (a crash) and has started again"


def _facts(tmp_path: Path, lines: list[dict[str, Any] | str]) -> dict[str, Any]:
    analysis = sessions.analyze([str(write_log(tmp_path / "log.jsonl", lines))])
    cursor = analysis.con.execute("SELECT * FROM sessions")
    rows = cursor.fetchall()
    assert len(rows) == 1
    return dict(zip([column[0] for column in cursor.description], rows[0], strict=True))


def _connected(s: str, skew: float = 0.0) -> list[dict[str, Any]]:
    """Launch, connect and start, as the server logs it: the connection is established first."""
    return [
        ev(s, 0, "server", "session.created"),
        ev(s, 1 + skew, "terminal", "connect.attempt"),
        ev(s, 1.1, "server", "connection.opened"),
        ev(s, 1.2, "server", "connection.established", client="cli", resume=False),
        ev(s, 1.25 + skew, "terminal", "connection.established", client="cli", resume=False),
        ev(s, 1.2, "server", "session.starting"),
    ]


def _active(s: str, skew: float = 0.0) -> list[dict[str, Any]]:
    return [*_connected(s, skew), ev(s, 3, "server", "session.started", time_to_start_ms=1800)]


def _drop(s: str, at: float) -> list[dict[str, Any]]:
    return [
        ev(s, at, "server", "session.disconnected", 4029, reason="no close frame"),
        ev(s, at, "terminal", "connection.lost", 4102),
        ev(s, at + 1, "terminal", "reconnect.attempt", 4103, attempt=1),
    ]


def _resume(s: str, at: float) -> list[dict[str, Any]]:
    return [
        ev(s, at, "server", "connection.established", client="cli", resume=True),
        ev(s, at, "server", "session.resumed", replayed=0),
        ev(s, at, "terminal", "reconnect.succeeded", recovery_ms=2000),
    ]


def test_rfc3339_offsets_are_read_and_a_zoneless_time_is_a_bad_line(tmp_path: Path) -> None:
    created = dict(ev("o", 0, "server", "session.created"), ts="2026-03-02T12:00:00.000+02:00")
    zoneless = dict(ev("o", 5, "server", "receive.timeout"), ts="2026-03-02T10:00:05")
    ended = dict(ev("o", 0, "server", "session.ended", 4000), ts="2026-03-02T11:00:00Z")
    lines = [created, *_active("o")[1:], zoneless, ended]
    analysis = sessions.analyze([str(write_log(tmp_path / "log.jsonl", lines))])
    (duration,) = analysis.con.execute("SELECT duration_s FROM sessions").fetchall()[0]
    assert duration == 3600.0
    assert [(b.line, "timestamp" in b.reason) for b in analysis.bad_lines] == [(8, True)]


@pytest.mark.parametrize("code", [4001, 4022, 4027])
def test_a_start_that_fails_after_the_connection_is_a_setup_failure(
    tmp_path: Path, code: int
) -> None:
    lines = [*_connected("f"), ev("f", 4, "server", "session.ended", code)]
    s = _facts(tmp_path, lines)
    assert (s["active"], s["phase"], s["attempted"]) == (False, "setup_failure", True)


def test_an_open_session_ends_on_the_servers_clock(tmp_path: Path) -> None:
    """The terminal runs 5 s ahead; its last event must not stretch the session by 5 s."""
    lines = [*_active("k", skew=5), ev("k", 100 + 5, "terminal", "stats", fps=30)]
    s = _facts(tmp_path, lines)
    assert s["skew_ms"] == 5050
    assert (s["ended"], s["duration_s"]) == (False, pytest.approx(100.0, abs=0.1))


def test_recovered_means_the_last_loss_was_resumed(tmp_path: Path) -> None:
    lines = [
        *_active("r"),
        *_drop("r", 10),
        *_resume("r", 12),
        *_drop("r", 50),
        ev("r", 650, "server", "session.ended", 4009),
    ]
    s = _facts(tmp_path, lines)
    assert (s["disconnects"], s["incidents_recovered"], s["recovered"]) == (2, 1, False)
    assert s["category"] == "network_loss"


def test_a_takeover_and_a_users_disconnect_are_not_losses(tmp_path: Path) -> None:
    taken = "taken over by a newer connection"
    lines = [
        *_active("t"),
        ev("t", 20, "server", "connection.closed", 4006, reason=taken),
        ev("t", 20, "server", "session.disconnected", 4006, reason=taken),
        ev("t", 20, "terminal", "connection.closed", 4006),
        *_resume("t", 21)[:2],
        ev("t", 40, "server", "session.disconnected", reason="terminal disconnect"),
        *_resume("t", 90)[:2],
        ev("t", 200, "server", "session.ended", 4009),
    ]
    s = _facts(tmp_path, lines)
    assert (s["disconnects"], s["recovered"], s["incidents_recovered"]) == (0, False, 0)
    analysis_lines = [*_active("u"), *_drop("u", 10), *_resume("u", 12)]
    assert _facts(tmp_path, analysis_lines)["disconnects"] == 1


CATEGORY_CASES: dict[str, tuple[str, list[dict[str, Any]]]] = {
    "resume refused 4002": (
        "configuration",
        [
            *_active("a"),
            *_drop("a", 10),
            ev("a", 12, "server", "connection.rejected", 4002, field="config"),
            ev("a", 15, "terminal", "reconnect.gave_up", 4106),
            ev("a", 610, "server", "session.ended", 4009),
        ],
    ),
    "server peer gone 4107": (
        "server_fault",
        [
            ev("b", 0, "server", "session.created"),
            ev("b", 1, "terminal", "connect.attempt"),
            ev("b", 11, "terminal", "signaling.timeout", 4107),
            ev("b", 11, "terminal", "connection.closed", 4107),
            ev("b", 600, "server", "session.ended", 4009),
        ],
    ),
    "TURN 401": (
        "configuration",
        [
            ev("c", 0, "server", "session.created"),
            ev("c", 1, "terminal", "connect.attempt"),
            ev("c", 2, "terminal", "probe.turn", 5010, status=401, error="credentials (401)"),
            ev("c", 12, "terminal", "ice.failed", 5006),
            ev("c", 12, "terminal", "connection.closed", 5006),
        ],
    ),
    "TURN unreachable": (
        "nat_traversal",
        [
            ev("d", 1, "terminal", "connect.attempt"),
            ev("d", 2, "terminal", "probe.turn", 5010, error="no answer in 5 s"),
            ev("d", 12, "terminal", "ice.failed", 5006),
            ev("d", 12, "terminal", "connection.closed", 5006),
        ],
    ),
    "app crashed": (
        "host_display_fault",
        [
            *_active("e"),
            ev("e", 90, "server", "session.ended", 4018, reason="app exited with status -9"),
        ],
    ),
    "app exited": (
        "expected_end",
        [
            *_active("g"),
            ev("g", 90, "server", "session.ended", 4018, reason="app exited with status 0"),
        ],
    ),
    "server crash": (
        "server_crash",
        [*_active("h"), ev("h", 900, "server", "session.ended", 4004, reason=CRASH)],
    ),
    "server fault": (
        "server_fault",
        [*_active("i"), ev("i", 90, "server", "session.ended", 4004, where="control")],
    ),
}


@pytest.mark.parametrize("case", CATEGORY_CASES)
def test_categories_read_event_attributes(tmp_path: Path, case: str) -> None:
    category, lines = CATEGORY_CASES[case]
    assert _facts(tmp_path, lines)["category"] == category


def test_a_server_clock_that_stepped_back_is_flagged(tmp_path: Path) -> None:
    lines = [
        *_active("z"),
        dict(ev("z", 0, "server", "session.ended", 4000), ts="2026-03-02T09:00:00.000000Z"),
    ]
    analysis = sessions.analyze([str(write_log(tmp_path / "log.jsonl", lines))])
    row = analysis.con.execute("SELECT clock_stepped_back, duration_s FROM sessions").fetchall()
    assert row == [(True, None)]
    assert summary.build(analysis)["kpis"]["clock_stepped_back"] == 1


def test_open_sessions_have_not_ended_and_are_no_launchpads_top_failure(tmp_path: Path) -> None:
    """A session still open counts in no row of how sessions ended, and the top failure of
    a launchpad is the cause of most of its failed sessions, not the open ones' (two here)."""
    lines = [
        *_active("open1"),
        *_active("open2"),
        *_drop("open2", 20),
        *_connected("failed"),
        ev("failed", 4, "server", "session.ended", 4022),
    ]
    analysis = sessions.analyze([str(write_log(tmp_path / "log.jsonl", lines))])
    built = summary.build(analysis)
    assert built["kpis"]["open"] == 2
    ended = {
        c["category"]: (c["sessions"], c["users"]) for c in built["categories"] if c["sessions"]
    }
    (failed_category,) = analysis.con.execute(
        "SELECT category FROM sessions WHERE session_id = 'failed'"
    ).fetchone() or ("?",)
    assert ended == {failed_category: (1, 1)}
    assert sum(c["open"] for c in built["categories"]) == 2
    (pad,) = built["breakdowns"]["launchpad"]
    assert (pad["sessions"], pad["top_failure"]) == (3, failed_category)

    only_open = sessions.analyze([str(write_log(tmp_path / "open.jsonl", _active("o")))])
    (pad,) = summary.build(only_open)["breakdowns"]["launchpad"]
    assert pad["top_failure"] is None


def test_a_terminal_that_left_on_purpose_ends_its_part_not_the_session(tmp_path: Path) -> None:
    """`openfrp connect`'s disconnect (or Ctrl-C) closes with no code: the session waits to
    be resumed, open, not a mid-session failure; so with 4006, live on the user's other tab;
    a close with another code does end it."""
    left = [
        *_active("l"),
        ev("l", 20, "server", "session.disconnected", reason="terminal disconnect"),
        ev("l", 20, "terminal", "connection.closed", close_code=1000, close_reason="DISCONNECTED"),
    ]
    s = _facts(tmp_path, left)
    assert (s["ended"], s["phase"], s["final_code"]) == (False, "open", None)

    elsewhere = [*_active("e"), ev("e", 25, "terminal", "connection.closed", 4006)]
    s = _facts(tmp_path, elsewhere)  # refused: the session is live on the user's other tab
    assert (s["ended"], s["phase"]) == (False, "open")

    closed = [*_active("c"), ev("c", 30, "terminal", "connection.closed", 4000)]
    s = _facts(tmp_path, closed)
    assert (s["ended"], s["phase"], s["final_code"]) == (True, "expected_end", 4000)
