"""Who a session's app runs as: never the server, so it cannot read the server's secrets.

As root, each session's app runs as its launchpad's `run_as` user or, by default, as a user
of a pool the server creates on demand (`openfrp-s0`, `openfrp-s1`, ...). A pool user is
leased to one session at a time (a lock file held by the server process, so two servers on
one machine never share one) and reused only after its session ended and every process of
that user is gone: a user whose lock no server holds but still runs processes (a session of
a killed server) has them killed when it is leased again. Each session gets a fresh home
folder (0700, owned by that user) that is removed when the session ends; the server, root,
writes into it only through the descriptor it made it with, as that user may move it or put a
link in its place (a `run_as` user is shared by sessions). What a pool user leaves outside
its home (files in /tmp, /var/tmp, /dev/shm, POSIX message queues, SysV shared memory,
semaphores and message queues) is removed when its session ends and again before the user is
leased (a server killed before it cleaned): `sweep`. Not root, the app runs as the
server's user: isolation is unavailable and the server says so at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import glob
import logging
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import stat
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
# Where a pool user's leftovers outside its home can be (each walked on its own filesystem).
SWEEP_ROOTS = ("/tmp", "/var/tmp", "/dev/shm", "/dev/mqueue")
SWEEP_LIMIT = 200_000  # entries one sweep looks at, in all its folders
SWEEP_DEPTH = 200  # folders deep a sweep goes
SYSV_IPC = ("shm", "sem", "msg")  # /proc/sysvipc/NAME
IPC_RMID = 0

oplog = logging.getLogger("openfrp.server")


def _home_prefix(session_id: str) -> str:
    return f"openfrp-{session_id}-"


def is_root() -> bool:
    return os.geteuid() == 0


def check(config: Config) -> None:
    """A launchpad's `run_as` needs root (to switch user) and an existing user; its commands
    a program this server can find."""
    for name, pad in config.launchpads.items():
        for key in ("app_command", "profile_mount_command"):
            problem = _program_problem(getattr(pad, key))
            if problem:
                raise SettingsError(f"launchpads.{name}.{key}: {problem}")
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


def _program_problem(command: str) -> str | None:
    """Why `command` cannot start (each of its sessions would end at once with 4018, 4022 or
    4001, the app's exit status the only clue): words shlex cannot split, or a first word that
    names no program on the PATH the app gets (the server's), or no executable file. A
    relative path with a '/' is the session's home's, not checked."""
    try:
        words = shlex.split(command)
    except ValueError as exc:
        return f"cannot be split into words ({exc}); check the quotes in {command!r}"
    if not words:
        return None
    program = words[0]
    if "/" not in program:
        if shutil.which(program):
            return None
        path = os.environ.get("PATH", "")
        return (
            f"no program '{program}' on this server's PATH ({path}); install it or give its "
            "full path"
        )
    if not program.startswith("/") or (os.path.isfile(program) and os.access(program, os.X_OK)):
        return None
    return f"'{program}' is not an executable file; install it or fix the path"


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


def write_private(
    path: Path, data: bytes, uid: int = -1, gid: int = -1, dir_fd: int | None = None
) -> None:
    """Replace a file, atomically, with one only its owner can read (0600), owned by uid:gid
    when given; a symlink at `path` is replaced, never followed. With `dir_fd`, `path` is
    relative to that open folder: a folder another user may move or swap for a link is
    written only through the descriptor of the one it was."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(temporary, flags, 0o600, dir_fd=dir_fd)
    try:
        try:
            os.fchmod(fd, 0o600)
            if uid >= 0:
                os.fchown(fd, uid, gid)
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(temporary, path, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError:
        with contextlib.suppress(FileNotFoundError):  # nothing stays beside the path
            os.unlink(temporary, dir_fd=dir_fd)
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
    """The OS user a session's app runs as, and the session's home folder (held open: its
    user may move it or put a link in its place, and the server, root, writes into it)."""

    name: str
    uid: int
    gid: int
    home: Path
    pooled: bool
    lock: IO[bytes] | None = None
    home_fd: int = -1
    commands: Path | None = None  # the folder of the session's own `openfrp` (guest_command)
    # what the sweep before the lease removed (counts), what the one at the session's end did
    cleared: dict[str, Any] | None = None
    cleared_at_end: dict[str, Any] | None = None

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
        data = xauthority(cookie, number)
        write_private(Path(".Xauthority"), data, self.uid, self.gid, self.home_fd)

    def describe(self) -> dict[str, Any]:
        described = {
            "user": self.name,
            "uid": self.uid,
            "home": str(self.home),
            "pooled": self.pooled,
        }
        if self.cleared is not None:  # a pool user: what an earlier session had left
            described["cleared"] = self.cleared
        return described


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
            if account.pooled:  # normally nothing: the last session's end swept already
                account.cleared = sweep(account.uid)
                _note(account, account.cleared, "before its lease")
            account.home, account.home_fd = _make_home(self.homes, _home_prefix(session_id))
            # Written through the descriptor, while the home is still the server's alone.
            if guest_command.install(Path(f"/proc/self/fd/{account.home_fd}")) is not None:
                account.commands = account.home / guest_command.BIN
            os.fchown(account.home_fd, account.uid, account.gid)
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
        """End what is left of a pool user's processes, remove the home and what the user
        left outside it (sweep), free the user (a process that outlives this still keeps the
        user from being leased again)."""
        if account.pooled:
            grace = time.monotonic() + TERM_WAIT
            while processes_of(account.uid) and time.monotonic() < grace:
                time.sleep(0.02)
            _kill_all(account.uid)
        if account.home.name.startswith("openfrp-"):
            shutil.rmtree(account.home, ignore_errors=True)  # never through a link
        if account.home_fd >= 0:
            os.close(account.home_fd)
            account.home_fd = -1
        if account.pooled:
            try:
                account.cleared_at_end = cleared = sweep(account.uid)
            except Exception:
                oplog.exception("pool user %s: sweeping what it left failed", account.name)
            else:
                _note(account, cleared, "at its session's end")
        if account.lock is not None:
            account.lock.close()
            account.lock = None
            with self._lock:
                self._leased.discard(account.name)


def _make_home(parent: str, prefix: str) -> tuple[Path, int]:
    """A new folder in `parent` (0700, the server's) and its open descriptor; refused, not
    followed, when something else took its name before it was opened."""
    home = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        fd = os.open(home, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise RuntimeError(f"session home {home} was replaced before it was used: {exc}") from None
    st = os.fstat(fd)
    if st.st_uid != os.geteuid():
        os.close(fd)
        raise RuntimeError(f"session home {home} was replaced before it was used (uid {st.st_uid})")
    os.fchmod(fd, 0o700)
    return home, fd


def _note(account: Account, cleared: dict[str, Any], when: str) -> None:
    """Tell the operator what a sweep removed (counts; a warning when some had to stay)."""
    if not any(cleared.values()):
        return
    oplog.log(
        logging.WARNING if cleared["incomplete"] else logging.INFO,
        "isolation.cleared: pool user %s (uid %d) %s: %s",
        account.name,
        account.uid,
        when,
        ", ".join(f"{key} {value}" for key, value in cleared.items() if value),
    )


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


# -- what a pool user leaves outside its home ---------------------------------------------


class _Budget:
    """How many more entries a sweep may look at."""

    def __init__(self, limit: int) -> None:
        self.left = limit
        self.exhausted = False

    def take(self) -> bool:
        if self.left <= 0:
            self.exhausted = True
            return False
        self.left -= 1
        return True


def _open_dir(name: str, dir_fd: int | None, dev: int) -> int | None:
    """A descriptor of the folder `name` (never through a symlink) when it is on device
    `dev`, else None."""
    try:
        fd = os.open(
            name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd
        )
    except OSError:
        return None
    if os.fstat(fd).st_dev != dev:
        os.close(fd)
        return None
    return fd


def _names(fd: int) -> list[str]:
    with contextlib.suppress(OSError), os.scandir(fd) as entries:
        return [entry.name for entry in entries]
    return []


def _remove_all(parent: int, name: str, dev: int, depth: int, budget: _Budget) -> tuple[int, bool]:
    """Remove the folder `name` (in `parent`) and all in it on its filesystem, whoever owns
    it: (entries removed, whether some had to stay)."""
    fd = _open_dir(name, parent, dev) if depth < SWEEP_DEPTH else None
    if fd is None:
        return 0, True
    removed, kept = 0, False
    try:
        for child in _names(fd):
            if not budget.take():
                return removed, True
            try:
                st = os.stat(child, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            except OSError:
                kept = True
                continue
            if stat.S_ISDIR(st.st_mode):
                count, stayed = _remove_all(fd, child, dev, depth + 1, budget)
            else:
                count, stayed = _unlink(fd, child)
            removed, kept = removed + count, kept or stayed
    finally:
        os.close(fd)
    count, stayed = _unlink(parent, name, folder=True)
    return removed + count, kept or stayed


def _unlink(fd: int, name: str, folder: bool = False) -> tuple[int, bool]:
    """Remove the entry `name` (an empty folder when `folder`) in the open folder `fd`:
    (1 if removed, whether it had to stay); one already gone is neither."""
    try:
        (os.rmdir if folder else os.unlink)(name, dir_fd=fd)
    except FileNotFoundError:
        return 0, False
    except OSError:
        return 0, True
    return 1, False


def _sweep_dir(fd: int, uid: int, dev: int, depth: int, budget: _Budget) -> tuple[int, bool]:
    """Remove what `uid` owns in the open folder `fd` (a folder it owns whole), looking into
    the folders of others anyone may write in on the same filesystem, never through a
    symlink."""
    removed, kept = 0, False
    for name in _names(fd):
        if not budget.take():
            return removed, True
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except OSError:
            continue
        is_dir = stat.S_ISDIR(st.st_mode)
        if st.st_uid == uid:
            if is_dir:
                count, stayed = _remove_all(fd, name, dev, depth + 1, budget)
            else:
                count, stayed = _unlink(fd, name)
            removed, kept = removed + count, kept or stayed
        elif is_dir and st.st_dev == dev and st.st_mode & stat.S_IWOTH:
            # Only a folder anyone may write in can hold the user's entries (its group is its
            # own): the rest of /tmp (a checkout, a venv) is not walked at every session end.
            if depth + 1 >= SWEEP_DEPTH:
                kept = True
                continue
            sub = _open_dir(name, fd, dev)
            if sub is None:
                continue
            try:
                count, stayed = _sweep_dir(sub, uid, dev, depth + 1, budget)
            finally:
                os.close(sub)
            removed, kept = removed + count, kept or stayed
    return removed, kept


def sweep_files(
    uid: int, roots: tuple[str, ...] = SWEEP_ROOTS, limit: int = SWEEP_LIMIT
) -> tuple[int, bool]:
    """Remove every entry `uid` owns under `roots` (each walked on its own filesystem, at most
    `limit` entries in all): (entries removed, whether the walk was cut short or some stayed)."""
    budget = _Budget(limit)
    removed, kept = 0, False
    for root in roots:
        try:
            fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue  # not there (/dev/mqueue unmounted) or a symlink
        try:
            count, stayed = _sweep_dir(fd, uid, os.fstat(fd).st_dev, 0, budget)
        finally:
            os.close(fd)
        removed, kept = removed + count, kept or stayed
    return removed, kept or budget.exhausted


def sysv_ipc_of(uid: int, kind: str) -> list[int]:
    """The ids of the SysV IPC objects of `kind` (shm, sem, msg) that `uid` owns or created."""
    try:
        lines = Path("/proc/sysvipc", kind).read_text().splitlines()
    except OSError:
        return []
    if not lines:
        return []
    header = lines[0].split()
    try:
        owner, creator = header.index("uid"), header.index("cuid")
    except ValueError:
        return []
    found = []
    for line in lines[1:]:
        columns = line.split()
        with contextlib.suppress(ValueError, IndexError):
            if uid in (int(columns[owner]), int(columns[creator])):
                found.append(int(columns[1]))
    return found


_libc: Any = None


def _remove_ipc(kind: str, ident: int) -> bool:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if kind == "shm":
        result = _libc.shmctl(ident, IPC_RMID, None)
    elif kind == "sem":
        result = _libc.semctl(ident, 0, IPC_RMID)
    else:
        result = _libc.msgctl(ident, IPC_RMID, None)
    return result == 0 or ctypes.get_errno() in (errno.EINVAL, errno.EIDRM)


def sweep(uid: int) -> dict[str, Any]:
    """Remove what user `uid` left outside its home once none of its processes runs: its
    files in /tmp, /var/tmp, /dev/shm and /dev/mqueue (POSIX message queues, where mounted)
    and its SysV IPC objects. Blocking: call it from a worker thread. Counts only, for the log
    (never a name of the user's)."""
    files, incomplete = sweep_files(uid)
    cleared: dict[str, Any] = {"files": files}
    for kind in SYSV_IPC:
        ids = sysv_ipc_of(uid, kind)
        gone = sum(_remove_ipc(kind, ident) for ident in ids)
        cleared[f"sysv_{kind}"] = gone
        incomplete = incomplete or gone < len(ids)
    cleared["incomplete"] = incomplete
    return cleared
