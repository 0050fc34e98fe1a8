"""What a killed server leaves of its sessions, and how it is cleared.

A server stopped as an operator stops it ends every session, and each end stops the display
server and the app and removes their folders. A server killed (kill -9, out of memory) gets
no such chance. So the display server and the app are started to get SIGTERM when the server
process dies (setpriv --pdeathsig, where util-linux is installed; not a process the server was
killed in the moment of starting, before setpriv set the signal); the next start removes the
framebuffer folders no live server holds and no running process uses, and the homes of the
sessions it ends (recovery.py); a pool user still running processes of such a session is
cleared when it is leased again (isolation.py).

A server holds a lock on a file in each framebuffer folder it made for as long as it uses it:
the kernel lets go of it when the server dies, however it dies, so a free lock is a folder
left behind, whatever its age (a crash touches the folder as Xvfb exits), while a held one
belongs to another live server on this machine.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time
from pathlib import Path

DISPLAY_DIR_PREFIX = "openfrp-fb-"
LOCK_NAME = "server.lock"
# A folder without a lock file (made the moment before its lock, or by an older version) that
# is younger than this may belong to a display another server on this machine is starting.
SETTLED_S = 60.0


def die_with_server() -> list[str]:
    """The prefix of a command whose process must not outlive the server: it gets SIGTERM
    when the server process dies (empty where setpriv is not installed)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []


def hold(folder: Path) -> int:
    """Lock a framebuffer folder this server just made; the descriptor returned holds it
    until it is closed (the display stops) or the server dies. The lock file gets its name
    only once locked: another server never finds it free while this one starts."""
    unnamed = folder / f".{LOCK_NAME}"
    fd = os.open(unnamed, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        unnamed.rename(folder / LOCK_NAME)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _left(path: Path) -> bool:
    """Whether no live server holds the folder: its lock is free, or it has no lock file
    and is older than SETTLED_S."""
    try:
        fd = os.open(path / LOCK_NAME, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return _age(path) > SETTLED_S
    except OSError:
        return False  # cannot tell: keep it
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return False  # held by a live server
    finally:
        os.close(fd)
    return True


def remove_unused_display_dirs(folder: str = "") -> list[Path]:
    """Remove the framebuffer folders in `folder` (default: the temp folder) that no live
    server holds and no running process names on its command line; returns them."""
    found = [
        path
        for path in Path(folder or tempfile.gettempdir()).glob(f"{DISPLAY_DIR_PREFIX}*")
        if path.is_dir() and not path.is_symlink() and _left(path)
    ]
    if not found:
        return []
    used: set[bytes] = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            used.update(cmdline.read_bytes().split(b"\0"))
        except OSError:  # it ended meanwhile
            continue
    unused = [path for path in found if str(path).encode() not in used]
    for path in unused:
        shutil.rmtree(path, ignore_errors=True)
    return unused


def _age(path: Path) -> float:
    """Seconds since `path` last changed; 0 for one that is gone (another server removed it)."""
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0
