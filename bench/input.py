"""Input-to-photon latency: a key pressed in the page until the drawn picture shows it.

openfrp's browser terminal and noVNC (x11vnc + websockify) in the same headless Chromium, both
up at once and typed into in alternating rounds, each on its own Xvfb with an xterm in a big
font running `cat`.
Playwright presses a key in the page; the page notes the keydown's time, then checks after each
draw whether the xterm's area of the drawn picture changed (the echoed character); the time
between the two is one sample. Both times are read from the page's own clock.

    bench/input.py --quick        # 15 keys per system
    bench/input.py --json         # one JSON object per system
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import string
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.rig import CHROMIUM, Procs, have, percentile, xconnect
from bench.systems import RUNNERS, Group, Stack
from tests.e2e.browser import ARGS

SYSTEMS = ("openfrp-browser", "novnc")
SIZE = (1280, 720)
REGION = (0, 0, 720, 300)  # where the xterm below draws
LINE = 24  # keys per line before a Return
Row = dict[str, Any]


def start_xterm(procs: Procs, stack: Stack) -> None:
    """A big-font xterm echoing what is typed, with the pointer (hence the focus) on it."""
    env = {"XAUTHORITY": stack.xauthority} if stack.xauthority else {}
    procs.spawn(
        ["xterm", "-fa", "DejaVu Sans Mono", "-fs", "28", "-geometry", "36x7+0+0", "-e", "cat"],
        stack.display,
        env=env,
    )
    time.sleep(1.0)
    d = xconnect(stack.display, stack.xauthority)
    try:
        d.screen().root.warp_pointer(REGION[2] // 2, REGION[3] // 2)
        d.sync()
    finally:
        d.close()


def trials(stack: Stack, count: int, typed: int) -> tuple[list[float], int]:
    """Latency in ms of `count` key presses, and how many never showed on the picture;
    `typed`: keys this xterm has had so far (a line ends every LINE keys)."""
    page = stack.page
    x, y, w, h = REGION
    page.bring_to_front()
    page.mouse.click(x + w // 2, y + h // 2)  # the page's keyboard focus
    time.sleep(0.3)
    times, missed = [], 0
    for i in range(typed, typed + count):
        if i and i % LINE == 0:
            page.keyboard.press("Enter")
            time.sleep(0.6)
        time.sleep(random.uniform(0.15, 0.3))
        page.evaluate(f"window.__bench.armChange({x}, {y}, {w}, {h}, 30)")
        keys = page.evaluate("window.__bench.keys.length")
        hits = page.evaluate("window.__bench.hits.length")
        page.keyboard.press(random.choice(string.ascii_lowercase))
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            state = page.evaluate("[window.__bench.keys, window.__bench.hits]")
            if len(state[1]) > hits and len(state[0]) > keys:
                times.append(state[1][-1] - state[0][keys])
                break
            time.sleep(0.005)
        else:
            missed += 1
            page.evaluate("window.__bench.probe = null")
    return times, missed


def run(names: list[str], count: int, rounds: int, root: Path, browser: Any) -> list[Row]:
    """Every system's stack up at once, their keys typed in alternating rounds, so a change
    in the machine's load falls on all of them alike."""
    rows: dict[str, Row] = {}
    stacks: dict[str, Stack] = {}
    groups, procs = [], Procs()
    try:
        for name in names:
            rows[name] = {"system": name, "size": f"{SIZE[0]}x{SIZE[1]}"}
            group = Group(root / name)
            group.root.mkdir(parents=True)
            groups.append(group)
            try:
                stacks[name] = RUNNERS[name](group, SIZE, browser)
                start_xterm(procs, stacks[name])
            except Exception as exc:
                rows[name]["error"] = f"{type(exc).__name__}: {exc}"[:300]
        samples: dict[str, tuple[list[float], int]] = {name: ([], 0) for name in stacks}
        for r in range(rounds):
            share = count // rounds + (1 if r < count % rounds else 0)
            for name, stack in stacks.items():
                times, missed = samples[name]
                more, lost = trials(stack, share, len(times) + missed)
                samples[name] = (times + more, missed + lost)
        for name, (times, missed) in samples.items():
            p50, p90 = percentile(times, 0.5), percentile(times, 0.9)
            rows[name] |= {
                "latency_ms_p50": None if p50 is None else round(p50, 1),
                "latency_ms_p90": None if p90 is None else round(p90, 1),
                "keys": count,
                "missed": missed,
                "load_1min": round(os.getloadavg()[0], 1),
            }
    finally:
        procs.stop_all()
        for stack in stacks.values():
            stack.close()
        for group in groups:
            group.close()
    return list(rows.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="15 keys per system")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument("--keys", type=int, help="key presses per system")
    args = parser.parse_args()
    count = args.keys or (15 if args.quick else 60)
    missing = have("Xvfb", "xterm", "x11vnc", "websockify")
    if missing or not CHROMIUM.exists():
        print(f"skipped: missing {', '.join(missing) or CHROMIUM}", file=sys.stderr)
        return 0
    from playwright.sync_api import sync_playwright

    # Told to stop, unwind so every process this run started is ended by its PID.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    if not args.json:
        print(
            f"{'system':<16} {'size':>9} {'keys':>5} {'missed':>6} {'p50 ms':>7} {'p90 ms':>7} "
            f"{'load':>5}"
        )
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            for row in run(args.systems, count, 3 if args.quick else 6, Path(tmp), browser):
                if args.json:
                    print(json.dumps(row), flush=True)
                elif "error" in row:
                    print(f"{row['system']:<16} {row['size']:>9} error: {row['error']}", flush=True)
                else:
                    p50, p90 = row["latency_ms_p50"], row["latency_ms_p90"]
                    print(
                        f"{row['system']:<16} {row['size']:>9} {row['keys']:>5} {row['missed']:>6} "
                        f"{'-' if p50 is None else f'{p50:.0f}':>7} "
                        f"{'-' if p90 is None else f'{p90:.0f}':>7} {row['load_1min']:>5.1f}",
                        flush=True,
                    )
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
