"""A pool user is reused by the next session, so what its app left outside its home (files in
/tmp, /var/tmp and /dev/shm, SysV shared memory) is removed when its session ends, and again
before the user is leased (what a killed server did not get to); and the app's user may run
only `max_app_processes` processes (RLIMIT_NPROC)."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from openfrp.server.isolation import processes_of
from tests.e2e.conftest import E2E, shared_e2e_env
from tests.e2e.harness import E2EError, ServerProcess, bounded, hello_for
from tests.support.sandbox import needs_root

pytestmark = [
    needs_root,
    pytest.mark.skipif(
        shutil.which("Xvfb") is None or not (shutil.which("ipcmk") and shutil.which("bash")),
        reason="needs Xvfb (Debian xvfb), ipcmk (util-linux) and bash",
    ),
]
QUIET_RAW = {"receive_timeout": 30.0, "idle_timeout": 60.0}
NPROC = 321
TOKEN = secrets.token_hex(4)
LEFT = [
    f"/tmp/openfrp-left-{TOKEN}",
    f"/tmp/openfrp-leftdir-{TOKEN}",
    f"/var/tmp/openfrp-left-{TOKEN}",
    f"/dev/shm/openfrp-left-{TOKEN}",
]
USERS: list[int] = []  # the pool users the test ran as, whose leftovers a failed run removes
PLANTED = [f"/tmp/openfrp-planted-{TOKEN}", f"/dev/shm/openfrp-planted-{TOKEN}"]
WRITER = f"""\
for f in {LEFT[0]} {LEFT[2]} {LEFT[3]}; do echo SECRET >"$f"; chmod 600 "$f"; done
mkdir {LEFT[1]} && echo SECRET >{LEFT[1]}/inside
ipcmk -M 4096 | tr -dc 0-9 >"$HOME/shmid"
ulimit -u >"$HOME/nproc"
touch "$HOME/done"
exec sleep 60
"""
READER = f"""\
for f in {" ".join(LEFT + PLANTED)}; do [ -e "$f" ] && echo "$f" >>"$HOME/seen"; done
ipcs -m | grep -c "$(id -un)" >"$HOME/shm_count"
ulimit -u >"$HOME/nproc"
touch "$HOME/done"
exec sleep 60
"""


def shm_of(uid: int) -> list[int]:
    """The ids of the SysV shared memory segments `uid` owns."""
    lines = Path("/proc/sysvipc/shm").read_text().splitlines()
    owner = lines[0].split().index("uid")
    return [int(line.split()[1]) for line in lines[1:] if int(line.split()[owner]) == uid]


@pytest.fixture
def open_e2e() -> Iterator[E2E]:
    with shared_e2e_env() as env:
        try:
            yield env
        finally:
            for path in LEFT + PLANTED:  # what a failing run left
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                elif os.path.lexists(path):
                    os.unlink(path)
            for uid in USERS:
                for ident in shm_of(uid):
                    subprocess.run(["ipcrm", "-m", str(ident)], check=False)


def run(e2e: E2E, server: ServerProcess, pad: str) -> tuple[dict[str, Any], Path]:
    """Launch a session of `pad` and wait for its app to finish its script: the session's
    account event and the session id."""
    ticket = server.launch("alice", pad)
    raw = e2e.raw(server.ws_url)
    raw.handshake(hello_for(ticket))
    raw.wait_message("started", timeout=10)
    account = server.log.wait_event(event="session.account", session_id=ticket["session_id"])
    home = Path(account["attrs"]["home"])
    for _ in bounded(10.0):
        if (home / "done").exists():
            break
    else:
        raise E2EError(f"the app did not finish; log: {server.log.summary()}")
    return {**account["attrs"], "session_id": ticket["session_id"]}, home


def end(server: ServerProcess, account: dict[str, Any], home: Path) -> None:
    assert server.api("DELETE", f"/api/sessions/{account['session_id']}").status == 200
    for _ in bounded(10.0):
        if not home.exists() and not processes_of(account["uid"]):
            break
    assert not home.exists() and not processes_of(account["uid"])


def test_the_next_session_of_a_pool_user_finds_nothing_the_last_one_left(
    open_e2e: E2E,
) -> None:
    root = open_e2e.root
    for name, script in (("writer.sh", WRITER), ("reader.sh", READER)):
        (root / name).write_text(script)
        (root / name).chmod(0o644)
    pad = {"display_ready_timeout": 10.0, "max_app_processes": NPROC}
    server = open_e2e.server(
        server={"display": "xvfb", "video_fps": 1},
        account=QUIET_RAW,
        launchpads={
            "writer": {**pad, "app_command": f"bash {root / 'writer.sh'}"},
            "reader": {**pad, "app_command": f"bash {root / 'reader.sh'}"},
        },
    )
    writer, home = run(open_e2e, server, "writer")
    uid = writer["uid"]
    USERS.append(uid)
    assert writer["pooled"] and uid not in (0, os.geteuid())
    assert (home / "nproc").read_text().strip() == str(NPROC)  # F6
    shmid = int((home / "shmid").read_text())
    for path in LEFT:
        assert os.lstat(path).st_uid == uid
    assert shmid in shm_of(uid)

    end(server, writer, home)
    for _ in bounded(5.0):
        if not any(os.path.lexists(p) for p in LEFT) and shmid not in shm_of(uid):
            break
    assert [p for p in LEFT if os.path.lexists(p)] == []
    assert shm_of(uid) == []
    # The operator hears what went, as counts: never a name of the user's files.
    for _ in bounded(5.0):
        if "isolation.cleared" in server.stderr():
            break
    said = [line for line in server.stderr().splitlines() if "isolation.cleared" in line]
    assert said and "sysv_shm 1" in said[0] and TOKEN not in server.stderr(), said

    # What a server killed before it cleaned would leave: the lease clears it first.
    for path in PLANTED:
        Path(path).write_text("SECRET")
        os.chown(path, uid, pwd.getpwuid(uid).pw_gid)
    planted_shm = subprocess.run(
        ["ipcmk", "-M", "4096"], user=uid, capture_output=True, text=True, check=True
    ).stdout
    assert shm_of(uid), planted_shm

    reader, home = run(open_e2e, server, "reader")
    assert reader["user"] == writer["user"]  # the same pool user, reused
    assert reader["cleared"]["files"] >= len(PLANTED) and reader["cleared"]["sysv_shm"] >= 1
    assert not (home / "seen").exists(), (home / "seen").read_text()
    assert (home / "shm_count").read_text().strip() == "0"
    assert (home / "nproc").read_text().strip() == str(NPROC)
    end(server, reader, home)
    assert not any(os.path.lexists(p) for p in PLANTED) and shm_of(uid) == []
