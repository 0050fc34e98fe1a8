"""The display stream against its peers: fps drawn, Mbit/s on the wire, CPU and latency.

Each system runs on its own Xvfb of the same size with the same content, one after another in
the same run: openfrp (`openfrp serve` with the browser terminal in headless Chromium over FRP7
and over FRP8, whose WebRTC track a real coturn relays, and the Python terminal), x11vnc +
websockify + noVNC in the same Chromium, and ffmpeg x11grab + libx264 ultrafast/zerolatency as
the encoder reference. Workloads: a scrolling xterm, full-screen motion (ffplay testsrc2) and a
static screen; on demand (`--workloads desktop`) the scrolling xterm with testsrc2 playing in a
window a third of the screen's size over its bottom right, where text and video share frames,
and (`--workloads scrolling-aa`) the scrolling xterm in an antialiased font.

Figures per (system, workload): frames drawn per second (animation frames in which the page's
visible canvas was drawn on, but for the first part of a picture in two frames, or its <video>
presented frames, each counted (its presentedFrames); what the Python terminal printed; encoded
frames for ffmpeg) beside the frames per second the motion source really drew (ffplay drops
frames on a busy machine), Mbit/s sent to the terminal (bytes through a loopback relay in front
of the system; the peer connection's received bytes over FRP8), server CPU in % of one core (the
server process and its children but Xvfb; x11vnc plus websockify for noVNC), terminal CPU (every
Chromium process, or the Python terminal), the longest time between two frames drawn (a stall;
browser pages only), and glass-to-glass latency: a square on the display flips colour
(python-xlib, drawn when XSync returns) and the page notes when its drawn picture shows the new
colour.

Latency measured one system after the other moves with the machine's load between the runs
(noVNC's own p50 went from 52 to 72 ms in two runs minutes apart). `--paired` puts noVNC on
the display of openfrp's session instead, both pages watching it at once: each flip is timed
on both, so the ratio of the two holds whatever the load.

    bench/video.py --quick --json    # 1280x720, one session, under 3 minutes
    bench/video.py --paired          # latency only: openfrp and noVNC on one display
    bench/video.py                   # also 1920x1080, 4 sessions and the Python terminal
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.rig import (
    CHROMIUM,
    Flipper,
    Procs,
    Workload,
    cpu_pct,
    cpu_ticks,
    have,
    page_clock,
    percentile,
)
from bench.systems import RUNNERS, Group, Stack, novnc_on
from tests.e2e.browser import ARGS

WORKLOADS = ("scrolling", "motion", "static")
# On demand: text scrolling with a video beside it; the xterm in an antialiased font.
MORE_WORKLOADS = ("desktop", "scrolling-aa")
WARMUP = 1.5


def latency(stack: Stack, flipper: Flipper, trials: int) -> tuple[list[float], int]:
    """Glass-to-glass times in ms of `trials` colour flips, and how many never showed."""
    times, missed = paired([stack.page], flipper, trials)
    return times[0], missed


def paired(pages: list[Any], flipper: Flipper, trials: int) -> tuple[list[list[float]], int]:
    """Glass-to-glass times in ms of each page for the same `trials` flips, and how many
    flips some page never showed within 2 s (those count for none)."""
    offsets = [page_clock(page) for page in pages]
    times: list[list[float]] = [[] for _ in pages]
    missed = 0
    for _ in range(trials):
        time.sleep(random.uniform(0.12, 0.25))  # no lock-step with the frame cadence
        want = list(flipper.COLOURS[flipper.state ^ 1])
        x, y = flipper.centre()
        seen = []
        for page in pages:
            page.evaluate("([x, y, rgb]) => window.__bench.armColour(x, y, rgb, 70)", [x, y, want])
            seen.append(page.evaluate("window.__bench.hits.length"))
        _, flipped = flipper.flip()
        hits: list[float | None] = [None] * len(pages)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and None in hits:
            for k, page in enumerate(pages):
                if hits[k] is None:
                    found = page.evaluate("window.__bench.hits")
                    if len(found) > seen[k]:
                        hits[k] = found[-1] - offsets[k] - flipped * 1000.0
            time.sleep(0.005)
        for page in pages:
            page.evaluate("window.__bench.probe = null")
        shown = [hit for hit in hits if hit is not None]
        if len(shown) < len(pages):
            missed += 1
            continue
        for found_times, hit in zip(times, shown, strict=True):
            found_times.append(hit)
    return times, missed


def run_paired(size: tuple[int, int], args: argparse.Namespace, root: Path, browser: Any) -> None:
    """openfrp's browser terminal and noVNC on the same session display, flips timed on both."""
    group = Group(root / f"paired-{size[0]}x{size[1]}")
    group.root.mkdir(parents=True)
    flipper = None
    try:
        ours = RUNNERS["openfrp-browser"](group, size, browser)
        group.closers.append(ours.close)
        theirs = novnc_on(Procs(), ours.display, ours.xauthority, ours.size, browser)
        group.closers.append(theirs.close)
        flipper = Flipper(ours.display, ours.size, ours.xauthority)
        for workload in args.workloads:
            procs = Procs()
            load = Workload(procs, workload, ours.display, ours.size, ours.xauthority)
            try:
                time.sleep(WARMUP + args.seconds)
                times, _ = paired([ours.page, theirs.page], flipper, args.trials)
            finally:
                procs.stop_all()
                load.close()
            p50s = [percentile(t, 0.5) for t in times]
            for name, found, p50 in zip(("openfrp-browser", "novnc"), times, p50s, strict=True):
                row = {
                    "system": name,
                    "workload": workload,
                    "size": f"{ours.size[0]}x{ours.size[1]}",
                    "sessions": 1,
                    "paired": True,
                    "trials": len(found),
                    "latency_ms_p50": None if p50 is None else round(p50, 1),
                    "latency_ms_p90": None
                    if (p90 := percentile(found, 0.9)) is None
                    else round(p90, 1),
                    "load_1min": round(os.getloadavg()[0], 1),
                }
                if name == "novnc" and p50s[0] is not None and p50 is not None and p50 > 0:
                    row["openfrp_over_novnc_p50"] = round(p50s[0] / p50, 2)
                emit(row, args.json)
    finally:
        if flipper is not None:
            flipper.close()
        group.close()


def measure(
    stacks: list[Stack], flipper: Flipper | None, workload: str, seconds: float, trials: int
) -> dict[str, Any]:
    procs = Procs()
    loads: list[Workload] = []
    try:
        for stack in stacks:
            loads.append(Workload(procs, workload, stack.display, stack.size, stack.xauthority))
        time.sleep(WARMUP)
        for stack in stacks:
            stack.begin()
        shown = loads[0].shown()
        for _ in range(30):  # a busy ffplay is slow to print its first status line
            if shown is not None or workload not in ("motion", "desktop"):
                break
            time.sleep(0.1)
            shown = loads[0].shown()
        servers = sorted({pid for stack in stacks for pid in stack.server_pids()})
        terminals = sorted({pid for stack in stacks for pid in stack.terminal_pids()})
        pages = [stack.page for stack in stacks if stack.page is not None]
        for page in pages:
            page.evaluate("window.__bench.stall = 0; window.__bench.lastAt = null")
        frames0 = [stack.frames() for stack in stacks]
        bytes0 = [stack.wire_bytes() for stack in stacks]
        cpu0, term0, t0 = cpu_ticks(servers), cpu_ticks(terminals), time.monotonic()
        time.sleep(seconds)
        cpu1, term1, t1 = cpu_ticks(servers), cpu_ticks(terminals), time.monotonic()
        bytes1 = [stack.wire_bytes() for stack in stacks]
        elapsed = t1 - t0
        stall = max((page.evaluate("window.__bench.stall") for page in pages), default=None)
        source = loads[0].source_fps(shown)
        fps = [stack.fps(frames, elapsed) for stack, frames in zip(stacks, frames0, strict=True)]
        row: dict[str, Any] = {
            "load_1min": round(os.getloadavg()[0], 1),  # others' work on the machine
            "codec": stacks[0].codec(),
            "fps": round(sum(fps) / len(stacks), 1),
            "source_fps": None if source is None else round(source, 1),
            "mbit_s": round(
                sum(b - a for a, b in zip(bytes0, bytes1, strict=True)) * 8 / elapsed / 1e6, 3
            ),
            "server_cpu_pct": round(cpu_pct(cpu0, cpu1, elapsed), 1),
            "terminal_cpu_pct": round(cpu_pct(term0, term1, elapsed), 1) if terminals else None,
            "stall_ms": None if not stall or workload == "static" else round(stall),
            "latency_ms_p50": None,
            "latency_ms_p90": None,
        }
        if flipper is not None and stacks[0].page is not None and trials:
            times, missed = latency(stacks[0], flipper, trials)
            p50, p90 = percentile(times, 0.5), percentile(times, 0.9)
            row["latency_ms_p50"] = round(p50, 1) if p50 is not None else None
            row["latency_ms_p90"] = round(p90, 1) if p90 is not None else None
            row["latency_missed"] = missed
        return row
    finally:
        procs.stop_all()
        for load in loads:
            load.close()


def run_system(
    name: str,
    size: tuple[int, int],
    sessions: int,
    args: argparse.Namespace,
    root: Path,
    browser: Any,
) -> list[dict[str, Any]]:
    stacks: list[Stack] = []
    flipper = None
    rows = []
    group = Group(root / f"{name}-{size[0]}x{size[1]}-{sessions}")
    group.root.mkdir(parents=True)
    try:
        for _ in range(sessions):
            stacks.append(RUNNERS[name](group, size, browser))
        actual = stacks[0].size
        if stacks[0].page is not None:
            flipper = Flipper(stacks[0].display, actual, stacks[0].xauthority)
        for workload in args.workloads:
            row = {
                "system": name,
                "workload": workload,
                "size": f"{actual[0]}x{actual[1]}",
                "sessions": sessions,
            }
            try:
                row |= measure(stacks, flipper, workload, args.seconds, args.trials)
            except Exception as exc:
                row["error"] = f"{type(exc).__name__}: {exc}"[:300]
            rows.append(row)
            emit(row, args.json)
    except Exception as exc:
        row = {
            "system": name,
            "workload": "-",
            "size": f"{size[0]}x{size[1]}",
            "sessions": sessions,
            "error": f"{type(exc).__name__}: {exc}"[:300],
        }
        rows.append(row)
        emit(row, args.json)
    finally:
        if flipper is not None:
            flipper.close()
        for stack in stacks:
            stack.close()
        group.close()
    return rows


def emit(row: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(row), flush=True)
        return
    if "error" in row:
        print(
            f"{row['system']:<16} {row['workload']:<10} {row['size']:>9} error: {row['error']}",
            flush=True,
        )
        return

    def cell(key: str, fmt: str) -> str:
        width = fmt.split(".")[0]
        return format("-", f">{width}") if row.get(key) is None else format(row[key], fmt)

    print(
        f"{row['system']:<16} {row['workload']:<10} {row['size']:>9} {row['sessions']:>2} "
        f"{row.get('codec') or '-':<8} "
        f"{cell('fps', '6.1f')} {cell('source_fps', '5.1f')} {cell('mbit_s', '8.2f')} "
        f"{cell('server_cpu_pct', '7.0f')} "
        f"{cell('terminal_cpu_pct', '7.0f')} {cell('latency_ms_p50', '7.0f')} "
        f"{cell('latency_ms_p90', '7.0f')} {cell('load_1min', '5.1f')}"
        + (f"  p50 {ratio:.2f}x noVNC's" if (ratio := row.get("openfrp_over_novnc_p50")) else ""),
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1280x720, one session, short")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--systems", nargs="+", choices=sorted(RUNNERS))
    parser.add_argument(
        "--workloads", nargs="+", choices=WORKLOADS + MORE_WORKLOADS, default=list(WORKLOADS)
    )
    parser.add_argument("--sizes", nargs="+", help="WxH, e.g. 1280x720")
    parser.add_argument("--sessions", nargs="+", type=int)
    parser.add_argument("--seconds", type=float, help="measuring window per workload")
    parser.add_argument("--trials", type=int, help="colour flips per latency figure")
    parser.add_argument("--keep", type=Path, help="keep the event logs in this folder")
    parser.add_argument(
        "--paired", action="store_true", help="latency only: openfrp and noVNC on one display"
    )
    args = parser.parse_args()
    quick = args.quick
    args.systems = args.systems or (
        ["openfrp-browser", "openfrp-frp8", "novnc", "ffmpeg-x264"] if quick else list(RUNNERS)
    )
    args.sizes = args.sizes or (["1280x720"] if quick else ["1280x720", "1920x1080"])
    args.sessions = args.sessions or ([1] if quick else [1, 4])
    args.seconds = args.seconds or (3.0 if quick else 10.0)
    args.trials = args.trials if args.trials is not None else (8 if quick else 30)
    missing = have("Xvfb", "xterm", "ffplay", "ffmpeg", "x11vnc", "websockify")
    if missing or not CHROMIUM.exists():
        print(f"skipped: missing {', '.join(missing) or CHROMIUM}", file=sys.stderr)
        return 0
    from playwright.sync_api import sync_playwright

    # Told to stop, unwind so every process this run started is ended by its PID.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    if not args.json:
        print(
            f"{'system':<16} {'workload':<10} {'size':>9} {'n':>2} {'codec':<8} {'fps':>6} "
            f"{'src':>5} {'Mbit/s':>8} "
            f"{'srv CPU%':>7} {'term CPU%':>7} {'p50 ms':>7} {'p90 ms':>7} {'load':>5}"
        )
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    folder = contextlib.nullcontext(str(args.keep)) if args.keep else tempfile.TemporaryDirectory()
    with folder as tmp, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            for size in args.sizes:
                width, height = (int(v) for v in size.split("x"))
                if args.paired:
                    run_paired((width, height), args, Path(tmp), browser)
                    continue
                for sessions in args.sessions:
                    for system in args.systems:
                        run_system(system, (width, height), sessions, args, Path(tmp), browser)
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
