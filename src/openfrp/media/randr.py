"""Setting an X screen's size with RandR 1.2, through the `xrandr` command.

Xvfb has one output ("screen") and no modes but the size it started with: a size is set by
creating a mode for it (once per display), adding it to the output and selecting it with a
framebuffer of the same size. The command, not an in-process client, because it honours
XAUTHORITY per call (python-xlib reads it from the process environment only); Xvfb runs with
-noreset, so the modes outlive the command. About 20 ms per new size, 4 ms after.
"""

from __future__ import annotations

import shutil
import subprocess


class RandrError(RuntimeError):
    """The X server refused the new screen size, or xrandr is missing."""


def _xrandr(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [shutil.which("xrandr") or "xrandr", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    )


def set_screen_size(env: dict[str, str], width: int, height: int, known: set[str]) -> None:
    """Blocking; `known` holds the mode names already created on this display."""
    if shutil.which("xrandr") is None:
        raise RandrError("xrandr is not installed")
    name = f"openfrp-{width}x{height}"
    if name not in known:
        timings = [str(width)] * 4 + [str(height)] * 4
        _xrandr(env, "--newmode", name, "0", *timings)  # fails harmlessly if it exists
        _xrandr(env, "--addmode", "screen", name)
        known.add(name)
    done = _xrandr(env, "--output", "screen", "--mode", name, "--fb", f"{width}x{height}")
    if done.returncode != 0:
        raise RandrError(f"xrandr {width}x{height}: {done.stderr.strip()[-200:]}")


def set_monitors(env: dict[str, str], regions: dict[str, tuple[int, int, int, int]]) -> None:
    """Make the RandR monitors of the screen exactly `regions` (name -> x, y, width, height),
    so a maximised window fills one monitor; empty: the whole screen is one monitor again.
    The first region takes Xvfb's output, which otherwise stays a monitor of the whole
    screen. Blocking."""
    listed = dict(
        (fields[1].lstrip("+*"), fields[2])
        for fields in map(str.split, _xrandr(env, "--listmonitors").stdout.splitlines()[1:])
    )
    for name in listed:
        if name.startswith("openfrp-") and name not in regions:
            _xrandr(env, "--delmonitor", name)
    for number, (name, (x, y, width, height)) in enumerate(regions.items()):
        mm_w, mm_h = round(width * 25.4 / 96), round(height * 25.4 / 96)
        geometry = f"{width}/{mm_w}x{height}/{mm_h}+{x}+{y}"
        if listed.get(name) == geometry:
            continue
        if name in listed:  # replaced in place, the output it holds would be refused
            _xrandr(env, "--delmonitor", name)
        done = _xrandr(env, "--setmonitor", name, geometry, "none" if number else "screen")
        if done.returncode != 0:
            raise RandrError(f"xrandr --setmonitor {name}: {done.stderr.strip()[-200:]}")
