"""Rollups: small tables counting sessions per combination of a few facts, which the summary
reads instead of the sessions.

Each rollup is `count(*)` (and sums, and at most one max) per group of table `sessions`: a
user and a category, a code and a user, a time bucket... A few thousand rows stand for the
909,090 sessions of ten million events. --state keeps them and updates them with only the
sessions an added run touched: their old rows count -1, their new rows +1 (groups left at zero
go), so the summary after 1 % more log costs as much as the rollups, not the whole fleet.
Counts and sums come out exactly as a full run's; a distinct count is a count of rows; a max
a touched session may have held is recomputed from the sessions.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from openfrp.codes import CodeNumber

if TYPE_CHECKING:
    import duckdb

FAILED = "phase IN ('setup_failure', 'mid_session_failure')"
# Codes that follow a loss rather than cause one: the idle timeout that ends a session nobody
# came back to, and the terminal's reconnecting. In a session with a loss they are
# consequences; the loss's own code is the root.
CONSEQUENCES = (CodeNumber.IDLE_TIMEOUT, CodeNumber.RECONNECTING)
BREAKDOWNS = ("launchpad", "account", "frp", "host", "client")
WHO = ("user", "host", "launchpad", "client")
BUCKET_WIDTHS = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400)
MAX_BUCKETS = 60
# Durations are counted per minute: the summary reads only the minutes holding its quantiles.
DURATION_BIN = "floor(duration_s / 60)::BIGINT"
CONCURRENT_QUERIES = 3


def per_column(columns: tuple[str, ...], facts: str) -> str:
    """The sessions once per column of `columns`: its name (`dim`), its value as text, `facts`.
    One rollup for all the columns costs an update a statement, not one per column."""
    parts = (
        f"SELECT '{c}' AS dim, coalesce(CAST(\"{c}\" AS VARCHAR), '(none)') AS value, {facts}"
        "{extra} FROM {s}"
        for c in columns
    )
    return f"({' UNION ALL '.join(parts)})"


@dataclass(frozen=True)
class Rollup:
    """`count(*) AS n`, the `sums` and max(`latest`) per group of `keys` (name: expression),
    over the rows of `source` ({s}: the sessions; {extra}: more of their columns to pass on)
    that pass `where`."""

    name: str
    keys: dict[str, str]
    sums: tuple[str, ...] = ()
    latest: str = ""
    source: str = "{s}"
    where: str = "true"

    @property
    def bucketed(self) -> bool:
        return any("{width}" in expr for expr in self.keys.values())

    def select(self, sessions: str, width: int, signed: bool = False) -> str:
        """The rollup of `sessions`; `signed`: of sessions with a column is_new, the new ones
        counted +1 and the others -1, `latest` the new ones' max and `gone_latest` the others'
        (the change in a rollup, from one scan of the sessions instead of one per side)."""
        keys = ", ".join(f'{expr} AS "{name}"' for name, expr in self.keys.items())
        sign = "CASE WHEN is_new THEN 1 ELSE -1 END * " if signed else ""
        count = f"sum({sign}1)::BIGINT" if signed else "count(*)"
        measures = [f"{count} AS n", *(f"sum({sign}{c})::BIGINT AS {c}" for c in self.sums)]
        if self.latest and signed:
            measures.append(f"max({self.latest}) FILTER (is_new) AS latest")
            measures.append(f"max({self.latest}) FILTER (NOT is_new) AS gone_latest")
        elif self.latest:
            measures.append(f"max({self.latest}) AS latest")
        source = self.source.format(s=sessions, extra=", is_new" if signed else "")
        return (
            f"SELECT {keys.format(width=width)}, {', '.join(measures)} "
            f"FROM {source} WHERE {self.where} GROUP BY ALL"
        )


ROLLUPS: tuple[Rollup, ...] = (
    Rollup(
        "people",
        {
            k: f'"{k}"'
            for k in (
                "user",
                "category",
                "phase",
                "attempted",
                "active",
                "ended",
                "clock_stepped_back",
            )
        },
    ),
    Rollup(
        "codes",
        {
            "code": "code",
            "user": '"user"',
            "final": "final_code = code",
            "consequence": f"code IN ({', '.join(map(str, CONSEQUENCES))}) AND disconnects > 0",
        },
        source='(SELECT unnest(codes) AS code, "user", final_code, disconnects{extra} FROM {s})',
    ),
    Rollup(
        "reconnects",
        {
            "disrupted": "disconnects > 0 OR reconnect_attempts > 0",
            "recovered": "recovered",
            "gave_up": "gave_up",
        },
        sums=("disconnects", "incidents_recovered", "reconnect_attempts"),
    ),
    Rollup("recovery", {"ms": "recovery_ms"}, where="recovery_ms IS NOT NULL"),
    Rollup("connect", {"ms": "time_to_connect_ms"}, where="time_to_connect_ms IS NOT NULL"),
    Rollup(
        "durations",
        {"category": "category", "bin": DURATION_BIN},
        where="ended AND duration_s IS NOT NULL",
    ),
    Rollup(
        "buckets",
        {
            "width": "{width}",
            "t": "time_bucket(INTERVAL '{width} seconds', start_ts)",
            "failed": FAILED,
            "codes": "codes",
        },
        where="start_ts IS NOT NULL",
    ),
    Rollup(
        "by",
        {k: k for k in ("dim", "value", "category", "active", "attempted", "ended", "phase")},
        source=per_column(BREAKDOWNS, "category, active, attempted, ended, phase"),
    ),
    Rollup(
        "who",
        {"dim": "dim", "value": "value", "category": "category", "failed": FAILED},
        latest=f"CASE WHEN {FAILED} THEN start_ts END",
        source=per_column(WHO, "category, phase, start_ts"),
    ),
)
# What the rollups count: state kept by another definition is rebuilt, never updated.
DEFINITION = repr(ROLLUPS)


def concurrently(
    con: duckdb.DuckDBPyConnection, jobs: dict[str, Callable[[duckdb.DuckDBPyConnection], Any]]
) -> dict[str, Any]:
    """Each job's result, the jobs run at once on cursors of their own: most of these queries
    are too small for DuckDB to spread over the cores itself (the summary of one million
    events took 0.10-0.15 s instead of 0.19-0.21 s; of 10 M, 0.48-0.59 s instead of 0.58-0.65)."""

    def run(job: Callable[[duckdb.DuckDBPyConnection], Any]) -> Any:
        cursor = con.cursor()
        try:
            return job(cursor)
        finally:
            cursor.close()

    with ThreadPoolExecutor(CONCURRENT_QUERIES) as pool:
        futures = {name: pool.submit(run, job) for name, job in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


def bucket_width(con: duckdb.DuckDBPyConnection, sessions: str) -> int:
    """Seconds per time-series bucket: the narrowest that keeps the span of start times in
    MAX_BUCKETS buckets, so charts stay readable."""
    lo, hi = con.execute(f"SELECT min(start_ts), max(start_ts) FROM {sessions}").fetchall()[0]
    seconds = max((hi - lo).total_seconds(), 1.0) if lo is not None else 1.0
    return next((w for w in BUCKET_WIDTHS if seconds / w <= MAX_BUCKETS), BUCKET_WIDTHS[-1])


@dataclass
class Rollups:
    """The rollup tables in catalog `db` (r_NAME), and the bucket width they were made with."""

    db: str
    width: int

    def table(self, name: str) -> str:
        return f"{self.db}.r_{name}"


def home(con: duckdb.DuckDBPyConnection) -> str:
    """The connection's own catalog (where its tables go unless another is named)."""
    return str(con.execute("SELECT current_database()").fetchall()[0][0])


def build(con: duckdb.DuckDBPyConnection, sessions: str, db: str = "") -> Rollups:
    """Every rollup of the table `sessions`, made at once into catalog `db` (default: home)."""
    db = db or home(con)
    width = bucket_width(con, sessions)
    made = Rollups(db, width)

    def make(rollup: Rollup) -> Callable[[duckdb.DuckDBPyConnection], object]:
        return lambda c: c.execute(
            f"CREATE OR REPLACE TABLE {made.table(rollup.name)} AS {rollup.select(sessions, width)}"
        ).fetchall()

    concurrently(con, {r.name: make(r) for r in ROLLUPS})
    return made


def copy(con: duckdb.DuckDBPyConnection, kept: Rollups, db: str) -> Rollups:
    """The rollups copied into catalog `db`."""
    copied = Rollups(db, kept.width)
    for rollup in ROLLUPS:
        con.execute(
            f"CREATE OR REPLACE TABLE {copied.table(rollup.name)} AS "
            f"SELECT * FROM {kept.table(rollup.name)}"
        )
    return copied


def update(con: duckdb.DuckDBPyConnection, kept: Rollups, changed: str, sessions: str) -> Rollups:
    """Take the kept facts of the sessions in `changed` (is_new false) out of the kept rollups
    and put their new facts (is_new true) in; a rollup whose max a kept fact taken out may have
    held, or made with another bucket width than the updated `sessions` need, is made again
    from them."""
    width = bucket_width(con, sessions)
    for rollup in ROLLUPS:
        table = kept.table(rollup.name)
        change = rollup.select(changed, width, signed=True)
        if (rollup.bucketed and width != kept.width) or _lost_latest(con, rollup, table, change):
            con.execute(f"CREATE OR REPLACE TABLE {table} AS {rollup.select(sessions, width)}")
            continue
        keys = ", ".join(f'"{k}"' for k in rollup.keys)
        measures = ["sum(n)::BIGINT AS n", *(f"sum({c})::BIGINT AS {c}" for c in rollup.sums)]
        if rollup.latest:
            measures.append("max(latest) AS latest")
        con.execute(
            f"""CREATE OR REPLACE TABLE {table} AS
            SELECT {keys}, {", ".join(measures)} FROM (
              SELECT * FROM {table} UNION ALL BY NAME {change}
            ) GROUP BY ALL HAVING sum(n) <> 0"""
        )
    return Rollups(kept.db, width)


def _lost_latest(con: duckdb.DuckDBPyConnection, rollup: Rollup, table: str, change: str) -> bool:
    """Whether a group's kept max may be lost: a session taken out held (or tied) it and no
    added one reaches it. (A session that keeps its group and start, as most do, reaches it.)"""
    if not rollup.latest:
        return False
    same = " AND ".join(f'c."{k}" IS NOT DISTINCT FROM r."{k}"' for k in rollup.keys)
    lost = con.execute(
        f"""SELECT count(*) FROM ({change}) c JOIN {table} r ON {same}
        WHERE c.gone_latest >= r.latest AND NOT coalesce(c.latest >= r.latest, false)"""
    ).fetchall()
    return bool(lost[0][0])


def kept_width(con: duckdb.DuckDBPyConnection, db: str) -> int:
    """The bucket width the rollups in `db` were made with (any, when no session has a start)."""
    found = con.execute(f"SELECT max(width) FROM {db}.r_buckets").fetchall()[0][0]
    return int(found) if found is not None else BUCKET_WIDTHS[0]
