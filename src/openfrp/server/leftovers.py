"""What a killed server leaves of its sessions, and how it is cleared.

A server stopped as an operator stops it ends every session, and each end stops the display
server and the app and removes their folders. A server killed (kill -9, out of memory) gets
no such chance. So the display server and the app are started to get SIGTERM when the server
process dies (setpriv --pdeathsig, where util-linux is installed; not a process the server was
killed in the moment of starting, before setpriv set the signal); the next start removes the
framebuffer folders no running process uses, and the homes of the sessions it ends
(recovery.py); a pool user still running processes of such a session is cleared when it is
leased again (isolation.py).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

DISPLAY_DIR_PREFIX = "openfrp-fb-"
# A display's folder is made just before its display server starts: one younger than this
# may belong to a display another server on this machine is starting.
SETTLED_S = 60.0


def die_with_server() -> list[str]:
    """The prefix of a command whose process must not outlive the server: it gets SIGTERM
    when the server process dies (empty where setpriv is not installed)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []


def remove_unused_display_dirs(folder: str = "") -> list[Path]:
    """Remove the framebuffer folders in `folder` (default: the temp folder) that no running
    process names on its command line and that are older than SETTLED_S; returns them."""
    found = [
        path
        for path in Path(folder or tempfile.gettempdir()).glob(f"{DISPLAY_DIR_PREFIX}*")
        if path.is_dir() and not path.is_symlink() and _age(path) > SETTLED_S
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
