"""Diagnosis rules: every code is covered, and precedence follows the event sequence."""

from __future__ import annotations

from pathlib import Path

import pytest

from openfrp import codes
from openfrp.analysis import rules, sessions
from tests.analysis.conftest import ev, write_log


def test_every_code_of_the_table_is_covered_by_a_rule() -> None:
    loaded = rules.load_rules()
    assert rules.uncovered_codes(loaded) == []
    named = {code for rule in loaded for code in rule.codes}
    assert {c.number for c in codes.TABLE} <= named


def test_one_rule_per_category_with_explanation_action_and_owner() -> None:
    loaded = rules.load_rules()
    categories = [r.category for r in loaded]
    assert len(categories) == len(set(categories))
    assert {
        "expected_end",
        "network_loss",
        "nat_traversal",
        "reconnect_exhausted",
        "server_fault",
        "host_display_fault",
        "configuration",
        "server_crash",
        "unknown",
    } == set(categories)
    for rule in loaded:
        assert rule.explanation and rule.action and rule.owner
    owners = {rule.category: rule.owner for rule in loaded}
    # Owners come from the code table's fault of the codes each rule names.
    assert owners["server_fault"] == owners["server_crash"] == "server"
    assert owners["configuration"] == "config / policy"
    assert owners["unknown"] == "unknown"


def test_a_rule_naming_a_code_outside_the_table_is_refused() -> None:
    text = """
[[rule]]
category = "x"
title = "x"
owner = "x"
explanation = "x"
action = "x"
[[rule.when]]
any = [4007]
"""
    with pytest.raises(rules.RuleError, match="4007"):
        rules.parse_rules(text)


def _category(tmp_path: Path, lines: list[dict[str, object]]) -> str:
    analysis = sessions.analyze([str(write_log(tmp_path / "log.jsonl", lines))])
    found = analysis.con.execute("SELECT category FROM sessions").fetchall()
    assert len(found) == 1
    return str(found[0][0])


def _active(s: str) -> list[dict[str, object]]:
    return [
        ev(s, 0, "server", "session.created"),
        ev(s, 1, "terminal", "connect.attempt"),
        ev(s, 1.2, "server", "connection.opened"),
        ev(s, 2, "server", "session.started"),
        ev(s, 2, "server", "connection.established", client="cli"),
        ev(s, 2.1, "terminal", "connection.established", client="cli"),
    ]


def test_reconnect_exhausted_wins_over_the_idle_timeout_that_follows(tmp_path: Path) -> None:
    lines = [
        *_active("a"),
        ev("a", 10, "server", "session.disconnected", 4029),
        ev("a", 10, "terminal", "connection.lost", 4102),
        ev("a", 11, "terminal", "reconnect.attempt", 4103, attempt=1),
        ev("a", 13, "terminal", "reconnect.attempt", 4103, attempt=2),
        ev("a", 17, "terminal", "reconnect.gave_up", 4106),
        ev("a", 600, "server", "session.ended", 4009),
    ]
    assert _category(tmp_path, lines) == "reconnect_exhausted"


def test_connection_lost_then_idle_timeout_without_retry_is_network_loss(tmp_path: Path) -> None:
    lines = [
        *_active("b"),
        ev("b", 10, "server", "session.disconnected", 4029),
        ev("b", 610, "server", "session.ended", 4009),
    ]
    assert _category(tmp_path, lines) == "network_loss"


def test_launched_and_never_connected_is_an_expected_idle_end(tmp_path: Path) -> None:
    lines = [ev("c", 0, "server", "session.created"), ev("c", 600, "server", "session.ended", 4009)]
    assert _category(tmp_path, lines) == "expected_end"


UNOPENED = (
    "the session's link was never opened: no terminal joined within 3600 s of its link's issue"
)


def test_a_link_nobody_opened_is_an_expected_end(tmp_path: Path) -> None:
    ended = ev("n", 3000, "server", "session.ended", 4019, reason=UNOPENED)
    assert _category(tmp_path, [ev("n", 0, "server", "session.created"), ended]) == "expected_end"


def test_a_session_nobody_got_into_is_named_by_what_kept_them_out(tmp_path: Path) -> None:
    """Its end says the link was never opened, but a refused hello is why (4002): not an
    expected end, as an administrator's 4019 would be."""
    lines = [
        ev("r", 0, "server", "session.created"),
        ev("r", 5, "server", "connection.rejected", 4002, field="config"),
        ev("r", 5, "terminal", "connection.closed", 4002),
        ev("r", 3000, "server", "session.ended", 4019, reason=UNOPENED),
    ]
    assert _category(tmp_path, lines) == "configuration"
    admin = [*lines[:3], ev("r", 60, "server", "session.ended", 4019, reason="closed from outside")]
    assert _category(tmp_path, admin) == "expected_end"


def test_revoked_tokens_nobody_came_back_with_a_new_link_is_an_expected_end(
    tmp_path: Path,
) -> None:
    revoked = "tokens revoked by the admin API"
    lines = [
        *_active("v"),
        ev("v", 30, "server", "tokens.revoked", reason=revoked, generation=1),
        ev("v", 30, "server", "connection.closed", 4002, reason=revoked),
        ev("v", 30, "server", "session.disconnected", reason=revoked),
        ev("v", 30.1, "terminal", "connection.closed", 4002),
        ev("v", 31, "server", "connection.rejected", 4002, problem="token has been revoked"),
        ev("v", 630, "server", "session.ended", 4009),
    ]
    assert _category(tmp_path, lines) == "expected_end"


def test_recovered_drop_then_user_close_is_an_expected_end(tmp_path: Path) -> None:
    lines = [
        *_active("d"),
        ev("d", 10, "server", "session.disconnected", 4029),
        ev("d", 10, "terminal", "connection.lost", 4102),
        ev("d", 11, "terminal", "reconnect.attempt", 4103, attempt=1),
        ev("d", 12, "server", "session.resumed"),
        ev("d", 12, "terminal", "reconnect.succeeded", recovery_ms=2000),
        ev("d", 50, "server", "session.ended", 4000),
    ]
    assert _category(tmp_path, lines) == "expected_end"


def test_terminal_only_session_uses_the_terminal_end(tmp_path: Path) -> None:
    lines = [
        ev("e", 0, "terminal", "connect.attempt"),
        ev("e", 15, "terminal", "connect.failed", 4101),
        ev("e", 15, "terminal", "message.shown", 4101),
    ]
    assert _category(tmp_path, lines) == "network_loss"


def test_terminal_clock_skew_does_not_change_the_diagnosis(tmp_path: Path) -> None:
    """The terminal runs 2 s behind: its gave_up is logged before the server's drop."""
    lines = [
        *_active("f"),
        ev("f", 10, "server", "session.disconnected", 4029),
        ev("f", 8.1, "terminal", "connection.lost", 4102),
        ev("f", 8.5, "terminal", "reconnect.attempt", 4103, attempt=1),
        ev("f", 9.5, "terminal", "reconnect.gave_up", 4106),
        ev("f", 610, "server", "session.ended", 4009),
    ]
    assert _category(tmp_path, lines) == "reconnect_exhausted"


def test_event_conditions_past_one_mask_of_bits_each_keep_their_own_answer() -> None:
    """The rules' event conditions are gathered as bits of BIGINT masks: past one mask's bits a
    second mask is used, and each condition's column is still true exactly for the sessions
    that logged such an event (NULL for the others)."""
    import duckdb

    wanted = tuple(rules.Matcher(event=f"e{i}") for i in range(rules.BITS_PER_MASK + 7))
    rule = rules.Rule("c", "title", "owner", "why", "action", (rules.Clause(seen=wanted),))
    masks, columns = rules.matcher_aggregates((rule,))
    assert len(masks) == 2
    aggregates = ", ".join(f"{expr} AS {name}" for name, expr in masks.items())
    events = (
        f"SELECT i AS s, CASE WHEN i < {len(wanted)} THEN 'e' || i ELSE 'other' END AS event "
        f"FROM range({len(wanted) + 1}) r(i)"
    )
    rows = (
        duckdb.connect()
        .sql(
            f"SELECT s, {', '.join(columns)} FROM "
            f"(SELECT s, {aggregates} FROM ({events}) GROUP BY s) ORDER BY s"
        )
        .fetchall()
    )
    assert len(rows) == len(wanted) + 1
    for s, *flags in rows:
        assert flags == [True if i == s else None for i in range(len(wanted))]


def _refused_by_a_restart(s: str, code: int = 4004) -> list[dict[str, object]]:
    """A terminal's log alone: lost, one attempt, the resume refused because the session had
    ended with `code` (4004: what a server started again after a crash answers), then 4106."""
    reason = codes.ended_reason(code)
    return [
        ev(s, 1, "terminal", "connect.attempt"),
        ev(s, 1.1, "terminal", "connection.established", client="cli", resume=False),
        ev(s, 10, "terminal", "connection.lost", 4102),
        ev(s, 10.5, "terminal", "reconnect.attempt", 4103, attempt=1),
        ev(s, 12, "terminal", "connection.closed", code, close_code=code, close_reason=reason),
        ev(s, 12.001, "terminal", "message.shown", code),
        ev(
            s,
            12.002,
            "terminal",
            "reconnect.gave_up",
            4106,
            refused_code=code,
            refused_reason=reason,
        ),
        ev(s, 12.003, "terminal", "message.shown", 4106),
    ]


def test_a_resume_refused_by_a_restarted_server_is_its_crash_not_the_network(
    tmp_path: Path,
) -> None:
    """From the terminal's log alone the 4106 names the refusal: the server that came back
    no longer had the session. The loss still counts once, not recovered."""
    analysis = sessions.analyze([str(write_log(tmp_path / "t.jsonl", _refused_by_a_restart("k")))])
    row = analysis.con.execute(
        "SELECT category, final_code, disconnects, incidents_recovered, recovered, gave_up "
        "FROM sessions"
    ).fetchall()
    assert row == [("server_crash", 4106, 1, 0, False, True)]
    # The server's own log says the session ended by an error, not by a crash: that wins.
    ended = ev("k", 11, "server", "session.ended", 4004, reason="control loop failed")
    assert _category(tmp_path, [*_refused_by_a_restart("k"), ended]) == "server_fault"


@pytest.mark.parametrize(
    ("code", "category"),
    [
        (4000, "expected_end"),
        (4008, "expected_end"),
        (4015, "expected_end"),
        (4018, "expected_end"),
        (4019, "expected_end"),
        (4006, "configuration"),
        (4009, "reconnect_exhausted"),
    ],
)
def test_an_end_the_terminal_learns_from_a_refused_resume_names_the_category(
    tmp_path: Path, code: int, category: str
) -> None:
    """The terminal's log alone: what ended the session while it was away is what the refusal
    names (a user's close elsewhere is no exhausted reconnect); an idle timeout reached before
    the resume is. The server's own log, where there is one, decides."""
    assert _category(tmp_path, _refused_by_a_restart("k", code)) == category
    ended = ev("k", 11, "server", "session.ended", 4009, reason="idle timeout")
    assert _category(tmp_path, [*_refused_by_a_restart("k", code), ended]) == "reconnect_exhausted"


def test_a_server_that_never_came_back_is_its_crash_not_the_network(tmp_path: Path) -> None:
    """Every attempt of the terminal found nothing listening and the server's log just stops:
    the server went away. One attempt that reached something is still the network's."""

    def gave_up(all_refused: bool) -> list[dict[str, object]]:
        return [
            ev("d", 1, "terminal", "connect.attempt"),
            ev("d", 1.1, "terminal", "connection.established", client="cli", resume=False),
            ev("d", 1.2, "server", "session.started"),
            ev("d", 10, "terminal", "connection.lost", 4102),
            ev("d", 10.5, "terminal", "reconnect.attempt", 4103, attempt=1),
            ev(
                "d",
                12,
                "terminal",
                "reconnect.gave_up",
                4106,
                all_refused=all_refused,
                last_error="ConnectionRefusedError: [Errno 111] Connect call failed",
            ),
        ]

    assert _category(tmp_path, gave_up(True)) == "server_crash"
    assert _category(tmp_path, gave_up(False)) == "reconnect_exhausted"
    ended = ev("d", 11, "server", "session.ended", 4009, reason="idle timeout")
    assert _category(tmp_path, [*gave_up(True), ended]) == "reconnect_exhausted"


def test_no_condition_keeps_an_event_every_session_logs_for_sql() -> None:
    """A condition that names no code keeps every event of its name for SQL to finish (the
    fold cannot tell): on an event each session logs, 0.1-0.2 GiB more at 10 M events each
    (runs 51 and 52). Name its codes, or read a fact of the session (server_ended)."""
    common = {
        "session.created",
        "session.started",
        "session.ended",
        "connection.established",
        "connection.closed",
        "connect.attempt",
        "stats",
    }
    loose = {m.event for m in rules.matchers(rules.load_rules()).values() if not m.code and m.event}
    assert not loose & common, loose & common
