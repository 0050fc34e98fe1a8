"""Rebuild every session from both sides' events and diagnose how it ended.

One GROUP BY over all events produces per-session aggregates (aggregates.py); a second,
small query, here, derives the session's facts and its category (rules.py). Ordering-dependent
facts are taken within one side only (terminal times against terminal times), so terminal
clock skew cannot break them; the skew itself is estimated from the connection.established
both sides log, and every terminal time that meets a server time (the session's start and
end) is first put on the server's clock with it.

Phase follows the server's lifecycle: a session is active once the server logged
session.started (a connection is established before the start, which may still fail with
4001, 4022 or 4027); only a session the server's log does not know is judged by its terminal.
A loss is a connection the network took: a takeover by the user's own device (4006) and a
disconnect the user asked for are not losses. Recovery is per incident: a session recovered
when its last loss was resumed, and each loss counts as resumed when a resume follows it
before the next one.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from openfrp import codes
from openfrp.analysis import aggregates, ingest, native, rollups, rules, state

if TYPE_CHECKING:
    from openfrp.analysis import engine as duckdb

BAD_LINES_LISTED = 200
PHASES = ("open", "expected_end", "setup_failure", "mid_session_failure")


def _mask_to_codes(column: str) -> str:
    """The codes whose bits (ingest.code_bit_sql) are set in `column`, in table order."""
    pairs = ", ".join(
        f"{{'c': {c.number}, 'b': {1 << i}::UBIGINT}}" for i, c in enumerate(codes.TABLE)
    )
    return f"[k.c FOR k IN [{pairs}] IF {column} & k.b <> 0]"


def _enum(values: tuple[str, ...]) -> str:
    """An ENUM type of `values`: the summary groups and compares phases and categories on
    every session, which costs a quarter less on small integers than on text."""
    return f"ENUM({ingest.quote_list(values)})"


def _resumed(drops: str, resumes: str) -> str:
    """How many of the sorted `drops` a resume follows before the next drop."""
    return (
        f"len(list_filter(range(1, len({drops}) + 1), lambda i: len(list_filter({resumes}, "
        f"lambda r: r > {drops}[i] AND (i = len({drops}) OR r < {drops}[i + 1]))) > 0))"
    )


_BAD_CODES = "list_sort(list_distinct([b.code FOR b IN bad IF NOT b.fatal]))"
_RECOVERY_MS = "list_sum(list_transform(list_distinct(term_recoveries), lambda r: r.ms))"


def _unless_null(column: str, expr: str, empty: str = "[]") -> str:
    """`expr` over a list of rare events, `empty` where the session has none: in a CASE,
    the list functions run only on the sessions that have such events (most have none; even
    a concatenation with an empty list copies every session's list)."""
    return f"CASE WHEN {column} IS NULL THEN {empty} ELSE {expr} END"


def sessions_sql(table: str, keep: str = "") -> str:
    """Session facts, category and phase, from the aggregate table (`keep`: one more of its
    columns, carried through as it is).

    A session's codes are read from its code_mask once per distinct mask (a few hundred),
    not once per session: turning every mask into a list was a sixth of this query's work."""
    all_rules = rules.load_rules()
    skew = "to_milliseconds(coalesce(skew_ms, 0))"
    return f"""
    WITH masks AS (
      SELECT code_mask, {_mask_to_codes("code_mask")} AS mask_codes
      FROM (SELECT DISTINCT code_mask FROM {table})
    ), base AS (
      SELECT a.* EXCLUDE (term_recoveries, bad, srv_disconnects, term_drops, srv_resumes)
        REPLACE ({_unless_null("reconnect_attempts", "len(list_distinct(reconnect_attempts))", "0")}
                 AS reconnect_attempts),
        {_unless_null("bad", f"list_concat(m.mask_codes, {_BAD_CODES})", "m.mask_codes")}
          AS codes,
        {_unless_null("bad", f"len({_BAD_CODES}) > 0", "false")} AS unknown_codes,
        {_unless_null("srv_disconnects", "list_sort(list_distinct(srv_disconnects))")} AS srv_d,
        {_unless_null("term_drops", "list_sort(list_distinct(term_drops))")} AS term_d,
        coalesce(srv_resumes, []) AS srv_r,
        {_unless_null("term_recoveries", "[r.ts FOR r IN term_recoveries]")} AS term_r,
        CASE WHEN t_established IS NOT NULL AND s_established IS NOT NULL
             THEN epoch_ms(t_established) - epoch_ms(s_established) END AS skew_ms,
        term_state > {len(aggregates.TERMINAL_STATE)}
          AND NOT (term_state = {aggregates.TERMINAL_LEFT}
                   AND coalesce(term_state_code, {aggregates.TAKEOVER}) = {aggregates.TAKEOVER})
          AS term_ended,
        {_unless_null("term_recoveries", _RECOVERY_MS, "NULL")} AS term_recovery_ms
      FROM {table} a LEFT JOIN masks m ON a.code_mask IS NOT DISTINCT FROM m.code_mask
      WHERE session_id IS NOT NULL
    ), sides AS (
      SELECT *,
        len(srv_d) > 0 AND len(srv_d) >= len(term_d) AS by_server,
        least(s_first_ts, t_first_ts - {skew}) AS first_ts,
        greatest(s_last_ts, t_last_ts - {skew}) AS last_ts
      FROM base
    ), facts AS (
      SELECT *,
        CASE WHEN server_end_ts IS NOT NULL THEN server_end_code
             WHEN term_ended THEN term_state_code END AS final_code,
        server_end_ts IS NOT NULL OR coalesce(term_ended, false) AS ended,
        started_at IS NOT NULL OR len(srv_r) > 0
          OR (created_at IS NULL AND (t_established IS NOT NULL OR s_established IS NOT NULL))
          AS active,
        greatest(len(srv_d), len(term_d)) AS incidents,
        CASE WHEN len(srv_d) = 0 AND len(term_d) = 0 THEN 0
             WHEN by_server THEN {_resumed("srv_d", "srv_r")}
             ELSE {_resumed("term_d", "term_r")} END AS incidents_recovered,
        CASE WHEN by_server THEN list_max(srv_r) > list_last(srv_d)
             ELSE list_max(term_r) > list_last(term_d) END AS last_loss_resumed,
        coalesce(created_at, first_ts) AS start_ts,
        coalesce(server_end_ts, last_ts) AS end_ts,
        coalesce(server_end_ts < coalesce(started_at, created_at) OR started_at < created_at,
                 false) AS clock_stepped_back
      FROM sides
    ), classified AS (
      SELECT *, {rules.category_sql(all_rules)} AS category FROM facts
    )
    SELECT session_id, "user", account, launchpad, host, frp, client,
      start_ts, end_ts,
      CASE WHEN NOT clock_stepped_back THEN round(epoch(end_ts - start_ts), 3) END AS duration_s,
      coalesce(epoch_ms(t_established) - epoch_ms(t_attempt),
               epoch_ms(s_established) - epoch_ms(s_opened)) AS time_to_connect_ms,
      final_code,
      incidents AS disconnects,
      incidents_recovered,
      reconnect_attempts,
      incidents > 0 AND coalesce(last_loss_resumed, false) AS recovered,
      CASE WHEN incidents_recovered > 0
           THEN coalesce(term_recovery_ms,
                         epoch_ms(list_min(srv_r)) - epoch_ms(list_min(srv_d))) END
        AS recovery_ms,
      (coalesce(code_mask, 0) & {rules.code_bits((4106,))}) <> 0 AS gave_up,
      active, ended,
      active OR term_state IS NOT NULL OR s_opened IS NOT NULL AS attempted,
      CAST(CASE WHEN NOT ended THEN 'open'
                WHEN category = 'expected_end' THEN 'expected_end'
                WHEN NOT active THEN 'setup_failure'
                ELSE 'mid_session_failure' END AS {_enum(PHASES)}) AS phase,
      CAST(category AS {_enum(tuple(r.category for r in all_rules))}) AS category,
      skew_ms,
      clock_stepped_back,
      rows AS events,
      codes{f", {keep}" if keep else ""}
    FROM classified
    """


def evidence_sql(events_sql: str) -> str:
    """Each session's evidence: its coded events that its rule names, and the final one.

    Read on demand (export, --session) from the events again, so the fleet pass keeps no
    per-event lists; `events_sql` is any relation shaped like ingest.events_sql."""
    return f"""
    SELECT session_id,
      list_sort(coalesce({rules.evidence_sql(rules.load_rules(), "coded")}, [])) AS evidence
    FROM (
      SELECT session_id,
        list_distinct(list({{'ts': ts, 'source': source, 'event': event, 'code': code}}))
          AS coded
      FROM ({events_sql}) WHERE NOT fatal AND code IS NOT NULL GROUP BY session_id
    ) JOIN sessions USING (session_id)
    """


@dataclass
class Analysis:
    """The analyzed logs: a DuckDB connection holding table `sessions`, and the bad lines."""

    con: duckdb.DuckDBPyConnection
    files: list[ingest.LogFile]
    events: int
    bad_count: int
    bad_by_file: dict[str, int]
    bad_lines: list[ingest.BadLine] = field(default_factory=list)
    seconds: float = 0.0
    bad_files: dict[str, str] = field(default_factory=dict)
    added_only: bool = False  # --state: only what was added since the last run was read
    held: state.State | None = None  # the state file, still attached: `sessions` reads it
    rollups: rollups.Rollups | None = None  # the summary's rollups of `sessions`, once made
    extents: dict[str, ingest.Extent] = field(default_factory=dict)  # what each read took

    def release(self, keep_sessions: bool = True) -> None:
        """Let a held state file go (another analysis may then attach it), first copying the
        sessions and rollups out of it into tables of this connection, unless they are no
        longer needed."""
        if self.held is not None:
            self.con.execute("DROP VIEW sessions")
            if keep_sessions:
                self.con.execute("CREATE TABLE sessions AS SELECT * EXCLUDE (agg) FROM st.sessions")
            if keep_sessions and self.rollups is not None:
                self.rollups = rollups.copy(self.con, self.rollups, rollups.home(self.con))
            else:
                self.rollups = None
            self.held.close()
            self.held = None

    def narrow(self, where: str) -> None:
        """Keep only the sessions for which `where` holds (in a table of this connection)."""
        self.release()
        self.con.execute(f"DELETE FROM sessions WHERE NOT coalesce({where}, false)")
        self.rollups = None


def _run(
    con: duckdb.DuckDBPyConnection, sql: str, progress: Callable[[float], None] | None
) -> None:
    """Run a statement, reporting DuckDB's own progress estimate while it runs."""
    if progress is None:
        con.execute(sql)
        return
    failure: list[BaseException] = []

    def work() -> None:
        try:
            con.execute(sql)
        except BaseException as exc:  # re-raised in the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.1)
            done = con.query_progress()
            if done >= 0:
                progress(done)
    except KeyboardInterrupt:
        con.interrupt()  # stop DuckDB's work too, not only our wait for it
        worker.join()
        raise
    if failure:
        raise failure[0]
    progress(100.0)


def analyze(
    patterns: list[str],
    progress: Callable[[float], None] | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
    state_dir: str | None = None,
    hold: bool = False,
) -> Analysis:
    """Read the logs and build table `sessions`; raise ingest.InputError for missing inputs.

    With `state_dir`, what an earlier run kept there is reused and only what was added to the
    logs since is read (state.py); the answer is the one a full run gives. With `hold` too, a
    run that read only what was added keeps the state file attached and `sessions` is a view
    of the sessions kept there, until Analysis.release(): copying them all would cost as much
    as the summary that reads them."""
    from openfrp.analysis import engine as duckdb

    began = time.perf_counter()
    logs = ingest.expand(patterns)
    con = con or duckdb.connect()
    con.execute("SET enable_progress_bar = false")  # DuckDB's own bar would write to stdout
    if not state_dir:
        analysis = _analyze_all(con, logs, progress, began)
        con.execute("DROP TABLE agg")
        return analysis
    definition = (
        aggregates.aggregate_sql("e") + sessions_sql("a") + rollups.DEFINITION + state.LAYOUT
    )
    version = hashlib.sha1(definition.encode()).hexdigest()
    kept = state.State(con, state_dir, version)
    try:
        parts = kept.plan(logs)
        if parts is not None:
            try:
                counts = _add_parts(con, kept, logs, parts, progress)
            except duckdb.InterruptException:
                raise KeyboardInterrupt from None
            except duckdb.Error:
                parts = None  # a new part cannot be read: the full run below names the file
        if parts is not None:
            updated = kept.save_added(logs, parts, counts)
            con.execute(
                "CREATE OR REPLACE VIEW sessions AS SELECT * EXCLUDE (agg) FROM st.sessions"
            )
            analysis = _finish(con, logs, counts, {}, began)
            analysis.added_only = True
            analysis.held = kept
            analysis.rollups = updated
            if not hold:
                analysis.release()
            return analysis
        analysis = _analyze_all(con, logs, progress, began, with_agg=True)
        analysis.rollups = rollups.build(con, "sessions")
        counts = state.Counts(
            analysis.events, analysis.bad_by_file, analysis.bad_lines, analysis.extents
        )
        kept.save_all(analysis.files, counts, analysis.rollups)
        con.execute("DROP TABLE agg")
        con.execute("ALTER TABLE sessions DROP COLUMN agg")
        kept.close()
        return analysis
    except BaseException:
        kept.close()
        raise


def _add_parts(
    con: duckdb.DuckDBPyConnection,
    kept: state.State,
    logs: list[ingest.LogFile],
    parts: list[state.Part],
    progress: Callable[[float], None] | None,
) -> state.Counts:
    """Aggregate the new parts and merge them with the kept aggregates of the sessions they
    touch (temp table `facts`: the new and merged sessions (is_new, with `agg`) and the kept
    ones they replace); return the counts: the kept ones and the new parts' added (counting
    them again among all aggregates cost 0.02-0.05 s at 10 M events), the bad lines to list
    numbered as in their files."""
    bad = kept.kept_bad_lines()
    events = kept.kept_events()
    bad_by_file = {path: seen.bad for path, seen in kept.seen().items() if seen.bad}
    rank = {log.path: i for i, log in enumerate(logs)}
    kept_places = sorted((rank[b.path], b.line) for b in bad)
    extents: dict[str, ingest.Extent] = {}
    if not parts:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE agg AS SELECT session_id, agg.* FROM st.sessions LIMIT 0"
        )
    else:
        read = [ingest.LogFile(p.read_from, p.log.kind) for p in parts]
        took = _aggregate(con, read, progress)
        # a tail's record says how far its file was read (state.Part.record)
        whole = [p for p in parts if p.read is None and p.read_from in took]
        extents = {p.log.path: took[p.read_from] for p in whole}
        per_file = con.execute(
            "SELECT b.file, count(*), count(*) FILTER (b.fatal) "
            "FROM (SELECT unnest(bad) AS b FROM agg) GROUP BY 1"
        ).fetchall()
        events += int(_scalar(con, "SELECT coalesce(sum(rows), 0) FROM agg"))
        # A part that starts after a full list of kept bad lines cannot add to the list:
        # numbering its lines again would be wasted.
        listable = {
            p.read_from
            for p in parts
            if bisect.bisect_left(kept_places, (rank[p.log.path], p.skip_lines + 1))
            < BAD_LINES_LISTED
        }
        origin = {p.read_from: p for p in parts}
        for path, n, fatal in per_file:
            name = origin[str(path)].log.path
            bad_by_file[name] = bad_by_file.get(name, 0) + int(n)
            events -= int(fatal)
        counts = {str(path): int(n) for path, n, _ in per_file if str(path) in listable}
        for found in _first_bad_lines(con, read, counts):
            part = origin[found.path]
            bad.append(ingest.BadLine(part.log.path, found.line + part.skip_lines, found.reason))
        aggregates.rename_bad_files(con, "agg", {p.read_from: p.log.path for p in parts})
    columns = _columns(con, "agg")
    old = kept.keep_touched()
    # Only sessions kept before need merging (into temp table `merged`): the merge of a single
    # row is that row, so the added part's new sessions (most of them) keep their aggregates as
    # they are, and are not copied. Lines of no session are in the counts alone.
    known = "a.session_id IN (SELECT session_id FROM kept)"
    union = f"({old} UNION ALL BY NAME SELECT * FROM agg a WHERE {known})"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE merged AS {aggregates.merge_sql(union, columns)}",
        [kept.rows],
    )
    both = (
        "(SELECT * FROM agg WHERE session_id NOT IN (SELECT session_id FROM kept) "
        "UNION ALL BY NAME SELECT * FROM merged)"
    )
    fresh = sessions_sql(state.packed(both, columns), "agg")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE facts AS SELECT *, true AS is_new FROM ({fresh}) "
        "UNION ALL BY NAME SELECT *, false AS is_new FROM kept"
    )
    for table in ("kept", "agg", "merged"):
        con.execute(f"DROP TABLE {table}")
    bad.sort(key=lambda b: (rank.get(b.path, len(rank)), b.line))
    ordered = {log.path: bad_by_file[log.path] for log in logs if log.path in bad_by_file}
    return state.Counts(events, ordered, bad[:BAD_LINES_LISTED], extents)


def _analyze_all(
    con: duckdb.DuckDBPyConnection,
    logs: list[ingest.LogFile],
    progress: Callable[[float], None] | None,
    began: float,
    with_agg: bool = False,
) -> Analysis:
    """Read every log: the aggregates, the sessions (`with_agg`: with their aggregates, as
    --state keeps them, and plain files through the fold whatever their size, which says how
    much of each it read), the first bad lines.

    The bad lines are numbered on a cursor of their own while the sessions are derived: the
    numbering runs on one thread and would leave the other core idle (0.18 s at 10 M events).
    Only this connection leaves insertion order unkept, so the cursor keeps file order."""
    from openfrp.analysis import engine as duckdb

    ordered = _scalar_text(con, "SELECT current_setting('preserve_insertion_order')")
    con.execute("SET SESSION preserve_insertion_order = false")
    bad_files: dict[str, str] = {}
    try:
        try:
            extents = _aggregate(con, logs, progress, exact=with_agg)
        except duckdb.InterruptException:
            raise KeyboardInterrupt from None
        except duckdb.Error as exc:
            # Some file cannot be read to its end (a cut or corrupt .gz, a broken Parquet):
            # find which, report them, and analyze the rest.
            logs, bad_files = _readable(con, logs)
            if not bad_files:
                raise ingest.InputError(f"cannot read input: {_first_line(exc)}") from None
            if not logs:
                reasons = "; ".join(f"{path}: {why}" for path, why in bad_files.items())
                raise ingest.InputError(f"no readable input ({reasons})") from None
            extents = _aggregate(con, logs, progress, exact=with_agg)
        fatal = "SELECT count(*) FROM (SELECT unnest(bad) AS b FROM agg) WHERE b.fatal"
        events = int(_scalar(con, f"SELECT coalesce(sum(rows), 0) - ({fatal}) FROM agg"))
        per_file = con.execute(
            "SELECT b.file, count(*) FROM (SELECT unnest(bad) AS b FROM agg) GROUP BY 1"
        ).fetchall()
        found = {str(path): int(n) for path, n in per_file}
        bad_by_file = {log.path: found[log.path] for log in logs if log.path in found}
        derived = (
            sessions_sql(state.packed("agg", _columns(con, "agg")), "agg")
            if with_agg
            else sessions_sql("agg")
        )
        with ThreadPoolExecutor(1) as pool:
            numbered = pool.submit(_first_bad_lines_apart, con, logs, bad_by_file)
            con.execute(f"CREATE OR REPLACE TABLE sessions AS {derived}")
            bad = numbered.result()
    finally:
        con.execute(f"SET SESSION preserve_insertion_order = {ordered}")
    counts = state.Counts(events, bad_by_file, bad, extents)
    return _finish(con, logs, counts, bad_files, began)


def _finish(
    con: duckdb.DuckDBPyConnection,
    logs: list[ingest.LogFile],
    counts: state.Counts,
    bad_files: dict[str, str],
    began: float,
) -> Analysis:
    return Analysis(
        con=con,
        files=logs,
        events=counts.events,
        bad_count=sum(counts.bad_by_file.values()),
        bad_by_file=counts.bad_by_file,
        bad_lines=counts.bad_lines,
        seconds=time.perf_counter() - began,
        bad_files=bad_files,
        extents=counts.extents,
    )


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [str(row[0]) for row in con.execute(f"DESCRIBE {table}").fetchall()]


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _aggregate(
    con: duckdb.DuckDBPyConnection,
    logs: list[ingest.LogFile],
    progress: Callable[[float], None] | None,
    exact: bool = False,
) -> dict[str, ingest.Extent]:
    """Phase 1: aggregate straight from the parallel scan, without line numbers (numbering
    JSONL lines needs a window that runs on one thread); bad rows are only counted. The native
    fold reads plain JSONL where it is built and the files are large enough (native.py).

    Returns what was read of each file, which --state records (`exact`: the fold reads plain
    files of any size): what the fold read, exactly; of a file read by DuckDB, its size when
    that was the same before and after the read. A log still being written grows meanwhile,
    and what DuckDB's reader took of it is not known: it is left out (recording its size
    afterwards lost the lines added during the read)."""
    before = {log.path: _size(log.path) for log in logs}
    read = native.aggregate(con, logs, lambda sql: _run(con, sql, progress), exact)
    if read is None:
        read = {}
        events_sql = ingest.events_sql(con, logs, numbered=False)
        _run(
            con,
            f"CREATE OR REPLACE TEMP TABLE agg AS {aggregates.aggregate_sql(events_sql)}",
            progress,
        )
    merge_split(con)
    for path, size in before.items():
        if path not in read and size is not None and _size(path) == size:
            read[path] = ingest.Extent(size)
    return read


def _size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def merge_split(con: duckdb.DuckDBPyConnection) -> None:
    """Merge each session that aggregate_sql left in several rows of `agg` (its rows disagree
    on a person), or that the native fold saw in parts (on two threads, or some of its lines
    passed back), into one row, in place: a few thousand at most at 10 M events. The lines of
    no session may stay in several rows (session_id NULL): every reader of them sums or merges
    them."""
    split = "SELECT session_id FROM agg WHERE session_id IS NOT NULL GROUP BY 1 HAVING count(*) > 1"
    ids = [row[0] for row in con.execute(split).fetchall()]
    if not ids:
        return
    rows = "(SELECT * FROM agg WHERE session_id = ANY($1))"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE split AS {aggregates.merge_sql(rows, _columns(con, 'agg'))}",
        [ids],
    )
    con.execute("DELETE FROM agg WHERE session_id = ANY($1)", [ids])
    con.execute("INSERT INTO agg BY NAME SELECT * FROM split")
    con.execute("DROP TABLE split")


def _readable(
    con: duckdb.DuckDBPyConnection, logs: list[ingest.LogFile]
) -> tuple[list[ingest.LogFile], dict[str, str]]:
    """Each file read alone to its end: those that can be, and why each other one cannot.
    Only run after a failed pass, so a healthy run pays nothing for it."""
    from openfrp.analysis import engine as duckdb

    good: list[ingest.LogFile] = []
    bad: dict[str, str] = {}
    for log in logs:
        try:
            scan = ingest.events_sql(con, [log], numbered=False)
            con.execute(f"SELECT count(*), max(length(event)) FROM ({scan})").fetchall()
        except duckdb.InterruptException:
            raise KeyboardInterrupt from None
        except duckdb.Error as exc:
            bad[log.path] = _first_line(exc)
        else:
            good.append(log)
    return good, bad


def _first_bad_lines_apart(
    con: duckdb.DuckDBPyConnection, logs: list[ingest.LogFile], counts: dict[str, int]
) -> list[ingest.BadLine]:
    """_first_bad_lines on a cursor of its own, which keeps insertion (file) order."""
    cursor = con.cursor()
    try:
        cursor.execute("SET SESSION preserve_insertion_order = true")
        return _first_bad_lines(cursor, logs, counts)
    finally:
        cursor.close()


def _first_bad_lines(
    con: duckdb.DuckDBPyConnection,
    logs: list[ingest.LogFile],
    counts: dict[str, int],
) -> list[ingest.BadLine]:
    """Phase 2: number the lines of the files that have bad lines (`counts`, by path, from
    phase 1), in file order, up to the first BAD_LINES_LISTED bad lines in all.

    Files whose bad lines are all listed are read in one query; the one file listed in part
    (the last) is read alone, so its scan ends at the last bad line wanted."""
    whole: list[ingest.LogFile] = []
    partial: tuple[ingest.LogFile, int] | None = None
    left = BAD_LINES_LISTED
    for log in logs:
        wanted = min(left, counts.get(log.path, 0))
        if wanted <= 0:
            continue
        left -= wanted
        if wanted == counts[log.path]:
            whole.append(log)
        else:
            partial = (log, wanted)
    found: list[tuple[str, int, str, int | None]] = []
    if whole:
        sql = ingest.events_sql(con, whole, reasons=True)
        found += con.execute(
            f"SELECT file, line, issue, code FROM ({sql}) WHERE issue IS NOT NULL"
        ).fetchall()
    if partial is not None:
        log, wanted = partial
        sql = ingest.events_sql(con, [log], reasons=True)
        # JSONL rows of one file leave the window in file order, so a plain LIMIT stops the
        # scan early; Parquet rows carry their own numbers and are read in parallel.
        order = "ORDER BY line" if log.kind == "parquet" else ""
        found += con.execute(
            f"SELECT file, line, issue, code FROM ({sql}) WHERE issue IS NOT NULL "
            f"{order} LIMIT {wanted}"
        ).fetchall()
    rank = {log.path: i for i, log in enumerate(logs)}
    return [
        ingest.BadLine(str(path), int(line), ingest.describe_issue(issue, code))
        for path, line, issue, code in sorted(found, key=lambda r: (rank[str(r[0])], int(r[1])))
    ]


def _scalar_text(con: duckdb.DuckDBPyConnection, sql: str) -> str:
    rows = con.execute(sql).fetchall()
    return str(rows[0][0])


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> float:
    rows = con.execute(sql).fetchall()
    return float(rows[0][0]) if rows and rows[0][0] is not None else 0.0
