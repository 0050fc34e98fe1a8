"""The session registry: what was launched, for whom, on which host, and how it ended.

Two kinds behind one interface: SQLite (one host, the default) and Redis (several hosts behind
one entry point share records, the token owners' live connections for 4006, and a channel per
host for requests that only the owning host can carry out). Live state sits in memory beside
each session's state machine; the registry is the record the API lists and the CLI reads.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    account TEXT NOT NULL,
    launchpad TEXT NOT NULL,
    host TEXT NOT NULL,
    state TEXT NOT NULL,
    final_code INTEGER,
    created_ts TEXT NOT NULL,
    ended_ts TEXT,
    config TEXT NOT NULL
)
"""

Handler = Callable[[dict[str, Any]], Awaitable[None]]
_OUTAGES = {8, 10, 14}  # SQLITE_READONLY, SQLITE_IOERR, SQLITE_CANTOPEN (and extended codes)


class RegistryError(Exception):
    """The registry cannot be opened or reached; worded as one line for the operator."""


@dataclass(frozen=True)
class SessionRecord:
    session_id: str
    user: str
    account: str
    launchpad: str
    host: str
    state: str
    final_code: int | None
    created_ts: str
    ended_ts: str | None
    config: dict[str, Any]
    token_generation: int = 0  # tokens of older generations are revoked (shared registries)

    def public(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "user": self.user,
            "account": self.account,
            "launchpad": self.launchpad,
            "host": self.host,
            "state": self.state,
            "final_code": self.final_code,
            "created_ts": self.created_ts,
            "ended_ts": self.ended_ts,
        }


@dataclass(frozen=True)
class Holder:
    """Where a token owner's live connection is: the host, its session and connection."""

    host: str
    session_id: str
    connection_id: str

    def dumps(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def loads(cls, text: str) -> Holder:
        data = json.loads(text)
        return cls(str(data["host"]), str(data["session_id"]), str(data["connection_id"]))


class Registry(Protocol):
    """What the server needs from a registry; `shared` says whether other hosts see it."""

    shared: bool

    async def start(self) -> None:
        """Connect and check; a RegistryError names what is wrong."""

    async def add(self, record: SessionRecord) -> None: ...

    async def set_state(
        self,
        session_id: str,
        state: str,
        final_code: int | None = None,
        ended_ts: str | None = None,
    ) -> None: ...

    async def set_generation(self, session_id: str, generation: int) -> None:
        """Record that the session's tokens of older generations are revoked, for every host
        to refuse them."""

    async def get(self, session_id: str) -> SessionRecord | None: ...

    async def sessions(self, user: str | None = None) -> list[SessionRecord]: ...

    async def prune(self, ended_before: str) -> int:
        """Forget the sessions that ended before `ended_before` (a UTC timestamp as in the
        records); how many went."""

    async def claim_owner(self, user: str, holder: Holder, ttl: float) -> Holder | None:
        """Record `holder` as the owner's live connection unless another host holds it;
        returns that other holder (and records nothing) or None."""

    async def take_owner(self, user: str, holder: Holder, ttl: float) -> Holder | None:
        """Record `holder` whatever was there; returns the previous holder, if any."""

    async def refresh_owner(self, user: str, holder: Holder, ttl: float) -> Holder | None:
        """Renew `holder`'s record (re-create it if it expired); returns who holds it instead
        when another session took it."""

    async def release_owner(self, user: str, session_id: str) -> None:
        """Drop the owner's record if it is still this session's."""

    async def send(self, host: str, message: dict[str, Any]) -> int:
        """Deliver a request to `host`; returns how many listeners received it."""

    async def listen(self, host: str, handler: Handler) -> None:
        """Start passing the requests sent to `host` to `handler` (until close)."""

    async def listening(self, hosts: set[str]) -> set[str]:
        """Which of `hosts` are up: listening for requests right now."""

    async def close(self) -> None: ...


class SqliteRegistry:
    """One host's registry in a SQLite file; owner records and requests stay in memory.

    The file is opened in exclusive locking mode: SQLite then keeps the WAL index in the
    process's own memory instead of mapping a `-shm` file, so a `-shm` file truncated or made
    read-only under the server cannot end it with SIGBUS (and a second server on the same file
    is refused at start). A file that cannot be written (read-only, or failing with I/O errors)
    is an outage like an unreachable Redis: said, ridden out by live sessions, and written
    again once it can be."""

    shared = False

    def __init__(self, path: str | Path) -> None:
        self._path = str(path)
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._inode: int | None = None  # the file opened; another at the path is not ours

    async def start(self) -> None:
        db: sqlite3.Connection | None = None
        try:
            if self._path != ":memory:":
                Path(self._path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA locking_mode=EXCLUSIVE")  # before WAL: no -shm mapping
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)
            db.execute("BEGIN IMMEDIATE")  # takes the lock now: a second server stops here
            db.execute("COMMIT")
        except (OSError, sqlite3.Error) as exc:
            if db is not None:  # refused: not left open until the collector finds it
                db.close()
            hint = ""
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                hint = (
                    ": is another openfrp server using this data folder? Stop it, or give this"
                    " one its own (--data-dir)"
                )
            raise RegistryError(
                f"registry: cannot open SQLite file {self._path}: {exc}{hint}"
            ) from None
        self._db = db
        if self._path != ":memory:":
            self._inode = os.stat(self._path).st_ino

    @property
    def db(self) -> sqlite3.Connection:
        """The open database, once its file is still the one at the path: SQLite would go on
        writing to a deleted file, and every record would be lost at the next start."""
        if self._db is None:
            raise RegistryError("registry: used before start()")
        if self._inode is not None:
            try:
                inode: int | None = os.stat(self._path).st_ino
            except OSError:
                inode = None
            if inode != self._inode:
                raise RegistryError(
                    f"registry: the SQLite file {self._path} was deleted or replaced "
                    "under the running server; restart it to open the file at that path"
                )
            self._check_writable()
        return self._db

    def _check_writable(self) -> None:
        for path in (self._path, f"{self._path}-wal"):
            if os.path.exists(path) and not os.access(path, os.W_OK):
                raise RegistryError(
                    f"registry: the SQLite file {path} is read-only; writes are held "
                    "until it can be written again"
                )

    @contextlib.contextmanager
    def _using(self) -> Iterator[sqlite3.Connection]:
        """The database under the lock; a file SQLite cannot write is an outage."""
        with self._lock:
            try:
                yield self.db
            except sqlite3.OperationalError as exc:
                if getattr(exc, "sqlite_errorcode", 0) & 0xFF not in _OUTAGES:
                    raise
                if self._inode is not None:  # made read-only under the write: said as such
                    self._check_writable()
                raise RegistryError(f"registry: SQLite file {self._path}: {exc}") from exc

    async def add(self, record: SessionRecord) -> None:
        row = asdict(record)
        row["config"] = json.dumps(record.config)
        del row["token_generation"]  # one host: its live session keeps it (see below)
        with self._using() as db:
            db.execute("INSERT INTO sessions VALUES (?,?,?,?,?,?,?,?,?,?)", tuple(row.values()))

    async def set_state(
        self,
        session_id: str,
        state: str,
        final_code: int | None = None,
        ended_ts: str | None = None,
    ) -> None:
        with self._using() as db:
            db.execute(
                "UPDATE sessions SET state=?, final_code=COALESCE(?, final_code),"
                " ended_ts=COALESCE(?, ended_ts) WHERE session_id=?",
                (state, final_code, ended_ts, session_id),
            )

    async def get(self, session_id: str) -> SessionRecord | None:
        rows = self._select("WHERE session_id=?", (session_id,))
        return rows[0] if rows else None

    async def sessions(self, user: str | None = None) -> list[SessionRecord]:
        if user is None:
            return self._select("ORDER BY created_ts", ())
        return self._select("WHERE user=? ORDER BY created_ts", (user,))

    async def prune(self, ended_before: str) -> int:
        with self._using() as db:
            cursor = db.execute(
                "DELETE FROM sessions WHERE ended_ts IS NOT NULL AND ended_ts < ?", (ended_before,)
            )
        return cursor.rowcount

    def _select(self, where: str, params: tuple[Any, ...]) -> list[SessionRecord]:
        with self._using() as db:
            rows = db.execute(f"SELECT * FROM sessions {where}", params).fetchall()
        return [
            SessionRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], json.loads(r[9]))
            for r in rows
        ]

    # One host: the in-memory sessions already know every live connection and every session,
    # and each live session its token generation (an ended one refuses every token).

    async def set_generation(self, session_id: str, generation: int) -> None:
        return None

    async def claim_owner(self, user: str, holder: Holder, ttl: float) -> Holder | None:
        return None

    async def take_owner(self, user: str, holder: Holder, ttl: float) -> Holder | None:
        return None

    async def refresh_owner(self, user: str, holder: Holder, ttl: float) -> Holder | None:
        return None

    async def release_owner(self, user: str, session_id: str) -> None:
        return None

    async def send(self, host: str, message: dict[str, Any]) -> int:
        return 0

    async def listen(self, host: str, handler: Handler) -> None:
        return None

    async def listening(self, hosts: set[str]) -> set[str]:
        return hosts  # one host: the one asking

    async def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
