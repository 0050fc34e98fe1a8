"""`openfrp analyze` and `openfrp simulate` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from openfrp import cli
from openfrp.analysis import sessions


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_fail_if_exit_codes(fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = str(fleet)
    code, _, err = _run(capsys, "analyze", log, "--quiet", "--fail-if", "mid_session_drop_pct>5")
    assert code == 1
    assert "mid_session_drop_pct > 5" in err and "is " in err
    code, _, err = _run(
        capsys, "analyze", log, "--quiet", "--json", "--fail-if", "sessions<=2000",
        "--fail-if", "clean_end_pct >= 99.5",
    )  # fmt: skip
    assert code == 1 and "sessions <= 2000" in err and "clean_end_pct" not in err
    code, _, err = _run(capsys, "analyze", log, "--quiet", "--json", "--fail-if", "bad_lines==0")
    assert code == 0 and err == ""


@pytest.mark.parametrize("expr", ["nonsense_metric>1", "mid_session_drop_pct=>5", "clean_end_pct"])
def test_bad_fail_if_exits_2_with_one_line(
    fleet: Path, capsys: pytest.CaptureFixture[str], expr: str
) -> None:
    code, out, err = _run(capsys, "analyze", str(fleet), "--fail-if", expr)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "--fail-if" in err


def test_missing_file_exits_2_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "analyze", str(tmp_path / "nope.jsonl"))
    assert code == 2 and out == ""
    assert err.strip() == f"openfrp analyze: {tmp_path / 'nope.jsonl'}: no such file"


def test_json_summary(fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "analyze", str(fleet), "--json", "--quiet")
    assert code == 0
    data = json.loads(out)
    assert data["kpis"]["sessions"] == 2000
    assert {c["category"] for c in data["categories"]} >= {"expected_end", "nat_traversal"}
    assert data["bad_lines"]["count"] > 0 and data["bad_lines"]["lines"][0]["line"] > 0
    assert "mid_session_drop_pct" in data["metrics"]


def test_text_summary(fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "analyze", str(fleet), "--quiet")
    assert code == 0
    for text in ("Key figures", "Reconnect exhausted", "RECONNECT_FAILED", "By launchpad",
                 "By client", "bad line"):  # fmt: skip
        assert text in out


def test_text_summary_prints_codes_as_identifiers(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A code is a name that is a number: 4009, never 4,009."""
    code, out, _ = _run(capsys, "analyze", str(fleet), "--quiet")
    assert code == 0
    failed = out.split("Latest failed sessions")[1].split("\n\n")[0]
    finals = {line.split("│")[-2].strip() for line in failed.splitlines() if "│ s7-" in line}
    assert "4009" in finals and all(final.isdigit() or final == "-" for final in finals)


def test_export_writes_csv_and_parquet(
    fleet: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "analyze", str(fleet), "--quiet", "--json", "--export",
                        str(tmp_path / "out"))  # fmt: skip
    assert code == 0 and "sessions.parquet" in err
    csv_rows = duckdb.sql(f"SELECT count(*) FROM read_csv('{tmp_path}/out/sessions.csv')")
    parquet = duckdb.sql(
        f"SELECT count(*), count(DISTINCT category), max(len(evidence)) "
        f"FROM read_parquet('{tmp_path}/out/sessions.parquet')"
    ).fetchall()[0]
    assert csv_rows.fetchall()[0][0] == 2000
    assert parquet[0] == 2000 and parquet[1] == 9 and parquet[2] >= 1


def test_session_timeline(
    fleet: Path, fleet_analysis: sessions.Analysis, capsys: pytest.CaptureFixture[str]
) -> None:
    session = fleet_analysis.con.execute(
        "SELECT min(session_id) FROM sessions "
        "WHERE category = 'reconnect_exhausted' AND final_code = 4009 AND skew_ms <> 0"
    ).fetchall()[0][0]
    code, out, _ = _run(capsys, "analyze", str(fleet), "--quiet", "--session", session, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["diagnosis"]["category"] == "reconnect_exhausted"
    assert any(e["code"] == 4106 for e in data["diagnosis"]["evidence"])
    sources = {e["source"] for e in data["events"]}
    assert sources == {"server", "terminal"}
    stamps = [e["ts"] for e in data["events"]]
    assert stamps == sorted(stamps)
    code, out, _ = _run(capsys, "analyze", str(fleet), "--quiet", "--session", session)
    assert code == 0 and "Diagnosis: Reconnect exhausted" in out and "reconnect.gave_up" in out
    code, _, err = _run(capsys, "analyze", str(fleet), "--quiet", "--session", "no-such")
    assert code == 2 and "no-such" in err


def test_an_open_sessions_timeline_says_where_it_was_left_not_a_diagnosis(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.analysis.conftest import ev, write_log

    log = write_log(
        tmp_path / "open.jsonl",
        [
            ev("o", 0, "server", "session.created"),
            ev("o", 1, "server", "connection.established", client="cli", resume=False),
            ev("o", 2, "server", "session.started"),
            ev("o", 9, "server", "session.disconnected", reason="terminal disconnect"),
            ev("o", 9, "server", "stats", fps=0.0, final=True),
        ],
    )
    code, out, _ = _run(capsys, "analyze", str(log), "--quiet", "--session", "o")
    assert code == 0 and "phase: open" in out and "last seen " in out
    assert "Still open at the end of these logs" in out and "Diagnosis" not in out
    assert "Last seen: session.disconnected (server) at 2026-03-02T10:00:09" in out


def test_simulate_writes_gzip_log_and_truth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "f.jsonl.gz"
    code, text, _ = _run(capsys, "simulate", "--sessions", "300", "--out", str(out), "--seed", "3")
    assert code == 0 and "300 sessions" in text
    truth = json.loads(Path(f"{out}.truth.json").read_text())
    assert len(truth["categories"]) == 300
    code, text, _ = _run(capsys, "analyze", str(out), "--quiet", "--json")
    assert code == 0 and json.loads(text)["kpis"]["sessions"] == 300
