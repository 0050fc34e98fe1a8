"""The `openfrp` command a session's home gets (server/guest_command.py): a file any user
can run, that refuses what is not a guest command, and is never written through a link."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from openfrp.server import guest_command
from openfrp.server.guest_command import install, interpreter, reachable_by_others


def run(command: Path, *words: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(command.parents[2])}  # no guest credential
    return subprocess.run(
        [str(command), *words], env=env, capture_output=True, text=True, timeout=30
    )


def test_the_command_runs_guest_actions_only_and_says_what_is_missing(tmp_path: Path) -> None:
    folder = install(tmp_path)
    assert folder == tmp_path / ".openfrp" / "bin"
    command = folder / "openfrp"
    assert command.read_text().splitlines()[0] == f"#!{interpreter()}"
    for path in (folder.parent, folder, command):
        assert path.stat().st_mode & 0o777 == 0o755
    outside = run(command, "guest", "logoff")
    assert outside.returncode == 2
    assert "openfrp guest: not inside an openfrp session" in outside.stderr
    other = run(command, "codes")
    assert other.returncode == 2 and "runs only guest commands" in other.stderr
    bad = run(command, "guest", "reboot")
    assert bad.returncode == 2 and "usage: openfrp guest" in bad.stderr
    assert "Traceback" not in outside.stderr + other.stderr + bad.stderr


def test_the_interpreter_is_one_any_user_can_run() -> None:
    """Here the server's own Python may live in root's 0700 home: then a system python3."""
    if not any(reachable_by_others(Path(p)) for p in guest_command.SYSTEM_PYTHONS):
        pytest.skip("no system python3")
    assert reachable_by_others(Path(interpreter()))


def test_a_link_planted_in_the_home_is_not_written_through(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    os.symlink(target, home / ".openfrp")
    assert install(home) is None
    assert list(target.iterdir()) == []
