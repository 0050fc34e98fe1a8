"""Read event logs (JSONL, plain or gzip, and Parquet) with DuckDB, keeping bad lines visible.

DuckDB's JSON reader with `ignore_errors` turns a bad line into a row of NULLs instead of
dropping it, so SQL can tell valid events from bad lines (malformed, wrong types, unknown codes)
without a slow Python pass. The analyzer reads in two phases: the per-session aggregation reads
the files in parallel without line numbers and only counts bad lines per file; then, for files
that have bad lines, `row_number() OVER ()` (which keeps file order, on one thread) numbers the
lines until enough bad lines are found to list. The reader skips blank lines, so line numbers
count non-blank lines; the event writer never writes blank lines.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from openfrp import codes, events

if TYPE_CHECKING:
    import duckdb

JSON_TYPED = {"ts": "VARCHAR", "frp": "JSON", "code": "JSON", "attrs": "JSON"}
EVENT_COLUMNS = {name: JSON_TYPED.get(name, "VARCHAR") for name in events.FIELDS}
PARQUET_SUFFIXES = (".parquet", ".parq")
CODE_BITS = "openfrp_code_bits"


class InputError(Exception):
    """An input the user named cannot be read; reported as one line."""


@dataclass(frozen=True)
class LogFile:
    path: str
    kind: str  # "jsonl" or "parquet"

    @property
    def plain(self) -> bool:
        """JSONL, not compressed: it grows by appending, and the native fold reads it."""
        return self.kind == "jsonl" and not self.path.endswith(".gz")


@dataclass(frozen=True)
class Extent:
    """What a read took of a file, which may grow meanwhile: its first `size` bytes, their
    `lines` (None: not counted) and whether they end with a newline."""

    size: int
    lines: int | None = None
    whole: bool = True


@dataclass(frozen=True)
class BadLine:
    path: str
    line: int
    reason: str


def expand(patterns: list[str]) -> list[LogFile]:
    """Files named or matched by each pattern, in order; a pattern matching nothing is an error."""
    found: dict[str, LogFile] = {}
    for pattern in patterns:
        path = Path(pattern)
        if path.is_file():  # a name that exists is that file, even with [ ] * ? in it
            matches = [pattern]
        elif path.is_dir():
            raise InputError(f"{pattern}: is a directory (name its files, e.g. '{pattern}/*')")
        elif path.exists():
            raise InputError(f"{pattern}: not a regular file (a FIFO or device cannot be read)")
        elif glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern, recursive=True))
            if not matches:
                raise InputError(f"{pattern}: no file matches")
        else:
            raise InputError(f"{pattern}: no such file")
        for match in matches:
            if Path(match).is_file():
                kind = "parquet" if match.lower().endswith(PARQUET_SUFFIXES) else "jsonl"
                found.setdefault(match, LogFile(match, kind))
    if not found:
        raise InputError("no input files")
    return list(found.values())


def quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def quote_list(values: Iterable[str]) -> str:
    """`values` as SQL text literals, comma-separated (for IN (...), [...], ENUM(...))."""
    return ", ".join(quote(v) for v in values)


def _jsonl_sql(logs: list[LogFile], numbered: bool) -> str:
    """JSONL files through one call of DuckDB's reader, which names each row's file: one scan
    to plan however many files there are.

    Numbering lines takes `row_number() OVER ()`, which sees rows in file order (files in list
    order) and runs on one thread. With one file a LIMIT then stops the scan early; with more,
    each file's first number is subtracted from its rows' numbers."""
    columns = ", ".join(f"{quote(k)}: {quote(v)}" for k, v in EVENT_COLUMNS.items())
    names = ", ".join(f'"{name}"' for name in EVENT_COLUMNS)
    read = (
        f"read_json([{quote_list(log.path for log in logs)}], "
        f"format='newline_delimited', ignore_errors=true, columns={{{columns}}}, filename=true)"
    )
    if not numbered:
        return f"SELECT filename AS file, NULL::BIGINT AS line, {names} FROM {read}"
    if len(logs) == 1:
        return f"SELECT filename AS file, row_number() OVER () AS line, {names} FROM {read}"
    return (
        f"SELECT file, n - min(n) OVER (PARTITION BY file) + 1 AS line, {names} "
        f"FROM (SELECT filename AS file, row_number() OVER () AS n, {names} FROM {read})"
    )


def _parquet_sql(con: duckdb.DuckDBPyConnection, log: LogFile) -> str:
    """Parquet has its own types: bring each field to the JSONL reader's shape."""
    path = quote(log.path)
    found = {
        str(row[0]): str(row[1]).upper()
        for row in con.execute(f"DESCRIBE SELECT * FROM read_parquet({path})").fetchall()
    }
    parts = []
    for name, wanted in EVENT_COLUMNS.items():
        have = found.get(name)
        if have is None:
            parts.append(f'NULL::{wanted} AS "{name}"')
        elif name == "ts" and have.startswith("TIMESTAMP"):
            # A typed time: written back in the event log's own UTC form (naive means UTC).
            utc = "timezone('UTC', \"ts\")" if "TIME ZONE" in have else '"ts"'
            parts.append(f"strftime({utc}, '%Y-%m-%dT%H:%M:%S.%fZ') AS \"ts\"")
        elif wanted == "JSON" and have in ("VARCHAR", "JSON"):
            parts.append(f'try_cast("{name}" AS JSON) AS "{name}"')
        elif wanted == "JSON":
            parts.append(f'to_json("{name}") AS "{name}"')
        else:
            parts.append(f'CAST("{name}" AS VARCHAR) AS "{name}"')
    return (
        f"SELECT {path} AS file, file_row_number + 1 AS line, {', '.join(parts)} "
        f"FROM read_parquet({path}, file_row_number=true)"
    )


# Checks in order: a line is not an event when any holds; the first that holds is its reason.
# Each is a plain comparison on the raw text columns (no JSON re-parse), cheap enough for every row.
CHECKS = (
    (
        "not a JSON event (malformed or truncated line)",
        "raw_ts IS NULL AND source IS NULL AND event IS NULL AND session_id IS NULL",
    ),
    ("missing field 'ts'", "raw_ts IS NULL"),
    ("field 'ts' is not a timestamp", "ts IS NULL"),
    ("missing field 'event'", "event IS NULL"),
    (
        f"field 'source' must be one of {', '.join(events.SOURCES)}",
        f"source IS NULL OR source NOT IN ({quote_list(events.SOURCES)})",
    ),
    (
        "field 'code' must be an integer or null",
        "raw_code IS NOT NULL AND (code IS NULL OR CAST(code AS VARCHAR) <> raw_code)",
    ),
    ("field 'frp' must be 7, 8 or null", "raw_frp IS NOT NULL AND frp IS NULL"),
    (
        "field 'attrs' must be an object",
        "attrs IS NOT NULL AND NOT starts_with(CAST(attrs AS VARCHAR), '{')",
    ),
)


# Each code of the table is one bit of a UBIGINT (a session's code_mask), so the table may hold
# at most 64 codes: a 65th would need a 65th bit, which DuckDB's cast refuses or a mask loses.
CODE_MASK_BITS = 64


def check_code_mask_fits(table: tuple[codes.Code, ...] = codes.TABLE) -> None:
    """Refuse a code table with more codes than a code_mask has bits (checked on import)."""
    if len(table) > CODE_MASK_BITS:
        raise RuntimeError(
            f"the code table holds {len(table)} codes but the analyzer's code_mask has one bit "
            f"per code in a {CODE_MASK_BITS}-bit UBIGINT: widen the mask (HUGEINT, or two "
            "columns) in analysis/ingest.py and analysis/sessions.py before adding codes"
        )


check_code_mask_fits()


def _set_code_bits(con: duckdb.DuckDBPyConnection) -> None:
    """Each code of the table as one bit of a UBIGINT, in a list indexed by the code (NULL for
    numbers not in the table): sessions gather their codes with bit_or. Kept in a connection
    variable, so queries name it instead of carrying a list of a thousand entries; set from a
    parameter (parsing the list as SQL text took 0.015 s)."""
    con.execute(f"SET VARIABLE {CODE_BITS} = CAST($1 AS UBIGINT[])", [code_bits()])


def code_bits() -> list[int | None]:
    """The bit of each code of the table, by number from the lowest code's (None between)."""
    low = min(c.number for c in codes.TABLE)
    bits: list[int | None] = [None] * (max(c.number for c in codes.TABLE) - low + 1)
    for i, c in enumerate(codes.TABLE):
        bits[c.number - low] = 1 << i
    return bits


def memory_file(name: str) -> tuple[int, str] | None:
    """A file in memory (a memfd) and the path DuckDB opens it by, or None where the system
    has none: a scratch file there need not wait behind the disk's writeback."""
    if not hasattr(os, "memfd_create") or not os.path.isdir("/proc/self/fd"):
        return None
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    return fd, f"/proc/self/fd/{fd}"


def code_bit_sql(column: str) -> str:
    """The bit of the code in `column`, NULL for no code or an unknown one (a list index below 1
    would count from the end, hence the guard)."""
    low = min(c.number for c in codes.TABLE)
    return f"CASE WHEN {column} >= {low} THEN getvariable('{CODE_BITS}')[{column} - {low - 1}] END"


# RFC 3339 in UTC: the event writer's own form ("...Z"), cast the fast way.
_UTC_FORM = "ends_with(ts, 'Z') AND length(ts) >= 20 AND substr(ts, 11, 1) IN ('T', 't', ' ')"
# Any other RFC 3339 offset: cast with the zone and brought to UTC. A timestamp without a
# zone, or with anything else after it, cannot be placed on the clock: NULL, a bad line.
_OFFSET_FORM = r"regexp_full_match(ts, '\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d')"
TS_SQL = (
    f"CASE WHEN {_UTC_FORM} THEN try_cast(ts AS TIMESTAMP) "
    f"WHEN {_OFFSET_FORM} THEN timezone('UTC', try_cast(ts AS TIMESTAMPTZ)) END"
)


def events_sql(
    con: duckdb.DuckDBPyConnection,
    logs: list[LogFile],
    numbered: bool = True,
    reasons: bool = False,
) -> str:
    """All lines of all files, typed, each with its file and line and whether it is an event.

    `fatal` rows are not events at all (they only count as bad lines); a row with an unknown
    `code` keeps its event, so the session still ends with it, and counts as a bad line too.
    `code_bit` is the code's bit (code_bit_sql).
    `reasons=True` adds `issue`, the first failed check in words (costly: only for bad-line
    listings). Numbering JSONL lines runs on one thread (see _jsonl_sql); `numbered=False`
    leaves them NULL and lets the whole query run in parallel.
    """
    _set_code_bits(con)
    jsonl = [log for log in logs if log.kind == "jsonl"]
    parts = [_parquet_sql(con, log) for log in logs if log.kind == "parquet"]
    if jsonl:
        parts.append(_jsonl_sql(jsonl, numbered))
    union = " UNION ALL ".join(parts)
    fatal = " OR ".join(f"({check})" for _, check in CHECKS)
    unknown = "NOT fatal AND code IS NOT NULL AND code_bit IS NULL"
    issue = ""
    if reasons:
        whens = " ".join(f"WHEN {check} THEN {quote(reason)}" for reason, check in CHECKS)
        issue = f", CASE {whens} WHEN {unknown} THEN 'unknown code' END AS issue"
    return f"""
    SELECT file, line, ts, source, host, session_id, "user", account, launchpad, event,
           code, frp, attrs, code_bit, fatal, {unknown} AS unknown {issue}
    FROM (
        SELECT *, {code_bit_sql("code")} AS code_bit, coalesce({fatal}, false) AS fatal
        FROM (
            SELECT file, line, ts AS raw_ts, {TS_SQL} AS ts, source, host,
                   session_id, "user", account, launchpad, event, attrs,
                   CAST(code AS VARCHAR) AS raw_code,
                   try_cast(CAST(code AS VARCHAR) AS BIGINT) AS code,
                   CAST(frp AS VARCHAR) AS raw_frp,
                   CASE CAST(frp AS VARCHAR) WHEN '7' THEN 7 WHEN '8' THEN 8 END AS frp
            FROM ({union})
        )
    )
    """


def describe_issue(issue: str, code: int | None) -> str:
    """Finish an issue's wording in Python, where the code table can name the code's range."""
    if issue == "unknown code" and code is not None:
        return codes.describe(code)
    return issue
