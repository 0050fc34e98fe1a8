"""What tests need when a session's app runs as another OS user (the server runs as root):
folders that user can reach, and a python3 that user can run this checkout with."""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from openfrp.server.guest_command import reachable_by_others

REPO_ROOT = Path(__file__).resolve().parents[2]
needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="running apps as other users needs the server to run as root"
)


def runs(pid: int) -> bool:
    """Whether process `pid` still runs (a zombie has ended; only its status is left)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def unprivileged_python() -> tuple[list[str], dict[str, str]]:
    """A python3 command line and environment with which any user runs this checkout and its
    installed packages: this interpreter where others may run it, else the system python3 of
    the same version on this venv's packages."""
    packages = sysconfig.get_paths()["purelib"]
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONPATH": f"{REPO_ROOT / 'src'}:{packages}"}
    interpreters = (Path(os.path.realpath(sys.executable)), Path(sys.base_prefix))
    if all(reachable_by_others(p) for p in interpreters):
        return [sys.executable], env
    system = Path("/usr/bin") / f"python{sys.version_info.major}.{sys.version_info.minor}"
    if not system.exists() or not reachable_by_others(Path(packages)):
        pytest.skip("no python3 an unprivileged user can run this checkout with")
    return [str(system)], env


@contextmanager
def shared_folder(mode: int = 0o1777) -> Iterator[Path]:
    """A temporary folder outside pytest's private ones (mode 1777: any user may write). As
    root, in /run: a pool user's files in /tmp are removed when its session ends, and tests
    read what the app wrote after that."""
    base = "/run" if os.geteuid() == 0 and os.access("/run", os.W_OK) else None
    folder = Path(tempfile.mkdtemp(prefix="openfrp-test-", dir=base))
    folder.chmod(mode)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
