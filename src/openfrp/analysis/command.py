"""`openfrp analyze` and `openfrp simulate`.

DuckDB and rich are imported inside the handlers so that `openfrp --help` and the other
sub-commands start fast. Exit codes of `openfrp analyze`:

    0    analyzed (files that cannot be read are named as bad files, the rest is analyzed)
    1    a --fail-if threshold was crossed; one on a metric with no data (a share of no
         sessions, a time never measured) is not checked, which stderr says
    2    a user mistake, in one line: no such file, no file matches a glob, a directory or a
         FIFO given as a log, --html onto a directory, --export onto a file, a bad --fail-if
         or --since, no readable input, a report, export or --state folder that cannot be
         written (a full disk)
    130  interrupted (Ctrl-C); a --state run interrupted while it writes leaves the state as
         it was
    141  the reader of the output went away (`| head`); the --html and --export files are
         written before anything is printed, so they are complete
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from openfrp.analysis.scope import Scope
    from openfrp.analysis.sessions import Analysis
    from openfrp.analysis.thresholds import Threshold

EXIT_THRESHOLD = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _fail(command: str, message: str) -> int:
    print(f"openfrp {command}: {message}", file=sys.stderr)
    return EXIT_USAGE


def _with_progress(
    quiet: bool, label: str, total: float, work: Callable[[Callable[[float], None] | None], Any]
) -> Any:
    """Run `work`, giving it a callback that moves a rich progress bar on a terminal's stderr."""
    if quiet:
        return work(None)
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeElapsedColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        return work(None)
    columns = (f"[bold]{label}", BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(label, total=total)
        return work(lambda done: progress.update(task, completed=done))


def _cmd_analyze(args: argparse.Namespace) -> int:
    from openfrp.analysis import scope as scope_mod
    from openfrp.analysis import summary as summary_mod
    from openfrp.analysis import thresholds

    try:
        limits = [thresholds.parse(text, summary_mod.metric_names()) for text in args.fail_if]
        only = {name: getattr(args, name) for name in scope_mod.FIELDS}
        scope = scope_mod.Scope.from_options(args.since, args.until, only)
    except (thresholds.ThresholdError, scope_mod.ScopeError) as exc:
        return _fail("analyze", str(exc))
    problem = _output_problem(args.html, args.export)
    if problem:
        return _fail("analyze", problem)
    try:
        return _analyze(args, limits, scope)
    except KeyboardInterrupt:
        pass
    except RuntimeError as exc:  # how DuckDB ends a query that Ctrl-C interrupted
        if str(exc) != "Query interrupted":
            raise
    print("openfrp analyze: interrupted", file=sys.stderr)
    return EXIT_INTERRUPTED


def _output_problem(html: str | None, export_dir: str | None) -> str:
    """Why --html or --export cannot be written where asked, before any work is done."""
    from pathlib import Path

    if html and Path(html).is_dir():
        return f"--html {html}: is a directory; name the report file, e.g. {html}/report.html"
    if export_dir and Path(export_dir).exists() and not Path(export_dir).is_dir():
        return f"--export {export_dir}: is a file; --export takes a directory"
    if export_dir:
        for path in (Path(export_dir) / "sessions.csv", Path(export_dir) / "sessions.parquet"):
            if path.is_dir():
                return (
                    f"--export {export_dir}: {path} is a directory; remove it or export elsewhere"
                )
    return ""


def _console() -> Console:
    """The terminal report's console: rich is imported only for a terminal report (importing
    it cost every --json run about 0.05 s)."""
    from rich.console import Console

    from openfrp.analysis.report_text import ReportConsole

    return ReportConsole(width=max(140, Console().width))


def _analyze(args: argparse.Namespace, limits: list[Threshold], scope: Scope) -> int:
    from openfrp.analysis import ingest, sessions

    try:
        analysis = _with_progress(
            args.quiet,
            "analyzing",
            100.0,
            lambda cb: sessions.analyze(args.logs, progress=cb, state_dir=args.state, hold=True),
        )
    except ingest.InputError as exc:
        return _fail("analyze", str(exc))
    try:
        return _report(args, analysis, limits, scope)
    finally:
        analysis.release(keep_sessions=False)


def _report(
    args: argparse.Namespace, analysis: Analysis, limits: list[Threshold], scope: Scope
) -> int:
    from openfrp.analysis import summary as summary_mod
    from openfrp.analysis import thresholds, timeline

    if args.session is not None:
        try:
            data = timeline.timeline(analysis, args.session)
        except timeline.UnknownSession as exc:
            return _fail("analyze", str(exc))
        if args.json:
            print(json.dumps(data, indent=2, default=str))
        else:
            from openfrp.analysis import report_text

            report_text.print_timeline(data, _console())
        if not limits and not args.html and not args.export:
            return 0

    if scope.active:  # after --session, which finds a session wherever it started
        analysis.narrow(scope.where())
    summary = summary_mod.build(analysis, scope.describe())
    # Files first: a reader that stops early (`| head`) must not cost the report.
    written: list[str] = []
    try:
        if args.html:
            from openfrp.analysis import report_html

            summary["timelines"] = timeline.brief(analysis, summary["failed_sessions"])
            written.append(f"HTML report: {report_html.write(summary, args.html)}")
            del summary["timelines"]
        if args.export:
            from openfrp.analysis import export

            written += [f"exported: {path}" for path in export.export(analysis, args.export)]
    except OSError as exc:
        return _fail("analyze", f"cannot write {exc.filename or 'the report'}: {exc.strerror}")
    if args.json and args.session is None:
        print(json.dumps(summary, indent=2, default=str))
    elif args.session is None:
        from openfrp.analysis import report_text

        report_text.print_summary(summary, _console())
    for line in written:
        print(line, file=sys.stderr)
    for line in thresholds.unchecked(limits, summary["metrics"], summary_mod.no_data):
        print(f"openfrp analyze: not checked: {line}", file=sys.stderr)
    crossed = thresholds.crossed(limits, summary["metrics"])
    for line in crossed:
        print(f"openfrp analyze: threshold crossed: {line}", file=sys.stderr)
    return EXIT_THRESHOLD if crossed else 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from openfrp.analysis.simulate import simulate

    if args.sessions < 1:
        return _fail("simulate", "--sessions must be at least 1")
    try:
        stats = _with_progress(
            args.quiet,
            "simulating",
            float(args.sessions * 12),
            lambda cb: simulate(args.out, args.sessions, seed=args.seed, progress=cb),
        )
    except OSError as exc:
        return _fail("simulate", f"cannot write {args.out}: {exc.strerror}")
    print(
        f"{args.out}: {stats.sessions:,} sessions, {stats.events:,} events, "
        f"{stats.bad_lines:,} bad lines; truth in {args.out}.truth.json"
    )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "analyze",
        help="explain why sessions ended, from event logs",
        description="Read JSONL (plain or .gz) and Parquet event logs, rebuild every session, "
        "diagnose how it ended and report.",
    )
    p.add_argument("logs", nargs="+", metavar="LOG", help="log files or globs")
    p.add_argument("--html", metavar="FILE", help="write a self-contained HTML report")
    p.add_argument("--session", metavar="ID", help="show one session's timeline and diagnosis")
    p.add_argument("--export", metavar="DIR", help="write sessions.csv and sessions.parquet")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument(
        "--fail-if",
        action="append",
        default=[],
        metavar="EXPR",
        help="exit 1 when METRIC OP VALUE holds, e.g. 'mid_session_drop_pct>5' (repeatable)",
    )
    p.add_argument(
        "--since", metavar="WHEN", help="only sessions that started then or later: ISO time or 24h"
    )
    p.add_argument("--until", metavar="WHEN", help="only sessions that started before then")
    for name in ("account", "launchpad", "user", "host"):
        p.add_argument(
            f"--{name}", action="append", metavar="NAME", help=f"only this {name} (repeatable)"
        )
    p.add_argument(
        "--state",
        metavar="DIR",
        help="keep what was read in DIR; the next run over the same, grown logs reads only "
        "what was added (same answer as a full run)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_cmd_analyze)

    p = sub.add_parser("simulate", help="write a simulated fleet log with its ground truth")
    p.add_argument("--sessions", type=int, required=True, metavar="N", help="sessions to write")
    p.add_argument("--out", required=True, metavar="FILE", help="JSONL; gzip if it ends in .gz")
    p.add_argument("--seed", type=int, default=1, help="random seed (same seed, same log)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_cmd_simulate)
