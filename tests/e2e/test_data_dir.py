"""`openfrp serve` with no data folder named keeps its state in the platform's place, says
where, and `openfrp sessions` finds the admin key there; HOME, XDG_DATA_HOME and
STATE_DIRECTORY point into a temporary folder, so no real home or /var/lib is touched."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import OPENFRP, bounded, stop_process
from tests.support.sandbox import unprivileged_python

NOBODY = 65534
# what would pick the folder otherwise: the tests' own environment must not leak in
CHOOSERS = ("OPENFRP_DATA_DIR", "STATE_DIRECTORY", "XDG_DATA_HOME", "HOME")


def _as_a_user(root: Path) -> tuple[list[str], dict[str, str], dict[str, Any]]:
    """openfrp's command, environment and Popen options for a user who is not root: this
    process's own, or nobody where the tests run as root (root's default is /var/lib)."""
    if os.geteuid() != 0:
        env = {k: v for k, v in os.environ.items() if k not in CHOOSERS}
        return [OPENFRP], env, {}
    python, env = unprivileged_python()
    for folder in (root, *root.rglob("*")):
        os.chown(folder, NOBODY, NOBODY)
    return [*python, "-m", "openfrp.cli"], env, {"user": NOBODY, "group": NOBODY}


def _serve_and_list(
    command: list[str], env: dict[str, str], options: dict[str, Any], root: Path
) -> tuple[str, str]:
    """Start the server with no data folder named, list sessions with no key named, stop it;
    its stdout and stderr."""
    cwd, ready = root / "cwd", root / "ready.txt"
    env = {**env, "OPENFRP_DISPLAY": "synthetic"}
    process = subprocess.Popen(
        [*command, "serve", "--port", "0", f"--ready-file={ready}"],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **options,
    )
    try:
        for _ in bounded(20.0):
            if ready.exists() and len(ready.read_text().splitlines()) >= 2:
                break
            assert process.poll() is None, process.communicate()
        url = ready.read_text().splitlines()[0]
        listed = subprocess.run(  # the admin key is found in the same default folder
            [*command, "sessions", "--server", url, "--json"],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            **options,
        )
        assert listed.returncode == 0 and listed.stdout.strip() == "[]", listed.stderr
    finally:
        stop_process(process)
    out, err = process.communicate(timeout=10)
    assert not any(cwd.iterdir())  # nothing in the working directory
    return out, err


def _holds_the_state(folder: Path, out: str, err: str) -> None:
    assert {p.name for p in folder.iterdir()} >= {"registry.sqlite3", "logs", "admin.key", "secret"}
    assert (folder / "logs" / "server-events.jsonl").stat().st_size > 0
    assert f"data folder {folder}," in out  # the startup line
    assert f"data folder {folder}\n" in err  # the operator's log


@pytest.mark.parametrize("xdg", [True, False], ids=["xdg-data-home", "home"])
def test_a_user_server_keeps_its_state_in_the_user_data_folder(shared_tmp: Path, xdg: bool) -> None:
    root = shared_tmp
    for name in ("home", "cwd"):
        (root / name).mkdir()
    command, env, options = _as_a_user(root)
    env = {**env, "HOME": str(root / "home")}
    if xdg:
        env["XDG_DATA_HOME"] = str(root / "xdg")  # made by the server, as the spec allows
    out, err = _serve_and_list(command, env, options, root)
    expected = root / "xdg" / "openfrp" if xdg else root / "home" / ".local/share/openfrp"
    _holds_the_state(expected, out, err)
    if xdg:
        assert not any((root / "home").iterdir())  # XDG_DATA_HOME wins over HOME


def test_a_system_service_keeps_its_state_in_its_state_directory(tmp_path: Path) -> None:
    """systemd's StateDirectory= sets STATE_DIRECTORY; it wins for root too."""
    (tmp_path / "cwd").mkdir()
    env = {k: v for k, v in os.environ.items() if k not in CHOOSERS}
    env |= {"HOME": str(tmp_path / "home"), "STATE_DIRECTORY": str(tmp_path / "state")}
    out, err = _serve_and_list([OPENFRP], env, {}, tmp_path)
    _holds_the_state(tmp_path / "state", out, err)
    assert not (tmp_path / "home").exists()


def _serve_once(
    data: Path, command: list[str], env: dict[str, str], options: dict[str, Any]
) -> subprocess.CompletedProcess[str]:
    """`openfrp serve` on `data` that is expected to stop at start."""
    return subprocess.run(
        [*command, "serve", "--data-dir", str(data), "--port", "0"],
        env={**env, "OPENFRP_DISPLAY": "synthetic"},
        capture_output=True,
        text=True,
        timeout=30,
        **options,
    )


def test_a_data_folder_that_cannot_be_used_is_named_with_the_next_step(shared_tmp: Path) -> None:
    afile = shared_tmp / "afile"
    afile.write_text("not a folder")
    (shared_tmp / "ro").mkdir()
    command, env, options = _as_a_user(shared_tmp)
    (shared_tmp / "ro").chmod(0o555)  # the server's user may not write in it
    fix = "give a folder this user can write (--data-dir)"
    cases = {
        afile / "data": f"data folder {afile / 'data'}: cannot create it (Not a directory): {fix}",
        shared_tmp / "ro": f"data folder {shared_tmp / 'ro'}: cannot create logs/ (Permission "
        f"denied): {fix}",
    }
    for data, line in cases.items():
        done = _serve_once(data, command, env, options)
        assert done.returncode == 2, done
        assert done.stderr == f"openfrp serve: {line}\n"


def test_a_second_server_on_the_same_data_folder_is_told_why(tmp_path: Path) -> None:
    data, ready = tmp_path / "data", tmp_path / "ready.txt"
    env = {k: v for k, v in os.environ.items() if k not in CHOOSERS}
    first = subprocess.Popen(
        [OPENFRP, "serve", "--data-dir", str(data), "--port", "0", f"--ready-file={ready}"],
        env={**env, "OPENFRP_DISPLAY": "synthetic"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in bounded(20.0):
            if ready.exists() and len(ready.read_text().splitlines()) >= 2:
                break
            assert first.poll() is None
        second = _serve_once(data, [OPENFRP], env, {})
    finally:
        stop_process(first)
    assert second.returncode == 2
    assert second.stderr.count("\n") == 1
    assert second.stderr.startswith(f"openfrp serve: registry: cannot open SQLite file {data}/")
    assert "database is locked: is another openfrp server using this data folder?" in second.stderr
