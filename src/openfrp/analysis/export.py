"""--export DIR: the session table as CSV and Parquet, written by DuckDB itself (COPY)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from openfrp.analysis.ingest import quote

if TYPE_CHECKING:
    import duckdb

# Lists become text in CSV (one cell); Parquet keeps them as lists.
_CSV_SELECT = """
SELECT * REPLACE (
  array_to_string(codes, ' ') AS codes,
  array_to_string(
    list_transform(evidence, lambda e: strftime(e.ts, '%Y-%m-%dT%H:%M:%S.%fZ') || ' '
                   || e.source || ' ' || e.event || coalesce(' ' || e.code, '')),
    '; ') AS evidence)
FROM sessions ORDER BY start_ts, session_id
"""


def export(con: duckdb.DuckDBPyConnection, directory: str | Path) -> list[Path]:
    """Write sessions.csv and sessions.parquet into `directory`; return their paths."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, parquet_path = out / "sessions.csv", out / "sessions.parquet"
    con.execute(f"COPY ({_CSV_SELECT}) TO {quote(str(csv_path))} (HEADER, DELIMITER ',')")
    con.execute(
        f"COPY (SELECT * FROM sessions ORDER BY start_ts, session_id) "
        f"TO {quote(str(parquet_path))} (FORMAT parquet, COMPRESSION zstd)"
    )
    return [csv_path, parquet_path]
