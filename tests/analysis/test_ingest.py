"""Reading logs: bad lines by file and line, gzip, Parquet, globs, missing files."""

from __future__ import annotations

import gzip
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from openfrp import codes
from openfrp.analysis import ingest, sessions
from tests.analysis.conftest import ev, write_log


def _session(s: str) -> list[dict[str, object]]:
    return [
        ev(s, 0, "server", "session.created"),
        ev(s, 1, "server", "session.started"),
        ev(s, 1, "server", "connection.established", client="browser"),
        ev(s, 30, "server", "session.ended", 4000),
    ]


def test_bad_lines_are_reported_by_file_and_line_and_never_fatal(tmp_path: Path) -> None:
    good = _session("g")
    wrong_code = dict(ev("g", 5, "server", "receive.timeout"), code="abc")
    wrong_attrs = dict(ev("g", 5, "server", "receive.timeout"), attrs="text")
    lines: list[dict[str, object] | str] = [
        good[0],
        '{"ts":"2026-03-02T10:00:00.5Z","source":"server","event":"sess',  # 2: truncated
        "this is not json",  # 3
        good[1],
        wrong_code,  # 5
        dict(ev("g", 6, "server", "message.shown"), code=4007),  # 6: unknown code, kept
        wrong_attrs,  # 7
        dict(ev("g", 8, "server", "receive.timeout"), ts="yesterday"),  # 8
        dict(ev("g", 9, "server", "receive.timeout"), source="elsewhere"),  # 9
        dict(ev("g", 10, "server", "receive.timeout"), code=4102.5),  # 10
        dict(ev("g", 10, "server", "receive.timeout"), code="4102"),  # 11
        dict(ev("g", 10, "server", "receive.timeout"), frp="7"),  # 12
        dict(ev("g", 10, "server", "receive.timeout"), attrs=[1]),  # 13
        good[2],
        good[3],
    ]
    other = write_log(tmp_path / "b.jsonl", [*_session("h"), "{broken"])
    analysis = sessions.analyze([str(write_log(tmp_path / "a.jsonl", lines)), str(other)])
    found = {(Path(b.path).name, b.line): b.reason for b in analysis.bad_lines}
    assert set(found) == {
        ("a.jsonl", 2),
        ("a.jsonl", 3),
        ("a.jsonl", 5),
        ("a.jsonl", 6),
        ("a.jsonl", 7),
        ("a.jsonl", 8),
        ("a.jsonl", 9),
        ("a.jsonl", 10),
        ("a.jsonl", 11),
        ("a.jsonl", 12),
        ("a.jsonl", 13),
        ("b.jsonl", 5),
    }
    assert "malformed" in found[("a.jsonl", 2)]
    assert "code" in found[("a.jsonl", 5)]
    assert "4007" in found[("a.jsonl", 6)] and "unknown" in found[("a.jsonl", 6)]
    assert "attrs" in found[("a.jsonl", 7)]
    assert "timestamp" in found[("a.jsonl", 8)]
    assert "source" in found[("a.jsonl", 9)]
    assert "code" in found[("a.jsonl", 10)] and "code" in found[("a.jsonl", 11)]
    assert "frp" in found[("a.jsonl", 12)]
    assert "attrs" in found[("a.jsonl", 13)]
    assert analysis.bad_count == 12
    assert analysis.events == 8 + 1  # both sessions' events and the unknown-code line
    assert analysis.bad_by_file == {str(tmp_path / "a.jsonl"): 11, str(other): 1}
    rows = analysis.con.execute("SELECT session_id, category FROM sessions ORDER BY 1").fetchall()
    assert rows == [("g", "expected_end"), ("h", "expected_end")]
    codes = analysis.con.execute("SELECT codes FROM sessions WHERE session_id = 'g'").fetchall()
    assert codes == [([4000, 4007],)]  # an unknown code stays with its session


def test_gzip_input_and_globs(tmp_path: Path) -> None:
    plain = write_log(tmp_path / "x.jsonl", _session("z"))
    packed = tmp_path / "logs" / "y.jsonl.gz"
    packed.parent.mkdir()
    with gzip.open(packed, "wt") as handle:
        handle.write(plain.read_text())
        handle.write("not json\n")
    analysis = sessions.analyze([str(tmp_path / "logs" / "*.gz")])
    assert analysis.events == 4
    assert [(b.line, "malformed" in b.reason) for b in analysis.bad_lines] == [(5, True)]
    assert analysis.con.execute("SELECT client FROM sessions").fetchall() == [("browser",)]


def test_parquet_input_with_attrs_as_struct(tmp_path: Path) -> None:
    source = write_log(tmp_path / "s.jsonl", [*_session("p"), *_session("q")])
    target = tmp_path / "events.parquet"
    duckdb.sql(f"COPY (SELECT * FROM read_json('{source}')) TO '{target}' (FORMAT parquet)")
    analysis = sessions.analyze([str(target)])
    rows = analysis.con.execute(
        "SELECT session_id, category, client, final_code FROM sessions ORDER BY 1"
    ).fetchall()
    assert rows == [("p", "expected_end", "browser", 4000), ("q", "expected_end", "browser", 4000)]
    assert analysis.bad_count == 0


def test_missing_input_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(ingest.InputError, match="no such file"):
        sessions.analyze([str(tmp_path / "absent.jsonl")])
    with pytest.raises(ingest.InputError, match="no file matches"):
        sessions.analyze([str(tmp_path / "*.jsonl")])


def test_many_files_number_their_lines_like_one_file(fleet: Path, tmp_path: Path) -> None:
    """One reader call numbers the lines of many files (some gzipped): each bad line keeps the
    number it has when the same lines are one file."""
    lines = fleet.read_text(encoding="utf-8").splitlines(keepends=True)
    size = len(lines) // 24 + 1
    paths, offsets = [], {}
    for k, start in enumerate(range(0, len(lines), size)):
        chunk = "".join(lines[start : start + size])
        path = tmp_path / (f"part-{k:02d}.jsonl" + (".gz" if k % 3 == 0 else ""))
        if k % 3 == 0:
            with gzip.open(path, "wt", encoding="utf-8") as handle:
                handle.write(chunk)
        else:
            path.write_text(chunk, encoding="utf-8")
        paths.append(str(path))
        offsets[str(path)] = start
    whole = sessions.analyze([str(fleet)])
    parts = sessions.analyze(paths)
    assert 0 < whole.bad_count <= sessions.BAD_LINES_LISTED
    assert parts.bad_count == whole.bad_count and parts.events == whole.events
    expected = [(b.line, b.reason) for b in whole.bad_lines]
    assert [(offsets[b.path] + b.line, b.reason) for b in parts.bad_lines] == expected
    same = "SELECT * FROM sessions ORDER BY session_id"
    assert parts.con.execute(same).fetchall() == whole.con.execute(same).fetchall()


def test_the_code_table_fits_the_one_bit_per_code_mask() -> None:
    """A session's codes are gathered as one bit per code of a UBIGINT: at most 64 codes."""
    assert len(codes.TABLE) <= ingest.CODE_MASK_BITS == 64
    ingest.check_code_mask_fits()
    too_many = tuple(
        replace(codes.TABLE[0], number=5100 + i, name=f"EXTRA_{i}")
        for i in range(ingest.CODE_MASK_BITS + 1)
    )
    with pytest.raises(RuntimeError, match="65 codes"):
        ingest.check_code_mask_fits(too_many)
    ingest.check_code_mask_fits(too_many[:64])
