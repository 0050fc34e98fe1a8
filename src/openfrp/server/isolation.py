"""Who a session's app runs as: never the server, so it cannot read the server's secrets.

As root, each session's app runs as its launchpad's `run_as` user or, by default, as a user
of a pool the server creates on demand (`openfrp-s0`, `openfrp-s1`, ...). A pool user is
leased to one session at a time (a lock file held by the server process, so two servers on
one machine never share one) and reused only after its session ended and every process of
that user is gone: a user whose lock no server holds but still runs processes (a session of
a killed server) has them killed when it is leased again. Each session gets a fresh home
folder (0700, owned by that user) that is removed when the session ends. Not root, the app
runs as the server's user: isolation is unavailable and the server says so at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from openfrp.server import guest_command
from openfrp.settings import Config, SettingsError

POOL_PREFIX = "openfrp-s"
POOL_SIZE = 1000
LOCK_DIR = Path("/run/openfrp-pool")
TERM_WAIT = 1.0  # seconds a pool user's processes get to exit after the app's SIGTERM
KILL_WAIT = 3.0  # seconds for a pool user's leftover processes to exit after SIGKILL
FAMILY_LOCAL = 256
FAMILY_WILD = 0xFFFF
COOKIE_NAME = b"MIT-MAGIC-COOKIE-1"


def _home_prefix(session_id: str) -> str:
    return f"openfrp-{session_id}-"


def is_root() -> bool:
    return os.geteuid() == 0


def check(config: Config) -> None:
    """A launchpad's `run_as` needs root (to switch user) and an existing user."""
    for name, pad in config.launchpads.items():
        if not pad.run_as:
            continue
        if not is_root():
            raise SettingsError(
                f"launchpads.{name}.run_as: running apps as '{pad.run_as}' needs the server "
                "to run as root; start it as root or remove run_as"
            )
        try:
            uid = pwd.getpwnam(pad.run_as).pw_uid
        except KeyError:
            raise SettingsError(
                f"launchpads.{name}.run_as: no user '{pad.run_as}' on this machine"
            ) from None
        if uid == 0:
            raise SettingsError(
                f"launchpads.{name}.run_as: '{pad.run_as}' is root; the app would reach "
                "everything the server has, so name an unprivileged user"
            )


def xauthority(cookie: str, number: int | None) -> bytes:
    """An Xauthority file with one MIT-MAGIC-COOKIE-1 for this host's display `number`
    (None: any display) and the same for any address, as libXau and python-xlib read it."""
    data = bytes.fromhex(cookie)
    num = b"" if number is None else str(number).encode()
    out = b""
    for family, address in ((FAMILY_LOCAL, socket.gethostname().encode()), (FAMILY_WILD, b"")):
        out += struct.pack("!H", family)
        for field in (address, num, COOKIE_NAME, data):
            out += struct.pack("!H", len(field)) + field
    return out


def write_private(path: Path, data: bytes, uid: int = -1, gid: int = -1) -> None:
    """Replace a file, atomically, with one only its owner can read (0600), owned by uid:gid
    when given; a symlink at `path` is replaced, never followed."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)
            if uid >= 0:
                os.fchown(fd, uid, gid)
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)  # a failed write leaves nothing beside the path
        raise


def processes_of(uid: int) -> list[int]:
    """PIDs of the live processes whose real user is `uid` (from /proc; a zombie, dead and
    waiting for its parent to read its status, runs nothing)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError):
            for line in status.read_text().splitlines():
                if line.startswith("State:") and line.split()[1] == "Z":
                    break
                if line.startswith("Uid:"):
                    if int(line.split()[1]) == uid:
                        found.append(int(status.parent.name))
                    break
    return found


# The shell an app's terminal starts (xterm runs $SHELL): bash where installed, for the line
# editing, history and completion people expect; the POSIX shell otherwise.
APP_SHELL = next((sh for sh in ("/bin/bash", "/bin/sh") if os.path.exists(sh)), "/bin/sh")


@dataclass
class Account:
    """The OS user a session's app runs as, and the session's home folder."""

    name: str
    uid: int
    gid: int
    home: Path
    pooled: bool
    lock: IO[bytes] | None = None
    commands: Path | None = None  # the folder of the session's own `openfrp` (guest_command)

    @property
    def switched(self) -> bool:
        return self.uid != os.geteuid()

    def popen_args(self) -> dict[str, Any]:
        """subprocess arguments that start a process as this user, in its home."""
        args: dict[str, Any] = {"cwd": str(self.home)}
        if self.switched:
            args.update(user=self.uid, group=self.gid, extra_groups=[])
        return args

    def app_env(self, session: dict[str, str], display: dict[str, str]) -> dict[str, str]:
        """The app's whole environment: nothing of the server's besides PATH (after the
        session's own commands) and LANG."""
        path = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
        env = {
            "PATH": path if self.commands is None else f"{self.commands}{os.pathsep}{path}",
            "HOME": str(self.home),
            "USER": self.name,
            "LOGNAME": self.name,
            "SHELL": APP_SHELL,
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            **session,
        }
        if "DISPLAY" in display:
            env["DISPLAY"] = display["DISPLAY"]
            env["XAUTHORITY"] = str(self.home / ".Xauthority")
        return env

    def give_cookie(self, cookie: str, number: int | None) -> None:
        """The display's cookie in the app's own Xauthority file (in its home, 0600)."""
        write_private(self.home / ".Xauthority", xauthority(cookie, number), self.uid, self.gid)

    def describe(self) -> dict[str, Any]:
        return {"user": self.name, "uid": self.uid, "home": str(self.home), "pooled": self.pooled}


class Isolation:
    """Hands out accounts for sessions and takes them back when the sessions end."""

    def __init__(self, homes: str = "") -> None:
        self.homes = homes or tempfile.gettempdir()
        self.available = is_root()
        self._leased: set[str] = set()
        self._lock = threading.Lock()

    async def acquire(self, session_id: str, run_as: str) -> Account:
        return await asyncio.to_thread(self._acquire, session_id, run_as)

    async def release(self, account: Account) -> None:
        await asyncio.to_thread(self._release, account)

    def _acquire(self, session_id: str, run_as: str) -> Account:
        lock = None
        if run_as:
            pw = pwd.getpwnam(run_as)
        elif self.available:
            pw, lock = self._lease()
        else:
            pw = pwd.getpwuid(os.geteuid())
        account = Account(pw.pw_name, pw.pw_uid, pw.pw_gid, Path(), lock is not None, lock)
        try:
            account.home = Path(tempfile.mkdtemp(prefix=_home_prefix(session_id), dir=self.homes))
            os.chmod(account.home, 0o700)
            os.chown(account.home, account.uid, account.gid)
            account.commands = guest_command.install(account.home)
        except BaseException:
            self._release(account)
            raise
        return account

    def remove_homes(self, session_ids: list[str]) -> None:
        """Remove the home folders of these sessions, which ended without this process (a
        server killed while they ran): their end did not get to remove them."""
        for session_id in session_ids:
            for home in Path(self.homes).glob(f"{glob.escape(_home_prefix(session_id))}*"):
                if home.is_dir() and not home.is_symlink():
                    shutil.rmtree(home, ignore_errors=True)

    def _lease(self) -> tuple[pwd.struct_passwd, IO[bytes]]:
        """The first pool user no session holds and no process runs as (once what a killed
        server's session left is killed); created if new."""
        LOCK_DIR.mkdir(mode=0o700, exist_ok=True)
        with self._lock:
            for index in range(POOL_SIZE):
                name = f"{POOL_PREFIX}{index}"
                if name in self._leased:
                    continue
                lock = (LOCK_DIR / f"{name}.lock").open("ab")
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    pw = self._pool_user(name)
                except BlockingIOError:
                    lock.close()
                    continue
                except BaseException:
                    lock.close()
                    raise
                # No server leases this user (its lock was free): what still runs as it is
                # left from a session of a server that was killed.
                if processes_of(pw.pw_uid) and _kill_all(pw.pw_uid):
                    lock.close()
                    continue
                self._leased.add(name)
                return pw, lock
        raise RuntimeError(f"every one of the {POOL_SIZE} pool users is in use")

    @staticmethod
    def _pool_user(name: str) -> pwd.struct_passwd:
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
        subprocess.run(
            [
                *("useradd", "--system", "--user-group", "--no-create-home"),
                *("--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name),
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        return pwd.getpwnam(name)

    def _release(self, account: Account) -> None:
        """End what is left of a pool user's processes, remove the home, free the user (a
        process that outlives this still keeps the user from being leased again)."""
        if account.pooled:
            grace = time.monotonic() + TERM_WAIT
            while processes_of(account.uid) and time.monotonic() < grace:
                time.sleep(0.02)
            _kill_all(account.uid)
        if account.home.name.startswith("openfrp-"):
            shutil.rmtree(account.home, ignore_errors=True)
        if account.lock is not None:
            account.lock.close()
            account.lock = None
            with self._lock:
                self._leased.discard(account.name)


def _kill_all(uid: int) -> list[int]:
    """SIGKILL every process of user `uid` until none is left or KILL_WAIT has passed;
    returns those still there."""
    deadline = time.monotonic() + KILL_WAIT
    while (pids := processes_of(uid)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)
    return pids
