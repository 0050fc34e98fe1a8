"""A share of no sessions or a time never measured is no data, not 0: every report shows it
as '-' (null in --json), and a --fail-if on it is not checked (said, never an exit 1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from openfrp import cli
from openfrp.analysis import report_html, sessions, summary
from tests.analysis.conftest import ev, write_log


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _clean_and_unattempted(path: Path) -> str:
    """One session that ended as meant without a loss, one that ended before any connection
    was tried (on host-02)."""
    lines = [
        ev("a", 0, "server", "session.created"),
        ev("a", 1, "server", "connection.established", client="cli", resume=False),
        ev("a", 2, "server", "session.started"),
        ev("a", 60, "server", "session.ended", 4000),
        {**ev("n", 0, "server", "session.created"), "host": "host-02"},
        {**ev("n", 90, "server", "session.ended", 4009), "host": "host-02"},
    ]
    return str(write_log(path, lines))


def test_a_threshold_on_a_metric_with_no_data_is_not_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = _clean_and_unattempted(tmp_path / "log.jsonl")
    code, out, err = _run(
        capsys, "analyze", log, "--quiet", "--json", "--fail-if", "reconnect_recovered_pct<50",
        "--fail-if", "recovery_p95_ms>=0", "--fail-if", "clean_end_pct>=100",
    )  # fmt: skip
    assert code == 1, err
    assert err.splitlines() == [
        "openfrp analyze: not checked: reconnect_recovered_pct < 50: "
        "reconnect_recovered_pct has no data (no losses)",
        "openfrp analyze: not checked: recovery_p95_ms >= 0: "
        "recovery_p95_ms has no data (no loss was resumed)",
        "openfrp analyze: threshold crossed: clean_end_pct >= 100: clean_end_pct is 100",
    ]
    metrics = json.loads(out)["metrics"]
    assert metrics["reconnect_recovered_pct"] is None and metrics["recovery_p50_ms"] is None


def test_an_empty_log_crosses_no_threshold_and_shows_no_zero_percentages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    code, out, err = _run(
        capsys, "analyze", str(empty), "--quiet", "--fail-if", "recovery_p50_ms<1000",
        "--fail-if", "connection_success_pct<99", "--fail-if", "sessions<1",
    )  # fmt: skip
    assert code == 1
    assert [line for line in err.splitlines() if "threshold crossed" in line] == [
        "openfrp analyze: threshold crossed: sessions < 1: sessions is 0"
    ]
    assert "connection_success_pct has no data (no session tried to connect)" in err
    assert "recovery_p50_ms has no data" in err
    assert "0.00" not in out and "0.0 %" not in out
    assert "0 losses, - of them resumed" in out


def test_a_value_whose_sessions_never_tried_to_connect_has_no_success_rate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = _clean_and_unattempted(tmp_path / "log.jsonl")
    built = summary.build(sessions.analyze([log]))
    hosts = {row["value"]: row for row in built["breakdowns"]["host"]}
    assert hosts["host-02"]["connection_success_pct"] is None
    assert hosts["host-01"]["connection_success_pct"] == 100.0
    _, out, _ = _run(capsys, "analyze", log, "--quiet")
    row = next(line for line in out.splitlines() if "host-02" in line and "│" in line)
    assert row.split("│")[3].strip() == "-"
    html = report_html.render(built)
    reconnects = html.split('id="table-reconnects"')[1].split("</table>")[0]
    assert "0.00" not in reconnects and reconnects.count("<td>-</td>") == 3
    empty = summary.build(sessions.analyze([str(write_log(tmp_path / "e.jsonl", []))]))
    assert "Connection success<b>-</b>" in report_html.render(empty)
