"""The host side of a session start: the profile-mount hook and the display.

Each step runs under its own timeout and fails with the code the contract names for it
(4022 profile mount, 4027 display), so the runtime only has to pass the code on.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from openfrp.media.synthetic import SyntheticDisplay
from openfrp.media.xvfb import XvfbSource, XwdError
from openfrp.settings import SessionSettings


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
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), settings.profile_mount_timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
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


def _free_display_number() -> int:
    for number in range(100 + os.getpid() % 400, 1000):
        if (
            not Path(f"/tmp/.X{number}-lock").exists()
            and not Path(f"/tmp/.X11-unix/X{number}").exists()
        ):
            return number
    raise StartFailure(4027, "no free X display number")


async def start_display(kind: str, settings: SessionSettings) -> Display:
    """Start the display; not ready within display_ready_timeout is 4027."""
    use_xvfb = kind == "xvfb" or (kind == "auto" and shutil.which("Xvfb") is not None)
    if not use_xvfb:
        return Display()
    if shutil.which("Xvfb") is None:
        raise StartFailure(4027, "display = xvfb but Xvfb is not installed")
    number = _free_display_number()
    fbdir = Path(tempfile.mkdtemp(prefix="openfrp-fb-"))
    process = await asyncio.create_subprocess_exec(
        "Xvfb",
        f":{number}",
        "-screen",
        "0",
        "640x480x24",
        "-nolisten",
        "tcp",
        "-fbdir",
        str(fbdir),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    display = Display(xvfb=process, number=number, fbdir=fbdir)
    ready = (Path(f"/tmp/.X11-unix/X{number}"), fbdir / "Xvfb_screen0")

    async def until_ready() -> None:
        while not all(path.exists() for path in ready):
            if process.returncode is not None:
                raise StartFailure(4027, f"Xvfb :{number} exited with {process.returncode}")
            await asyncio.sleep(0.02)

    try:
        await asyncio.wait_for(until_ready(), settings.display_ready_timeout)
    except TimeoutError:
        await display.stop()
        raise StartFailure(
            4027, f"display :{number} not ready within {settings.display_ready_timeout}s"
        ) from None
    except StartFailure:
        await display.stop()
        raise
    try:
        display.source = XvfbSource(ready[1])
    except (OSError, XwdError) as exc:
        await display.stop()
        raise StartFailure(4027, f"display :{number} framebuffer unreadable: {exc}") from None
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
