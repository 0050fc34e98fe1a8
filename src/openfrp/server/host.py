"""The host side of a session start: the profile-mount hook and the display.

Each step runs under its own timeout and fails with the code the contract names for it
(4022 profile mount, 4027 display), so the runtime only has to pass the code on.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from openfrp.media.synthetic import SyntheticDisplay
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


@dataclass
class Display:
    """A session's display: synthetic frames, optionally backed by a real Xvfb server."""

    source: SyntheticDisplay = field(default_factory=SyntheticDisplay)
    xvfb: asyncio.subprocess.Process | None = None
    number: int | None = None

    async def stop(self) -> None:
        if self.xvfb is not None and self.xvfb.returncode is None:
            self.xvfb.terminate()
            try:
                await asyncio.wait_for(self.xvfb.wait(), 5)
            except TimeoutError:
                self.xvfb.kill()
                await self.xvfb.wait()


_next_display = [100 + os.getpid() % 500]


async def start_display(kind: str, settings: SessionSettings) -> Display:
    """Start the display; not ready within display_ready_timeout is 4027."""
    use_xvfb = kind == "xvfb" or (kind == "auto" and shutil.which("Xvfb") is not None)
    if not use_xvfb:
        return Display()
    if shutil.which("Xvfb") is None:
        raise StartFailure(4027, "display = xvfb but Xvfb is not installed")
    _next_display[0] += 1
    number = _next_display[0]
    process = await asyncio.create_subprocess_exec(
        "Xvfb",
        f":{number}",
        "-screen",
        "0",
        "640x480x24",
        "-nolisten",
        "tcp",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    display = Display(xvfb=process, number=number)
    socket = Path(f"/tmp/.X11-unix/X{number}")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.display_ready_timeout
    while not socket.exists():
        if process.returncode is not None:
            raise StartFailure(4027, f"Xvfb :{number} exited with {process.returncode}")
        if loop.time() > deadline:
            await display.stop()
            raise StartFailure(
                4027, f"display :{number} not ready within {settings.display_ready_timeout}s"
            )
        await asyncio.sleep(0.05)
    return display
