"""Benchmark: the analyzer end to end against DuckDB's bare scan of the same file.

Generates (or reuses, in bench/out/) a simulated fleet log of N events, then runs in fresh
child processes, one after the other:
  1. the bare scan: SELECT count(*) FROM read_json(...) (ignore_errors: the log has bad lines)
  2. the field scan: the same reader extracting the 11 fields the analyzer reads, counted
     (what reading alone costs; the bare count extracts none)
  3. `openfrp analyze LOG --json --quiet` (ingest, sessions, diagnosis, full summary), then
     the same without the native fold (DuckDB's reader aggregates every line; the summaries
     must agree)
  4. `--state DIR` over a copy of the log holding its first 99 %, then again after the last
     1 % is appended (only what was added is read)
Steps 2 and 3 alternate, and each step of 4 repeats, --trials times, and their medians are
compared. It prints wall time and peak RSS of each, the ratios and the analyzer's events per
second.
The package's bytecode is compiled first, as an install does: with PYTHONDONTWRITEBYTECODE set
and the sources changed since, every child compiled them again at start (0.06-0.09 s, 5-8 % of the
run after 1 % growth).
Goals: analyzer at most 1.5x the field scan, under 2 GiB peak RSS; the run after 1 % growth
at most 5 % of the first run.

    .venv/bin/python bench/analyze_10m.py [--events N] [--regen] [--trials N]
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import openfrp
from openfrp.analysis.simulate import simulate

OUT = Path(__file__).resolve().parent / "out"
EVENTS_PER_SESSION = 11
GIB = 1024**3

BARE = """
import duckdb, sys
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
rows = con.sql("SELECT count(*) FROM read_json(?, format='newline_delimited', ignore_errors=true)",
               params=[sys.argv[1]]).fetchall()
print(rows[0][0])
"""

FIELDS = """
import duckdb, sys
from openfrp.analysis import ingest
names = ("ts", "source", "host", "session_id", "user", "account", "launchpad", "event", "code",
         "frp", "attrs")
columns = ", ".join(f"'{n}': '{ingest.EVENT_COLUMNS[n]}'" for n in names)
counts = ", ".join(f'count("{n}")' for n in names)
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
rows = con.sql(f"SELECT {counts} FROM read_json(?, format='newline_delimited', "
               f"ignore_errors=true, columns={{{columns}}})", params=[sys.argv[1]]).fetchall()
print(rows[0][0])
"""


# The analyzer without its native fold: DuckDB's JSON reader aggregates every line.
SQL_ALONE = """
import sys
from openfrp import cli
from openfrp.analysis import native
native._fold = None
sys.exit(cli.main(sys.argv[1:]))
"""


def _without_seconds(report: str) -> str:
    data = json.loads(report)
    del data["seconds"]
    return json.dumps(data, sort_keys=True)


def run_measured(argv: list[str]) -> tuple[float, int, str]:
    """Run a command; return wall seconds, its own peak RSS (os.wait4 on its pid), stdout.

    The disk is flushed first, so that a run that syncs its state file does not wait behind
    the benchmark's own writes (the log copied for --state, the 1 % appended)."""
    os.sync()
    began = time.perf_counter()
    with open(os.devnull, "w") as sink:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=sink, text=True)
        assert proc.stdout is not None
        stdout = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - began
    if status != 0:
        sys.exit(f"{' '.join(argv[:4])} failed with status {status}")
    return wall, usage.ru_maxrss * 1024, stdout


def fleet_log(events: int, regen: bool = False) -> Path:
    """The simulated fleet log of about `events` events in bench/out/, written when missing."""
    log = OUT / f"fleet-{events}.jsonl"
    if regen or not log.exists():
        began = time.perf_counter()
        stats = simulate(log, max(events // EVENTS_PER_SESSION, 1), seed=42, target_events=events)
        print(
            f"simulated {stats.events:,} events, {stats.sessions:,} sessions, "
            f"{stats.bad_lines:,} bad lines in {time.perf_counter() - began:.1f} s"
        )
    return log


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--regen", action="store_true", help="write the log even if it exists")
    parser.add_argument(
        "--trials", type=int, default=3, help="runs of each kind (medians compared)"
    )
    args = parser.parse_args()

    log = fleet_log(args.events, args.regen)
    compileall.compile_dir(Path(openfrp.__file__).parent, quiet=1)
    size = log.stat().st_size
    print(f"log: {log} ({size / GIB:.2f} GiB)")

    bare_wall, bare_rss, bare_out = run_measured([sys.executable, "-c", BARE, str(log)])
    lines = int(bare_out.strip())
    cmd = [sys.executable, "-m", "openfrp.cli", "analyze", str(log), "--json", "--quiet"]
    sql_alone = [sys.executable, "-c", SQL_ALONE, *cmd[3:]]
    fields, walls, alone, rss = [], [], [], 0
    for _ in range(args.trials):  # alternating, so drift of the machine meets both alike
        fields.append(run_measured([sys.executable, "-c", FIELDS, str(log)])[0])
        wall, peak, out = run_measured(cmd)
        walls.append(wall)
        rss = max(rss, peak)
        same, _, alone_out = run_measured(sql_alone)
        alone.append(same)
        if _without_seconds(out) != _without_seconds(alone_out):
            sys.exit("the fold's summary differs from the SQL reader's")
    fields_wall, wall = statistics.median(fields), statistics.median(walls)

    print(f"bare scan   : {bare_wall:7.2f} s  peak RSS {bare_rss / GIB:5.2f} GiB  ({lines:,} rows)")
    print(f"field scan  : {_seconds(fields)} s (median {fields_wall:.2f})")
    print(f"analyzer    : {_seconds(walls)} s (median {wall:.2f})  peak RSS {rss / GIB:5.2f} GiB")
    alone_wall = statistics.median(alone)
    print(f"SQL alone   : {_seconds(alone)} s (median {alone_wall:.2f}), the same summary")
    print(f"ratio       : {wall / bare_wall:7.2f} x the bare scan (goal <= 2.0)")
    print(f"field scan  : {fields_wall / bare_wall:7.2f} x the bare scan")
    print(f"analyzer    : {wall / fields_wall:7.2f} x the field scan, medians (goal <= 1.5)")
    print(f"SQL alone   : {alone_wall / fields_wall:7.2f} x the field scan, medians")
    print(f"throughput  : {lines / wall:,.0f} events/s ({size / wall / 1024**2:,.0f} MiB/s)")
    print(f"memory goal : {'met' if rss < 2 * GIB else 'NOT met'} (< 2 GiB)")
    firsts, addeds = grown_run(log, cmd, args.trials)
    first, added = statistics.median(firsts), statistics.median(addeds)
    print(f"--state     : first {_seconds(firsts)} s, after 1 % more {_seconds(addeds)} s")
    print(f"added run   : {added / first:7.3f} x the first run, medians (goal <= 0.05)")
    return 0


def _seconds(runs: list[float]) -> str:
    return ", ".join(f"{r:.2f}" for r in runs)


def grown_run(log: Path, cmd: list[str], trials: int) -> tuple[list[float], list[float]]:
    """Wall times of `--state` over the log's first 99 % (each from an empty state folder), then
    over the whole after the last 1 % is appended to the same file (each from the state the last
    first run left)."""
    folder = OUT / "grown"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    copy = folder / log.name
    size = log.stat().st_size
    with open(log, "rb") as source, open(copy, "wb") as target:
        shutil.copyfileobj(source, target, 1 << 24)
    with open(copy, "rb+") as handle:
        handle.seek(int(size * 0.99))
        handle.readline()
        cut = handle.tell()
        handle.truncate(cut)
    state, kept = folder / "state", folder / "kept"
    argv = [*cmd[:4], str(copy), *cmd[5:], "--state", str(state)]
    firsts = []
    for _ in range(trials):
        shutil.rmtree(state, ignore_errors=True)
        firsts.append(run_measured(argv)[0])
    shutil.copytree(state, kept)
    with open(log, "rb") as source, open(copy, "ab") as target:
        source.seek(cut)
        shutil.copyfileobj(source, target, 1 << 24)
    addeds = []
    for _ in range(trials):
        shutil.rmtree(state)
        shutil.copytree(kept, state)
        addeds.append(run_measured(argv)[0])
    shutil.rmtree(folder, ignore_errors=True)
    return firsts, addeds


if __name__ == "__main__":
    sys.exit(main())
