"""The session registry: what was launched, for whom, on which host, and how it ended.

Two kinds behind one interface: SQLite (one host, the default) and Redis (several hosts behind
one entry point share records, the token owners' live connections for 4006, and a channel per
host for requests that only the owning host can carry out). Live state sits in memory beside
each session's state machine; the registry is the record the API lists and the CLI reads.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Awaitable, Callable
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
    """One host's registry in a SQLite file; owner records and requests stay in memory."""

    shared = False

    def __init__(self, path: str | Path) -> None:
        self._path = str(path)
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._inode: int | None = None  # the file opened; another at the path is not ours

    async def start(self) -> None:
        try:
            if self._path != ":memory:":
                Path(self._path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise RegistryError(f"registry: cannot open SQLite file {self._path}: {exc}") from None
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
        return self._db

    async def add(self, record: SessionRecord) -> None:
        row = asdict(record)
        row["config"] = json.dumps(record.config)
        with self._lock:
            self.db.execute(
                "INSERT INTO sessions VALUES (?,?,?,?,?,?,?,?,?,?)", tuple(row.values())
            )

    async def set_state(
        self,
        session_id: str,
        state: str,
        final_code: int | None = None,
        ended_ts: str | None = None,
    ) -> None:
        with self._lock:
            self.db.execute(
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
        with self._lock:
            cursor = self.db.execute(
                "DELETE FROM sessions WHERE ended_ts IS NOT NULL AND ended_ts < ?", (ended_before,)
            )
        return cursor.rowcount

    def _select(self, where: str, params: tuple[Any, ...]) -> list[SessionRecord]:
        with self._lock:
            rows = self.db.execute(f"SELECT * FROM sessions {where}", params).fetchall()
        return [
            SessionRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], json.loads(r[9]))
            for r in rows
        ]

    # One host: the in-memory sessions already know every live connection and every session.

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
