"""What tests need when a session's app runs as another OS user (the server runs as root):
folders that user can reach, and an `openfrp` command line that user can run."""

from __future__ import annotations

import os
import shutil
import stat
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
OPENFRP = str(Path(sys.executable).with_name("openfrp"))
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


def _reachable_by_others(path: Path) -> bool:
    """Whether any user may run `path`: it and every folder above it are world-executable."""
    return all(p.stat().st_mode & stat.S_IXOTH for p in (path, *path.parents))


def openfrp_command() -> str:
    """The `openfrp` command as an app's user can run it: the venv's launcher where its
    interpreter is world-executable, else the system python3 on this checkout's sources
    (the launcher's interpreter may live in root's 0700 home)."""
    if os.geteuid() != 0:
        return OPENFRP
    interpreters = (Path(os.path.realpath(sys.executable)), Path(sys.base_prefix))
    if all(_reachable_by_others(p) for p in interpreters):
        return OPENFRP
    system = shutil.which("python3", path="/usr/bin:/bin")
    if system is None:
        pytest.skip("no interpreter an unprivileged user can run openfrp with")
    return f"env PYTHONPATH={REPO_ROOT / 'src'} {system} -m openfrp.cli"


def unprivileged_python() -> tuple[list[str], dict[str, str]]:
    """A python3 command line and environment with which any user runs this checkout and its
    installed packages: this interpreter where others may run it, else the system python3 of
    the same version on this venv's packages."""
    packages = sysconfig.get_paths()["purelib"]
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONPATH": f"{REPO_ROOT / 'src'}:{packages}"}
    interpreters = (Path(os.path.realpath(sys.executable)), Path(sys.base_prefix))
    if all(_reachable_by_others(p) for p in interpreters):
        return [sys.executable], env
    system = Path("/usr/bin") / f"python{sys.version_info.major}.{sys.version_info.minor}"
    if not system.exists() or not _reachable_by_others(Path(packages)):
        pytest.skip("no python3 an unprivileged user can run this checkout with")
    return [str(system)], env


@contextmanager
def shared_folder(mode: int = 0o1777) -> Iterator[Path]:
    """A temporary folder outside pytest's private ones (mode 1777: any user may write)."""
    folder = Path(tempfile.mkdtemp(prefix="openfrp-test-"))
    folder.chmod(mode)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
