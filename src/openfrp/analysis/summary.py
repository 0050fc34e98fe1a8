"""The fleet summary every report shares: KPIs, codes by impact, categories, reconnects,
breakdowns and time series, computed by SQL into plain data.

Most of it is read from the rollups (rollups.py), small group tables of table `sessions` that
--state keeps up to date; the latest failed sessions, and the few durations the quantiles need
(quantiles.py), are read from the sessions. Each output (terminal, HTML, JSON, thresholds)
renders this one structure, so they never disagree about a number.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from openfrp import codes
from openfrp.analysis import quantiles, rollups, rules
from openfrp.analysis.rollups import BREAKDOWNS, FAILED, WHO, Rollups
from openfrp.analysis.sessions import Analysis

if TYPE_CHECKING:
    import duckdb

BREAKDOWN_ROWS = 25
# "For whom" first: who had failed sessions, most first, and the failed sessions themselves.
WHO_ROWS = 25
FAILED_ROWS = 100
CONNECT_BIN_MS, CONNECT_LAST_MS = 250, 10_000
TOP_CODES = 40
SERIES_CODES = 6

# What a metric with no data lacked (no_data); a category's share lacks ended sessions.
_NO_DATA = {
    "connection_success_pct": "no session tried to connect",
    "setup_failure_pct": "no session ended",
    "mid_session_drop_pct": "no session ended",
    "clean_end_pct": "no session ended",
    "reconnect_recovered_pct": "no losses",
    "recovery_p50_ms": "no loss was resumed",
    "recovery_p95_ms": "no loss was resumed",
    "time_to_connect_p50_ms": "no connection time was measured",
    "time_to_connect_p95_ms": "no connection time was measured",
}

KPI_DEFINITIONS = {
    "clock_stepped_back": "sessions whose server clock went back (end before start): "
    "their durations are left out",
    "connection_success_pct": "sessions that became active, of those where a connection was tried",
    "setup_failure_pct": "ended sessions that failed before becoming active",
    "mid_session_drop_pct": "ended sessions that were active and ended in a failure",
    "clean_end_pct": "ended sessions with an expected end",
}


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    rel = con.execute(sql)
    names = [column[0] for column in rel.description]
    return [dict(zip(names, row, strict=True)) for row in rel.fetchall()]


def _pct(part: float, whole: float) -> float | None:
    """A percentage, or None (no data) of nothing: 0 % of no sessions would read as a fact."""
    return round(100.0 * part / whole, 2) if whole else None


def _count(test: str = "true") -> str:
    """Sessions of a rollup's rows that pass `test`: 0, like count(*), when none do."""
    return f"coalesce(sum(n) FILTER ({test}), 0)"


def _kpis(con: duckdb.DuckDBPyConnection, r: Rollups) -> dict[str, Any]:
    row = _rows(
        con,
        f"""
        SELECT {_count()} AS sessions,
          {_count("attempted")} AS attempted,
          {_count("active")} AS active,
          {_count("ended")} AS ended,
          {_count("NOT ended")} AS open,
          {_count("phase = 'setup_failure'")} AS setup_failures,
          {_count("phase = 'mid_session_failure'")} AS mid_session_failures,
          {_count("phase = 'expected_end'")} AS expected_ends,
          {_count("clock_stepped_back")} AS clock_stepped_back,
          count(DISTINCT "user") AS users
        FROM {r.table("people")}
        """,
    )[0]
    row["connection_success_pct"] = _pct(row["active"], row["attempted"])
    row["setup_failure_pct"] = _pct(row["setup_failures"], row["ended"])
    row["mid_session_drop_pct"] = _pct(row["mid_session_failures"], row["ended"])
    row["clean_end_pct"] = _pct(row["expected_ends"], row["ended"])
    return row


def _top_codes(con: duckdb.DuckDBPyConnection, r: Rollups, sessions: int) -> list[dict[str, Any]]:
    rows = _rows(
        con,
        f"""
        SELECT code, {_count()} AS sessions, count(DISTINCT "user") AS users,
               {_count("final")} AS final,
               {_count("NOT consequence")} AS root,
               {_count("consequence")} AS consequence
        FROM {r.table("codes")}
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


def _categories(con: duckdb.DuckDBPyConnection, r: Rollups, ended: int) -> list[dict[str, Any]]:
    counts = {
        row["category"]: row
        for row in _rows(
            con,
            # How sessions ended: a session still open has not, whatever its events so far.
            f"""SELECT category, {_count("ended")} AS sessions,
                      count(DISTINCT "user") FILTER (ended) AS users,
                      {_count("phase = 'setup_failure'")} AS setup,
                      {_count("phase = 'mid_session_failure'")} AS mid_session,
                      {_count("NOT ended")} AS open
               FROM {r.table("people")} GROUP BY category""",
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


def _reconnects(con: duckdb.DuckDBPyConnection, r: Rollups) -> dict[str, Any]:
    row = _rows(
        con,
        f"""
        SELECT {_count("disrupted")} AS disrupted,
          {_count("recovered")} AS recovered,
          coalesce(sum(disconnects), 0) AS incidents,
          coalesce(sum(incidents_recovered), 0) AS incidents_recovered,
          {_count("gave_up")} AS gave_up,
          {_count("disrupted AND NOT recovered AND NOT gave_up")} AS not_resumed,
          sum(reconnect_attempts) AS attempts
        FROM {r.table("reconnects")}
        """,
    )[0]
    row["attempts"] = int(row["attempts"] or 0)
    row["incidents"] = int(row["incidents"])
    row["incidents_recovered"] = int(row["incidents_recovered"])
    for name, table in (("recovery", "recovery"), ("time_to_connect", "connect")):
        counted = con.execute(f"SELECT ms, n FROM {r.table(table)} ORDER BY ms").fetchall()
        for q in (50, 95):
            found = quantiles.from_counts(counted, q / 100)
            row[f"{name}_p{q}_ms"] = round(found, 1) if found is not None else None
    # Per incident: each loss of a connection the network took, resumed or not.
    row["recovered_pct"] = _pct(row["incidents_recovered"], row["incidents"])
    return row


def _breakdown(con: duckdb.DuckDBPyConnection, r: Rollups, column: str) -> list[dict[str, Any]]:
    """Per value: the KPIs (None, no data, for a share of no sessions) and the cause of most
    of its failed sessions (a tie goes to the first name alphabetically; DuckDB's mode() broke
    ties differently from run to run): none when none failed, an open session being no
    failure."""
    counts = {
        "n": "true",
        "active": "active",
        "attempted": "attempted",
        "ended": "ended",
        "setup": "phase = 'setup_failure'",
        "mid": "phase = 'mid_session_failure'",
        "clean": "phase = 'expected_end'",
    }
    inner = ", ".join(f"{_count(test)} AS {name}" for name, test in counts.items())
    total = {name: f"sum({name})::BIGINT" for name in counts}
    return _rows(
        con,
        f"""
        SELECT value, {total["n"]} AS sessions,
          round(100.0 * {total["active"]} / nullif({total["attempted"]}, 0), 2)
            AS connection_success_pct,
          round(100.0 * {total["setup"]} / nullif({total["ended"]}, 0), 2) AS setup_failure_pct,
          round(100.0 * {total["mid"]} / nullif({total["ended"]}, 0), 2) AS mid_session_drop_pct,
          round(100.0 * {total["clean"]} / nullif({total["ended"]}, 0), 2) AS clean_end_pct,
          first(category ORDER BY setup + mid DESC, CAST(category AS VARCHAR))
            FILTER (setup + mid > 0) AS top_failure
        FROM (
          SELECT value, category, {inner} FROM {r.table("by")} WHERE dim = '{column}' GROUP BY ALL
        )
        GROUP BY value ORDER BY sessions DESC, value LIMIT {BREAKDOWN_ROWS}
        """,
    )


def _who(con: duckdb.DuckDBPyConnection, r: Rollups, column: str) -> list[dict[str, Any]]:
    """Who had failed sessions, most first, with the cause that failed them most often."""
    return _rows(
        con,
        f"""
        SELECT value, sum(n) FILTER (failed) AS failed, sum(n) AS sessions,
          first(category ORDER BY n DESC, CAST(category AS VARCHAR)) FILTER (failed) AS top_cause,
          max(latest) FILTER (failed) AS last_failed
        FROM {r.table("who")} WHERE dim = '{column}'
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


def _series(con: duckdb.DuckDBPyConnection, r: Rollups, top: list[int]) -> dict[str, Any]:
    """Per-bucket sessions, failures and top codes (rollups.bucket_width), the connect times."""
    per_code = "".join(
        f", {_count(f'list_contains(codes, {code})')} AS c{i}" for i, code in enumerate(top)
    )
    buckets = _rows(
        con,
        f"""
        SELECT t, {_count()} AS sessions, {_count("failed")} AS failures {per_code}
        FROM {r.table("buckets")} GROUP BY 1 ORDER BY 1
        """,
    )
    if not buckets:
        return {"bucket_seconds": 0, "buckets": [], "codes": [], "durations": [], "connect": []}
    for row in buckets:
        row["t"] = row["t"].isoformat()
        row["failure_pct"] = _pct(row["failures"], row["sessions"])
        row["code_counts"] = [row.pop(f"c{i}") for i in range(len(top))]
    found = dict(
        con.execute(
            f"""
            SELECT least(floor(ms / {CONNECT_BIN_MS}) * {CONNECT_BIN_MS},
                         {CONNECT_LAST_MS})::INTEGER, sum(n)
            FROM {r.table("connect")} WHERE ms >= 0 GROUP BY 1
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
        "bucket_seconds": r.width,
        "buckets": buckets,
        "codes": top,
        "durations": quantiles.durations(con, r.table("durations")),
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
    r = analysis.rollups or rollups.build(con, "sessions")
    analysis.rollups = r
    kpis = _kpis(con, r)
    top = _top_codes(con, r, kpis["sessions"])
    series_codes = [row["code"] for row in top if row["kind"] != "Info"][:SERIES_CODES]
    jobs: dict[str, Callable[[duckdb.DuckDBPyConnection], Any]] = {
        "failed_sessions": _failed_sessions,
        "categories": lambda c: _categories(c, r, kpis["ended"]),
        "reconnects": lambda c: _reconnects(c, r),
        "series": lambda c: _series(c, r, series_codes),
    }
    jobs |= {f"who {column}": partial(_who, r=r, column=column) for column in WHO}
    jobs |= {f"by {column}": partial(_breakdown, r=r, column=column) for column in BREAKDOWNS}
    found = rollups.concurrently(con, jobs)
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


def metrics(summary: dict[str, Any]) -> dict[str, float | None]:
    """Flat numbers that --fail-if may test, by name; None when there is nothing to measure
    (why: no_data)."""
    kpis = summary["kpis"]
    rec = summary["reconnects"]
    out: dict[str, float | None] = {
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
        "recovery_p50_ms": rec["recovery_p50_ms"],
        "recovery_p95_ms": rec["recovery_p95_ms"],
        "time_to_connect_p50_ms": rec["time_to_connect_p50_ms"],
        "time_to_connect_p95_ms": rec["time_to_connect_p95_ms"],
    }
    for cat in summary["categories"]:
        out[f"{cat['category']}_pct"] = cat["pct"]
        out[f"{cat['category']}_sessions"] = cat["sessions"]
    seen = {row["code"]: row["sessions"] for row in summary["top_codes"]}
    for code in codes.TABLE:
        out[f"code_{code.number}_sessions"] = seen.get(code.number, 0)
    return out


def no_data(metric: str) -> str:
    """Why `metric` can have no data: what a share or a time of it would be measured over."""
    return _NO_DATA.get(metric, "no session ended")  # the categories' shares of ended ones


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
