"""--html FILE: one self-contained page (inline CSS and SVG, no script, no network)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

from openfrp.analysis import charts
from openfrp.analysis.summary import scope_text

MAX_SPAN = 500  # buckets a trend line spans at most, empty ones included

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1100px;
       color: #222; padding: 0 1rem; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: .3rem .5rem; text-align: left;
         vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.kpis { display: flex; gap: 1rem; flex-wrap: wrap; }
.kpi { border: 1px solid #ddd; border-radius: 6px; padding: .6rem 1rem; min-width: 10rem; }
.kpi b { display: block; font-size: 1.5rem; }
.chart { max-width: 100%; height: auto; display: block; margin: 1rem 0; }
.chart-title { font-weight: 600; font-size: 13px; }
.tick { font-size: 11px; fill: #555; } .grid { stroke: #eee; }
.muted { color: #666; }
.kpi small { display: block; color: #666; max-width: 14rem; font-size: 12px; }
details { margin: .3rem 0; } details table { font-size: 12px; }
"""


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], table_id: str) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for value in row:
            if isinstance(value, int | float) and not isinstance(value, bool):
                text = f"{value:,.2f}" if isinstance(value, float) else f"{value:,}"
                cells.append(f'<td class="num">{text}</td>')
            else:
                cells.append(f"<td>{escape('-' if value is None else str(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table id="{table_id}"><tr>{head}</tr>{"".join(body)}</table>'


def _share(value: float | None) -> str:
    """A key figure's percentage; '-' when it has no data (a share of no sessions)."""
    return "-" if value is None else f"{value:.2f} %"


def every_bucket(buckets: list[dict[str, Any]], seconds: int, codes: int) -> list[dict[str, Any]]:
    """The summary's buckets (those that hold sessions) with the empty ones between them as
    zeros, so the trend lines stand on a true time axis (three buckets minutes apart and one
    hours later are not evenly spaced). At most MAX_SPAN of them: a log that grew past its
    buckets' width keeps only the ones that hold sessions."""
    if len(buckets) < 2 or seconds <= 0:
        return buckets
    found = {datetime.fromisoformat(row["t"]): row for row in buckets}
    first, last = min(found), max(found)
    span = int((last - first).total_seconds() // seconds) + 1
    if span > MAX_SPAN:
        return buckets
    empty = {"sessions": 0, "failures": 0, "failure_pct": None, "code_counts": [0] * codes}
    steps = (first + timedelta(seconds=seconds * i) for i in range(span))
    return [found.get(t) or {**empty, "t": t.isoformat()} for t in steps]


def _charts(summary: dict[str, Any]) -> list[str]:
    series = summary["series"]
    buckets = every_bucket(series["buckets"], series["bucket_seconds"], len(series["codes"]))
    labels = [row["t"][5:16].replace("T", " ") for row in buckets]
    out = [
        charts.lines(
            "chart-failure-rate",
            "Sessions started and failed per interval (counts: a rate over few sessions "
            "is no spike)",
            labels,
            [
                ("failed", [float(row["failures"]) for row in buckets]),
                ("sessions", [float(row["sessions"]) for row in buckets]),
            ],
        ),
        charts.lines(
            "chart-codes-over-time",
            "Error codes over time (sessions affected per interval)",
            labels,
            [
                (str(code), [float(row["code_counts"][i]) for row in buckets])
                for i, code in enumerate(series["codes"])
            ],
        ),
        charts.boxes(
            "chart-duration",
            "Session duration by end reason (p10, p25, median, p75, p90; minutes)",
            [
                (row["category"], [v / 60 for v in row["q"]])
                for row in series["durations"]
                if row["q"] is not None
            ],
            " min",
        ),
        charts.bars(
            "chart-time-to-connect",
            "Time to connect (sessions per 250 ms bin, every bin drawn; last bin is 10 s or more)",
            [f"{row['ms'] / 1000:g}s" for row in series["connect"]],
            [float(row["sessions"]) for row in series["connect"]],
        ),
    ]
    return out


def _anchor(session_id: str) -> str:
    return "s-" + "".join(c if c.isalnum() or c in "-_" else "_" for c in session_id)


def _who(summary: dict[str, Any]) -> list[str]:
    """For whom: who had failed sessions, then the latest failed sessions, each linked to its
    timeline further down the page."""
    parts = ["<h2>For whom</h2>"]
    if not any(summary["who"].values()):
        parts.append("<p class='muted'>No session failed.</p>")
    for column, rows in summary["who"].items():
        if rows:
            parts.append(f"<h3>Failed sessions by {escape(column)}</h3>")
            parts.append(
                _table(
                    (column, "failed", "sessions", "top cause"),
                    [(r["value"], r["failed"], r["sessions"], r["top_cause"]) for r in rows],
                    f"table-who-{column}",
                )
            )
    timelines = summary.get("timelines", {})
    rows = []
    for r in summary["failed_sessions"]:
        sid = escape(r["session_id"])
        link = (
            f'<a href="#{_anchor(r["session_id"])}">{sid}</a>'
            if r["session_id"] in timelines
            else sid
        )
        cells = [r["user"], r["start_ts"], r["category"], r["phase"], r["final_code"]]
        rows.append(
            f"<tr><td>{link}</td>"
            + "".join(f"<td>{escape('-' if v is None else str(v))}</td>" for v in cells)
            + "</tr>"
        )
    if rows:
        head = "".join(
            f"<th>{h}</th>" for h in ("session", "user", "start", "cause", "phase", "final code")
        )
        parts.append("<h3>Latest failed sessions</h3>")
        parts.append(f'<table id="table-failed"><tr>{head}</tr>{"".join(rows)}</table>')
    for sid, events in timelines.items():
        parts.append(
            f'<details id="{_anchor(sid)}"><summary>Timeline of {escape(sid)} '
            f"(server clock; full detail: <code>openfrp analyze LOGS --session "
            f"{escape(sid)}</code>)</summary>"
            + _table(
                ("time", "side", "event", "code"),
                [
                    (
                        e["ts"],
                        e["source"],
                        e["event"],
                        f"{e['code']} {e['name']}" if e["code"] else "",
                    )
                    for e in events
                ],
                f"timeline-{_anchor(sid)}",
            )
            + "</details>"
        )
    return parts


def render(summary: dict[str, Any]) -> str:
    kpis = summary["kpis"]
    rec = summary["reconnects"]
    defs = summary["kpi_definitions"]
    cards = [
        (
            "Connection success",
            _share(kpis["connection_success_pct"]),
            defs["connection_success_pct"],
        ),
        ("Setup failures", _share(kpis["setup_failure_pct"]), defs["setup_failure_pct"]),
        (
            "Mid-session drops",
            _share(kpis["mid_session_drop_pct"]),
            defs["mid_session_drop_pct"],
        ),
        ("Clean ends", _share(kpis["clean_end_pct"]), defs["clean_end_pct"]),
        ("Sessions", f"{kpis['sessions']:,}", "sessions in the logs (and the scope)"),
        ("Open", f"{kpis['open']:,}", "sessions not ended by the end of the logs"),
        ("Users", f"{kpis['users']:,}", "distinct users with a session"),
    ]
    if kpis["clock_stepped_back"]:
        cards.append(
            ("Clock stepped back", f"{kpis['clock_stepped_back']:,}", defs["clock_stepped_back"])
        )
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>openfrp session analysis</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>openfrp session analysis</h1>",
        f"<p class='muted'>{escape(', '.join(summary['inputs']))}: {summary['events']:,} events, "
        f"{summary['bad_lines']['count']:,} bad lines.</p>",
        f"<p class='muted'>Scope: {escape(scope_text(summary['scope']))}</p>"
        if scope_text(summary["scope"])
        else "",
        "<div class='kpis'>"
        + "".join(
            f"<div class='kpi'>{escape(k)}<b>{escape(v)}</b><small>{escape(d)}</small></div>"
            for k, v, d in cards
        )
        + "</div>",
        "".join(
            f"<p><b>Bad file, not analyzed:</b> {escape(path)}: {escape(why)}</p>"
            for path, why in summary["bad_files"].items()
        ),
        *_who(summary),
        "<h2>Trends</h2>",
        *_charts(summary),
        "<h2>How sessions ended</h2>",
        _table(
            ("category", "sessions", "%", "users", "owner", "explanation", "action"),
            [
                (
                    c["title"],
                    c["sessions"],
                    c["pct"],
                    c["users"],
                    c["owner"],
                    c["explanation"],
                    c["action"],
                )
                for c in summary["categories"]
                if c["sessions"]
            ],
            "table-categories",
        ),
        "<h2>Codes by impact</h2>",
        "<p class='muted'>root: sessions where the code is a cause; after a loss: sessions "
        "where it only followed a lost connection (4009 idle timeout, 4103 reconnecting).</p>",
        _table(
            ("code", "name", "root", "after a loss", "users", "final", "message", "action"),
            [
                (
                    str(r["code"]),
                    r["name"],
                    r["root"],
                    r["consequence"],
                    r["users"],
                    r["final"],
                    r["message"],
                    r["action"],
                )
                for r in summary["top_codes"]
            ],
            "table-codes",
        ),
        "<h2>Reconnects</h2>",
        _table(
            (
                "disrupted",
                "last loss resumed",
                "gave up (4106)",
                "never resumed",
                "losses",
                "losses resumed %",
                "recovery p50 ms",
                "recovery p95 ms",
            ),
            [
                (
                    rec["disrupted"],
                    rec["recovered"],
                    rec["gave_up"],
                    rec["not_resumed"],
                    rec["incidents"],
                    rec["recovered_pct"],
                    rec["recovery_p50_ms"],
                    rec["recovery_p95_ms"],
                )
            ],
            "table-reconnects",
        ),
    ]
    for column, rows in summary["breakdowns"].items():
        parts.append(f"<h2>By {escape(column)}</h2>")
        parts.append(
            _table(
                (
                    "value",
                    "sessions",
                    "success %",
                    "setup fail %",
                    "drop %",
                    "clean %",
                    "top failure",
                ),
                [
                    (
                        r["value"],
                        r["sessions"],
                        r["connection_success_pct"],
                        r["setup_failure_pct"],
                        r["mid_session_drop_pct"],
                        r["clean_end_pct"],
                        r["top_failure"],
                    )
                    for r in rows
                ],
                f"table-{column}",
            )
        )
    bad = summary["bad_lines"]
    if bad["count"]:
        parts.append("<h2>Bad lines</h2>")
        parts.append(
            _table(
                ("file", "line", "reason"),
                [(b["file"], str(b["line"]), b["reason"]) for b in bad["lines"]],
                "table-bad-lines",
            )
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def write(summary: dict[str, Any], path: str | Path) -> Path:
    """Write the report whole or not at all: into a file beside `path`, renamed into place, so
    a full disk leaves no half report (an earlier one stays). A device or a pipe (/dev/stdout)
    is written to as it is. A failure raises the OSError that names `path`."""
    out = Path(path)
    page = render(summary)
    direct = out.exists() and not out.is_file()
    temp = out if direct else out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(temp, "w", encoding="utf-8") as handle:
            handle.write(page)
        if not direct:
            os.replace(temp, out)
    except OSError as exc:
        if not direct:
            temp.unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(out)) from None
    return out
