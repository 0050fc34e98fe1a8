"""The per-session aggregates through the native fold (fold.c), where it can read the inputs.

The fold reads plain JSONL files on every core and folds each line that is an event as the
writers write it into its session's aggregates, keeping rows of the rare events a session lists
and of the events a rule reads the attributes of, for SQL to finish. Any other line, a bad one
first, is passed back and aggregated by the SQL reader as before (with any gzip and Parquet
files), then added to the fold's rows: a session both saw is two rows, which
sessions.merge_split() merges as it merges a session whose rows disagree on a person. So temp
table `agg` holds what the SQL reader alone makes, in half its time at 10 M events.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from openfrp import codes
from openfrp.analysis import aggregates, ingest, rules

if TYPE_CHECKING:
    from openfrp.analysis import engine as duckdb

try:
    from openfrp.analysis import _fold
except ImportError:  # not built (no C compiler where it was installed): the SQL reader alone
    _fold = None  # type: ignore[assignment]

NULL = -(2**63)  # the fold's NULL in a column of integers
# Below this many bytes of plain JSONL, DuckDB's reader alone is as fast: the fold's fixed
# costs (loading numpy, a table made of its columns) outweigh what it saves.
FOLD_FROM = 64 << 20
TIMES = (
    *("s_first_ts", "s_last_ts", "t_first_ts", "t_last_ts", "created_at", "started_at"),
    *("server_end_ts", "t_attempt", "t_established", "s_opened", "s_established"),
)
TEXTS = ("user", "account", "launchpad", "host", "client")
NARROW = {*TEXTS, "frp", "rare_kind", "match_event", "match_source"}  # 32-bit columns


@dataclass(frozen=True)
class Folded:
    """The fold's tables (column name: numpy array): `groups`, a row per session and person,
    numbered by `gid`; `rare`, the rare events (by gid); `matched`, the events the rules read
    (by gid). `texts` are the texts that text columns index; `passed`, each file's lines
    passed back; `read`, what was folded of each file."""

    groups: dict[str, Any]
    rare: dict[str, Any]
    matched: dict[str, Any]
    texts: list[str]
    passed: list[bytes]
    read: dict[str, ingest.Extent]


def _matched() -> tuple[tuple[str, ...], tuple[int, ...]] | None:
    """The events and codes whose events the fold keeps with their attributes: those a rule's
    matcher names (by code where it names codes). None when a matcher names neither, so that
    only the SQL reader can tell which events it reads."""
    events: set[str] = set()
    found: set[int] = set()
    for matcher in rules.matchers(rules.load_rules()).values():
        if matcher.code:
            found.update(matcher.code)
        elif matcher.event is not None:
            events.add(matcher.event)
        else:
            return None
    return tuple(sorted(events)), tuple(sorted(found))


def usable(logs: list[ingest.LogFile], exact: bool = False) -> bool:
    """Whether the fold can read `logs`, plain files all, and is worth it; with `exact`, of
    any size: what it read of each file is known (a file may grow while it is read)."""
    if _fold is None or not logs or not all(log.plain for log in logs) or _matched() is None:
        return False
    try:
        return exact or sum(os.stat(log.path).st_size for log in logs) >= FOLD_FROM
    except OSError:  # gone since it was named: the SQL reader says so
        return False


def fold(logs: list[ingest.LogFile]) -> Folded | None:
    """Fold the plain JSONL files `logs` (usable() holds); None when one cannot be folded here
    (it cannot be opened, or it has a line longer than the fold takes)."""
    import numpy as np

    matched = _matched()
    assert _fold is not None and matched is not None
    found = _fold.fold(
        [log.path for log in logs],
        aggregates.TERMINAL_STATE + aggregates.TERMINAL_END,
        len(aggregates.TERMINAL_STATE),
        *matched,
        min(c.number for c in codes.TABLE),
        tuple(ingest.code_bits()),
        aggregates.TAKEOVER,
        max(1, min(os.cpu_count() or 1, 8)),
    )
    if found is None:
        return None
    columns, texts, passed, extents = found
    read = {
        log.path: ingest.Extent(size, lines, whole)
        for log, (size, lines, whole) in zip(logs, extents, strict=True)
    }
    ids = np.array(columns.pop("session_id"), dtype=object)
    tables: dict[str, dict[str, Any]] = {
        "": {"session_id": ids, "gid": np.arange(len(ids), dtype=np.int64)},
        "rare": {},
        "match": {"match_attrs": np.array(columns.pop("match_attrs"), dtype=object)},
    }
    for name, data in columns.items():
        kind = np.int32 if name in NARROW else np.float64 if name == "rare_ms" else np.int64
        tables[name.split("_")[0] if name.startswith(("rare_", "match_")) else ""][name] = (
            np.frombuffer(data, dtype=kind)
        )
    return Folded(tables[""], tables["rare"], tables["match"], texts, passed, read)


def _typed(columns: list[tuple[str, str]]) -> str:
    """The fold's columns as the SQL reader's aggregates `columns` (name, type): the same
    names, types and order, NULLs where the SQL reader has them. $1 is the fold's texts."""
    made = {"session_id": "session_id", "rows": "rows", "frp": "nullif(frp, 0)"}
    made |= {n: f"CASE WHEN {n} >= 0 THEN $1[{n} + 1] END" for n in TEXTS}
    made |= {n: f"make_timestamp(nullif({n}, {NULL}))" for n in TIMES}
    for name in ("server_end_code", "term_state_code"):
        made[name] = f"nullif({name}, {NULL})"
    # The fold keeps the terminal's whole order: the SQL reader's term_order is its high bits.
    made["term_state"] = f"nullif(term_order, {NULL}) & 15"
    made["term_order"] = f"nullif(term_order, {NULL}) >> 4"
    made["code_mask"] = "nullif(CAST(code_mask AS UBIGINT), 0)"
    for kind, name in enumerate(aggregates.RARE, 1):
        made[name] = aggregates.split_rare(kind, name).rsplit(" AS ", 1)[0]
    for expression in rules.matcher_aggregates(rules.load_rules())[1]:
        value, name = expression.rsplit(" AS ", 1)
        made[name] = value
    return ", ".join(f'CAST({made.get(n, "NULL")} AS {kind}) AS "{n}"' for n, kind in columns)


def _folded_sql(columns: list[tuple[str, str]]) -> str:
    """Temp table `folded` from the fold's tables (fold_groups, fold_rare, fold_match)."""
    rare = (
        "SELECT rare_group AS gid, list({'k': rare_kind, 'ts': make_timestamp(rare_ts), "
        "'ms': CASE WHEN NOT isnan(rare_ms) THEN rare_ms END}) AS rare FROM fold_rare GROUP BY 1"
    )
    sql = f"SELECT {_typed(columns)} FROM fold_groups LEFT JOIN ({rare}) USING (gid)"
    masks = rules.matcher_aggregates(rules.load_rules())[0]
    if masks:
        events = (
            f"SELECT match_group AS gid, nullif(match_code, {NULL}) AS code, "
            "$1[match_event + 1] AS event, $1[match_source + 1] AS source, "
            "CAST(match_attrs AS JSON) AS attrs FROM fold_match"
        )
        bits = ", ".join(f"{expression} AS {name}" for name, expression in masks.items())
        sql += f" LEFT JOIN (SELECT gid, {bits} FROM ({events}) GROUP BY 1) USING (gid)"
    return f"CREATE OR REPLACE TEMP TABLE folded AS {sql}"


@contextmanager
def _files_of(lines: list[bytes]) -> Iterator[list[str]]:
    """Each file's passed-back lines in a file of its own, in memory where the system can."""
    fds: list[int] = []
    paths: list[str] = []
    scratch: list[str] = []
    try:
        for i, data in enumerate(lines):
            made = ingest.memory_file(f"openfrp-passed-{i}")
            if made is None:
                made = tempfile.mkstemp(suffix=".jsonl")
                scratch.append(made[1])
            fd, path = made
            fds.append(fd)
            paths.append(path)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        yield paths
    finally:
        for fd in fds:
            os.close(fd)
        for path in scratch:
            os.unlink(path)


def aggregate(
    con: duckdb.DuckDBPyConnection,
    logs: list[ingest.LogFile],
    run: Callable[[str], None],
    exact: bool = False,
) -> dict[str, ingest.Extent] | None:
    """Temp table `agg` of `logs`, as aggregates.aggregate_sql makes it but for sessions in
    several rows (see the module's docstring), through the fold and `run`, which runs the SQL
    reader's statement on the lines passed back and on the files the fold does not read
    (gzip, Parquet); returns what was folded of each file. None, with nothing made, when the
    fold cannot read any (`exact`: see usable())."""
    folded = [log for log in logs if log.plain]
    found = fold(folded) if usable(folded, exact) else None
    if found is None:
        return None
    with _files_of(found.passed) as paths:
        read = [ingest.LogFile(path, "jsonl") for path in paths]
        events = ingest.events_sql(con, read + [log for log in logs if not log.plain], False)
        run(f"CREATE OR REPLACE TEMP TABLE passed AS {aggregates.aggregate_sql(events)}")
    names = {path: log.path for path, log in zip(paths, folded, strict=True)}
    aggregates.rename_bad_files(con, "passed", names)
    columns = [(str(r[0]), str(r[1])) for r in con.execute("DESCRIBE passed").fetchall()]
    tables = {"fold_groups": found.groups, "fold_rare": found.rare, "fold_match": found.matched}
    for name, table in tables.items():
        con.register(name, table)
    try:
        con.execute(_folded_sql(columns), [found.texts])
    finally:
        for name in tables:
            con.unregister(name)
    con.execute("INSERT INTO folded BY NAME SELECT * FROM passed")
    con.execute("DROP TABLE passed")
    con.execute("DROP TABLE IF EXISTS agg")
    con.execute("ALTER TABLE folded RENAME TO agg")
    return found.read
