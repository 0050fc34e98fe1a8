"""What a killed server leaves: the display folders the next start removes, and the prefix
that has the display server and the app end with the server process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from openfrp.server import leftovers
from tests.support.sandbox import runs


def _folder(tmp_path: Path, name: str, age: float) -> Path:
    path = tmp_path / f"{leftovers.DISPLAY_DIR_PREFIX}{name}"
    path.mkdir()
    (path / "Xvfb_screen0").write_bytes(b"\0" * 64)
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def test_only_settled_display_folders_no_process_uses_are_removed(tmp_path: Path) -> None:
    old = leftovers.SETTLED_S + 5
    left = _folder(tmp_path, "left", old)
    starting = _folder(tmp_path, "starting", 1)  # its display server may be starting
    used = _folder(tmp_path, "used", old)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = tmp_path / f"{leftovers.DISPLAY_DIR_PREFIX}link"
    link.symlink_to(elsewhere)
    # A process naming the folder on its command line, as a display server's -fbdir does.
    user = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", str(used)])
    try:
        deadline = time.monotonic() + 10  # until it has run: before, its cmdline is ours
        while str(used).encode() not in Path(f"/proc/{user.pid}/cmdline").read_bytes():
            assert time.monotonic() < deadline, "the process did not start"
            time.sleep(0.01)
        assert leftovers.remove_unused_display_dirs(str(tmp_path)) == [left]
    finally:
        user.kill()
        user.wait()
    assert not left.exists() and starting.is_dir() and used.is_dir()
    assert link.is_symlink() and elsewhere.is_dir()


def test_a_folder_no_live_server_holds_is_removed_however_young(tmp_path: Path) -> None:
    """A crash lets go of the folder's lock and touches the folder as Xvfb exits: a restart
    a moment later removes it; one another live server holds stays, however old."""
    left = _folder(tmp_path, "left", 0)
    os.close(leftovers.hold(left))  # the lock a killed server held
    held = _folder(tmp_path, "held", leftovers.SETTLED_S + 5)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from openfrp.server.leftovers import hold\n"
            "fd = hold(Path(sys.argv[1]))\n"
            "print('held', flush=True)\n"
            "time.sleep(30)\n",
            str(held),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        assert leftovers.remove_unused_display_dirs(str(tmp_path)) == [left]
        assert held.is_dir()
    finally:
        holder.kill()
        holder.wait()
    assert leftovers.remove_unused_display_dirs(str(tmp_path)) == [held]


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
def test_a_process_started_with_the_prefix_ends_when_its_parent_dies() -> None:
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time\n"
            "child = subprocess.Popen([*sys.argv[1:], 'sleep', '60'])\n"
            "print(child.pid, flush=True)\n"
            "time.sleep(60)\n",
            *leftovers.die_with_server(),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    deadline = time.monotonic() + 5  # setpriv has set the signal once it runs the command
    while not Path(f"/proc/{child}/cmdline").read_bytes().startswith(b"sleep"):
        assert time.monotonic() < deadline, "setpriv did not run the command"
        time.sleep(0.01)
    parent.kill()  # SIGKILL by PID: the parent gets no say
    parent.wait()
    deadline = time.monotonic() + 5
    while runs(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    if runs(child):
        os.kill(child, 9)
        pytest.fail("the child outlived its parent")
