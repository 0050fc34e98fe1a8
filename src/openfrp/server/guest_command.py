"""The `openfrp` command each session's app gets, for `openfrp guest ...`.

It is openfrp/guest.py itself, written into the session's home (HOME/.openfrp/bin, first on
the app's PATH) under an interpreter the app's user can run. The server's own `openfrp` may
be out of that user's reach: a venv whose interpreter lives in root's 0700 home, or a pyenv
shim there on the PATH, answered "Permission denied" inside the session.
"""

from __future__ import annotations

import functools
import os
import stat
import sys
import sysconfig
from pathlib import Path

from openfrp import guest

BIN = Path(".openfrp") / "bin"
SYSTEM_PYTHONS = ("/usr/bin/python3", "/usr/local/bin/python3")


def reachable_by_others(path: Path) -> bool:
    """Whether any user may run or read below `path`: it and every folder above it are
    world-executable."""
    try:
        return all(p.stat().st_mode & stat.S_IXOTH for p in (path, *path.parents))
    except OSError:
        return False


@functools.cache
def interpreter() -> str:
    """This process's Python when any user may run it and read its standard library, else
    the system's python3 (the command needs nothing else)."""
    own = Path(os.path.realpath(sys.executable))
    if reachable_by_others(own) and reachable_by_others(Path(sysconfig.get_paths()["stdlib"])):
        return str(own)
    for candidate in SYSTEM_PYTHONS:
        found = Path(os.path.realpath(candidate))
        if found.is_file() and reachable_by_others(found):
            return str(found)
    return str(own)


def install(home: Path) -> Path | None:
    """Write the command into the new session `home` (before its app starts): the folder to
    put first on the app's PATH, or None when something is already in the way. The folders
    and the file stay the server's (0755), created, never followed, where the app's user
    could have planted a link."""
    folder = home / BIN
    try:
        for made in (folder.parent, folder):
            os.mkdir(made)
            os.chmod(made, 0o755)  # the server's umask (077) would keep the app's user out
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        fd = os.open(folder / "openfrp", flags, 0o755)
    except OSError:
        return None
    with os.fdopen(fd, "w") as script:
        os.fchmod(fd, 0o755)
        script.write(f"#!{interpreter()}\n{Path(guest.__file__).read_text()}")
    return folder
