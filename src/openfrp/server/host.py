"""The host side of a session start: the profile-mount hook and the display.

Each step runs under its own timeout and fails with the code the contract names for it
(4022 profile mount, 4027 display), so the runtime only has to pass the code on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from openfrp.media.synthetic import SyntheticDisplay
from openfrp.media.xvfb import XvfbSource, XwdError
from openfrp.settings import SessionSettings


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
            4022, f"profile mount timed out after {settings.profile_mount_timeout}s"
        ) from None
    if process.returncode != 0:
        detail = stderr.decode(errors="replace").strip()[-200:]
        raise StartFailure(4022, f"profile mount exited {process.returncode}: {detail}")


class FrameSource(Protocol):
    width: int
    height: int

    def capture(self) -> bytes: ...


@dataclass
class Display:
    """A session's display: synthetic frames, or a real Xvfb screen read from its framebuffer."""

    source: FrameSource = field(default_factory=SyntheticDisplay)
    xvfb: asyncio.subprocess.Process | None = None
    number: int | None = None
    fbdir: Path | None = None

    @property
    def env(self) -> dict[str, str]:
        return {"DISPLAY": f":{self.number}"} if self.number is not None else {}

    @property
    def alive(self) -> bool:
        return self.xvfb is None or self.xvfb.returncode is None

    def describe(self) -> dict[str, Any]:
        if self.xvfb is None:
            return {"kind": "synthetic"}
        return {"kind": "xvfb", "display": self.number, "pid": self.xvfb.pid}

    def capture(self) -> bytes:
        """The next frame; a display server that has exited is an error, not a frozen screen."""
        if self.xvfb is not None and self.xvfb.returncode is not None:
            raise DisplayGone(f"Xvfb :{self.number} exited with status {self.xvfb.returncode}")
        return self.source.capture()

    async def stop(self) -> None:
        if self.xvfb is not None and self.xvfb.returncode is None:
            self.xvfb.terminate()
            try:
                await asyncio.wait_for(self.xvfb.wait(), 5)
            except TimeoutError:
                self.xvfb.kill()
                await self.xvfb.wait()
        if self.fbdir is not None:
            shutil.rmtree(self.fbdir, ignore_errors=True)


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
        raise StartFailure(4027, "Xvfb exited before announcing its display")
    return int(line)


async def _readable_framebuffer(path: Path) -> XvfbSource:
    while True:
        try:
            return XvfbSource(path)
        except (OSError, XwdError):
            await asyncio.sleep(0.01)


async def start_display(kind: str, settings: SessionSettings) -> Display:
    """Start the display; not ready within display_ready_timeout is 4027."""
    use_xvfb = kind == "xvfb" or (kind == "auto" and shutil.which("Xvfb") is not None)
    if not use_xvfb:
        return Display()
    if shutil.which("Xvfb") is None:
        raise StartFailure(4027, "display = xvfb but Xvfb is not installed")
    fbdir = Path(tempfile.mkdtemp(prefix="openfrp-fb-"))
    read_fd, write_fd = os.pipe()
    process = await asyncio.create_subprocess_exec(
        "Xvfb",
        "-displayfd",
        str(write_fd),
        "-screen",
        "0",
        "640x480x24",
        "-nolisten",
        "tcp",
        "-noreset",
        "-fbdir",
        str(fbdir),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        pass_fds=(write_fd,),
    )
    os.close(write_fd)
    display = Display(xvfb=process, fbdir=fbdir)

    async def until_ready() -> None:
        display.number = await _announced_display(read_fd)
        display.source = await _readable_framebuffer(fbdir / "Xvfb_screen0")

    try:
        await asyncio.wait_for(until_ready(), settings.display_ready_timeout)
    except BaseException as exc:
        await display.stop()
        if isinstance(exc, TimeoutError):
            raise StartFailure(
                4027, f"display not ready within {settings.display_ready_timeout}s"
            ) from None
        raise
    return display


async def start_app(
    settings: SessionSettings, env: dict[str, str]
) -> asyncio.subprocess.Process | None:
    """Start the launchpad's desktop/app process; its exit ends the session (4018)."""
    if not settings.app_command:
        return None
    return await asyncio.create_subprocess_exec(
        *shlex.split(settings.app_command),
        env={**os.environ, **env},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
