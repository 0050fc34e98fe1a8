"""Per-session aggregates: one parallel GROUP BY over all events, and how the partial
aggregates of one session (from runs over a growing log, --state) merge into the aggregate
of all its events. sessions.py derives each session's facts from them. The native fold
(fold.c) computes the same aggregates over the lines it folds; tests/analysis/test_native.py
holds the two equal, so a change here is a change there."""

from __future__ import annotations

from typing import TYPE_CHECKING

from openfrp.analysis import ingest, rules
from openfrp.codes import CodeNumber

if TYPE_CHECKING:
    from openfrp.analysis import engine as duckdb

# Terminal events that change its connection state; the last one says how the terminal ended.
TERMINAL_STATE = (
    "connect.attempt",
    "connection.established",
    "connection.lost",
    "reconnect.attempt",
    "reconnect.succeeded",
    "ice.disconnected",
)
TERMINAL_END = (
    "reconnect.gave_up",
    "connect.failed",
    "connection.closed",
    "signaling.timeout",
    "ice.failed",
    "negotiation.timeout",
    "peer.failed",
    "probe.failed",
)
# The terminal's state number for a connection it closed with no code (the person left: a
# disconnect) or with 4006 (the session is live on their other device): that ends the
# terminal's part, not the session, which goes on or waits to be resumed.
TERMINAL_LEFT = len(TERMINAL_STATE) + TERMINAL_END.index("connection.closed") + 1

# A server-side disconnect the network caused carries its code (4029, 4023...): the user's own
# disconnect, a terminal closing its side on purpose and one that left during the start carry
# none, and a takeover by the user's own device is 4006.
TAKEOVER = int(CodeNumber.ALREADY_IN_SESSION)
SERVER_LOSS = (
    "event = 'session.disconnected' AND code IS NOT NULL "
    f"AND code <> {TAKEOVER} AND source <> 'terminal'"
)
# The server's word on a session's life: a terminal's log (or one it shipped) cannot claim it.
SERVER_SAYS = "source <> 'terminal' AND event"


# The rare events a session keeps a list of each (their times; a recovery's time and
# duration), by the test that picks them (no event passes two). They are gathered in one list,
# split after the GROUP BY: DuckDB slices the whole input chunk for each aggregate with a
# FILTER clause, and five lists cost a twentieth of the aggregation more than one.
RARE = {
    "term_recoveries": "event = 'reconnect.succeeded'",
    "srv_resumes": f"{SERVER_SAYS} = 'session.resumed'",
    "srv_disconnects": SERVER_LOSS,
    "term_drops": "event IN ('connection.lost', 'ice.disconnected')",
    "reconnect_attempts": "event = 'reconnect.attempt'",
}


def _when(test: str, value: str) -> str:
    """`value` on the rows where `test` holds, NULL elsewhere: for min, max and
    arg_max_null, which skip NULLs, the same as a FILTER clause but cheaper. DuckDB slices
    the whole input chunk for each filtered aggregate; on 19 of them that was an eighth of
    the aggregation."""
    return f"CASE WHEN {test} THEN {value} END"


def aggregate_sql(events_sql: str) -> str:
    """Per-session aggregates in one parallel pass; lines that are not events group under NULL.

    Every aggregate is a scalar (or a list of rare rows), because on millions of sessions the
    cost of the pass is the per-row update of each aggregate's state. Only the lists keep a
    FILTER clause (a list keeps NULLs). The user, account, launchpad and host are grouped by,
    not aggregated: a session's rows almost always agree on them, and eight text aggregates
    (the server's word first) cost 0.3-0.5 s of the 7 s pass at 10 M events; the few sessions
    whose rows disagree come out as several rows, which sessions.merge_split() merges."""
    state = f"list_position([{ingest.quote_list(TERMINAL_STATE + TERMINAL_END)}], event)"
    # The terminal's order (its time, then ending states after the others) and its state in
    # one number: its max stands for two aggregates, the max of the order and the arg_max of
    # the state (its low 4 bits; states number 1 to 14).
    ending = f"CASE WHEN ({state}) > {len(TERMINAL_STATE)} THEN 16 ELSE 0 END"
    order = f"epoch_us(ts) * 32 + {ending} + ({state})"
    terminal_state = f"source = 'terminal' AND ({state}) IS NOT NULL"
    server = "source <> 'terminal'"
    terminal = "source = 'terminal'"
    ended = f"{SERVER_SAYS} = 'session.ended'"
    kind = " ".join(f"WHEN {test} THEN {k}" for k, test in enumerate(RARE.values(), 1))
    kind = f"CASE {kind} END"
    recovery_ms = _when(RARE["term_recoveries"], "try_cast(attrs->>'recovery_ms' AS DOUBLE)")
    masks, matched = rules.matcher_aggregates(rules.load_rules())
    grouped = f"""
    SELECT CASE WHEN fatal THEN NULL ELSE session_id END AS session_id,
      count(*) AS rows,
      list({{'file': file, 'fatal': fatal, 'code': code}}) FILTER (fatal OR unknown) AS bad,
      "user", account, launchpad, host,
      min(frp) AS frp,
      min({_when("event = 'connection.established'", "attrs->>'client'")}) AS client,
      min({_when(server, "ts")}) AS s_first_ts,
      max({_when(server, "ts")}) AS s_last_ts,
      min({_when(terminal, "ts")}) AS t_first_ts,
      max({_when(terminal, "ts")}) AS t_last_ts,
      min({_when(f"{SERVER_SAYS} = 'session.created'", "ts")}) AS created_at,
      min({_when(f"{SERVER_SAYS} = 'session.started'", "ts")}) AS started_at,
      max({_when(ended, "ts")}) AS server_end_ts,
      arg_max_null(code, {_when(ended, "ts")}) AS server_end_code,
      max({_when(terminal_state, order)}) AS term_state,
      arg_max_null(code, {_when(terminal_state, order)}) AS term_state_code,
      max({_when(terminal_state, order)}) AS term_order,
      min({_when(f"{terminal} AND event = 'connect.attempt'", "ts")}) AS t_attempt,
      min({_when(f"{terminal} AND event = 'connection.established'", "ts")}) AS t_established,
      min({_when("source = 'server' AND event = 'connection.opened'", "ts")}) AS s_opened,
      min({_when("source = 'server' AND event = 'connection.established'", "ts")})
        AS s_established,
      bit_or(code_bit) AS code_mask,
      list({{'k': {kind}, 'ts': ts, 'ms': {recovery_ms}}}) FILTER (({kind}) IS NOT NULL) AS rare
      {"".join(f", {expr} AS {name}" for name, expr in masks.items())}
    FROM ({events_sql})
    GROUP BY ALL
    """
    split = [split_rare(k, name) for k, name in enumerate(RARE, 1)]
    dropped = ", ".join(["rare", *masks])
    unpacked = "CAST(term_state & 15 AS INTEGER) AS term_state, term_order >> 4 AS term_order"
    return (
        f"SELECT * EXCLUDE ({dropped}) REPLACE ({unpacked}), {', '.join(split + matched)} "
        f"FROM ({grouped})"
    )


def rename_bad_files(con: duckdb.DuckDBPyConnection, table: str, names: dict[str, str]) -> None:
    """Name the files of the bad lines listed in aggregate table `table` by `names` (the file
    read: the file the user named), where a scratch copy was read in its place."""
    if names:
        cases = " ".join(f"WHEN {ingest.quote(a)} THEN {ingest.quote(b)}" for a, b in names.items())
        con.execute(
            f"UPDATE {table} SET bad = list_transform(bad, lambda b: {{'file': CASE b.file "
            f"{cases} ELSE b.file END, 'fatal': b.fatal, 'code': b.code}}) WHERE bad NOT NULL"
        )


def split_rare(kind: int, name: str) -> str:
    """List `name` of a session's rare events (NULL when it has none, as a FILTER clause gives)
    from the one list of them all."""
    value = "{'ts': r.ts, 'ms': r.ms}" if name == "term_recoveries" else "r.ts"
    return (
        f"CASE WHEN list_contains([r.k FOR r IN rare], {kind}) "
        f"THEN [{value} FOR r IN rare IF r.k = {kind}] END AS {name}"
    )


# How partial aggregates of the same session (from different runs over a growing log) merge
# into the aggregate of all their events: every aggregate above has a merge.
MERGE = {
    "rows": "sum(rows)::BIGINT",
    "server_end_code": "arg_max_null(server_end_code, server_end_ts)",
    # term_order keeps the order's high bits, term_state its low ones: together the order.
    "term_state": "arg_max_null(term_state, term_order * 16 + term_state)",
    "term_state_code": "arg_max_null(term_state_code, term_order * 16 + term_state)",
    "code_mask": "bit_or(code_mask)",
}
_FIRST = (
    "s_first_ts t_first_ts created_at started_at t_attempt s_opened t_established s_established"
)
_LISTS = "bad term_recoveries srv_resumes srv_disconnects term_drops reconnect_attempts"


def _earliest(name: str, when: str) -> str:
    """Column `name` of the part that is first by `when`, then by the value itself."""
    return f"arg_min(\"{name}\", {{'t': {when}, 'v': \"{name}\"}})"


# Where a session's parts disagree on a person, the server's word wins, then the earliest part's,
# then the least value: the same answer in whichever order the parts come. The protocol and the
# client are the least value seen (a min in aggregate_sql too), so they merge as a min.
for _name in ("user", "account", "launchpad", "host"):
    MERGE[_name] = (
        f"coalesce({_earliest(_name, 's_first_ts')} FILTER (s_first_ts IS NOT NULL), "
        f"{_earliest(_name, 't_first_ts')})"
    )
for _name in ("frp", "client"):
    MERGE[_name] = f'min("{_name}")'
for _name in _FIRST.split():
    MERGE[_name] = f"min({_name})"
for _name in ("s_last_ts", "t_last_ts", "server_end_ts", "term_order"):
    MERGE[_name] = f"max({_name})"
for _name in _LISTS.split():
    MERGE[_name] = f"flatten(list({_name}) FILTER ({_name} IS NOT NULL))"


def merge_sql(table: str, columns: list[str]) -> str:
    """One row per session from the partial aggregates in `table` (rule matchers: bool_or)."""
    parts = []
    for name in columns:
        if name == "session_id":
            continue
        merged = MERGE.get(name) or (f"bool_or({name})" if name.startswith("m_") else None)
        if merged is None:
            raise ValueError(f"aggregate column {name} has no merge")
        parts.append(f'{merged} AS "{name}"')
    return f"SELECT session_id, {', '.join(parts)} FROM {table} GROUP BY session_id"
