"""--export DIR: the session table as CSV and Parquet, written by DuckDB itself (COPY).

The evidence column is read from the logs again here: the fleet pass keeps no per-event lists.
"""

from __future__ import annotations

from pathlib import Path

from openfrp.analysis import ingest, sessions
from openfrp.analysis.ingest import quote

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
    con.execute(f"COPY ({_CSV_SELECT}) TO {quote(str(csv_path))} (HEADER, DELIMITER ',')")
    con.execute(
        f"COPY (SELECT * FROM exported ORDER BY start_ts, session_id) "
        f"TO {quote(str(parquet_path))} (FORMAT parquet, COMPRESSION zstd)"
    )
    con.execute("DROP TABLE exported")
    return [csv_path, parquet_path]
