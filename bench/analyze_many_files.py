"""Benchmark: the analyzer over many log files against the same lines in one file.

Real fleets log to many files (one per host and day, one per terminal). Splits a simulated
fleet log into N files (every third gzipped), then runs `openfrp analyze --json --quiet` in
fresh child processes over the one file and over the N files, and prints both wall times and
their ratio (1.0: files cost nothing).

    .venv/bin/python bench/analyze_many_files.py [--events N] [--files N]
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import subprocess
import sys
import time
from pathlib import Path

from analyze_10m import OUT, fleet_log


def analyze_seconds(patterns: list[str]) -> float:
    began = time.perf_counter()
    cmd = [sys.executable, "-m", "openfrp.cli", "analyze", *patterns, "--json", "--quiet"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - began


def split(log: Path, files: int, into: Path) -> None:
    lines = log.read_text(encoding="utf-8").splitlines(keepends=True)
    size = len(lines) // files + 1
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    for k, start in enumerate(range(0, len(lines), size)):
        chunk = "".join(lines[start : start + size])
        if k % 3 == 0:
            with gzip.open(into / f"part-{k:05d}.jsonl.gz", "wt", compresslevel=1) as handle:
                handle.write(chunk)
        else:
            (into / f"part-{k:05d}.jsonl").write_text(chunk, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=1000)
    args = parser.parse_args()

    log = fleet_log(args.events)
    parts = OUT / f"parts-{args.events}-{args.files}"
    split(log, args.files, parts)
    one = analyze_seconds([str(log)])
    many = analyze_seconds([str(parts / "*.jsonl*")])
    print(f"one file    : {one:6.2f} s  ({log.name})")
    print(f"{args.files} files  : {many:6.2f} s  (every third gzipped)")
    print(f"ratio       : {many / one:6.2f} x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
