"""--since/--until and the account/launchpad/user/host filters of `openfrp analyze`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from openfrp import cli
from openfrp.analysis import sessions
from openfrp.analysis.scope import Scope, ScopeError


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    code = cli.main(["analyze", *argv, "--quiet", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    data: dict[str, object] = json.loads(out)
    return data


def _count(analysis: sessions.Analysis, where: str) -> int:
    rows = analysis.con.execute(f"SELECT count(*) FROM sessions WHERE {where}").fetchall()
    return int(rows[0][0])


def test_window_and_filters_pick_the_sessions_that_started_there(
    fleet: Path, fleet_analysis: sessions.Analysis, capsys: pytest.CaptureFixture[str]
) -> None:
    lo, hi = fleet_analysis.con.execute(
        "SELECT quantile_disc(start_ts, 0.25), quantile_disc(start_ts, 0.75) FROM sessions"
    ).fetchall()[0]
    since, until = lo.isoformat(), hi.isoformat() + "Z"
    data = _json(capsys, str(fleet), "--since", since, "--until", until, "--account", "acme")
    expected = _count(
        fleet_analysis,
        f"start_ts >= '{lo}' AND start_ts < '{hi}' AND account = 'acme'",
    )
    assert 0 < expected < 2000
    assert data["kpis"]["sessions"] == expected  # type: ignore[index]
    assert data["scope"] == {"since": since + "Z", "until": until, "account": ["acme"]}
    both = _json(capsys, str(fleet), "--launchpad", "acme/office", "--launchpad", "initech/lab")
    assert both["kpis"]["sessions"] == _count(  # type: ignore[index]
        fleet_analysis, "launchpad IN ('acme/office', 'initech/lab')"
    )


def test_session_outside_the_scope_still_has_its_timeline(
    fleet: Path, fleet_analysis: sessions.Analysis, capsys: pytest.CaptureFixture[str]
) -> None:
    first = fleet_analysis.con.execute("SELECT min(session_id) FROM sessions").fetchall()[0][0]
    code = cli.main(["analyze", str(fleet), "--quiet", "--account", "nobody", "--session", first])
    out, _ = capsys.readouterr()
    assert code == 0 and first in out
    assert _json(capsys, str(fleet), "--account", "nobody")["kpis"]["sessions"] == 0  # type: ignore[index]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--since", "yesterday"], "--since 'yesterday': expected a time"),
        (["--until", "12x"], "--until '12x'"),
        (["--since", "1d", "--until", "2d"], "is not after"),
        (["--since", "1000000d"], "--since '1000000d': out of the range of dates"),
        (["--until", "99999999d"], "--until '99999999d': out of the range of dates"),
        (["--since", "0001-01-01T00:00+01:00"], "out of the range of dates"),
    ],
)
def test_bad_window_exits_2_with_one_line(
    fleet: Path, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    code = cli.main(["analyze", str(fleet), "--quiet", *argv])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and says in err


def test_spans_count_back_from_now_and_zones_become_utc() -> None:
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    scope = Scope.from_options("90m", "2026-03-02T13:00+01:00", {}, now=now)
    assert scope.since == datetime(2026, 3, 2, 10, 30)
    assert scope.until == datetime(2026, 3, 2, 12, 0)
    assert Scope.from_options("7d", None, {}, now=now).since == datetime(2026, 2, 23, 12, 0)
    with pytest.raises(ScopeError):
        Scope.from_options("2026-03-03", "90m", {}, now=now)
