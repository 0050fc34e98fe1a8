"""The session registry: what was launched, for whom, and how it ended (SQLite by default).

Live state sits in memory beside each session's state machine; the registry is the durable
record the API lists and the CLI reads.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


class Registry:
    def __init__(self, path: str | Path) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        self._lock = threading.Lock()

    def add(self, record: SessionRecord) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO sessions VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    record.session_id,
                    record.user,
                    record.account,
                    record.launchpad,
                    record.host,
                    record.state,
                    record.final_code,
                    record.created_ts,
                    record.ended_ts,
                    json.dumps(record.config),
                ),
            )

    def set_state(
        self,
        session_id: str,
        state: str,
        final_code: int | None = None,
        ended_ts: str | None = None,
    ) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE sessions SET state=?, final_code=COALESCE(?, final_code),"
                " ended_ts=COALESCE(?, ended_ts) WHERE session_id=?",
                (state, final_code, ended_ts, session_id),
            )

    def get(self, session_id: str) -> SessionRecord | None:
        rows = self._select("WHERE session_id=?", (session_id,))
        return rows[0] if rows else None

    def sessions(self, user: str | None = None) -> list[SessionRecord]:
        if user is None:
            return self._select("ORDER BY created_ts", ())
        return self._select("WHERE user=? ORDER BY created_ts", (user,))

    def _select(self, where: str, params: tuple[Any, ...]) -> list[SessionRecord]:
        with self._lock:
            rows = self._db.execute(f"SELECT * FROM sessions {where}", params).fetchall()
        return [
            SessionRecord(
                session_id=r[0],
                user=r[1],
                account=r[2],
                launchpad=r[3],
                host=r[4],
                state=r[5],
                final_code=r[6],
                created_ts=r[7],
                ended_ts=r[8],
                config=json.loads(r[9]),
            )
            for r in rows
        ]

    def close(self) -> None:
        with self._lock:
            self._db.close()
