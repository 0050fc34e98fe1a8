"""The analyzer against a simulated fleet whose answers are known."""

from __future__ import annotations

from collections import Counter
from typing import Any

from openfrp.analysis import rules, sessions, summary


def test_recovers_the_ground_truth_of_a_simulated_fleet(
    fleet_analysis: sessions.Analysis, truth: dict[str, Any]
) -> None:
    expected: dict[str, str] = truth["categories"]
    got = dict(fleet_analysis.con.execute("SELECT session_id, category FROM sessions").fetchall())
    assert len(got) == len(expected)
    misses = Counter((cat, got.get(sid)) for sid, cat in expected.items() if got.get(sid) != cat)
    accuracy = 1 - sum(misses.values()) / len(expected)
    assert accuracy >= 0.99, misses.most_common(5)
    assert set(expected.values()) == {rule.category for rule in rules.load_rules()}


def test_every_bad_line_of_the_fleet_is_found(
    fleet_analysis: sessions.Analysis, truth: dict[str, Any]
) -> None:
    assert fleet_analysis.bad_count == len(truth["bad_lines"])
    assert [b.line for b in fleet_analysis.bad_lines] == sorted(truth["bad_lines"])
    assert fleet_analysis.events == truth["events"]


def test_sessions_carry_both_sides_facts(fleet_analysis: sessions.Analysis) -> None:
    row = fleet_analysis.con.execute(
        """SELECT count(*) FILTER (client IS NULL AND active),
                  count(*) FILTER (abs(skew_ms) > 2100),
                  count(*) FILTER (recovered AND recovery_ms IS NULL),
                  count(DISTINCT frp), count(DISTINCT client), count(DISTINCT host)
           FROM sessions"""
    ).fetchall()[0]
    assert row[:3] == (0, 0, 0)
    assert row[3:] == (2, 2, 16)


def test_summary_kpis_are_consistent(fleet_analysis: sessions.Analysis) -> None:
    data = summary.build(fleet_analysis)
    kpis = data["kpis"]
    assert kpis["sessions"] == 2000
    parts = kpis["setup_failures"] + kpis["mid_session_failures"] + kpis["expected_ends"]
    assert parts == kpis["ended"]
    assert 50 < kpis["clean_end_pct"] < 95
    codes_seen = {row["code"] for row in data["top_codes"]}
    assert {4106, 4029, 4102, 5019} <= codes_seen
    top = data["top_codes"][0]
    assert top["message"] and top["action"] and top["users"] <= top["sessions"]
    assert data["reconnects"]["recovered"] > 0 and data["reconnects"]["gave_up"] > 0
    assert set(data["breakdowns"]) == {"launchpad", "account", "frp", "host", "client"}
    assert set(data["metrics"]) == summary.metric_names()
