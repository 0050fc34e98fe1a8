"""The native fold gives the SQL reader's answer: on a fleet cut into files, on the lines both
writers write, on lines in every other form a writer or a fault can leave, after growth with
--state; and it steps aside where it cannot read."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openfrp.analysis import ingest, native, sessions, summary
from openfrp.events import Event

pytestmark = pytest.mark.skipif(native._fold is None, reason="the native fold is not built")

SAME = "SELECT * FROM sessions ORDER BY session_id"


@pytest.fixture(autouse=True)
def _fold_small_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "FOLD_FROM", 0)


def _answer(analysis: sessions.Analysis) -> dict[str, Any]:
    built = summary.build(analysis)
    del built["seconds"]
    return {
        "sessions": analysis.con.execute(SAME).fetchall(),
        "counts": (analysis.events, analysis.bad_count, analysis.bad_by_file),
        "bad_lines": analysis.bad_lines,
        "summary": json.dumps(built, default=str, sort_keys=True),
    }


def _sql_reader_alone(monkeypatch: pytest.MonkeyPatch, paths: list[str]) -> dict[str, Any]:
    with monkeypatch.context() as patch:
        patch.setattr(native, "_fold", None)
        return _answer(sessions.analyze(paths))


def _same_answer(monkeypatch: pytest.MonkeyPatch, paths: list[str]) -> native.Folded:
    """Analyze `paths` through the fold and through the SQL reader alone, and compare every
    session and count; return what the fold made of them."""
    logs = [ingest.LogFile(path, "jsonl") for path in paths]
    assert native.usable(logs)
    folded = native.fold(logs)
    assert folded is not None
    assert _answer(sessions.analyze(paths)) == _sql_reader_alone(monkeypatch, paths)
    return folded


def _cut(fleet: Path, folder: Path, parts: int) -> list[str]:
    lines = fleet.read_text(encoding="utf-8").splitlines(keepends=True)
    size = len(lines) // parts + 1
    paths = []
    for k in range(parts):
        path = folder / f"part-{k}.jsonl"
        path.write_text("".join(lines[k * size : (k + 1) * size]), encoding="utf-8")
        paths.append(str(path))
    return paths


def test_a_fleet_cut_into_files_gives_the_sql_readers_answer(
    fleet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _cut(fleet, tmp_path, 3)  # sessions that span files, and each file's threads
    (tmp_path / "empty.jsonl").write_text("")
    folded = _same_answer(monkeypatch, [*paths, str(tmp_path / "empty.jsonl")])
    # It folded the lines itself: what it passed back is the fleet's bad lines.
    passed = sum(len(part) for part in folded.passed)
    assert 0 < passed < fleet.stat().st_size / 50
    assert len(folded.groups["session_id"]) >= 2000
    assert len(folded.rare["rare_ts"]) > 0 and len(folded.matched["match_attrs"]) > 0


def test_gzip_files_beside_go_to_the_sql_reader(
    fleet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _cut(fleet, tmp_path, 3)
    packed = f"{paths[1]}.gz"  # a rotated file: the same sessions span it and the plain ones
    with open(paths[1], "rb") as plain, gzip.open(packed, "wb") as archive:
        archive.write(plain.read())
    mixed = [paths[0], packed, paths[2]]
    assert _answer(sessions.analyze(mixed)) == _sql_reader_alone(monkeypatch, mixed)


def _writer_lines(session: str, second: int) -> list[str]:
    """A session as the server's and the terminal's own event writer write it."""
    ts = f"2026-03-02T10:00:{second:02d}.250000Z"
    person = {"user": "ana@acme.example", "account": "acme", "launchpad": "acme/office"}
    common = {"session_id": session, "host": "host-01", "frp": 8, **person}
    server = [
        Event("session.created", ts=ts, **common),
        Event("connection.opened", ts=ts, connection_id=f"{session}.1", **common),
        Event("connection.established", ts=ts, attrs={"client": "browser"}, **common),
        Event("session.started", ts=ts, **common),
        Event("session.disconnected", ts=ts, code=4029, **common),
        Event("session.resumed", ts=ts, **common),
        Event("session.ended", ts=ts, code=4018, attrs={"exit_status": "-9"}, **common),
    ]
    terminal = [
        Event("connect.attempt", source="terminal", ts=ts, **common),
        Event("connection.established", source="terminal", ts=ts, attrs={"client": "browser"}),
        Event("connection.lost", source="terminal", ts=ts, code=4102, **common),
        Event("reconnect.attempt", source="terminal", ts=ts, code=4103, **common),
        Event("reconnect.succeeded", source="terminal", ts=ts, attrs={"recovery_ms": 812.5}),
        Event("connection.closed", source="terminal", ts=ts, code=4018, **common),
    ]
    for event in terminal[1::3]:
        event.session_id = session
    return [event.to_json() for event in server + terminal]


def test_the_writers_own_lines_are_folded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "writers.jsonl"
    log.write_text("".join(f"{line}\n" for s in range(40) for line in _writer_lines(f"w{s}", s)))
    folded = _same_answer(monkeypatch, [str(log)])
    assert folded.passed == [b""]


# Each line below differs from the writer's form in one way; the fold either reads it as the SQL
# reader does or passes it back. Sessions m0, m1... keep them apart.
BASE = {
    "ts": "2026-03-02T10:00:05.250000Z",
    "source": "terminal",
    "host": "host-01",
    "session_id": "m",
    "user": "ana@acme.example",
    "account": "acme",
    "launchpad": "acme/office",
    "frp": 7,
    "event": "connection.established",
    "code": None,
    "severity": "info",
    "message": None,
    "attrs": {"client": "cli"},
}
CHANGES: list[dict[str, Any] | str] = [
    {"ts": "2026-03-02T12:00:05.25+02:00"},
    {"ts": "2026-03-02t10:00:05Z"},
    {"ts": "2026-03-02 10:00:05.1Z"},
    {"ts": "2026-03-02T10:00:05.1234567Z"},
    {"ts": "2026-02-30T10:00:05Z"},
    {"ts": "2024-02-29T23:59:59.999999Z"},
    {"ts": "2026-03-02T24:00:00Z"},
    {"ts": "0999-03-02T10:00:05Z"},
    {"ts": "2026-03-02T10:00:05"},
    {"ts": 1772445605},
    {"ts": None},
    {"user": 'ana "the admin"'},
    {"user": "anaïs"},
    {"user": "tab\there"},
    {"user": None, "account": None},
    {"host": 7},
    {"code": 4101},
    {"code": 4999},
    {"code": 0},
    {"code": -4101},
    {"code": "4101"},
    {"frp": "7"},
    {"frp": 9},
    {"frp": None},
    {"source": "Terminal"},
    {"source": "signaling"},
    {"source": None},
    {"event": None},
    {"event": "session.ended", "source": "server", "code": 4001, "attrs": {"reason": "crash"}},
    {"event": "connection.rejected", "source": "server", "code": 4006},
    {"event": "probe.turn", "code": 5010, "attrs": {"status": "401", "error": "x"}},
    {"event": "reconnect.succeeded", "attrs": {"recovery_ms": "812"}},
    {"event": "reconnect.succeeded", "attrs": {"recovery_ms": 1e300}},
    {"event": "reconnect.succeeded", "attrs": {"recovery_ms": -3}},
    {"event": "reconnect.succeeded", "attrs": {"recovery_ms": [1]}},
    {"event": "session.disconnected", "source": "server", "code": 4006},
    {"event": "session.disconnected", "source": "server"},
    {"event": "session.resumed", "source": "terminal"},
    {"attrs": {"client": 5}},
    {"attrs": {"client": None}},
    {"attrs": {"client": "a\u00e9"}},
    {"attrs": {"other": {"deep": [1, 2.5e-3, True, None, "x\\y"]}}},
    {"attrs": []},
    {"attrs": "cli"},
    {"attrs": None},
    {"session_id": None},
    {"session_id": ""},
    {"extra": 1},
    '{"ts":"2026-03-02T10:00:05Z","source":"terminal","session_id":"m","event":"connect.attempt"',
    '{"ts":"2026-03-02T10:00:05Z","ts":"2026-03-02T10:00:06Z","source":"terminal",'
    '"session_id":"m","event":"connect.attempt","attrs":{}}',
    '{"attrs":{"client":"cli"},"session_id":"m","event":"connection.established",'
    '"source":"terminal","ts":"2026-03-02T10:00:05Z","frp":8}',
    '  { "ts" : "2026-03-02T10:00:05Z" , "source":"terminal","session_id":"m",'
    '"event":"connect.attempt","attrs":{ "client" : "cli" } }  ',
    '{"ts":"2026-03-02T10:00:05Z","source":"terminal","session_id":"m","event":"connect.attempt",'
    '"attrs":{"client":"cli","client":"gui"}}',
    '{"ts":"2026-03-02T10:00:05Z","source":"terminal","session_id":"m","event":'
    '"connection.established","attrs":{"client":"cli","client":"gui"}}',
    '{"ts":"2026-03-02T10:00:05Z","source":"terminal","session_id":"m","event":"connect.attempt",'
    '"attrs":{}}\r',
    "\x00\x00 disk full: partial write",
    "not json at all",
    "",
    "   ",
]


def _changed(index: int, change: dict[str, Any] | str) -> str:
    if isinstance(change, str):
        return change.replace('"m"', f'"m{index}"')
    line = {**BASE, "session_id": f"m{index}", **change}
    return json.dumps(line, separators=(",", ":"))


def test_lines_in_every_form_give_the_sql_readers_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "forms.jsonl"
    attempt = {"event": "connect.attempt", "attrs": {}}
    lines = []
    for index, change in enumerate(CHANGES):
        lines += [_changed(index, attempt), _changed(index, change)]
    log.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    folded = _same_answer(monkeypatch, [str(log)])
    assert folded.passed[0].count(b"\n") >= 30  # the bad ones, and those it cannot tell


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.sampled_from(range(len(CHANGES))), min_size=1, max_size=12), st.booleans())
def test_any_mix_of_forms_gives_the_sql_readers_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, picked: list[int], no_newline: bool
) -> None:
    log = tmp_path / "mix.jsonl"
    lines = [_changed(i % 3, CHANGES[i]) for i in picked]
    text = "".join(f"{line}\n" for line in lines)
    log.write_text(text[:-1] if no_newline else text, encoding="utf-8")
    _same_answer(monkeypatch, [str(log)])


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.binary(max_size=120), min_size=1, max_size=8))
def test_garbage_among_events_gives_the_sql_readers_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, garbage: list[bytes]
) -> None:
    events = [_changed(k, {"event": "connect.attempt", "attrs": {}}).encode() for k in range(3)]
    lines = [line.replace(b"\n", b"") for line in garbage] + events
    (tmp_path / "garbage.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    _same_answer(monkeypatch, [str(tmp_path / "garbage.jsonl")])


def test_a_line_too_long_to_fold_leaves_the_file_to_the_sql_reader(
    fleet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "long.jsonl"
    huge = _changed(1, {"message": "x" * (9 << 20)})
    log.write_text(fleet.read_text(encoding="utf-8") + huge + "\n", encoding="utf-8")
    assert native.fold([ingest.LogFile(str(log), "jsonl")]) is None
    assert _answer(sessions.analyze([str(log)])) == _sql_reader_alone(monkeypatch, [str(log)])


def test_a_grown_folder_gives_the_full_runs_answer_through_the_fold(
    fleet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = fleet.read_text(encoding="utf-8").splitlines(keepends=True)
    log = tmp_path / "grown.jsonl"
    log.write_text("".join(lines[: len(lines) * 9 // 10]), encoding="utf-8")
    state = str(tmp_path / "state")
    sessions.analyze([str(log)], state_dir=state)
    with open(log, "a", encoding="utf-8") as handle:
        handle.write("".join(lines[len(lines) * 9 // 10 :]))
    grown = sessions.analyze([str(log)], state_dir=state)
    assert grown.added_only
    assert _answer(grown) == _sql_reader_alone(monkeypatch, [str(log)])
