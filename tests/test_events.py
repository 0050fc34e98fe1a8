"""The event log: flushed per event, nothing lost to a crash, bad lines reported not raised."""

from __future__ import annotations

import gzip
import json
import select
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from openfrp import codes
from openfrp.events import BadLine, Event, EventLog, code_event, format_ts, read_events

GOOD = {"event": "session.started", "ts": "2025-01-02T03:04:05.123456Z", "source": "server"}


def read_back(path: Path) -> tuple[list[Event], list[BadLine]]:
    bad: list[BadLine] = []
    return list(read_events(path, bad)), bad


def test_writer_appends_one_flushed_line_per_event(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "events.jsonl"
    log = EventLog(path)
    try:
        for number in range(3):
            log.write(Event(event="receive.timeout", session_id="s1", attrs={"count": number}))
            with path.open(encoding="utf-8") as other:
                lines = other.read().splitlines()
            assert len(lines) == number + 1
            assert json.loads(lines[-1])["attrs"] == {"count": number}
    finally:
        log.close()
    again = EventLog(path)
    again.write(Event(event="session.ended", session_id="s1"))
    again.close()
    events, bad = read_back(path)
    assert [e.event for e in events] == ["receive.timeout"] * 3 + ["session.ended"]
    assert bad == []


def test_a_reopen_that_cannot_open_the_file_raises_nothing_and_names_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGHUP with the log's folder gone (moved away by a rotation gone wrong): reopen()
    raised FileNotFoundError out of the signal handler, a traceback on stderr, and every write
    after it failed as 'I/O operation on closed file', not the reason. The write says why, and
    once the folder is back the next write lands, after the record of what was lost."""
    folder = tmp_path / "logs"
    path = folder / "events.jsonl"
    log = EventLog(path)
    try:
        log.write(Event(event="session.created", session_id="s1"))
        folder.rename(tmp_path / "moved")
        log.reopen()
        log.write(Event(event="server.log_reopened"))
        assert log.failing is not None and "No such file or directory" in log.failing
        assert "No such file or directory" in capsys.readouterr().err
        folder.mkdir()
        assert log.recovered()  # a launch asks this first: it answered 503 while it reopened
        log.write(Event(event="session.ended", session_id="s1"))
        assert log.failing is None
    finally:
        log.close()
    events, _ = read_back(path)
    assert [e.event for e in events] == ["log.gap", "session.ended"]
    assert events[0].attrs["lost"] == 1


def test_event_round_trips_through_json() -> None:
    event = code_event(
        "connection.closed",
        4029,
        session_id="s1",
        connection_id="c2",
        previous_connection_id="c1",
        frp=7,
        attrs={"remote": "127.0.0.1"},
    )
    assert Event.from_dict(json.loads(event.to_json())) == event
    assert event.ts.endswith("Z")
    assert format_ts(datetime(2025, 1, 2, 3, 4, 5, 6, tzinfo=UTC)) == "2025-01-02T03:04:05.000006Z"


WRITER = textwrap.dedent(
    """
    import sys, time
    from openfrp.events import EventLog, Event
    log = EventLog(sys.argv[1])
    for number in range(int(sys.argv[2])):
        log.write(Event(event="receive.timeout", session_id="s1", attrs={"count": number}))
    print("done", flush=True)
    time.sleep(60)
    """
)


def test_sigkilled_writer_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    count = 200
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(count)],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert child.stdout is not None
        ready, _, _ = select.select([child.stdout], [], [], 30)
        assert ready, "the writer did not report 'done' in time"
        assert child.stdout.readline().strip() == "done"
    finally:
        child.kill()
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -9
    events, bad = read_back(path)
    assert bad == []
    assert [e.attrs["count"] for e in events] == list(range(count))


def good(**changes: object) -> str:
    return json.dumps({**GOOD, **changes})


BAD_LINES = [
    ('{"event": "session.started", "ts": ', "Expecting value"),
    ("not json at all", "Expecting value"),
    ("[1, 2]", "line is not a JSON object"),
    (good(event=5), "field 'event' must be a string"),
    (good(source=None), "field 'source' must be a string"),
    (good(ts="yesterday"), "field 'ts' is not an ISO 8601 time"),
    (good(code="4102"), "field 'code' must be an integer or null"),
    (good(code=True), "field 'code' must be an integer or null"),
    (good(frp=9), "field 'frp' must be 7, 8 or null"),
    (good(frp=7.0), "field 'frp' must be 7, 8 or null"),
    (good(attrs=[1]), "field 'attrs' must be an object"),
    (good(session_id=12), "field 'session_id' must be a string or null"),
    (good(severity=3), "field 'severity' must be one of debug, info"),
    (good(severity="loud"), "field 'severity' must be one of debug, info"),
    (good(colour="red"), "unknown field(s): colour"),
]


def test_reader_skips_and_reports_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    lines = [good(code=4102, frp=8)]
    lines += [line for line, _ in BAD_LINES]
    lines += ["", "   ", good(event="session.ended")]
    # The last line is cut mid-write, as after a crash: no closing brace, no newline.
    path.write_text("\n".join(lines) + "\n" + good()[:-5], encoding="utf-8")
    events, bad = read_back(path)
    assert [e.event for e in events] == ["session.started", "session.ended"]
    assert events[0].code == 4102 and events[0].frp == 8
    assert [b.line for b in bad] == [*range(2, 2 + len(BAD_LINES)), len(lines) + 1]
    assert all(b.path == str(path) for b in bad)
    for found, (_, says) in zip(bad, BAD_LINES, strict=False):
        assert says in found.reason
    assert list(read_events(path)) == events, "without a bad list the reader still skips"


def test_reader_reads_gzip(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(good(session_id="s1") + "\nnot json\n" + good(session_id="s2") + "\n")
    events, bad = read_back(path)
    assert [e.session_id for e in events] == ["s1", "s2"]
    assert [(b.path, b.line) for b in bad] == [(str(path), 2)]


def test_reader_reports_cut_off_gzip(tmp_path: Path) -> None:
    whole = gzip.compress(("".join(good(session_id=f"s{n}") + "\n" for n in range(500))).encode())
    path = tmp_path / "events.jsonl.gz"
    path.write_bytes(whole[: len(whole) // 2])
    events, bad = read_back(path)
    assert 0 < len(events) < 500
    assert len(bad) == 1
    assert bad[0].line == len(events) + 1
    assert "file unreadable from here" in bad[0].reason


@pytest.mark.parametrize("number", [4000, 4102, 4103, 5019])
def test_code_event_takes_severity_and_message_from_table(number: int) -> None:
    row = codes.get(number)
    event = code_event("connection.closed", number, session_id="s1")
    assert event.code == number
    assert event.severity == ("info" if row.kind is codes.Kind.INFO else "error")
    assert event.message == row.message
    assert event.attrs == {"code_name": row.name}


def test_code_event_keeps_what_the_caller_gives() -> None:
    event = code_event(
        "session.warning", 4008, severity="warning", message="5 minutes left", attrs={"s": 300}
    )
    assert (event.severity, event.message) == ("warning", "5 minutes left")
    assert event.attrs == {"s": 300, "code_name": "MAX_SESSION_DURATION"}
    with pytest.raises(KeyError):
        code_event("connection.closed", 4007)
