"""The terminal summary and session timeline, rendered with rich from the shared summary.

Every value read from a log goes through `_safe`: a user name such as `[/x]` is text, not
rich markup, and control characters (escape sequences) are shown, never sent to the
operator's terminal."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from openfrp.analysis.summary import scope_text

BAD_LINES_PRINTED = 20
CODES_PRINTED = 15
WHO_PRINTED = 10
FAILED_PRINTED = 20


class ReportConsole(Console):
    """A console whose reader going away (`| head`) ends the run as cli.main says, with status
    141: rich's own handling exits 1, the status of a --fail-if threshold crossed."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


def _safe(value: Any) -> str:
    """`value` as printable text that rich shows as it is."""
    text = "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(value)
    )
    return escape(text)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return _safe(value)


def _code(value: int | None) -> str:
    """A code as the identifier it is: 4009, never 4,009."""
    return "-" if value is None else str(value)


def _share(value: float | None, digits: int = 2, unit: str = "") -> str:
    """A percentage; '-' when it has no data (a share of no sessions), like a time never
    measured."""
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.1f} s" if value >= 1000 else f"{value:.0f} ms"


def print_summary(summary: dict[str, Any], console: Console) -> None:
    kpis = summary["kpis"]
    console.rule("[bold]openfrp session analysis")
    console.print(
        f"{len(summary['inputs'])} file(s), {summary['events']:,} events, "
        f"{kpis['sessions']:,} sessions, {kpis['users']:,} users, "
        f"analyzed in {summary['seconds']:.1f} s"
    )
    if scope_text(summary["scope"]):
        scope = _safe(scope_text(summary["scope"]))
        console.print(f"Scope: {scope} (events and bad lines: all input)")
        if not kpis["sessions"]:
            console.print(
                "[bold]No session in this scope:[/] check --since/--until and the filters."
            )
    table = Table(title="Key figures", show_header=True)
    for column in ("connection success", "setup failure", "mid-session drop", "clean end", "open"):
        table.add_column(column, justify="right")
    table.add_row(
        _share(kpis["connection_success_pct"], unit=" %"),
        _share(kpis["setup_failure_pct"], unit=" %"),
        _share(kpis["mid_session_drop_pct"], unit=" %"),
        _share(kpis["clean_end_pct"], unit=" %"),
        _fmt(kpis["open"]),
    )
    console.print(table)
    if kpis["clock_stepped_back"]:
        console.print(
            f"[yellow]Server clock stepped back in {kpis['clock_stepped_back']:,} session(s)[/] "
            "(ended before they started): their durations are left out; check the hosts' NTP.",
            highlight=False,
        )
    print_who(summary, console)

    table = Table(title="How sessions ended")
    for column in ("category", "sessions", "%", "users", "setup", "mid-session", "owner", "action"):
        table.add_column(column, overflow="fold")
    for cat in summary["categories"]:
        if cat["sessions"]:
            table.add_row(
                cat["title"],
                _fmt(cat["sessions"]),
                _share(cat["pct"]),
                _fmt(cat["users"]),
                _fmt(cat["setup"]),
                _fmt(cat["mid_session"]),
                cat["owner"],
                cat["action"],
            )
    if table.rows:
        console.print(table)
    else:
        console.print(
            f"[bold]How sessions ended:[/] none has ended yet ({_fmt(kpis['open'])} open)"
        )

    table = Table(
        title="Codes by impact (root: a cause; after a loss: 4009/4103 that followed one)"
    )
    for column in ("code", "name", "root", "after a loss", "users", "final", "message", "action"):
        table.add_column(column, overflow="fold")
    for row in summary["top_codes"][:CODES_PRINTED]:
        table.add_row(
            str(row["code"]),
            row["name"],
            _fmt(row["root"]),
            _fmt(row["consequence"]),
            _fmt(row["users"]),
            _fmt(row["final"]),
            row["message"],
            row["action"],
        )
    console.print(table if table.rows else "[bold]Codes:[/] none was logged")

    rec = summary["reconnects"]
    console.print(
        f"[bold]Reconnects:[/] {_fmt(rec['disrupted'])} sessions disrupted, "
        f"{_fmt(rec['recovered'])} recovered, {_fmt(rec['gave_up'])} gave up (4106), "
        f"{_fmt(rec['not_resumed'])} never resumed; {_fmt(rec['incidents'])} losses, "
        f"{_share(rec['recovered_pct'], 1, ' %')} of them resumed; "
        f"time to recover p50 {_ms(rec['recovery_p50_ms'])}, p95 {_ms(rec['recovery_p95_ms'])}; "
        f"time to connect p50 {_ms(rec['time_to_connect_p50_ms'])}, "
        f"p95 {_ms(rec['time_to_connect_p95_ms'])}"
    )
    for column, rows in summary["breakdowns"].items():
        table = Table(title=f"By {column}")
        for name in ("value", "sessions", "success %", "setup fail %", "drop %", "clean %"):
            table.add_column(name, justify="left" if name == "value" else "right")
        table.add_column("top failure")
        for row in rows:
            table.add_row(
                _fmt(row["value"]),
                _fmt(row["sessions"]),
                _share(row["connection_success_pct"]),
                _share(row["setup_failure_pct"]),
                _share(row["mid_session_drop_pct"]),
                _share(row["clean_end_pct"]),
                _fmt(row["top_failure"] or "-"),
            )
        console.print(table)
    print_bad_lines(summary, console)


def print_who(summary: dict[str, Any], console: Console) -> None:
    """For whom: users (then hosts, launchpads, clients) by failed sessions, and the latest
    failed sessions with the command that shows each one's timeline."""
    for column, rows in summary["who"].items():
        if not rows:
            continue
        table = Table(title=f"Failed sessions by {column}")
        for name in (column, "failed", "sessions", "top cause"):
            table.add_column(name, justify="left" if name in (column, "top cause") else "right")
        for row in rows[:WHO_PRINTED]:
            table.add_row(
                _fmt(row["value"]),
                _fmt(row["failed"]),
                _fmt(row["sessions"]),
                _fmt(row["top_cause"]),
            )
        console.print(table)
    failed = summary["failed_sessions"]
    if not failed:
        return
    table = Table(title="Latest failed sessions (timeline: openfrp analyze LOGS --session ID)")
    for name in ("session", "user", "start", "cause", "phase", "final code"):
        table.add_column(name, overflow="fold")
    for row in failed[:FAILED_PRINTED]:
        table.add_row(
            _fmt(row["session_id"]),
            _fmt(row["user"]),
            _fmt(row["start_ts"]),
            _fmt(row["category"]),
            _fmt(row["phase"]),
            _code(row["final_code"]),
        )
    console.print(table)


def print_bad_lines(summary: dict[str, Any], console: Console) -> None:
    for path, reason in summary["bad_files"].items():
        console.print(
            f"[red]bad file, not analyzed:[/] {_safe(path)}: {_safe(reason)}", highlight=False
        )
    bad = summary["bad_lines"]
    if not bad["count"]:
        return
    per_file = ", ".join(f"{_safe(path)}: {n:,}" for path, n in bad["by_file"].items())
    console.print(f"[yellow]{bad['count']:,} bad line(s)[/] ({per_file})", highlight=False)
    for item in bad["lines"][:BAD_LINES_PRINTED]:
        where = f"{_safe(item['file'])}:{item['line']}: {_safe(item['reason'])}"
        console.print(f"  {where}", highlight=False)
    if bad["count"] > BAD_LINES_PRINTED:
        console.print(f"  ... and {bad['count'] - BAD_LINES_PRINTED:,} more (see --json)")


def print_timeline(data: dict[str, Any], console: Console) -> None:
    facts = data["session"]
    diag = data["diagnosis"]
    facts = {
        k: v if isinstance(v, int | float | bool) or v is None else _safe(v)
        for k, v in facts.items()
    }
    console.rule(f"[bold]session {facts['session_id']}")
    console.print(
        f"user {facts['user']}  account {facts['account']}  launchpad {facts['launchpad']}  "
        f"host {facts['host']}  FRP {_fmt(facts['frp'])}  client {facts['client'] or '-'}",
        highlight=False,
    )
    is_open = facts["phase"] == "open"
    end = "last seen" if is_open else "end"
    so_far = " so far" if is_open else ""
    console.print(
        f"start {facts['start_ts']}  {end} {facts['end_ts']}  "
        f"duration {_fmt(facts['duration_s'])} s{so_far}"
        f"  time to connect {_ms(facts['time_to_connect_ms'])}  "
        f"terminal clock skew {_fmt(facts['skew_ms'])} ms"
        + ("  [server clock stepped back]" if facts["clock_stepped_back"] else ""),
        highlight=False,
    )
    console.print(
        f"final code: {_fmt(data['final'] or '-')}  phase: {facts['phase']}  "
        f"losses {facts['disconnects']} ({facts['incidents_recovered']} resumed), "
        f"reconnect attempts {facts['reconnect_attempts']}, "
        f"last loss resumed: {'yes' if facts['recovered'] else 'no'} "
        f"({_ms(facts['recovery_ms'])})",
        highlight=False,
    )
    table = Table(title="Timeline (server clock)")
    for column in ("time", "side", "event", "code", "attrs", "line"):
        table.add_column(column, overflow="fold")
    for item in data["events"]:
        code = f"{item['code']} {_safe(item['name'])}" if item["code"] is not None else ""
        attrs = ", ".join(f"{k}={v}" for k, v in item["attrs"].items() if k != "code_name")
        cells = (item["ts"], item["source"], item["event"], code, attrs, item["where"])
        table.add_row(*(cell if cell is code else _safe(cell) for cell in cells))
    console.print(table)
    if is_open:  # nothing ended: no cause to name, only where it was left
        told = [e for e in data["events"] if e["event"] != "stats"] or data["events"]
        last = told[-1] if told else None
        seen = f"{last['event']} ({last['source']}) at {last['ts']}" if last else "-"
        console.print("[bold]Still open[/] at the end of these logs: no end to explain yet.")
        console.print(f"Last seen: {_safe(seen)}.", highlight=False)
        console.print(
            "[bold]Action:[/] none if it still runs (`openfrp sessions` lists it); if it "
            "should have ended, add the logs that hold its end (another host's, a rotated "
            "file).",
            highlight=False,
        )
        return
    console.print(f"[bold]Diagnosis: {diag['title']}[/] (fault owner: {diag['owner']})")
    console.print(diag["explanation"], highlight=False)
    console.print(f"[bold]Action:[/] {diag['action']}", highlight=False)
    console.print("[bold]Evidence:[/]")
    for e in diag["evidence"]:
        code = f" {e['code']} {_safe(e['name'])}" if e["code"] is not None else ""
        line = f"{_safe(e['ts'])} {_safe(e['source'])} {_safe(e['event'])}{code}"
        console.print(f"  {line}", highlight=False)
