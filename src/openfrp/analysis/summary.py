"""The fleet summary every report shares: KPIs, codes by impact, categories, reconnects,
breakdowns and time series, computed by SQL over table `sessions` into plain data.

Each output (terminal, HTML, JSON, thresholds) renders this one structure, so they never
disagree about a number.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any

from openfrp import codes
from openfrp.analysis import rules
from openfrp.analysis.sessions import Analysis
from openfrp.codes import CodeNumber

if TYPE_CHECKING:
    import duckdb

BREAKDOWNS = ("launchpad", "account", "frp", "host", "client")
BREAKDOWN_ROWS = 25
# "For whom" first: who had failed sessions, most first, and the failed sessions themselves.
WHO = ("user", "host", "launchpad", "client")
WHO_ROWS = 25
FAILED_ROWS = 100
FAILED = "phase IN ('setup_failure', 'mid_session_failure')"
# Codes that follow a loss rather than cause one: the idle timeout that ends a session nobody
# came back to, and the terminal's reconnecting. In a session with a loss they are
# consequences; the loss's own code is the root.
CONSEQUENCES = (CodeNumber.IDLE_TIMEOUT, CodeNumber.RECONNECTING)
CONNECT_BIN_MS, CONNECT_LAST_MS = 250, 10_000
TOP_CODES = 40
SERIES_CODES = 6
MAX_BUCKETS = 60
CONCURRENT_QUERIES = 3

KPI_DEFINITIONS = {
    "clock_stepped_back": "sessions whose server clock went back (end before start): "
    "their durations are left out",
    "connection_success_pct": "sessions that became active, of those where a connection was tried",
    "setup_failure_pct": "ended sessions that failed before becoming active",
    "mid_session_drop_pct": "ended sessions that were active and ended in a failure",
    "clean_end_pct": "ended sessions with an expected end",
}


def _concurrently(
    con: duckdb.DuckDBPyConnection, jobs: dict[str, Callable[[duckdb.DuckDBPyConnection], Any]]
) -> dict[str, Any]:
    """Each job's result, the jobs run at once on cursors of their own: most summary queries
    are too small for DuckDB to spread over the cores itself (the summary of one million
    events took 0.10-0.15 s instead of 0.19-0.21 s; of 10 M, 0.48-0.59 s instead of 0.58-0.65)."""

    def run(job: Callable[[duckdb.DuckDBPyConnection], Any]) -> Any:
        cursor = con.cursor()
        try:
            return job(cursor)
        finally:
            cursor.close()

    with ThreadPoolExecutor(CONCURRENT_QUERIES) as pool:
        futures = {name: pool.submit(run, job) for name, job in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    rel = con.sql(sql)
    names = list(rel.columns)
    return [dict(zip(names, row, strict=True)) for row in rel.fetchall()]


def _pct(part: float, whole: float) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


def _kpis(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    row = _rows(
        con,
        """
        SELECT count(*) AS sessions,
          count(*) FILTER (attempted) AS attempted,
          count(*) FILTER (active) AS active,
          count(*) FILTER (ended) AS ended,
          count(*) FILTER (NOT ended) AS open,
          count(*) FILTER (phase = 'setup_failure') AS setup_failures,
          count(*) FILTER (phase = 'mid_session_failure') AS mid_session_failures,
          count(*) FILTER (phase = 'expected_end') AS expected_ends,
          count(*) FILTER (clock_stepped_back) AS clock_stepped_back,
          count(DISTINCT "user") AS users
        FROM sessions
        """,
    )[0]
    row["connection_success_pct"] = _pct(row["active"], row["attempted"])
    row["setup_failure_pct"] = _pct(row["setup_failures"], row["ended"])
    row["mid_session_drop_pct"] = _pct(row["mid_session_failures"], row["ended"])
    row["clean_end_pct"] = _pct(row["expected_ends"], row["ended"])
    return row


def _top_codes(con: duckdb.DuckDBPyConnection, sessions: int) -> list[dict[str, Any]]:
    rows = _rows(
        con,
        f"""
        SELECT code, count(*) AS sessions, count(DISTINCT "user") AS users,
               count(*) FILTER (final_code = code) AS final,
               count(*) FILTER (NOT consequence) AS root,
               count(*) FILTER (consequence) AS consequence
        FROM (SELECT *, code IN ({", ".join(map(str, CONSEQUENCES))}) AND disconnects > 0
                          AS consequence
              FROM (SELECT unnest(codes) AS code, "user", final_code, disconnects FROM sessions))
        GROUP BY code ORDER BY root DESC, sessions DESC, users DESC, code LIMIT {TOP_CODES}
        """,
    )
    for row in rows:
        entry = codes.lookup(row["code"])
        row["name"] = entry.name if entry else "UNKNOWN"
        row["kind"] = entry.kind.value if entry else "Unknown"
        row["message"] = entry.message if entry else codes.describe(row["code"])
        row["action"] = entry.action if entry else "Not an openfrp code: find what sent it."
        row["pct"] = _pct(row["sessions"], sessions)
    return rows


def _categories(con: duckdb.DuckDBPyConnection, ended: int) -> list[dict[str, Any]]:
    counts = {
        row["category"]: row
        for row in _rows(
            con,
            """SELECT category, count(*) AS sessions, count(DISTINCT "user") AS users,
                      count(*) FILTER (phase = 'setup_failure') AS setup,
                      count(*) FILTER (phase = 'mid_session_failure') AS mid_session,
                      count(*) FILTER (NOT ended) AS open
               FROM sessions GROUP BY category""",
        )
    }
    out = []
    for rule in rules.load_rules():
        row = counts.get(rule.category, {"sessions": 0, "users": 0, "setup": 0})
        out.append(
            {
                "category": rule.category,
                "title": rule.title,
                "owner": rule.owner,
                "sessions": row["sessions"],
                "users": row["users"],
                "setup": row.get("setup", 0),
                "mid_session": row.get("mid_session", 0),
                "open": row.get("open", 0),
                "pct": _pct(row["sessions"], ended),
                "explanation": rule.explanation,
                "action": rule.action,
            }
        )
    return out


def _reconnects(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    row = _rows(
        con,
        """
        SELECT count(*) FILTER (disconnects > 0 OR reconnect_attempts > 0) AS disrupted,
          count(*) FILTER (recovered) AS recovered,
          coalesce(sum(disconnects), 0) AS incidents,
          coalesce(sum(incidents_recovered), 0) AS incidents_recovered,
          count(*) FILTER (gave_up) AS gave_up,
          count(*) FILTER ((disconnects > 0 OR reconnect_attempts > 0)
                           AND NOT recovered AND NOT gave_up) AS not_resumed,
          sum(reconnect_attempts) AS attempts,
          quantile_cont(recovery_ms, 0.5) AS recovery_p50_ms,
          quantile_cont(recovery_ms, 0.95) AS recovery_p95_ms,
          quantile_cont(time_to_connect_ms, 0.5) AS time_to_connect_p50_ms,
          quantile_cont(time_to_connect_ms, 0.95) AS time_to_connect_p95_ms
        FROM sessions
        """,
    )[0]
    row["attempts"] = int(row["attempts"] or 0)
    row["incidents"] = int(row["incidents"])
    row["incidents_recovered"] = int(row["incidents_recovered"])
    # Per incident: each loss of a connection the network took, resumed or not.
    row["recovered_pct"] = _pct(row["incidents_recovered"], row["incidents"])
    for key in ("recovery_p50_ms", "recovery_p95_ms", "time_to_connect_p50_ms"):
        row[key] = round(row[key], 1) if row[key] is not None else None
    key = "time_to_connect_p95_ms"
    row[key] = round(row[key], 1) if row[key] is not None else None
    return row


def _breakdown(con: duckdb.DuckDBPyConnection, column: str) -> list[dict[str, Any]]:
    """Per value: the KPIs and its most frequent failure (a tie goes to the first name
    alphabetically; DuckDB's mode() broke ties differently from run to run)."""
    counts = {
        "n": "true",
        "active": "active",
        "attempted": "attempted",
        "ended": "ended",
        "setup": "phase = 'setup_failure'",
        "mid": "phase = 'mid_session_failure'",
        "clean": "phase = 'expected_end'",
    }
    inner = ", ".join(f"count(*) FILTER ({test}) AS {name}" for name, test in counts.items())
    total = {name: f"sum({name})::BIGINT" for name in counts}
    return _rows(
        con,
        f"""
        SELECT value, {total["n"]} AS sessions,
          round(100.0 * {total["active"]} / greatest({total["attempted"]}, 1), 2)
            AS connection_success_pct,
          round(100.0 * {total["setup"]} / greatest({total["ended"]}, 1), 2) AS setup_failure_pct,
          round(100.0 * {total["mid"]} / greatest({total["ended"]}, 1), 2) AS mid_session_drop_pct,
          round(100.0 * {total["clean"]} / greatest({total["ended"]}, 1), 2) AS clean_end_pct,
          first(category ORDER BY n DESC, CAST(category AS VARCHAR))
            FILTER (category <> 'expected_end') AS top_failure
        FROM (
          SELECT coalesce(CAST("{column}" AS VARCHAR), '(none)') AS value, category, {inner}
          FROM sessions GROUP BY ALL
        )
        GROUP BY value ORDER BY sessions DESC, value LIMIT {BREAKDOWN_ROWS}
        """,
    )


def _who(con: duckdb.DuckDBPyConnection, column: str) -> list[dict[str, Any]]:
    """Who had failed sessions, most first, with the cause that failed them most often."""
    return _rows(
        con,
        f"""
        SELECT value, sum(n) FILTER (failed) AS failed, sum(n) AS sessions,
          first(category ORDER BY n DESC, CAST(category AS VARCHAR)) FILTER (failed) AS top_cause,
          max(last_ts) FILTER (failed) AS last_failed
        FROM (
          SELECT coalesce(CAST("{column}" AS VARCHAR), '(none)') AS value, category,
            {FAILED} AS failed, count(*) AS n, max(start_ts) AS last_ts
          FROM sessions GROUP BY ALL
        )
        GROUP BY value HAVING sum(n) FILTER (failed) > 0
        ORDER BY failed DESC, sessions DESC, value LIMIT {WHO_ROWS}
        """,
    )


def _failed_sessions(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """The latest failed sessions, each the key to its timeline (--session ID)."""
    rows = _rows(
        con,
        f"""
        SELECT session_id, "user", host, start_ts, category, phase, final_code
        FROM sessions WHERE {FAILED}
        ORDER BY start_ts DESC NULLS LAST, session_id LIMIT {FAILED_ROWS}
        """,
    )
    for row in rows:
        row["start_ts"] = row["start_ts"].isoformat() + "Z" if row["start_ts"] else None
    return rows


def _series(con: duckdb.DuckDBPyConnection, top: list[int]) -> dict[str, Any]:
    """Per-bucket sessions, failures and top codes; the bucket width keeps charts readable."""
    span = _rows(
        con, "SELECT min(start_ts) AS lo, max(start_ts) AS hi FROM sessions WHERE start_ts NOT NULL"
    )[0]
    if span["lo"] is None:
        return {"bucket_seconds": 0, "buckets": [], "codes": [], "durations": [], "connect": []}
    seconds = max((span["hi"] - span["lo"]).total_seconds(), 1.0)
    width = next(
        (w for w in (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400) if seconds / w <= MAX_BUCKETS),
        7 * 86400,
    )
    per_code = "".join(
        f", count(*) FILTER (list_contains(codes, {code})) AS c{i}" for i, code in enumerate(top)
    )
    buckets = _rows(
        con,
        f"""
        SELECT time_bucket(INTERVAL '{width} seconds', start_ts) AS t,
          count(*) AS sessions,
          count(*) FILTER (phase IN ('setup_failure', 'mid_session_failure')) AS failures
          {per_code}
        FROM sessions WHERE start_ts IS NOT NULL GROUP BY 1 ORDER BY 1
        """,
    )
    for row in buckets:
        row["t"] = row["t"].isoformat()
        row["failure_pct"] = _pct(row["failures"], row["sessions"])
        row["code_counts"] = [row.pop(f"c{i}") for i in range(len(top))]
    durations = _rows(
        con,
        """
        SELECT category, count(*) AS sessions,
          quantile_cont(duration_s, [0.1, 0.25, 0.5, 0.75, 0.9]) AS q
        FROM sessions WHERE ended AND duration_s IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1
        """,
    )
    found = dict(
        con.sql(
            f"""
            SELECT least(floor(time_to_connect_ms / {CONNECT_BIN_MS}) * {CONNECT_BIN_MS},
                         {CONNECT_LAST_MS})::INTEGER, count(*)
            FROM sessions WHERE time_to_connect_ms >= 0 GROUP BY 1
            """
        ).fetchall()
    )
    # Every bin, empty ones too, so the bars stand on a true time axis.
    last = max(found, default=0)
    connect = [
        {"ms": ms, "sessions": int(found.get(ms, 0))}
        for ms in range(0, last + CONNECT_BIN_MS, CONNECT_BIN_MS)
    ]
    return {
        "bucket_seconds": width,
        "buckets": buckets,
        "codes": top,
        "durations": durations,
        "connect": connect,
    }


def scope_text(scope: dict[str, Any]) -> str:
    """The report's scope in one line ('' for the whole input), for the text and HTML reports."""
    parts = [f"{k} {v}" for k, v in (("since", scope["since"]), ("until", scope["until"])) if v]
    parts += [f"{k} {' or '.join(v)}" for k, v in scope.items() if k not in ("since", "until")]
    return "sessions " + ", ".join(parts) if parts else ""


def build(analysis: Analysis, scope: dict[str, Any] | None = None) -> dict[str, Any]:
    """The whole summary as JSON-ready data; `scope` says which sessions the table holds."""
    con = analysis.con
    kpis = _kpis(con)
    top = _top_codes(con, kpis["sessions"])
    series_codes = [row["code"] for row in top if row["kind"] != "Info"][:SERIES_CODES]
    jobs: dict[str, Callable[[duckdb.DuckDBPyConnection], Any]] = {
        "categories": lambda c: _categories(c, kpis["ended"]),
        "reconnects": _reconnects,
        "failed_sessions": _failed_sessions,
        "series": lambda c: _series(c, series_codes),
    }
    jobs |= {f"who {column}": partial(_who, column=column) for column in WHO}
    jobs |= {f"by {column}": partial(_breakdown, column=column) for column in BREAKDOWNS}
    found = _concurrently(con, jobs)
    summary: dict[str, Any] = {
        "inputs": [f.path for f in analysis.files],
        "scope": scope or {"since": None, "until": None},
        "events": analysis.events,
        "seconds": round(analysis.seconds, 3),
        "bad_lines": {
            "count": analysis.bad_count,
            "by_file": analysis.bad_by_file,
            "lines": [
                {"file": b.path, "line": b.line, "reason": b.reason} for b in analysis.bad_lines
            ],
        },
        "bad_files": analysis.bad_files,
        "kpis": kpis,
        "kpi_definitions": KPI_DEFINITIONS,
        "top_codes": top,
        "categories": found["categories"],
        "reconnects": found["reconnects"],
        "who": {column: found[f"who {column}"] for column in WHO},
        "failed_sessions": found["failed_sessions"],
        "breakdowns": {column: found[f"by {column}"] for column in BREAKDOWNS},
        "series": found["series"],
    }
    summary["metrics"] = metrics(summary)
    return summary


def metrics(summary: dict[str, Any]) -> dict[str, float]:
    """Flat numbers that --fail-if may test, by name."""
    kpis = summary["kpis"]
    rec = summary["reconnects"]
    out: dict[str, float] = {
        "sessions": kpis["sessions"],
        "events": summary["events"],
        "bad_lines": summary["bad_lines"]["count"],
        "bad_files": len(summary["bad_files"]),
        "open_sessions": kpis["open"],
        "connection_success_pct": kpis["connection_success_pct"],
        "setup_failure_pct": kpis["setup_failure_pct"],
        "mid_session_drop_pct": kpis["mid_session_drop_pct"],
        "clean_end_pct": kpis["clean_end_pct"],
        "reconnect_recovered_pct": rec["recovered_pct"],
        "recovery_p50_ms": rec["recovery_p50_ms"] or 0.0,
        "recovery_p95_ms": rec["recovery_p95_ms"] or 0.0,
        "time_to_connect_p50_ms": rec["time_to_connect_p50_ms"] or 0.0,
        "time_to_connect_p95_ms": rec["time_to_connect_p95_ms"] or 0.0,
    }
    for cat in summary["categories"]:
        out[f"{cat['category']}_pct"] = cat["pct"]
        out[f"{cat['category']}_sessions"] = cat["sessions"]
    seen = {row["code"]: row["sessions"] for row in summary["top_codes"]}
    for code in codes.TABLE:
        out[f"code_{code.number}_sessions"] = seen.get(code.number, 0)
    return out


def metric_names() -> set[str]:
    """Every name metrics() produces, known before any log is read (so typos fail fast)."""
    names = {
        "sessions",
        "events",
        "bad_lines",
        "bad_files",
        "open_sessions",
        "connection_success_pct",
        "setup_failure_pct",
        "mid_session_drop_pct",
        "clean_end_pct",
        "reconnect_recovered_pct",
        "recovery_p50_ms",
        "recovery_p95_ms",
        "time_to_connect_p50_ms",
        "time_to_connect_p95_ms",
    }
    for rule in rules.load_rules():
        names |= {f"{rule.category}_pct", f"{rule.category}_sessions"}
    return names | {f"code_{code.number}_sessions" for code in codes.TABLE}
