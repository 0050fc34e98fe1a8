"""The sweep of what a pool user left: only what that user owns, a folder it owns whole, never
through a symlink, bounded."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from openfrp.server import isolation
from tests.support.sandbox import needs_root, shared_folder

pytestmark = needs_root
UID = 54321  # no process runs as it; chown needs no such user
OTHER = 54322


@pytest.fixture
def area() -> Iterator[Path]:
    with shared_folder(0o1777) as root:
        yield root


def owned(path: Path, uid: int = UID, folder: bool = False) -> Path:
    """A file (or folder) made and given to `uid`."""
    if folder:
        path.mkdir()
    else:
        path.write_text("x")
    os.chown(path, uid, uid)
    return path


def link(path: Path, target: Path, uid: int = UID) -> None:
    path.symlink_to(target)
    os.chown(path, uid, uid, follow_symlinks=False)


def test_removes_what_the_user_owns_and_nothing_else(area: Path) -> None:
    outside = area / "outside"  # reached only through a symlink: never touched
    outside.mkdir()
    area = area / "swept"
    area.mkdir()
    owned(area / "mine")
    owned(area / "theirs", OTHER)
    folder = area / "folder"  # owned: goes whole, whoever owns what is inside
    owned(folder, folder=True)
    (folder / "inner").mkdir()
    owned(folder / "inner" / "other", OTHER)
    shared = area / "shared"  # another's folder anyone may write in: looked into
    shared.mkdir()
    shared.chmod(0o1777)
    owned(shared / "deep")
    owned(shared / "kept", OTHER)
    private = area / "private"  # another's the user cannot write in: not walked
    private.mkdir(mode=0o755)
    owned(private / "unreachable")  # the user could not have made it: stays, unwalked
    owned(outside / "target")
    link(area / "link", outside)  # the user's symlink goes, not its target
    (area / "rootlink").symlink_to(outside)

    removed, incomplete = isolation.sweep_files(UID, roots=(str(area),))

    assert not incomplete
    assert removed == 6  # mine, folder/inner/other, folder/inner, folder, shared/deep, link
    assert sorted(p.name for p in area.iterdir()) == ["private", "rootlink", "shared", "theirs"]
    assert [p.name for p in shared.iterdir()] == ["kept"]
    assert (private / "unreachable").exists()
    assert (outside / "target").exists()


def test_the_walk_is_bounded(area: Path) -> None:
    for index in range(20):
        owned(area / f"f{index}")
    removed, incomplete = isolation.sweep_files(UID, roots=(str(area),), limit=5)
    assert (removed, incomplete) == (5, True)
    assert isolation.sweep_files(UID, roots=(str(area),)) == (15, False)


def test_a_root_that_is_a_symlink_or_missing_is_skipped(area: Path) -> None:
    target = area / "target"
    target.mkdir()
    owned(target / "f")
    (area / "link").symlink_to(target)
    roots = (str(area / "link"), str(area / "missing"))
    assert isolation.sweep_files(UID, roots=roots) == (0, False)
    assert (target / "f").exists()


@pytest.mark.skipif(shutil.which("ipcmk") is None, reason="needs ipcmk (util-linux)")
def test_its_sysv_ipc_objects_go() -> None:
    for kind in ("-M 4096", "-S 1", "-Q"):
        subprocess.run(["ipcmk", *kind.split()], user=UID, check=True, capture_output=True)
    assert all(isolation.sysv_ipc_of(UID, kind) for kind in ("shm", "sem", "msg"))
    try:
        cleared = isolation.sweep(UID)
    finally:  # a failed sweep leaves nothing behind the test either
        for kind, option in (("shm", "-m"), ("sem", "-s"), ("msg", "-q")):
            for ident in isolation.sysv_ipc_of(UID, kind):
                subprocess.run(["ipcrm", option, str(ident)], check=False)
    assert {k: v for k, v in cleared.items() if k != "files"} == {
        "sysv_shm": 1,
        "sysv_sem": 1,
        "sysv_msg": 1,
        "incomplete": False,
    }
    assert not any(isolation.sysv_ipc_of(UID, kind) for kind in ("shm", "sem", "msg"))
