"""What the display benchmarks share: Xvfb, workloads, CPU meters, a colour-flip square and the
page hook that counts drawn frames and spots a colour or a change on the drawn picture.

Every process started here is ended by its PID; every wait has a bound. Bytes on the wire are
counted by the fault proxy (tests/support/faultproxy.py) each system is reached through.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.e2e.harness import stop_process

TICK = os.sysconf("SC_CLK_TCK")
CHROMIUM = Path("/usr/bin/chromium")

# Counts the animation frames in which a visible canvas was drawn on (noVNC's flip, the
# terminal's drawImage) or a <video> presented a frame, with the longest time between two of
# them (a stall). A <video> is presented by the compositor, not the page's main thread: when
# two of its frames were presented between two animation frames of a busy page, its callback
# runs once and its presentedFrames tells how many (so both count). It also checks an armed
# probe right after each draw: a colour at a point (glass-to-glass) or a change in a region
# (input-to-photon).
HOOK_JS = r"""
(() => {
  const b = window.__bench = { draws: 0, frames: 0, dirty: false, probe: null, hits: [],
                               keys: [], lastAt: null, stall: 0, presented: 0 };
  const scratch = document.createElement("canvas");
  const sctx = scratch.getContext("2d", { willReadFrequently: true });
  b.target = () => {
    let best = null;
    for (const v of document.querySelectorAll("video")) {
      if (v.videoWidth) return { el: v, w: v.videoWidth, h: v.videoHeight };
    }
    for (const el of document.querySelectorAll("canvas")) {
      const w = el.width || el.videoWidth || 0, h = el.height || el.videoHeight || 0;
      if (!best || w * h > best.w * best.h) best = { el, w, h };
    }
    return best;
  };
  b.pixels = (x, y, w, h) => {
    const t = b.target();
    if (!t || !t.w) return null;
    const sx = t.w / b.screenW, sy = t.h / b.screenH;
    scratch.width = w; scratch.height = h;
    sctx.drawImage(t.el, x * sx, y * sy, w * sx, h * sy, 0, 0, w, h);
    // FRP8's palette tiles lie over the video on a canvas, clear where the video shows.
    const over = t.el.tagName === "VIDEO" && document.querySelector("canvas[data-overlay]");
    if (over) {
      const ox = over.width / b.screenW, oy = over.height / b.screenH;
      sctx.drawImage(over, x * ox, y * oy, w * ox, h * oy, 0, 0, w, h);
    }
    return sctx.getImageData(0, 0, w, h).data;
  };
  b.check = () => {
    const p = b.probe;
    if (!p) return;
    const px = b.pixels(p.x, p.y, p.w, p.h);
    if (!px) return;
    let hit = false;
    if (p.rgb) {
      hit = [0, 1, 2].every((i) => Math.abs(px[i] - p.rgb[i]) <= p.tol);
    } else if (p.base) {
      let changed = 0;
      for (let i = 0; i < px.length; i += 4) {
        if (Math.abs(px[i] - p.base[i]) + Math.abs(px[i + 1] - p.base[i + 1]) +
            Math.abs(px[i + 2] - p.base[i + 2]) > 96) changed += 1;
      }
      hit = changed >= p.minChanged;
    }
    if (hit) { b.hits.push(performance.now()); b.probe = null; }
  };
  b.armColour = (x, y, rgb, tol) => { b.probe = { x, y, w: 1, h: 1, rgb, tol }; };
  b.armChange = (x, y, w, h, minChanged) => {
    const base = b.pixels(x, y, w, h);
    b.probe = { x, y, w, h, base, minChanged };
  };
  const drew = (canvas) => {
    if (canvas === scratch || !canvas.isConnected) return;
    if (canvas.dataset.part !== "1") { b.draws += 1; b.dirty = true; }  // a picture's last part
    if (b.probe) b.check();
  };
  for (const name of ["drawImage", "putImageData"]) {
    const orig = CanvasRenderingContext2D.prototype[name];
    CanvasRenderingContext2D.prototype[name] = function (...args) {
      const result = orig.apply(this, args);
      drew(this.canvas);
      return result;
    };
  }
  const watched = new WeakSet();
  const watchVideos = () => {
    for (const v of document.querySelectorAll("video")) {
      if (watched.has(v) || !v.requestVideoFrameCallback) continue;
      watched.add(v);
      let last = null;
      const onFrame = (now, meta) => {
        b.presented += last === null ? 1 : Math.max(1, meta.presentedFrames - last);
        last = meta.presentedFrames;
        b.dirty = true; b.draws += 1; if (b.probe) b.check();
        v.requestVideoFrameCallback(onFrame);
      };
      v.requestVideoFrameCallback(onFrame);
    }
  };
  const tick = (now) => {
    if (b.dirty) {
      b.frames += Math.max(1, b.presented);
      b.dirty = false;
      b.presented = 0;
      if (b.lastAt !== null) b.stall = Math.max(b.stall, now - b.lastAt);
      b.lastAt = now;
    }
    watchVideos();
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  // FRP8: the peer connections, for the bytes their transports received.
  b.pcs = [];
  if (window.RTCPeerConnection) {
    const Native = window.RTCPeerConnection;
    window.RTCPeerConnection = class extends Native {
      constructor(...args) { super(...args); b.pcs.push(this); }
    };
  }
  b.rtcBytes = async () => {
    let total = 0;
    for (const pc of b.pcs) {
      try {
        for (const r of (await pc.getStats()).values()) {
          if (r.type === "transport") total += r.bytesReceived || 0;
        }
      } catch (err) { /* a closed connection has no stats */ }
    }
    return total;
  };
  window.addEventListener("keydown", () => b.keys.push(performance.now()),
                          true);
})();
"""


def have(*tools: str) -> list[str]:
    """The tools of `tools` that are not installed."""
    return [tool for tool in tools if shutil.which(tool) is None]


@dataclass
class Procs:
    """Processes this run started, ended in reverse order, each by its own PID."""

    items: list[subprocess.Popen[Any]] = field(default_factory=list)

    def spawn(
        self, args: list[str], display: str | None = None, **kw: Any
    ) -> subprocess.Popen[Any]:
        env = {**os.environ, **kw.pop("env", {})}
        if display is not None:
            env["DISPLAY"] = display
        process = subprocess.Popen(
            args,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=kw.pop("stdout", subprocess.DEVNULL),
            stderr=kw.pop("stderr", subprocess.DEVNULL),
            **kw,
        )
        self.items.append(process)
        return process

    def stop(self, process: subprocess.Popen[Any]) -> None:
        stop_process(process, timeout=3.0)
        with contextlib.suppress(ValueError):
            self.items.remove(process)

    def stop_all(self) -> None:
        for process in reversed(list(self.items)):
            self.stop(process)


def start_xvfb(procs: Procs, width: int, height: int) -> str:
    """An Xvfb of its own; its display name once it accepts connections."""
    read_fd, write_fd = os.pipe()
    procs.spawn(
        [
            "Xvfb",
            "-displayfd",
            str(write_fd),
            "-screen",
            "0",
            f"{width}x{height}x24",
            "-nolisten",
            "tcp",
            "-noreset",
        ],
        pass_fds=(write_fd,),
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as announced:
        number = announced.readline().strip()
    if not number:
        raise RuntimeError("Xvfb exited before announcing its display")
    return f":{number}"


def xconnect(display: str, xauthority: str | None) -> Any:
    """A python-xlib connection; `xauthority` names the file holding the display's cookie."""
    from Xlib import display as xdisplay

    if xauthority:
        os.environ["XAUTHORITY"] = xauthority
    return xdisplay.Display(display)


def xauthority_of(pids: list[int]) -> str | None:
    """The -auth file of the Xvfb among `pids` (a server's children), if it has one."""
    for pid in pids:
        with contextlib.suppress(OSError):
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if Path(args[0].decode()).name == "Xvfb" and b"-auth" in args:
                return args[args.index(b"-auth") + 1].decode()
    return None


def screen_size(display: str, xauthority: str | None = None) -> tuple[int, int]:
    d = xconnect(display, xauthority)
    try:
        geometry = d.screen().root.get_geometry()
        return int(geometry.width), int(geometry.height)
    finally:
        d.close()


# -- CPU --------------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, int, str] | None:
    """(ppid, utime + stime in ticks, comm) of a live process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = text[text.index("(") + 1 : text.rindex(")")]
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[11]) + int(fields[12]), comm


def tree(root: int, exclude: tuple[str, ...] = ()) -> list[int]:
    """`root` and its descendants, leaving out processes named in `exclude` (and theirs)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            children.setdefault(stat[0], []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        stat = _stat(pid)
        if stat is None or stat[2] in exclude:
            continue
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def chromium_pids() -> list[int]:
    """Every Chromium process this run started (browser, renderers, GPU and utility)."""
    pids = []
    for pid in tree(os.getpid()):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/exe").startswith("/usr/lib/chromium/"):
                pids.append(pid)
    return pids


def cpu_ticks(pids: list[int]) -> dict[int, int]:
    return {pid: stat[1] for pid in pids if (stat := _stat(pid)) is not None}


def cpu_pct(before: dict[int, int], after: dict[int, int], seconds: float) -> float:
    """CPU used by the processes alive at both readings, in % of one core."""
    ticks = sum(after[pid] - before[pid] for pid in after if pid in before)
    return 100.0 * ticks / TICK / seconds


# -- what is on the display -------------------------------------------------------------------


MOTION_FPS = 30


class Workload:
    """The X clients of a workload: scrolling, motion, static, or desktop (the scrolling xterm
    with a video playing in a window a third of the screen's size over its bottom right)."""

    def __init__(
        self, procs: Procs, name: str, display: str, size: tuple[int, int], xauthority: str | None
    ) -> None:
        if name not in ("scrolling", "scrolling-aa", "motion", "static", "desktop"):
            raise ValueError(f"unknown workload {name!r}")
        width, height = size
        env = {"XAUTHORITY": xauthority} if xauthority else {}
        xterm = ["xterm", "-fn", "fixed", "-geometry", f"{width // 6}x{height // 13}+0+0", "-e"]
        if name == "scrolling-aa":  # antialiased, as most desktops draw text: greys, 8x15 cells
            font = ["-fa", "DejaVu Sans Mono", "-fs", "10"]
            xterm = ["xterm", *font, "-geometry", f"{width // 8}x{height // 15}+0+0", "-e"]
        self._stats: Path | None = None
        if name in ("scrolling", "scrolling-aa", "desktop"):
            script = "while :; do ls -la /usr/bin; done"
            procs.spawn([*xterm, "sh", "-c", script], display, env=env)
        elif name == "static":
            script = "ls -la /usr/bin | head -200; exec sleep 100000"
            procs.spawn([*xterm, "sh", "-c", script], display, env=env)
        if name in ("motion", "desktop"):
            left, top = (0, 0) if name == "motion" else (width - width // 3, height - height // 3)
            fd, path = tempfile.mkstemp(prefix="bench-ffplay-", suffix=".txt")
            self._stats = Path(path)
            with os.fdopen(fd, "wb") as stats:
                procs.spawn(
                    [
                        "ffplay",
                        "-stats",
                        "-an",
                        "-noborder",
                        "-left",
                        str(left),
                        "-top",
                        str(top),
                        "-f",
                        "lavfi",
                        "-i",
                        # Drawn in RGB: SDL shows it without a YUV conversion, a third less of
                        # ffplay's CPU (44 instead of 68 % of a core at 720p) left to the rest.
                        f"testsrc2=size={width - left}x{height - top}:rate={MOTION_FPS},"
                        "format=bgr0",
                    ],
                    display,
                    env={"SDL_AUDIODRIVER": "dummy", "SDL_VIDEODRIVER": "x11", **env},
                    stderr=stats,
                )

    def shown(self) -> tuple[float, int] | None:
        """ffplay's clock and the frames it has dropped so far (its status line)."""
        if self._stats is None:
            return None
        found = re.findall(rb"([\d.]+) M-V:\s*\S+ fd=\s*(\d+)", self._stats.read_bytes())
        return (float(found[-1][0]), int(found[-1][1])) if found else None

    def source_fps(self, before: tuple[float, int] | None) -> float | None:
        """Frames per second the motion source really drew since `before` (it drops frames
        when the machine is too busy)."""
        after = self.shown()
        if before is None or after is None or after[0] <= before[0]:
            return None
        return MOTION_FPS - (after[1] - before[1]) / (after[0] - before[0])

    def close(self) -> None:
        if self._stats is not None:
            self._stats.unlink(missing_ok=True)


class Flipper:
    """A square on top of the display whose colour flips, each flip on the screen at return."""

    COLOURS = ((230, 20, 20), (20, 20, 230))

    def __init__(
        self, display: str, size: tuple[int, int], xauthority: str | None, side: int = 96
    ) -> None:
        from Xlib import X

        self._x = X
        self.d = xconnect(display, xauthority)
        root = self.d.screen().root
        self.side = side
        self.x, self.y = size[0] - side - 40, size[1] - side - 40
        self.window = root.create_window(
            self.x,
            self.y,
            side,
            side,
            0,
            self.d.screen().root_depth,
            override_redirect=True,
            background_pixel=0,
        )
        self.gc = self.window.create_gc(foreground=0)
        self.window.map()
        self.d.sync()
        self.state = 0

    def centre(self) -> tuple[int, int]:
        return self.x + self.side // 2, self.y + self.side // 2

    def flip(self) -> tuple[tuple[int, int, int], float]:
        """Paint the other colour; (colour, monotonic time the X server had drawn it)."""
        self.state ^= 1
        r, g, b = self.COLOURS[self.state]
        self.window.configure(stack_mode=self._x.Above)
        self.gc.change(foreground=(r << 16) | (g << 8) | b)
        self.window.fill_rectangle(self.gc, 0, 0, self.side, self.side)
        self.d.sync()
        return (r, g, b), time.monotonic()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.window.destroy()
            self.d.close()


def page_clock(page: Any, samples: int = 7) -> float:
    """What to add to `time.monotonic()` ms to get the page's `performance.now()`.

    Both count CLOCK_MONOTONIC. The wall clock does not serve: this machine's runs 0.5 %
    faster than the monotonic one and steps now and then, and a page's `timeOrigin` is the
    wall clock at its load, so `timeOrigin + now()` drifted 5 ms a second from `time.time()`
    (latencies read 40-100 ms short after 10-20 s). The sample with the shortest round trip
    bounds the error by half of it."""
    best: tuple[float, float] | None = None
    for _ in range(samples):
        before = time.monotonic() * 1000.0
        seen = float(page.evaluate("performance.now()"))
        after = time.monotonic() * 1000.0
        if best is None or after - before < best[0]:
            best = (after - before, seen - (before + after) / 2)
    assert best is not None
    return best[1]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]
