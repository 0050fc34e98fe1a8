"""The host side of a session start: the profile-mount hook and the display.

Each step runs under its own timeout and fails with the code the contract names for it
(4022 profile mount, 4027 display), so the runtime only has to pass the code on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import resource
import secrets
import shlex
import shutil
import signal
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from openfrp.codes import CodeNumber
from openfrp.desk.window_fit import WindowFit
from openfrp.media.synthetic import SyntheticDisplay
from openfrp.media.xvfb import Framebuffer, XvfbScreen, XwdError
from openfrp.protocol.monitors import MAX_SECONDARIES
from openfrp.server.isolation import Account, write_private, xauthority
from openfrp.server.leftovers import DISPLAY_DIR_PREFIX, die_with_server, hold
from openfrp.settings import SessionSettings

MIN_WIDTH, MIN_HEIGHT = 320, 200
MONITORS = 1 + MAX_SECONDARIES  # the most monitors a session's screen holds side by side
DEFAULT_SIZE = (1280, 720)  # for a terminal that does not say its window size


class DisplayGone(RuntimeError):
    """The session's display server is no longer running."""


class StartFailure(Exception):
    def __init__(self, code: int, error: str) -> None:
        super().__init__(error)
        self.code = code
        self.error = error


async def mount_profile(settings: SessionSettings, env: dict[str, str]) -> None:
    """Run the launchpad's profile-mount hook; a non-zero exit or a timeout is 4022."""
    if not settings.profile_mount_command:
        return
    process = await asyncio.create_subprocess_exec(
        *shlex.split(settings.profile_mount_command),
        env={**os.environ, **env},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), settings.profile_mount_timeout)
    except TimeoutError:
        # The whole group: a child of the hook (a shell script's command) would keep its
        # stderr pipe open, and process.wait() waits for that pipe, not only for the hook.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), 1.0)
        raise StartFailure(
            CodeNumber.PROFILE_MOUNT_FAILED,
            f"profile mount timed out after {settings.profile_mount_timeout}s",
        ) from None
    if process.returncode != 0:
        detail = stderr.decode(errors="replace").strip()[-200:]
        raise StartFailure(
            CodeNumber.PROFILE_MOUNT_FAILED, f"profile mount exited {process.returncode}: {detail}"
        )


class Screen(Protocol):
    width: int
    height: int

    def grab(self) -> NDArray[np.uint8]: ...
    def resize(self, width: int, height: int) -> tuple[int, int]: ...
    def close(self) -> None: ...


def fit_size(width: int, height: int, settings: SessionSettings) -> tuple[int, int]:
    """A size the display can take: even (H.264 4:2:0), within the launchpad's limits, in the
    asked size's shape. A window too large is scaled by one factor, as a whole: cut to the
    limits on each side alone, a 2880x1800 window (1440x900 at 2 device pixels) got 1920x1080
    and was drawn with black bars. (The browser terminal asks for its CSS pixels instead when
    they fit, which it draws sharper: video.js askedScreen.)"""
    if width > settings.max_width or height > settings.max_height:
        factor = min(settings.max_width / width, settings.max_height / max(height, 1))
        width, height = int(width * factor), int(height * factor)
    width = max(MIN_WIDTH, min(width, settings.max_width)) // 2 * 2
    height = max(MIN_HEIGHT, min(height, settings.max_height)) // 2 * 2
    return width, height


@dataclass
class Display:
    """A session's display: synthetic frames, or a real Xvfb screen read from its framebuffer.

    grab() and resize() block (a copy, an X round trip): call them from a worker thread."""

    source: Screen = field(default_factory=SyntheticDisplay)
    xvfb: asyncio.subprocess.Process | None = None
    number: int | None = None
    fbdir: Path | None = None
    cookie: str = ""  # the MIT-MAGIC-COOKIE-1 (hex) a client needs to connect
    lock: int | None = None  # holds fbdir while it is this server's (leftovers.hold)
    fit: WindowFit | None = None  # the launchpad's fit_windows

    @property
    def xauthority(self) -> Path | None:
        """The server's own copy of the cookie, for its X clients (input, clipboard)."""
        return self.fbdir / "Xauthority" if self.fbdir is not None and self.cookie else None

    @property
    def env(self) -> dict[str, str]:
        """DISPLAY and XAUTHORITY for the server's own X clients of this display."""
        if self.number is None:
            return {}
        env = {"DISPLAY": f":{self.number}"}
        if self.xauthority is not None:
            env["XAUTHORITY"] = str(self.xauthority)
        return env

    @property
    def alive(self) -> bool:
        """False once Xvfb has exited, even before asyncio has reaped it. (Its X clients can
        see their connection drop a moment before that: the exit is still under way.)"""
        if self.xvfb is None:
            return True
        if self.xvfb.returncode is not None:
            return False
        try:
            stat = Path(f"/proc/{self.xvfb.pid}/stat").read_text()
        except OSError:
            return True  # no /proc: the returncode is all there is
        return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")

    def describe(self) -> dict[str, Any]:
        if self.xvfb is None:
            return {"kind": "synthetic"}
        return {
            "kind": "xvfb",
            "display": self.number,
            "pid": self.xvfb.pid,
            "fit_windows": self.fit is not None,
        }

    @property
    def width(self) -> int:
        return self.source.width

    @property
    def height(self) -> int:
        return self.source.height

    async def dies_within(self, seconds: float) -> bool:
        """Whether the display server is gone or goes within `seconds` (a synthetic display
        never does)."""
        if self.xvfb is None:
            return False
        deadline = asyncio.get_running_loop().time() + seconds
        while self.alive:
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    def gone(self) -> DisplayGone:
        """The error of a display server that is no longer running, naming it."""
        assert self.xvfb is not None
        status = self.xvfb.returncode
        how = "exited" if status is None else f"exited with status {status}"
        return DisplayGone(f"Xvfb :{self.number} (pid {self.xvfb.pid}) {how}")

    def _check_alive(self) -> None:
        if self.xvfb is not None and self.xvfb.returncode is not None:
            raise self.gone()

    def grab(self) -> NDArray[np.uint8]:
        """The screen now, (height, width, 4) BGRX, a copy; a display server that has exited
        is an error, not a frozen screen."""
        self._check_alive()
        return self.source.grab()

    def grab_region(self, x: int, y: int, width: int, height: int) -> NDArray[np.uint8]:
        """One monitor's part of the screen, a copy (see grab)."""
        self._check_alive()
        if isinstance(self.source, XvfbScreen):
            return self.source.grab_region(x, y, width, height)
        return np.ascontiguousarray(self.source.grab()[y : y + height, x : x + width])

    def resize(self, width: int, height: int) -> tuple[int, int]:
        """Set the screen size; returns the size it took."""
        self._check_alive()
        return self.source.resize(width, height)

    async def stop(self) -> None:
        if self.fit is not None:
            self.fit.stop()
        if self.xvfb is not None and self.xvfb.returncode is None:
            self.xvfb.terminate()
            try:
                await asyncio.wait_for(self.xvfb.wait(), 5)
            except TimeoutError:
                self.xvfb.kill()
                await self.xvfb.wait()
        self.source.close()
        if self.fbdir is not None:
            shutil.rmtree(self.fbdir, ignore_errors=True)
        if self.lock is not None:
            os.close(self.lock)
            self.lock = None


async def _announced_display(fd: int) -> int:
    """The display number Xvfb writes to its -displayfd once it accepts connections."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb")
    )
    try:
        line = await reader.readline()
    finally:
        transport.close()
    if not line.strip().isdigit():
        raise StartFailure(
            CodeNumber.DISPLAY_NOT_READY, "Xvfb exited before announcing its display"
        )
    return int(line)


async def _readable_framebuffer(path: Path) -> Framebuffer:
    while True:
        try:
            return Framebuffer(path)
        except (OSError, XwdError):
            await asyncio.sleep(0.01)


async def start_display(
    kind: str, settings: SessionSettings, size: tuple[int, int] | None = None
) -> Display:
    """Start the display at the terminal's window `size` (fitted to the launchpad's limits);
    not ready within display_ready_timeout is 4027. Xvfb starts at the largest size so RandR
    can grow it (MONITORS times max_width wide: a row of monitors of the largest size); a
    synthetic display stays tiny unless a size is asked for."""
    use_xvfb = kind == "xvfb" or (kind == "auto" and shutil.which("Xvfb") is not None)
    if not use_xvfb:
        return Display() if size is None else Display(SyntheticDisplay(*fit_size(*size, settings)))
    width, height = fit_size(*(size or DEFAULT_SIZE), settings)
    if shutil.which("Xvfb") is None:
        raise StartFailure(CodeNumber.DISPLAY_NOT_READY, "display = xvfb but Xvfb is not installed")
    fbdir = Path(tempfile.mkdtemp(prefix=DISPLAY_DIR_PREFIX))
    lock = hold(fbdir)
    cookie = secrets.token_hex(16)
    await asyncio.to_thread(write_private, fbdir / "Xauthority", xauthority(cookie, None))
    read_fd, write_fd = os.pipe()
    process = await asyncio.create_subprocess_exec(
        *die_with_server(),
        "Xvfb",
        "-displayfd",
        str(write_fd),
        "-screen",
        "0",
        f"{settings.max_width * MONITORS}x{settings.max_height}x24",
        "-nolisten",
        "tcp",
        "-noreset",
        # No cursor sprite in the framebuffer: the terminal draws the shape XFIXES reports at
        # the person's own pointer, and a second one in the picture would lag behind it.
        "-nocursor",
        "-fbdir",
        str(fbdir),
        "-auth",
        str(fbdir / "Xauthority"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        pass_fds=(write_fd,),
    )
    os.close(write_fd)
    display = Display(xvfb=process, fbdir=fbdir, cookie=cookie, lock=lock)

    async def until_ready() -> None:
        display.number = await _announced_display(read_fd)
        cookie_file = xauthority(cookie, display.number)
        await asyncio.to_thread(write_private, fbdir / "Xauthority", cookie_file)
        framebuffer = await _readable_framebuffer(fbdir / "Xvfb_screen0")
        display.source = XvfbScreen(framebuffer, display.env)
        await asyncio.to_thread(display.resize, width, height)
        if settings.fit_windows:
            display.fit = WindowFit(f":{display.number}", cookie)

    try:
        await asyncio.wait_for(until_ready(), settings.display_ready_timeout)
    except BaseException as exc:
        await display.stop()
        if isinstance(exc, TimeoutError):
            raise StartFailure(
                CodeNumber.DISPLAY_NOT_READY,
                f"display not ready within {settings.display_ready_timeout}s",
            ) from None
        raise
    return display


BASE_DPI = 96  # a CSS pixel's density: what a window of scale 1 shows


async def set_dpi(display: Display, scale: float | None) -> int | None:
    """Tell the apps of `display` how dense the person's pixels are, as the X resource Xft.dpi
    (read by Xft, GTK and Qt when they start): on a window of 2 device pixels per CSS pixel,
    text in the session then has the size it has in the person's other windows, not half of
    it. Set only for a scale other than 1 (at 1 the display's own 100 dpi stays) on a real
    display with xrdb installed; returns the dpi set, else None."""
    if display.xvfb is None or scale is None or abs(scale - 1) < 0.05 or not shutil.which("xrdb"):
        return None
    dpi = round(BASE_DPI * scale)
    proc = await asyncio.create_subprocess_exec(
        "xrdb",
        "-nocpp",
        "-merge",
        env={**os.environ, **display.env},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await proc.communicate(f"Xft.dpi: {dpi}\n".encode())
    return dpi if proc.returncode == 0 else None


async def start_app(
    settings: SessionSettings, env: dict[str, str], account: Account
) -> asyncio.subprocess.Process | None:
    """Start the launchpad's desktop/app process as `account`, with exactly `env` and nothing
    of the server's environment; its exit ends the session (4018). It gets SIGTERM if the
    server process dies (leftovers.py). Run as a user of its own, its user may run at most
    `max_app_processes` processes."""
    if not settings.app_command:
        return None
    limit = None
    if account.switched:
        # Its own user's process count (RLIMIT_NPROC counts every process of that user), soft
        # and hard, so the app cannot raise it: no fork bomb takes the machine's process table.
        # Not switched, the app would share the server's user, whose count is the server's own.
        hard = resource.getrlimit(resource.RLIMIT_NPROC)[1]
        most = settings.max_app_processes
        if hard != resource.RLIM_INFINITY:
            most = min(most, hard)
        limit = functools.partial(resource.setrlimit, resource.RLIMIT_NPROC, (most, most))
    return await asyncio.create_subprocess_exec(
        *die_with_server(),
        *shlex.split(settings.app_command),
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=limit,
        **account.popen_args(),
    )
