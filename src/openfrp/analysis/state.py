"""--state DIR: analyze a growing log folder again at the cost of what was added.

The folder keeps, in one DuckDB file, each input's size and a digest of its first bytes, how
many lines and bad lines it had, the events, the bad lines listed so far, the sessions, each
with its partial aggregates in mergeable form (aggregates.MERGE) in column `agg` (one look-up,
delete and insert of a touched session instead of one in each of two tables), and the summary's
rollups (rollups.py). Lines that belong to no session count in the counts alone.
A later run reads only what changed: the bytes appended to a plain JSONL file since last time
(copied to a scratch file, in memory when small, read by the same reader) and files that are
new (a plain one copied from its start the same way: a file may grow while it is read, and
only a copy says how much was read). Their aggregates are merged with the kept ones, the
sessions are derived from the merge exactly as a full run derives them, the rollups trade the
touched sessions' old rows for their new ones and the counts add the new parts' to the kept
ones, so the answer is the same. Anything else (a file that shrank, was rewritten, was
removed, a changed .gz or Parquet file, a last line still being written, another analyzer
version or state layout) starts over with a full read.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from openfrp.analysis import ingest, rollups

if TYPE_CHECKING:
    from openfrp.analysis import engine as duckdb

HEAD_BYTES = 4096
# A tail up to this size is copied into a file in memory (a memfd, which DuckDB opens through
# /proc/self/fd): written to disk, 38 MB at 10 M events took 0.4 s when it waited behind the
# writeback of earlier writes. A larger one goes to a scratch file in the state folder.
TAIL_IN_MEMORY = 1 << 28
# What the state knows of each input, and of the whole (meta: the version, the events): state
# kept in another layout is rebuilt, never merged.
FILES = "st.files (path VARCHAR, size BIGINT, head VARCHAR, lines BIGINT, bad BIGINT)"
LAYOUT = f"{FILES}; st.meta: version, events; st.sessions: facts, agg"
CHUNK = 1 << 22


@dataclass(frozen=True)
class Seen:
    """What the state knows of one input file (`bad`: its bad lines)."""

    path: str
    size: int
    head: str
    lines: int
    bad: int = 0


@dataclass(frozen=True)
class Counts:
    """What a run counted: its events, bad lines per file and the bad lines to list; and what
    it read of each file it read whole (sessions._aggregate)."""

    events: int
    bad_by_file: dict[str, int]
    bad_lines: list[ingest.BadLine]
    extents: dict[str, ingest.Extent] = field(default_factory=dict)


@dataclass(frozen=True)
class Part:
    """What to read this time: the whole file, or its lines after `skip_lines` (a tail)."""

    log: ingest.LogFile
    read_from: str  # the file DuckDB reads: the input itself or a scratch copy of its tail
    skip_lines: int
    read: Seen | None = None  # a tail's file as far as it was copied, but the tail's lines
    tail_lines: Future[int] | None = None  # the tail's lines, counted while it is analyzed

    def record(self) -> Seen | None:
        """What to record of a tail's file: `read` with the tail's lines."""
        if self.read is None or self.tail_lines is None:
            return self.read
        return replace(self.read, lines=self.read.lines + self.tail_lines.result())


def head_digest(path: str, length: int = HEAD_BYTES) -> str:
    """A digest of the file's first `length` bytes (fewer if it is shorter), with the count:
    bytes appended later leave the digest of the same first bytes unchanged."""
    with open(path, "rb") as handle:
        data = handle.read(length)
    return f"{len(data)}:{hashlib.sha1(data).hexdigest()}"


def _same_start(path: str, head: str) -> bool:
    length = int(head.split(":", 1)[0]) if ":" in head else -1
    return length >= 0 and head_digest(path, length) == head


def count_lines(path: str, size: int) -> tuple[int, bool]:
    """The lines of the file's first `size` bytes (the writer writes no blank lines), and
    whether they end with a newline (a last line without one may still be being written)."""
    lines, last, left = 0, b"\n", size
    with open(path, "rb") as handle:
        while left and (chunk := handle.read(min(CHUNK, left))):
            lines += chunk.count(b"\n")
            last, left = chunk[-1:], left - len(chunk)
    return lines + (0 if last == b"\n" else 1), last == b"\n"


def _copy_tail(path: str, start: int, target: str) -> tuple[int, bool, Future[int]]:
    """Copy the file from byte `start` to `target`: the bytes copied (a file still growing is
    recorded as far as it was copied), whether they end with a newline, and their lines, which
    a thread counts while DuckDB reads the copy. The kernel copies (sendfile); reading and
    writing here, counting on the way, cost 0.025 s for the 38 MB tail at 10 M events, the
    copy alone 0.010 s."""
    size = 0
    with open(path, "rb") as source, open(target, "wb") as copy:
        if sys.platform == "linux":
            while sent := os.sendfile(copy.fileno(), source.fileno(), start + size, CHUNK):
                size += sent
        else:  # elsewhere sendfile may only write to a socket
            source.seek(start)
            shutil.copyfileobj(source, copy, CHUNK)
            size = copy.tell()
    fd = os.open(target, os.O_RDONLY)  # the counting thread closes it
    whole = size == 0 or os.pread(fd, 1, size - 1) == b"\n"
    return size, whole, _count_later(fd, size, whole)


def _count_later(fd: int, size: int, whole: bool) -> Future[int]:
    """The lines of the first `size` bytes of file `fd` (closed when counted), in a thread."""
    lines: Future[int] = Future()

    def count() -> None:
        try:
            found, done = 0, 0
            while done < size and (chunk := os.pread(fd, min(CHUNK, size - done), done)):
                found, done = found + chunk.count(b"\n"), done + len(chunk)
            lines.set_result(found + (0 if whole else 1))
        except BaseException as exc:  # re-raised where the count is read
            lines.set_exception(exc)
        finally:
            os.close(fd)

    threading.Thread(target=count, daemon=True).start()
    return lines


def packed(table: str, columns: list[str]) -> str:
    """The rows of aggregate table `table` (its `columns`) with column `agg`: all but their
    session_id, in one struct, which sessions.sessions_sql carries through into st.sessions."""
    fields = ", ".join(f"'{n}': \"{n}\"" for n in columns if n != "session_id")
    return f"(SELECT *, {{{fields}}} AS agg FROM {table})"


def _insert(con: duckdb.DuckDBPyConnection, table: str, rows: list[tuple[object, ...]]) -> None:
    """Insert rows in one statement (one list per column): executemany runs one statement per
    row, which took 0.2 s for the 200 bad lines listed."""
    if rows:
        columns = list(zip(*rows, strict=True))
        unnest = ", ".join(f"unnest(${i + 1})" for i in range(len(columns)))
        con.execute(f"INSERT INTO {table} SELECT {unnest}", [list(c) for c in columns])


class State:
    """The state folder's DuckDB file, attached to the analysis connection as `st`."""

    def __init__(self, con: duckdb.DuckDBPyConnection, folder: str | Path, version: str) -> None:
        """`version` names how aggregates and sessions are computed (the SQL, so the rules
        too): state kept by another version is rebuilt, never merged."""
        self.con = con
        self.version = version
        self.rows: list[int] = []  # rows of st.sessions that keep_touched() copied
        self.in_memory: list[int] = []  # the memfds holding tails
        self.folder = Path(folder)
        from openfrp.analysis import engine as duckdb

        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            con.execute(f"ATTACH {ingest.quote(str(self.folder / 'state.duckdb'))} AS st")
        except (OSError, duckdb.Error) as exc:  # a file in the way, another run holding it
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ingest.InputError(f"--state {folder}: cannot be used: {reason}") from None
        # Written into the file at commit: not into the WAL first and into the file again when
        # the state is let go (at 10 M events 0.02-0.03 s less in an added run).
        con.execute("SET checkpoint_threshold = '0b'")
        with self.writing():
            con.execute("CREATE TABLE IF NOT EXISTS st.meta (key VARCHAR, value VARCHAR)")
            con.execute(f"CREATE TABLE IF NOT EXISTS {FILES}")
            con.execute(
                "CREATE TABLE IF NOT EXISTS st.bad_lines "
                "(path VARCHAR, line BIGINT, reason VARCHAR)"
            )

    @contextmanager
    def writing(self) -> Iterator[None]:
        """One transaction that writes the state. Interrupted (Ctrl-C: DuckDB aborts it) or
        failed, it is rolled back, so the state stays as it was and can be let go (close); a
        write that fails (a full disk; at COMMIT, a TransactionException) is told in one line,
        an interrupt stays one."""
        from openfrp.analysis import engine as duckdb

        self.con.execute("BEGIN")
        try:
            yield
            self.con.execute("COMMIT")
        except BaseException as exc:
            with suppress(duckdb.Error):  # a COMMIT that failed has ended the transaction
                self.con.execute("ROLLBACK")
            if isinstance(exc, duckdb.InterruptException):
                raise KeyboardInterrupt from None
            if isinstance(exc, duckdb.IOException | duckdb.TransactionException):
                reason = duckdb.os_error(exc, str(self.folder)).strerror
                raise ingest.InputError(
                    f"--state {self.folder}: cannot be written: {reason}; "
                    "make room there or give another --state DIR"
                ) from None
            raise

    def usable(self) -> bool:
        found = self.con.execute("SELECT value FROM st.meta WHERE key = 'version'").fetchall()
        names = ["sessions", *(f"r_{r.name}" for r in rollups.ROLLUPS)]
        tables = self.con.execute(
            "SELECT count(*) FROM duckdb_tables() "
            "WHERE database_name = 'st' AND list_contains($names, table_name)",
            {"names": names},
        ).fetchall()[0][0]
        return bool(found) and found[0][0] == self.version and tables == len(names)

    def seen(self) -> dict[str, Seen]:
        rows = self.con.execute("SELECT path, size, head, lines, bad FROM st.files").fetchall()
        return {
            str(r[0]): Seen(str(r[0]), int(r[1]), str(r[2]), int(r[3]), int(r[4])) for r in rows
        }

    def kept_events(self) -> int:
        """The events of the inputs as far as they were read."""
        found = self.con.execute("SELECT value FROM st.meta WHERE key = 'events'").fetchall()
        return int(found[0][0]) if found else 0

    def plan(self, logs: list[ingest.LogFile]) -> list[Part] | None:
        """The parts to read for `logs`, or None when the kept state cannot be added to."""
        if not self.usable():
            return None
        seen = self.seen()
        if set(seen) - {log.path for log in logs}:
            return None  # a file left the input: its sessions cannot be taken out
        parts: list[Part] = []
        self._drop_tails()
        for log in logs:
            old = seen.get(log.path)
            size = Path(log.path).stat().st_size
            if old is None and log.plain and size <= TAIL_IN_MEMORY:
                # A new file is read as a tail from its start: what was read of it is known
                # if it grows meanwhile.
                parts.append(self._tail(len(parts), log, Seen(log.path, 0, "", 0), size))
                continue
            if old is None:  # too large for memory, or not plain: read where it is
                parts.append(Part(log, log.path, 0))
                continue
            if not _same_start(log.path, old.head):
                return None  # rewritten, or its last line was still being written
            if size == old.size:
                continue
            if not log.plain or size < old.size:
                return None
            parts.append(self._tail(len(parts), log, old, size))
        return parts

    def _tail(self, index: int, log: ingest.LogFile, old: Seen, size: int) -> Part:
        """The part of `log` after what `old` read of it, copied (the `index`th tail)."""
        tail = self._scratch(index, size - old.size)
        copied, whole, lines = _copy_tail(log.path, old.size, tail)
        # A last line without its newline may still be being written: no usable record of
        # the file, so the next run reads it again from the start.
        head = head_digest(log.path) if whole else "partial"
        read = Seen(log.path, old.size + copied, head, old.lines, old.bad)
        return Part(log, tail, old.lines, read, lines)

    def _scratch(self, index: int, size: int) -> str:
        """Where to copy the `index`th tail, of `size` bytes (more if the file grows meanwhile)."""
        made = ingest.memory_file(f"openfrp-tail-{index}") if size <= TAIL_IN_MEMORY else None
        if made is not None:
            self.in_memory.append(made[0])
            return made[1]
        scratch = self.folder / "tails"
        scratch.mkdir(exist_ok=True)
        return str(scratch / f"{index}.jsonl")

    def _drop_tails(self) -> None:
        for fd in self.in_memory:
            os.close(fd)
        self.in_memory.clear()
        shutil.rmtree(self.folder / "tails", ignore_errors=True)

    def keep_touched(self) -> str:
        """Copy the facts of the kept sessions that temp table `agg` (one row per session)
        touches into temp table `kept`; return a query of their kept aggregates, taking their
        row ids (`rows`) as parameter $1. The ids come from a scan of the ids alone, then the
        rows (testing each row while reading all its columns cost 0.1 s at 10 M events, about
        twice as much); save_added() deletes them by the same ids."""
        found = self.con.execute(
            "SELECT rowid FROM st.sessions WHERE session_id IN (SELECT session_id FROM agg)"
        ).fetchall()
        self.rows = [int(row[0]) for row in found]
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE kept AS "
            "SELECT * EXCLUDE (agg) FROM st.sessions WHERE rowid = ANY($1)",
            [self.rows],
        )
        return "SELECT session_id, agg.* FROM st.sessions WHERE rowid = ANY($1)"

    def save_all(self, logs: list[ingest.LogFile], counts: Counts, made: rollups.Rollups) -> None:
        """After a full run: keep its sessions (table `sessions`, with column `agg`) and
        rollups."""
        with self.writing():
            for table in ("agg", "loose"):  # earlier layouts' aggregates
                self.con.execute(f"DROP TABLE IF EXISTS st.{table}")
            self.con.execute("CREATE OR REPLACE TABLE st.sessions AS SELECT * FROM sessions")
            rollups.copy(self.con, made, "st")
            self._files(logs, {}, counts)

    def save_added(
        self, logs: list[ingest.LogFile], parts: list[Part], counts: Counts
    ) -> rollups.Rollups:
        """After an added run: replace the touched sessions and their rollup rows by the merged
        ones (temp table `facts`: the new and merged sessions with `agg`, is_new, and the kept
        ones they replace), in one transaction with the files' new sizes, so an interrupted run
        leaves the state as it was. Returns the updated rollups."""
        con = self.con
        known = self.seen() | {p.log.path: seen for p in parts if (seen := p.record()) is not None}
        with self.writing():
            con.execute("DELETE FROM st.sessions WHERE rowid = ANY($1)", [self.rows])
            con.execute(
                "INSERT INTO st.sessions BY NAME SELECT * EXCLUDE (is_new) FROM facts WHERE is_new"
            )
            kept = rollups.Rollups("st", rollups.kept_width(con, "st"))
            updated = rollups.update(con, kept, "facts", "st.sessions")
            self._files(logs, known, counts)
        con.execute("DROP TABLE facts")
        return updated

    def _files(
        self,
        logs: list[ingest.LogFile],
        known: dict[str, Seen],
        counts: Counts,
    ) -> None:
        """Record the counts, the bad lines listed, the version and what each input looks
        like: as `known` (kept, or a tail as far as it was read) or, for a file read whole, as
        far as it was read (counts.extents). A file that changed while it was read is recorded
        as partial, so the next run reads everything again."""
        con = self.con
        rows: list[tuple[object, ...]] = []
        for log in logs:
            bad = counts.bad_by_file.get(log.path, 0)
            old = known.get(log.path)
            if old is not None:
                rows.append((log.path, old.size, old.head, old.lines, bad))
                continue
            read = counts.extents.get(log.path)
            if read is None:
                rows.append((log.path, 0, "partial", 0, bad))
                continue
            # Only plain JSONL grows by appending; other files are read whole when they change.
            lines, whole = (0, True) if not log.plain else (read.lines, read.whole)
            if lines is None:
                lines, whole = count_lines(log.path, read.size)
            head = head_digest(log.path) if whole else "partial"
            rows.append((log.path, read.size, head, lines, bad))
        con.execute(f"CREATE OR REPLACE TABLE {FILES}")
        _insert(con, "st.files", rows)
        con.execute("DELETE FROM st.bad_lines")
        _insert(con, "st.bad_lines", [(b.path, b.line, b.reason) for b in counts.bad_lines])
        con.execute("DELETE FROM st.meta")
        _insert(con, "st.meta", [("version", self.version), ("events", str(counts.events))])
        self._drop_tails()

    def close(self) -> None:
        """Let go of the state file (another analysis may attach it) and of the tails."""
        self._drop_tails()
        self.con.execute("DETACH DATABASE IF EXISTS st")

    def kept_bad_lines(self) -> list[ingest.BadLine]:
        rows = self.con.execute("SELECT path, line, reason FROM st.bad_lines").fetchall()
        return [ingest.BadLine(str(p), int(n), str(r)) for p, n, r in rows]
