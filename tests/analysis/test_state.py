"""--state DIR: a second run over grown logs reads only what was added, and agrees with a full
run on every session, count and listed bad line."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from openfrp import cli
from openfrp.analysis import aggregates, ingest, native, quantiles, rollups, sessions, summary
from openfrp.analysis import state as state_mod

from .conftest import ev

SAME = "SELECT * FROM sessions ORDER BY session_id"


def _split(fleet: Path, folder: Path, keep: float) -> tuple[list[str], list[str]]:
    """The fleet log as three files (one gzipped), each cut at `keep` of its lines; returns
    their paths and the lines held back for each."""
    lines = fleet.read_text(encoding="utf-8").splitlines(keepends=True)
    third = len(lines) // 3 + 1
    paths, rest = [], []
    for k in range(3):
        chunk = lines[k * third : (k + 1) * third]
        cut = int(len(chunk) * keep)
        path = folder / f"part-{k}.jsonl"
        path.write_text("".join(chunk[:cut]), encoding="utf-8")
        paths.append(str(path))
        rest.append("".join(chunk[cut:]))
    return paths, rest


def _same(a: sessions.Analysis, b: sessions.Analysis) -> None:
    assert a.con.execute(SAME).fetchall() == b.con.execute(SAME).fetchall()
    assert (a.events, a.bad_count, a.bad_by_file) == (b.events, b.bad_count, b.bad_by_file)
    assert a.bad_lines == b.bad_lines
    one, two = summary.build(a), summary.build(b)
    del one["seconds"], two["seconds"]  # the whole summary, every key but the run's own time
    for key in one:
        assert json.dumps(one[key], default=str) == json.dumps(two[key], default=str), key
    assert one.keys() == two.keys()
    assert a.rollups is not None and b.rollups is not None
    for rollup in rollups.ROLLUPS:  # kept and updated, or made from all sessions: the same
        rows = "SELECT * FROM {} ORDER BY ALL"
        kept = a.con.execute(rows.format(a.rollups.table(rollup.name))).fetchall()
        assert kept == b.con.execute(rows.format(b.rollups.table(rollup.name))).fetchall(), rollup


@pytest.mark.parametrize("in_memory", [True, False], ids=["tails-in-memory", "tails-on-disk"])
def test_a_grown_log_folder_gives_the_full_runs_answer(
    fleet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_memory: bool
) -> None:
    if not in_memory:
        monkeypatch.setattr(state_mod, "TAIL_IN_MEMORY", -1)
    logs = tmp_path / "logs"
    logs.mkdir()
    paths, rest = _split(fleet, logs, 0.8)
    state = str(tmp_path / "state")
    first = sessions.analyze(paths, state_dir=state)
    _same(first, sessions.analyze(paths))
    for path, more in zip(paths, rest, strict=True):
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(more)
    packed = logs / "late.jsonl.gz"  # a file that arrives between the runs
    with gzip.open(packed, "wt", encoding="utf-8") as handle:
        handle.write(Path(paths[0]).read_text(encoding="utf-8").replace('"s7-', '"late-'))
    grown = [*paths, str(packed)]
    second = sessions.analyze(grown, state_dir=state)
    full = sessions.analyze(grown)
    assert second.added_only and not first.added_only and not full.added_only
    _same(second, full)
    # Nothing added: the kept aggregates alone give the same answer again.
    third = sessions.analyze(grown, state_dir=state)
    assert third.added_only
    _same(third, full)


@pytest.mark.parametrize("fold", [True, False], ids=["native-fold", "sql-reader"])
def test_lines_written_while_a_log_is_read_are_read_by_the_next_run(
    fleet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fold: bool
) -> None:
    """A live server's log grows while --state reads it: the lines written during the read
    are read by the next run (recording the size after the read lost them), in a first run
    whether the fold or DuckDB's reader (an install without the fold) read it, and for a file
    new in an added run, which is read through a copy."""
    if not fold:
        monkeypatch.setattr(native, "_fold", None)
    lines = fleet.read_text(encoding="utf-8").splitlines(keepends=True)
    logs = tmp_path / "logs"
    logs.mkdir()
    log, late = logs / "server.jsonl", logs / "late.jsonl"
    cut = len(lines) * 6 // 10
    log.write_text("".join(lines[:cut]), encoding="utf-8")
    pending: list[tuple[Path, str]] = [(log, "".join(lines[cut : cut + 300]))]
    read = sessions.merge_split  # runs once the reader has read the files

    def written_meanwhile(con: duckdb.DuckDBPyConnection) -> None:
        read(con)
        while pending:
            path, more = pending.pop()
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(more)

    monkeypatch.setattr(sessions, "merge_split", written_meanwhile)
    state = str(tmp_path / "state")
    sessions.analyze([str(log)], state_dir=state)
    grown = sessions.analyze([str(log)], state_dir=state)
    assert grown.added_only == fold  # what DuckDB's reader took is not known: read anew
    _same(grown, sessions.analyze([str(log)]))
    # A file that is new to the state is read whole in an added run, and grows meanwhile.
    late.write_text("".join(lines[cut + 300 : cut + 600]), encoding="utf-8")
    pending.append((late, "".join(lines[cut + 600 :])))
    both = [str(log), str(late)]
    added = sessions.analyze(both, state_dir=state)
    assert added.added_only and not pending
    again = sessions.analyze(both, state_dir=state)
    assert again.added_only
    _same(again, sessions.analyze(both))


def test_a_rewritten_file_starts_over(tmp_path: Path, fleet: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    paths, _ = _split(fleet, logs, 1.0)
    state = str(tmp_path / "state")
    sessions.analyze(paths, state_dir=state)
    Path(paths[1]).write_text(Path(paths[2]).read_text(encoding="utf-8"), encoding="utf-8")
    again = sessions.analyze(paths, state_dir=state)
    assert not again.added_only
    _same(again, sessions.analyze(paths))
    # State kept by another version of the analyzer (other rules, say) is rebuilt too.
    with duckdb.connect(str(Path(state) / "state.duckdb")) as con:
        con.execute("UPDATE meta SET value = 'older rules'")
    assert not sessions.analyze(paths, state_dir=state).added_only
    assert sessions.analyze(paths, state_dir=state).added_only


def test_a_state_folder_that_cannot_be_used_is_one_line(tmp_path: Path) -> None:
    log = tmp_path / "a.jsonl"
    log.write_text("", encoding="utf-8")
    in_the_way = tmp_path / "state"
    in_the_way.write_text("not a folder", encoding="utf-8")
    code = cli.main(["analyze", str(log), "--quiet", "--state", str(in_the_way)])
    assert code == 2
    held = tmp_path / "held"
    sessions.analyze([str(log)], state_dir=str(held))
    with (
        duckdb.connect(str(held / "state.duckdb")),  # held elsewhere, as another run would
        pytest.raises(ingest.InputError, match="cannot be used"),
    ):
        sessions.analyze([str(log)], state_dir=str(held))


def test_the_command_prints_the_full_runs_summary_after_growth(
    fleet: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command holds the state file while it reports from the kept sessions (and copies
    them out before a scope narrows them): its output is still the full run's."""
    logs = tmp_path / "logs"
    logs.mkdir()
    paths, rest = _split(fleet, logs, 0.9)
    state = str(tmp_path / "state")
    runs: list[sessions.Analysis] = []
    analyze = sessions.analyze

    def spied(*args: Any, **kwargs: Any) -> sessions.Analysis:
        runs.append(analyze(*args, **kwargs))
        return runs[-1]

    monkeypatch.setattr(sessions, "analyze", spied)

    def run(*extra: str) -> Any:
        assert cli.main(["analyze", *paths, "--json", "--quiet", *extra]) == 0
        printed = json.loads(capsys.readouterr().out)
        del printed["seconds"]
        return printed

    run("--state", state)
    for path, more in zip(paths, rest, strict=True):
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(more)
    assert run("--state", state) == run()
    assert run("--state", state, "--account", "globex") == run("--account", "globex")
    assert [r.added_only for r in runs] == [False, True, False, True, False]


def test_the_servers_identity_wins_when_the_terminal_was_kept_first(tmp_path: Path) -> None:
    """A kept part with only the terminal's rows and an added part with the server's merge as
    a full run reads them: the user and host the server logged."""
    server = {"source": "server", "host": "h1", "session_id": "s-1", "user": "alice", "frp": 7}
    terminal = {**server, "source": "terminal", "user": "mallory", "host": "elsewhere"}
    log = tmp_path / "logs" / "fleet.jsonl"
    log.parent.mkdir()
    first = {**terminal, "event": "connect.attempt", "ts": "2026-12-02T10:00:00.5Z"}
    log.write_text(json.dumps(first) + "\n", encoding="utf-8")
    state = str(tmp_path / "state")
    sessions.analyze([str(log)], state_dir=state)
    with open(log, "a", encoding="utf-8") as handle:
        for event, ts in (("session.created", "10:00:00Z"), ("session.started", "10:00:01Z")):
            handle.write(json.dumps({**server, "event": event, "ts": f"2026-12-02T{ts}"}) + "\n")
    grown = sessions.analyze([str(log)], state_dir=state)
    assert grown.added_only
    full = sessions.analyze([str(log)])
    _same(grown, full)
    who = grown.con.execute('SELECT "user", host FROM sessions').fetchall()
    assert who == [("alice", "h1")]


@pytest.mark.parametrize("terminal_first", [True, False])
def test_merged_parts_take_the_servers_identity_in_either_order(terminal_first: bool) -> None:
    columns = ["session_id", "user", "host", "s_first_ts", "t_first_ts"]
    rows = [
        ("s-1", "mallory", "elsewhere", None, "2026-12-02 09:59:00"),
        ("s-1", "alice", "h1", "2026-12-02 10:00:00", None),
    ]
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE parts (session_id TEXT, user TEXT, host TEXT, s_first_ts TIMESTAMP, "
        "t_first_ts TIMESTAMP)"
    )
    con.executemany(
        "INSERT INTO parts VALUES (?, ?, ?, ?, ?)", rows if terminal_first else rows[::-1]
    )
    merged = con.sql(aggregates.merge_sql("parts", columns)).fetchall()
    assert [(r[1], r[2]) for r in merged] == [("alice", "h1")]


def _user(event: dict[str, Any], user: str) -> dict[str, Any]:
    return {**event, "user": user}


def test_touched_sessions_move_in_the_rollups(tmp_path: Path) -> None:
    """Sessions the added lines change: one fails then (bob's), one that had failed ends
    cleanly after all (alice's latest failure, so her latest is an older one again), and a new
    one two hours on widens the time buckets. The summary is the full run's."""
    log = tmp_path / "logs" / "fleet.jsonl"
    log.parent.mkdir()
    before = [
        _user(ev("s-old", 0, "server", "session.created"), "alice"),
        _user(ev("s-old", 1, "server", "session.started"), "alice"),
        _user(ev("s-old", 5, "server", "session.disconnected", 4029), "alice"),
        _user(ev("s-old", 6, "server", "session.ended", 4029), "alice"),
        _user(ev("s-flip", 100, "terminal", "connect.attempt"), "alice"),
        _user(ev("s-flip", 101, "terminal", "connect.failed", 4101), "alice"),
        _user(ev("s-open", 50, "server", "session.created"), "bob"),
        _user(ev("s-open", 51, "server", "session.started"), "bob"),
    ]
    later = {**ev("s-new", 0, "server", "session.created"), "ts": "2026-03-02T12:00:00Z"}
    added = [
        _user(ev("s-flip", 99, "server", "session.created"), "alice"),
        _user(ev("s-flip", 100.5, "server", "session.started"), "alice"),
        _user(ev("s-flip", 200, "server", "session.ended", 4000), "alice"),
        _user(ev("s-open", 300, "server", "session.disconnected", 4029), "bob"),
        _user(ev("s-open", 301, "server", "session.ended", 4029), "bob"),
        _user(later, "carol"),
    ]
    log.write_text("".join(json.dumps(e) + "\n" for e in before), encoding="utf-8")
    state = str(tmp_path / "state")
    first = sessions.analyze([str(log)], state_dir=state)
    who = {row["value"]: row for row in summary.build(first)["who"]["user"]}
    assert who["alice"]["failed"] == 2 and "bob" not in who
    with open(log, "a", encoding="utf-8") as handle:
        handle.write("".join(json.dumps(e) + "\n" for e in added))
    grown = sessions.analyze([str(log)], state_dir=state)
    assert grown.added_only
    full = sessions.analyze([str(log)])
    _same(grown, full)
    found = summary.build(grown)
    who = {row["value"]: row for row in found["who"]["user"]}
    assert (who["alice"]["failed"], who["bob"]["failed"]) == (1, 1)
    assert who["alice"]["last_failed"].isoformat() == "2026-03-02T10:00:00"
    assert found["series"]["bucket_seconds"] == 300


def test_quantiles_from_counted_values_are_duckdbs() -> None:
    """The rollups keep recovery and connect times as (value, count): their quantiles must be
    DuckDB's own to the last bit, for doubles (recovery) and integers (connect)."""
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE v AS SELECT random() * 1e4 / 7 AS x, (random() * 500)::BIGINT AS i "
        "FROM range(5000) UNION ALL SELECT 3.5, 40 FROM range(40)"
    )
    for column in ("x", "i"):
        counted = con.sql(f"SELECT {column}, count(*) FROM v GROUP BY 1 ORDER BY 1").fetchall()
        for q in (0.0, 0.1, 0.25, 0.5, 0.95, 0.99, 1.0):
            want = con.sql(f"SELECT quantile_cont({column}, {q}) FROM v").fetchall()[0][0]
            assert quantiles.from_counts(counted, q) == want, (column, q)
    assert quantiles.from_counts([], 0.5) is None


def test_duration_quantiles_are_duckdbs(fleet_analysis: sessions.Analysis) -> None:
    """Read from a few minutes' durations, the quantiles are those of all durations."""
    found = summary.build(fleet_analysis)["series"]["durations"]
    whole = fleet_analysis.con.execute(
        "SELECT category, count(*) AS sessions, "
        "quantile_cont(duration_s, [0.1, 0.25, 0.5, 0.75, 0.9]) AS q "
        "FROM sessions WHERE ended AND duration_s IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1"
    ).fetchall()
    assert [(d["category"], d["sessions"], d["q"]) for d in found] == whole
    assert len(whole) > 3
