"""--export DIR: the session table as CSV and Parquet, written by DuckDB itself (COPY).

The evidence column is read from the logs again here: the fleet pass keeps no per-event lists.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from openfrp.analysis import ingest, sessions
from openfrp.analysis.ingest import quote

if TYPE_CHECKING:
    from openfrp.analysis import engine as duckdb

# Lists become text in CSV (one cell); Parquet keeps them as lists.
_CSV_SELECT = """
SELECT * REPLACE (
  array_to_string(codes, ' ') AS codes,
  array_to_string(
    list_transform(evidence, lambda e: strftime(e.ts, '%Y-%m-%dT%H:%M:%S.%fZ') || ' '
                   || e.source || ' ' || e.event || coalesce(' ' || e.code, '')),
    '; ') AS evidence)
FROM exported ORDER BY start_ts, session_id
"""


def export(analysis: sessions.Analysis, directory: str | Path) -> list[Path]:
    """Write sessions.csv and sessions.parquet into `directory`; return their paths."""
    con = analysis.con
    events = ingest.events_sql(con, analysis.files, numbered=False)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE exported AS SELECT sessions.*, "
        "coalesce(evidence, []) AS evidence FROM sessions "
        f"LEFT JOIN ({sessions.evidence_sql(events)}) USING (session_id)"
    )
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, parquet_path = out / "sessions.csv", out / "sessions.parquet"
    _copy(con, _CSV_SELECT, csv_path, "HEADER, DELIMITER ','")
    _copy(
        con,
        "SELECT * FROM exported ORDER BY start_ts, session_id",
        parquet_path,
        "FORMAT parquet, COMPRESSION zstd",
    )
    con.execute("DROP TABLE exported")
    return [csv_path, parquet_path]


def _copy(con: duckdb.DuckDBPyConnection, select: str, path: Path, options: str) -> None:
    """COPY `select` into `path`; a write that fails (a full disk) raises the OSError that
    names the file, not DuckDB's traceback."""
    from openfrp.analysis import engine

    try:
        con.execute(f"COPY ({select}) TO {quote(str(path))} ({options})")
    except engine.IOException as exc:
        raise engine.os_error(exc, str(path)) from None
