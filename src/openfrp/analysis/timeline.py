"""--session ID: one session's events from both sides on one clock, with its diagnosis.

Terminal times are moved onto the server's clock by the session's estimated skew, so the
merged order is what happened, not an artefact of a terminal clock that runs ahead.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from openfrp import codes
from openfrp.analysis import ingest, rules
from openfrp.analysis.sessions import Analysis, evidence_sql


class UnknownSession(LookupError):
    """The session id is not in the logs."""


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="microseconds") + "Z" if value is not None else None


def _code_name(code: int | None) -> str | None:
    if code is None:
        return None
    entry = codes.lookup(code)
    return entry.name if entry else "UNKNOWN"


def _holding(analysis: Analysis, session_id: str) -> list[ingest.LogFile]:
    """The files with the session's events: numbering lines runs on one thread per file, so
    among many files only these are numbered, after one parallel scan that finds them."""
    if len(analysis.files) == 1:
        return analysis.files
    scan = ingest.events_sql(analysis.con, analysis.files, numbered=False)
    found = analysis.con.execute(
        f"SELECT DISTINCT file FROM ({scan}) WHERE session_id = {ingest.quote(session_id)}"
    ).fetchall()
    paths = {str(row[0]) for row in found}
    return [log for log in analysis.files if log.path in paths]


def timeline(analysis: Analysis, session_id: str) -> dict[str, Any]:
    con = analysis.con
    rel = con.execute(f"SELECT * FROM sessions WHERE session_id = {ingest.quote(session_id)}")
    names = [column[0] for column in rel.description]
    found = rel.fetchall()
    if not found:
        raise UnknownSession(f"session {session_id} is not in the logs")
    facts = dict(zip(names, found[0], strict=True))
    skew = timedelta(milliseconds=facts["skew_ms"] or 0)
    events_sql = ingest.events_sql(con, _holding(analysis, session_id))
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE timeline_events AS SELECT * FROM ({events_sql}) "
        f"WHERE session_id = {ingest.quote(session_id)} AND NOT fatal"
    )
    rows = con.execute(
        "SELECT file, line, ts, source, event, code, attrs FROM timeline_events"
    ).fetchall()
    found_evidence = con.execute(evidence_sql("SELECT * FROM timeline_events")).fetchall()
    con.execute("DROP TABLE timeline_events")
    items: list[dict[str, Any]] = []
    seen: dict[tuple[Any, ...], dict[str, Any]] = {}
    for file, line, ts, source, event, code, attrs in rows:
        where = f"{file}:{line}"
        key = (ts, source, event, code, attrs)
        if key in seen:  # a terminal event shipped to the server log is in both logs
            seen[key]["also"].append(where)
            continue
        on_server = ts if source == "server" else ts - skew
        seen[key] = {
            "ts": _iso(on_server),
            "logged_ts": _iso(ts),
            "source": source,
            "event": event,
            "code": code,
            "name": _code_name(code),
            "attrs": json.loads(attrs) if attrs else {},
            "where": where,
            "also": [],
        }
        items.append(seen[key])
    items.sort(key=lambda item: (item["ts"] or "", item["where"]))
    rule = rules.by_category()[facts["category"]]
    evidence = [
        {
            "ts": _iso(e["ts"] if e["source"] == "server" else e["ts"] - skew),
            "source": e["source"],
            "event": e["event"],
            "code": e["code"],
            "name": _code_name(e["code"]),
        }
        for e in (found_evidence[0][1] if found_evidence else [])
    ]
    for name in ("start_ts", "end_ts"):
        facts[name] = _iso(facts[name])
    final = facts["final_code"]
    return {
        "session": facts,
        "final": codes.describe(final) if final is not None else None,
        "diagnosis": {
            "category": rule.category,
            "title": rule.title,
            "owner": rule.owner,
            "explanation": rule.explanation,
            "action": rule.action,
            "evidence": evidence,
        },
        "events": items,
    }


BRIEF_SESSIONS = 50


def brief(analysis: Analysis, sessions: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The events of the first BRIEF_SESSIONS of `sessions` (rows with session_id), on the
    server's clock, read in one parallel pass: the HTML report links each to its timeline."""
    wanted = [row["session_id"] for row in sessions[:BRIEF_SESSIONS]]
    if not wanted:
        return {}
    con = analysis.con
    ids = ingest.quote_list(wanted)
    scan = ingest.events_sql(con, analysis.files, numbered=False)
    rows = con.execute(
        f"""
        SELECT DISTINCT e.session_id,
          CASE WHEN e.source = 'terminal'
               THEN e.ts - to_milliseconds(coalesce(s.skew_ms, 0)) ELSE e.ts END AS at,
          e.source, e.event, e.code
        FROM ({scan}) e JOIN sessions s USING (session_id)
        WHERE e.session_id IN ({ids}) AND NOT e.fatal
        ORDER BY 1, 2, 3, 4
        """
    ).fetchall()
    out: dict[str, list[dict[str, Any]]] = {sid: [] for sid in wanted}
    for sid, at, source, event, code in rows:
        out[sid].append(
            {
                "ts": _iso(at),
                "source": source,
                "event": event,
                "code": code,
                "name": _code_name(code),
            }
        )
    return out
