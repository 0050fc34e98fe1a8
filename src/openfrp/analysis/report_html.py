"""--html FILE: one self-contained page (inline CSS and SVG, no script, no network)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from openfrp.analysis import charts
from openfrp.analysis.summary import scope_text

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


def _charts(summary: dict[str, Any]) -> list[str]:
    series = summary["series"]
    buckets = series["buckets"]
    labels = [row["t"][5:16].replace("T", " ") for row in buckets]
    out = [
        charts.lines(
            "chart-failure-rate",
            "Failure rate over time (% of sessions started in each interval)",
            labels,
            [("failures %", [row["failure_pct"] for row in buckets])],
            "%",
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
            "Time to connect (sessions per 250 ms; last bin is 10 s or more)",
            [f"{row['ms'] / 1000:g}s" for row in series["connect"]],
            [float(row["sessions"]) for row in series["connect"]],
        ),
    ]
    return out


def render(summary: dict[str, Any]) -> str:
    kpis = summary["kpis"]
    rec = summary["reconnects"]
    cards = [
        ("Connection success", f"{kpis['connection_success_pct']:.2f} %"),
        ("Setup failures", f"{kpis['setup_failure_pct']:.2f} %"),
        ("Mid-session drops", f"{kpis['mid_session_drop_pct']:.2f} %"),
        ("Clean ends", f"{kpis['clean_end_pct']:.2f} %"),
        ("Sessions", f"{kpis['sessions']:,}"),
        ("Users", f"{kpis['users']:,}"),
    ]
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
        + "".join(f"<div class='kpi'>{escape(k)}<b>{escape(v)}</b></div>" for k, v in cards)
        + "</div>",
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
        _table(
            ("code", "name", "sessions", "users", "final", "message", "action"),
            [
                (
                    str(r["code"]),
                    r["name"],
                    r["sessions"],
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
                "recovered",
                "gave up (4106)",
                "never resumed",
                "recovered %",
                "recovery p50 ms",
                "recovery p95 ms",
            ),
            [
                (
                    rec["disrupted"],
                    rec["recovered"],
                    rec["gave_up"],
                    rec["not_resumed"],
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
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(summary), encoding="utf-8")
    return out
