"""The systems a display benchmark compares, each a runner that starts one session's stack.

A stack has a display the workload runs on, the PIDs that count as its server (streamer plus
encoder), a count of bytes sent to the terminal and of frames delivered, and for browser
systems the page that draws it. openfrp runners use the real `openfrp serve` and browser
terminal; noVNC runs x11vnc + websockify as a new user would; ffmpeg is the encoder reference.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.rig import HOOK_JS, Procs, chromium_pids, screen_size, start_xvfb, tree, xauthority_of
from tests.e2e.browser import link
from tests.e2e.conftest import FRP8_PAD
from tests.e2e.harness import ServerProcess, TerminalProcess, free_port
from tests.support.coturn import PASSWORD, TURNSERVER, USER, start_coturn
from tests.support.faultproxy import ProxyProcess, start_proxy_process

NOVNC = Path("/usr/share/novnc")


class Stack:
    """One running session of a system."""

    def __init__(self, procs: Procs, display: str, page: Any = None) -> None:
        self.procs = procs
        self.display = display
        self.page = page
        self.proxy: ProxyProcess | None = None
        self.server_roots: list[int] = []
        self.xauthority: str | None = None

    @property
    def size(self) -> tuple[int, int]:
        return screen_size(self.display, self.xauthority)

    def server_pids(self) -> list[int]:
        return [pid for root in self.server_roots for pid in tree(root, exclude=("Xvfb",))]

    def wire_bytes(self) -> int:
        assert self.proxy is not None
        return int(self.proxy.stats()["bytes_to_client"])

    def terminal_pids(self) -> list[int]:
        return chromium_pids() if self.page is not None else []

    def begin(self) -> None:
        """A measuring window starts now."""

    def codec(self) -> str | None:
        """What the terminal decodes (openfrp's page names it in window.openfrp)."""
        if self.page is None:
            return None
        return self.page.evaluate(
            "(() => { const v = window.openfrp; if (!v) return 'vnc';"
            " return (v.track && v.track.codec) || (v.video && v.video.codec) || null; })()"
        )

    def frames(self) -> int:
        return int(self.page.evaluate("window.__bench.frames"))

    def fps(self, frames_before: int, elapsed: float) -> float:
        """Frames delivered per second over the window that began `elapsed` s ago."""
        return (self.frames() - frames_before) / elapsed

    def close(self) -> None:
        if self.page is not None:
            self.page.context.close()
        if self.proxy is not None:
            self.proxy.stop()
        self.procs.stop_all()


class Group:
    """What the sessions of one measurement share (an openfrp server, a TURN server), ended
    after their stacks."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.items: dict[str, Any] = {}
        self.closers: list[Any] = []

    def close(self) -> None:
        for closer in reversed(self.closers):
            closer()
        self.closers.clear()


def _page(browser: Any, size: tuple[int, int]) -> Any:
    context = browser.new_context(
        viewport={"width": size[0], "height": size[1]}, device_scale_factor=1
    )
    context.add_init_script(HOOK_JS)
    return context.new_page()


def _wait(page: Any, condition: str, timeout: float, what: str) -> None:
    try:
        page.wait_for_function(condition, timeout=timeout * 1000)
    except Exception as exc:
        raise RuntimeError(f"{what} not within {timeout}s: {exc}") from None


def _set_screen(stack: Stack) -> None:
    width, height = stack.size
    stack.page.evaluate(
        f"() => {{ window.__bench.screenW = {width}; window.__bench.screenH = {height}; }}"
    )


class FfmpegStack(Stack):
    """ffmpeg x11grab into libx264 at 30 fps: what an encoder alone costs. (libvpx realtime
    stalls after a few dozen frames of x11grab input with this ffmpeg 5.1, so VP8 is not here.)"""

    def __init__(self, procs: Procs, display: str, root: Path) -> None:
        super().__init__(procs, display)
        width, height = screen_size(display)
        self._progress = root / f"progress-{display[1:]}.txt"
        encoder = ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-f", "h264"]
        process = procs.spawn(
            [
                "ffmpeg",
                "-nostdin",
                "-loglevel",
                "error",
                "-f",
                "x11grab",
                "-framerate",
                "30",
                "-video_size",
                f"{width}x{height}",
                "-draw_mouse",
                "0",
                "-i",
                display,
                "-pix_fmt",
                "yuv420p",
                *encoder,
                "-progress",
                str(self._progress),
                "pipe:1",
            ],
            stdout=-1,
        )
        self.server_roots = [process.pid]
        self._bytes = 0
        self._reader = threading.Thread(target=self._count, args=(process.stdout,), daemon=True)
        self._reader.start()

    def _count(self, stream: Any) -> None:
        while chunk := stream.read1(1 << 16):
            self._bytes += len(chunk)

    def wire_bytes(self) -> int:
        return self._bytes

    def codec(self) -> str | None:
        return "h264"

    def frames(self) -> int:
        found = re.findall(r"^frame=(\d+)$", self._progress.read_text(), re.M)
        return int(found[-1]) if found else 0


def ffmpeg(group: Group, size: tuple[int, int], browser: Any) -> Stack:
    procs = Procs()
    display = start_xvfb(procs, *size)
    return FfmpegStack(procs, display, group.root)


def novnc(group: Group, size: tuple[int, int], browser: Any) -> Stack:
    """x11vnc and websockify with their defaults, noVNC's vnc_lite page in Chromium."""
    procs = Procs()
    return novnc_on(procs, start_xvfb(procs, *size), None, size, browser)


def novnc_on(
    procs: Procs, display: str, xauthority: str | None, size: tuple[int, int], browser: Any
) -> Stack:
    """noVNC's stack (its processes in `procs`) on a display that is already there."""
    vnc_port, ws_port = free_port(), free_port()
    x11vnc = procs.spawn(
        [
            "x11vnc",
            *(["-auth", xauthority] if xauthority else []),
            "-display",
            display,
            "-rfbport",
            str(vnc_port),
            "-localhost",
            "-nopw",
            "-forever",
            "-shared",
            "-quiet",
        ]
    )
    websockify = procs.spawn(
        ["websockify", "--web", str(NOVNC), f"127.0.0.1:{ws_port}", f"127.0.0.1:{vnc_port}"]
    )
    stack = Stack(procs, display, _page(browser, size))
    stack.xauthority = xauthority
    stack.server_roots = [x11vnc.pid, websockify.pid]
    stack.proxy = start_proxy_process(ws_port)
    port = stack.proxy.port
    deadline = time.monotonic() + 10
    while True:  # x11vnc and websockify take a moment to listen
        try:
            stack.page.goto(f"http://127.0.0.1:{port}/vnc_lite.html?host=127.0.0.1&port={port}")
            _wait(
                stack.page,
                "() => /^Connected/.test(document.getElementById('status').textContent)",
                3,
                "noVNC connected",
            )
            break
        except Exception:
            if time.monotonic() > deadline:
                stack.close()
                raise
    _set_screen(stack)
    return stack


def _server(group: Group, **options: Any) -> ServerProcess:
    """The group's `openfrp serve` on real Xvfb displays (started by its first session)."""
    if "server" not in group.items:
        server = ServerProcess.start(
            group.root / f"openfrp-{time.monotonic_ns()}",
            server={"display": "xvfb", "video_fps": 30, **options.get("server", {})},
            launchpads={
                "desktop": {
                    "display_ready_timeout": 15.0,
                    "idle_timeout": 60.0,
                    **options.get("launchpad", {}),
                }
            },
            account={"max_session_duration": 3600.0},
        )
        group.closers.append(server.stop)
        group.items["server"] = server
    found: ServerProcess = group.items["server"]
    return found


Route = Callable[[int], tuple[str, int]]  # the server's port in, where a path to it starts out


def openfrp_browser(
    group: Group, size: tuple[int, int], browser: Any, route: Route | None = None
) -> Stack:
    """The browser terminal over FRP7 in a window of `size`, through a byte-counting relay
    on loopback (to the server, or to the start of `route` to it: bench/loss.py's lossy one)."""
    server = _server(group)
    stack = Stack(Procs(), "", _page(browser, size))
    try:
        host, port = route(server.port) if route is not None else ("127.0.0.1", server.port)
        stack.proxy = start_proxy_process(port, target_host=host)
        _join(stack, group, server, stack.proxy.port)
    except Exception:
        stack.close()
        raise
    return stack


class RtcStack(Stack):
    """FRP8: bytes are what the page's peer connections received (the relay carries them)."""

    def wire_bytes(self) -> int:
        return int(self.page.evaluate("window.__bench.rtcBytes()"))


def openfrp_frp8(group: Group, size: tuple[int, int], browser: Any) -> Stack:
    """The browser terminal over FRP8 (WebRTC video track), relay-only through a real coturn."""
    if TURNSERVER is None:
        raise RuntimeError("coturn is not installed")
    if "turn" not in group.items:
        (group.root / "turn").mkdir(parents=True, exist_ok=True)
        group.items["turn"] = start_coturn(group.root / "turn")
        group.closers.append(group.items["turn"].stop)
    server = _server(
        group,
        server={
            "ice_policy": "relay",
            "turn_url": f"turn:{group.items['turn'].host}:{group.items['turn'].port}?transport=udp",
            "turn_user": USER,
            "turn_password": PASSWORD,
        },
        launchpad=FRP8_PAD,
    )
    stack = RtcStack(Procs(), "", _page(browser, size))
    try:
        _join(stack, group, server, server.port)
        _wait(stack.page, "() => document.querySelector('video')?.videoWidth > 0", 15, "track")
    except Exception:
        stack.close()
        raise
    return stack


class PythonStack(Stack):
    """The Python terminal (`openfrp connect`, PyAV decoding): one terminal per window, each
    resuming the session and disconnecting at the end of the window, when it prints its fps."""

    def __init__(self, server: ServerProcess, ticket: dict[str, Any], root: Path) -> None:
        super().__init__(Procs(), "")
        self.server, self.ticket, self.root = server, ticket, root
        self.terminal: TerminalProcess | None = None
        self.server_roots = [server.process.pid]
        self.summary = ""  # the terminal's last "video: ..." line

    def begin(self) -> None:
        assert self.proxy is not None
        width, height = self.size if self.display else (0, 0)
        self.terminal = TerminalProcess.start(
            self.ticket["connect_url"],
            self.root / f"terminal-{time.monotonic_ns()}.jsonl",
            ws_url=f"ws://127.0.0.1:{self.proxy.port}/frp7",
            extra=["--size", f"{width}x{height}"] if width else [],
        )
        self.terminal.wait_line(r"^connected to ", timeout=15)

    def terminal_pids(self) -> list[int]:
        return [self.terminal.process.pid] if self.terminal is not None else []

    def frames(self) -> int:
        return 0

    def codec(self) -> str | None:
        found = re.search(r"codec (\S+),", self.summary)
        return found.group(1) if found else None

    def fps(self, frames_before: int, elapsed: float) -> float:
        """What the terminal printed when it disconnected: frames shown from its first frame."""
        assert self.terminal is not None
        start = self.terminal.mark()
        self.terminal.send("disconnect")
        found = self.terminal.wait_line(r"^video: \d+ frames shown, ([\d.]+) fps", 10, start)
        self.terminal.wait_exit(10)
        self.terminal = None
        self.summary = found.string
        return float(found.group(1))

    def close(self) -> None:
        if self.terminal is not None:
            self.terminal.stop()
        super().close()


def openfrp_python(group: Group, size: tuple[int, int], browser: Any) -> Stack:
    """The Python terminal over FRP7 asking for `size`, through a byte-counting relay."""
    server = _server(group)
    stack = PythonStack(server, _launch(group, server), group.root)
    try:
        stack.proxy = start_proxy_process(server.port)
        first = TerminalProcess.start(
            stack.ticket["connect_url"],
            group.root / f"first-{time.monotonic_ns()}.jsonl",
            extra=["--size", f"{size[0]}x{size[1]}"],
        )
        first.wait_line(r"^connected to ", timeout=15)
        _display(stack, server, stack.ticket)
        first.send("disconnect")
        first.wait_exit(10)
    except Exception:
        stack.close()
        raise
    return stack


def _launch(group: Group, server: ServerProcess) -> dict[str, Any]:
    """A new session for a user of its own (one user may hold one live connection)."""
    group.items["users"] = group.items.get("users", 0) + 1
    return server.launch(f"bench{group.items['users']}")


def _join(stack: Stack, group: Group, server: ServerProcess, port: int) -> None:
    """Open a new session's connect link (through `port`) and wait for its display."""
    ticket = _launch(group, server)
    stack.page.goto(link(ticket, port))
    _wait(
        stack.page,
        "() => window.openfrp && window.openfrp.state.startsWith('connected')",
        15,
        "openfrp connected",
    )
    _display(stack, server, ticket)
    _set_screen(stack)


def _display(stack: Stack, server: ServerProcess, ticket: dict[str, Any]) -> None:
    """The session's display and cookie, once the terminal's size is applied."""
    ready = server.log.wait_event(event="display.ready", session_id=ticket["session_id"])
    stack.server_roots = [server.process.pid]
    stack.display = f":{ready['attrs']['display']}"
    stack.xauthority = xauthority_of([int(ready["attrs"]["pid"])])
    _settle(stack)


def _settle(stack: Stack, timeout: float = 5.0) -> None:
    """Wait until the display keeps its size for a second (the terminal's resize applied)."""
    last, since = stack.size, time.monotonic()
    deadline = since + timeout
    while time.monotonic() < deadline and time.monotonic() - since < 1.0:
        time.sleep(0.1)
        if (now := stack.size) != last:
            last, since = now, time.monotonic()


RUNNERS: dict[str, Any] = {
    "openfrp-browser": openfrp_browser,
    "openfrp-frp8": openfrp_frp8,
    "openfrp-python": openfrp_python,
    "novnc": novnc,
    "ffmpeg-x264": ffmpeg,
}
