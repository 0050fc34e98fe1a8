"""Session accounts without a server: run_as needs root and a real user, a server that is not root
still gives the app its own home and a clean environment, and the cookie file is one that
X clients (python-xlib here, libXau in the e2e tests) accept for the session's display only."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from Xlib import error as xerror
from Xlib import xauth

from openfrp.server import isolation
from openfrp.server.host import start_app
from openfrp.settings import SessionSettings, SettingsError, from_mapping


def test_run_as_needs_a_root_server(monkeypatch: pytest.MonkeyPatch) -> None:
    config = from_mapping({"launchpads": {"kiosk": {"run_as": "nobody"}}})
    monkeypatch.setattr(isolation, "is_root", lambda: False)
    with pytest.raises(SettingsError, match=r"launchpads\.kiosk\.run_as: .* needs the server"):
        isolation.check(config)
    monkeypatch.setattr(isolation, "is_root", lambda: True)
    isolation.check(config)  # nobody exists on every Debian system
    missing = from_mapping({"launchpads": {"kiosk": {"run_as": "no-such-user-x1"}}})
    with pytest.raises(SettingsError, match="no user 'no-such-user-x1'"):
        isolation.check(missing)
    root = from_mapping({"launchpads": {"kiosk": {"run_as": "root"}}})
    with pytest.raises(SettingsError, match="'root' is root"):
        isolation.check(root)


def test_not_root_the_app_runs_as_the_server_user_with_its_own_home_and_a_clean_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(isolation, "is_root", lambda: False)
    monkeypatch.setenv("OPENFRP_SERVER_ONLY", "not for the app")
    homes = isolation.Isolation(str(tmp_path))
    assert not homes.available
    settings = SessionSettings(app_command="sh -c 'env > env.txt; id -u > uid.txt'")

    async def run() -> isolation.Account:
        account = await homes.acquire("s-1", "")
        session = {"OPENFRP_SESSION_ID": "s-1", "OPENFRP_GUEST_KEY": "k"}
        env = account.app_env(session, {"DISPLAY": ":7", "XAUTHORITY": "/server/copy"})
        app = await start_app(settings, env, account)
        assert app is not None and await app.wait() == 0
        return account

    account = asyncio.run(run())
    home = account.home
    assert home.parent == tmp_path and oct(home.stat().st_mode & 0o777) == "0o700"
    assert (home / "uid.txt").read_text().strip() == str(os.geteuid())
    env = dict(line.split("=", 1) for line in (home / "env.txt").read_text().splitlines())
    env.pop("PWD", None)  # the shell's own
    assert set(env) == {
        *("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "DISPLAY", "XAUTHORITY"),
        *("OPENFRP_SESSION_ID", "OPENFRP_GUEST_KEY"),
    }
    assert env["HOME"] == str(home) and env["XAUTHORITY"] == str(home / ".Xauthority")
    # A terminal in the session starts bash where there is one: arrows, history, completion.
    assert env["SHELL"] == ("/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh")
    asyncio.run(homes.release(account))
    assert not home.exists()


def test_the_cookie_file_names_the_display_and_only_it(tmp_path: Path) -> None:
    cookie = "0123456789abcdef0123456789abcdef"
    path = tmp_path / "Xauthority"
    isolation.write_private(path, isolation.xauthority(cookie, 5))
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    entries = xauth.Xauthority(str(path))
    host = socket.gethostname().encode()
    assert entries.get_best_auth(xauth.FamilyLocal, host, 5) == (
        b"MIT-MAGIC-COOKIE-1",
        bytes.fromhex(cookie),
    )
    with pytest.raises(xerror.XNoAuthError):
        entries.get_best_auth(xauth.FamilyLocal, host, 6)
    # A symlink the app put where its cookie goes is replaced, not followed.
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    path.unlink()
    path.symlink_to(target)
    isolation.write_private(path, isolation.xauthority(cookie, None))
    assert target.read_text() == "keep" and not path.is_symlink()


@pytest.mark.skipif(os.geteuid() != 0, reason="pool users are made by a root server")
def test_two_servers_never_lease_the_same_pool_user(tmp_path: Path) -> None:
    first, second = isolation.Isolation(str(tmp_path)), isolation.Isolation(str(tmp_path))

    async def lease() -> tuple[isolation.Account, isolation.Account]:
        return await first.acquire("s-a", ""), await second.acquire("s-b", "")

    a, b = asyncio.run(lease())
    try:
        assert a.pooled and b.pooled and a.uid != b.uid and 0 not in (a.uid, b.uid)
        assert a.home.stat().st_uid == a.uid and b.home.stat().st_uid == b.uid
    finally:
        asyncio.run(first.release(a))
        asyncio.run(second.release(b))
    assert not a.home.exists() and not b.home.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="pool users are made by a root server")
def test_a_pool_user_a_killed_server_left_running_is_cleared_when_leased(tmp_path: Path) -> None:
    homes = isolation.Isolation(str(tmp_path))

    async def lease() -> isolation.Account:
        return await homes.acquire("s-left", "")

    first = asyncio.run(lease())  # the user a session gets: made if new
    asyncio.run(homes.release(first))
    # What a session of a killed server would leave running as that user (no lock held).
    left = subprocess.Popen(["sleep", "60"], user=first.uid, group=first.gid)
    try:
        again = asyncio.run(lease())
        try:
            assert again.name == first.name
            assert left.wait(5) == -signal.SIGKILL
            assert isolation.processes_of(again.uid) == []
        finally:
            asyncio.run(homes.release(again))
    finally:
        if left.poll() is None:
            left.kill()
            left.wait()


def test_the_homes_of_sessions_a_crash_left_are_removed_and_no_other(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(isolation, "is_root", lambda: False)
    homes = isolation.Isolation(str(tmp_path))

    async def acquire(session_id: str) -> isolation.Account:
        return await homes.acquire(session_id, "")

    left = asyncio.run(acquire("s-2"))
    live = [asyncio.run(acquire(session_id)) for session_id in ("s-1", "s-20")]
    (left.home / "notes.txt").write_text("what the person typed")
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "openfrp-s-2-link").symlink_to(outside)  # not a home: never followed
    homes.remove_homes(["s-2", "s-?"])  # an id is a name, not a pattern
    assert not left.home.exists()
    assert all(account.home.is_dir() for account in live)
    assert outside.is_dir() and (tmp_path / "openfrp-s-2-link").is_symlink()


@pytest.fixture
def shared_homes() -> Iterator[Path]:
    """A folder for homes like /tmp (sticky, anyone may write): a home's user may rename it."""
    folder = Path(tempfile.mkdtemp(prefix="openfrp-test-homes-", dir="/tmp"))
    folder.chmod(0o1777)
    yield folder
    shutil.rmtree(folder)


def outside_file(tmp_path: Path) -> Path:
    """A root-owned .Xauthority in a root-owned folder: what a link would make root overwrite."""
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o755)
    target = outside / ".Xauthority"
    target.write_text("root's own")
    return target


@pytest.mark.skipif(os.geteuid() != 0, reason="a run_as user needs a root server")
def test_a_home_its_user_swaps_for_a_link_is_not_written_through(
    shared_homes: Path, tmp_path: Path
) -> None:
    """Another session of the shared run_as user moves the new home and leaves a link to a
    root folder in its place (and one in the home where the cookie goes): the cookie goes into
    the home the server made, wherever it now is, and nothing outside changes."""
    target = outside_file(tmp_path)
    homes = isolation.Isolation(str(shared_homes))
    account = asyncio.run(homes.acquire("s-swap", "nobody"))
    home, moved = account.home, shared_homes / "moved"
    swap = f"ln -s {target} {home}/.Xauthority && mv {home} {moved} && ln -s {target.parent} {home}"
    subprocess.run(["sh", "-c", swap], user="nobody", check=True, timeout=10)
    try:
        account.give_cookie("0123456789abcdef0123456789abcdef", 3)
        assert target.read_bytes() == b"root's own" and target.stat().st_uid == 0
        assert sorted(p.name for p in target.parent.iterdir()) == [".Xauthority"]
        cookie = moved / ".Xauthority"
        assert not cookie.is_symlink() and cookie.stat().st_uid == account.uid
        assert xauth.Xauthority(str(cookie)).get_best_auth(
            xauth.FamilyLocal, socket.gethostname().encode(), 3
        )[1] == bytes.fromhex("0123456789abcdef0123456789abcdef")
    finally:
        asyncio.run(homes.release(account))
    assert target.read_bytes() == b"root's own" and target.parent.is_dir()


@pytest.mark.skipif(os.geteuid() != 0, reason="a run_as user needs a root server")
def test_a_home_replaced_by_a_link_before_it_is_opened_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A link in the new home's place before the server opened it (a homes folder its user
    may write in): the session's start fails, saying so; the folder linked to is untouched."""
    target = outside_file(tmp_path)
    made = tempfile.mkdtemp

    def raced(prefix: str, dir: str) -> str:
        home = made(prefix=prefix, dir=dir)
        os.rename(home, f"{home}.moved")
        os.symlink(target.parent, home)
        return home

    monkeypatch.setattr(isolation.tempfile, "mkdtemp", raced)
    homes = isolation.Isolation(str(tmp_path))
    with pytest.raises(RuntimeError, match=r"session home .* was replaced before it was used"):
        asyncio.run(homes.acquire("s-race", "nobody"))
    st = target.parent.stat()
    assert (st.st_uid, st.st_mode & 0o777) == (0, 0o755)
    assert sorted(p.name for p in target.parent.iterdir()) == [".Xauthority"]
