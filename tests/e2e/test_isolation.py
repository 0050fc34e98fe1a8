"""A session's app runs as its own unprivileged user: it cannot read the server's secret,
keys, registry or log, nor another session's home or display, and the guest command still
works from inside with the session's own credential.

The servers here live in a world-traversable folder (not pytest's private one), so only the
server's own protections stand between the app and its files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from openfrp.server.isolation import processes_of
from tests.e2e.conftest import E2E, shared_e2e_env
from tests.e2e.harness import (
    SECRET,
    E2EError,
    RawClient,
    ServerProcess,
    bounded,
    hello_for,
    stop_process,
    write_config,
)
from tests.support.sandbox import (
    needs_root,
    unprivileged_python,
)

pytestmark = needs_root
needs_x = pytest.mark.skipif(
    shutil.which("Xvfb") is None or shutil.which("xdpyinfo") is None,
    reason="needs Xvfb and xdpyinfo (Debian xvfb, x11-utils)",
)
ENV_SECRET = "server-env-secret-7f3a"
NOBODY = 65534
# Raw clients answer no pings: without these a slow run would see 4023 and then 4009 end the
# sessions (and their apps) before the probe's report is read.
QUIET_RAW = {"receive_timeout": 30.0, "idle_timeout": 60.0}
ALLOWED_ENV = {
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "DISPLAY",
    "XAUTHORITY",
    "OPENFRP_SESSION_ID",
    "OPENFRP_GUEST_URL",
    "OPENFRP_GUEST_KEY",
    "PWD",  # set by sh itself
}
PROBE = """\
. "$(dirname "$0")/targets"
out="$HOME/report"
check() {
  what=$1; shift
  if "$@" >"$HOME/got-$what" 2>&1; then got=ok; else got=denied; fi
  echo "$what $got" >>"$out"
}
echo "uid $(id -u)" >>"$out"
env >"$HOME/env"
check config cat "$CONFIG"
check admin_key cat "$ADMIN_KEY"
check registry cat "$REGISTRY"
check log cat "$LOG"
check data_folder ls "$DATA"
check server_environ cat "/proc/$SERVER_PID/environ"
check other_home ls "$OTHER_HOME"
check other_cookie cat "$OTHER_HOME/.Xauthority"
check screens sh -c 'cat /tmp/openfrp-fb-*/Xvfb_screen0'
check own_display xdpyinfo
for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' <"$f" 2>/dev/null; done |
  grep '^OPENFRP_GUEST_KEY=' | sort -u >"$HOME/keys"
check other_display xdpyinfo -display ":$OTHER_DISPLAY"
setsid sleep 300 >/dev/null 2>&1 &  # outside the app's process group
touch "$HOME/done"
exec sleep 60
"""


@pytest.fixture
def open_e2e(monkeypatch: pytest.MonkeyPatch) -> Iterator[E2E]:
    """An E2E whose servers live under a folder any user may traverse (mode 0755)."""
    monkeypatch.setenv("OPENFRP_PROBE_SECRET", ENV_SECRET)  # in the server's environment
    with shared_e2e_env() as env:
        yield env


def start(e2e: E2E, server: ServerProcess, ticket: dict[str, Any]) -> dict[str, Any]:
    """Join the session so it starts; its account event (user, uid, home)."""
    raw = e2e.raw(server.ws_url)
    raw.handshake(hello_for(ticket))
    raw.wait_message("started", timeout=10)
    return server.log.wait_event(event="session.account", session_id=ticket["session_id"])


@needs_x
def test_the_app_reaches_none_of_the_servers_secrets_nor_another_session(
    open_e2e: E2E,
) -> None:
    pad = {"display_ready_timeout": 10.0}
    probe = open_e2e.root / "probe.sh"
    probe.write_text(PROBE)
    probe.chmod(0o644)
    server = open_e2e.server(
        server={"display": "xvfb", "video_fps": 1},
        account=QUIET_RAW,
        launchpads={
            "other": {**pad, "app_command": "sleep 60"},
            "probe": {**pad, "app_command": f"sh {probe}"},
        },
    )
    other = server.launch("bob", "other")
    other_account = start(open_e2e, server, other)["attrs"]
    other_display = server.log.wait_event(event="display.ready", session_id=other["session_id"])
    data = server.root / "data"
    assert (data / "admin.key").read_text() == server.admin_key
    targets = {
        "CONFIG": server.root / "server.toml",
        "ADMIN_KEY": data / "admin.key",
        "REGISTRY": data / "registry.sqlite3",
        "LOG": data / "logs" / "server-events.jsonl",
        "DATA": data,
        "SERVER_PID": server.process.pid,
        "OTHER_HOME": other_account["home"],
        "OTHER_DISPLAY": other_display["attrs"]["display"],
    }
    (open_e2e.root / "targets").write_text("".join(f"{k}='{v}'\n" for k, v in targets.items()))

    ticket = server.launch("mallory", "probe")
    account = start(open_e2e, server, ticket)["attrs"]
    home = Path(account["home"])
    for _ in bounded(10.0):
        if (home / "done").exists():
            break
    else:
        raise E2EError(f"the probe app did not finish; log: {server.log.summary()}")
    report = dict(line.split(" ", 1) for line in (home / "report").read_text().splitlines())

    assert report.pop("uid") == str(account["uid"])
    assert account["uid"] not in (0, os.geteuid(), other_account["uid"])
    assert account["pooled"] and account["user"].startswith("openfrp-s")
    assert report.pop("own_display") == "ok"  # its cookie opens its own display
    assert list(Path(tempfile.gettempdir()).glob("openfrp-fb-*"))  # screens it could try
    assert report == dict.fromkeys(
        (
            "config",
            "admin_key",
            "registry",
            "log",
            "data_folder",
            "server_environ",
            "other_home",
            "other_cookie",
            "other_display",
            "screens",
        ),
        "denied",
    ), report
    env = dict(
        line.split("=", 1) for line in (home / "env").read_text().splitlines() if "=" in line
    )
    assert set(env) <= ALLOWED_ENV, set(env) - ALLOWED_ENV
    assert env["HOME"] == str(home) and env["USER"] == account["user"]
    assert env["OPENFRP_SESSION_ID"] == ticket["session_id"]
    # Of every process's environment it could read, only its own session's guest key.
    assert (home / "keys").read_text().split() == [f"OPENFRP_GUEST_KEY={env['OPENFRP_GUEST_KEY']}"]
    assert oct(home.stat().st_mode & 0o777) == "0o700" and home.stat().st_uid == account["uid"]
    everything = "".join(p.read_text(errors="replace") for p in home.iterdir() if p.is_file())
    for secret in (SECRET, server.admin_key, ENV_SECRET):
        assert secret not in everything

    # The session's end ends all its user's processes (even one that left the app's process
    # group) and removes its home; the other session's app goes on.
    assert processes_of(account["uid"])
    assert server.api("DELETE", f"/api/sessions/{ticket['session_id']}").status == 200
    for _ in bounded(8.0):
        if not home.exists() and not processes_of(account["uid"]):
            break
    assert not home.exists() and not processes_of(account["uid"])
    assert processes_of(other_account["uid"])


def test_the_guest_command_works_from_inside_with_the_sessions_credential(
    open_e2e: E2E,
) -> None:
    app = "sh -c 'sleep 0.3; openfrp guest logoff'"
    server = open_e2e.server(account=QUIET_RAW, launchpads={"guest": {"app_command": app}})
    ticket = server.launch("alice", "guest")
    sid = ticket["session_id"]
    account = start(open_e2e, server, ticket)["attrs"]
    assert account["uid"] != 0 and account["pooled"]

    ended = server.log.wait_event(event="session.ended", session_id=sid, timeout=15)
    assert (ended["code"], ended["attrs"]["reason"]) == (4018, "guest logoff")
    assert server.session(sid)["final_code"] == 4018


def test_a_launchpads_run_as_user_runs_its_app(open_e2e: E2E) -> None:
    server = open_e2e.server(
        account=QUIET_RAW,
        launchpads={"kiosk": {"run_as": "nobody", "app_command": "sh -c 'id -un > who; sleep 30'"}},
    )
    ticket = server.launch("alice", "kiosk")
    account = start(open_e2e, server, ticket)["attrs"]
    assert (account["user"], account["pooled"]) == ("nobody", False)
    who = Path(account["home"]) / "who"
    for _ in bounded(5.0):
        if who.exists() and who.read_text():
            break
    assert who.read_text().strip() == "nobody"
    assert server.api("DELETE", f"/api/sessions/{ticket['session_id']}").status == 200
    for _ in bounded(5.0):
        if not who.parent.exists():
            break
    assert not who.parent.exists()


def unprivileged_server(
    root: Path, launchpads: dict[str, dict[str, Any]]
) -> subprocess.Popen[bytes]:
    """`openfrp serve` as the user nobody, its config and folders under `root` (mode 1777)."""
    config = write_config(root / "server.toml", root / "data", launchpads, QUIET_RAW)
    os.chown(config, NOBODY, NOBODY)
    python, env = unprivileged_python()
    with (root / "server-stderr.txt").open("wb") as err:
        return subprocess.Popen(
            [
                *(*python, "-m", "openfrp.cli", "serve", "--config", str(config)),
                *("--port=0", f"--ready-file={root / 'ready.txt'}"),
            ],
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            user=NOBODY,
            group=NOBODY,
            extra_groups=[],
        )


def test_not_root_the_app_runs_as_the_server_user_and_the_server_says_so(
    shared_tmp: Path,
) -> None:
    app = "sh -c 'env > env.txt; id -u > uid.txt; exec sleep 30'"
    process = unprivileged_server(shared_tmp, {"app": {"app_command": app}})
    try:
        ready = shared_tmp / "ready.txt"
        for _ in bounded(20.0):
            if ready.exists() and len(ready.read_text().splitlines()) >= 2:
                break
            assert process.poll() is None, (shared_tmp / "server-stderr.txt").read_text()
        url, key = ready.read_text().split()
        server = ServerProcess(process, shared_tmp, url, key)
        warning = server.log.wait_event(event="isolation.unavailable")
        assert warning["severity"] == "warning" and warning["attrs"]["user"] == NOBODY

        ticket = server.launch("alice", "app")
        raw = RawClient.open(server.ws_url)
        try:
            raw.handshake(hello_for(ticket))
            account = server.log.wait_event(
                event="session.account", session_id=ticket["session_id"]
            )["attrs"]
            assert (account["uid"], account["pooled"]) == (NOBODY, False)
            home = Path(account["home"])
            for _ in bounded(10.0):
                if (home / "uid.txt").exists() and (home / "uid.txt").read_text():
                    break
            assert (home / "uid.txt").read_text().strip() == str(NOBODY)
            env = dict(line.split("=", 1) for line in (home / "env.txt").read_text().splitlines())
            assert set(env) <= ALLOWED_ENV, set(env) - ALLOWED_ENV  # no PYTHONPATH, say
            assert oct(home.stat().st_mode & 0o777) == "0o700"
        finally:
            raw.close()
    finally:
        stop_process(process)

    # run_as needs root: such a server stops at start, saying so in one line.
    (shared_tmp / "again").mkdir(mode=0o1777)
    (shared_tmp / "again").chmod(0o1777)
    refused = unprivileged_server(shared_tmp / "again", {"kiosk": {"run_as": "nobody"}})
    assert refused.wait(30) == 2
    stderr = (shared_tmp / "again" / "server-stderr.txt").read_text()
    assert "launchpads.kiosk.run_as" in stderr and "needs the server to run as root" in stderr
    assert "Traceback" not in stderr
