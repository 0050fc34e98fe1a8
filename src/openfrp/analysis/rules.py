"""Diagnosis rules, kept as data in rules.toml and turned into one SQL expression.

Matching runs inside DuckDB over per-session aggregates, so classifying millions of sessions
costs one pass; Python only reads the rule file and writes the CASE expression. A condition on
an event's attributes (a TURN 401, an app's exit status) becomes one boolean aggregate of that
pass (`Matcher.column`), so rules can read attributes without a second look at the events.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from openfrp import codes

UNKNOWN = "unknown"


class RuleError(ValueError):
    """rules.toml is malformed; a packaging bug, reported with the rule that is wrong."""


MATCH_KEYS = {"event", "code", "source", "attr", "equals", "contains", "matches"}


@dataclass(frozen=True)
class Matcher:
    """An event a session did (`seen`) or did not (`unless`) log: its name, code(s), source,
    and one attribute that equals a value, contains a text (any case) or matches a regex."""

    event: str | None = None
    code: tuple[int, ...] = ()
    source: str | None = None
    attr: str | None = None
    equals: str | None = None
    contains: str | None = None
    matches: str | None = None

    def predicate(self) -> str:
        """Per-event SQL. The attribute is read in a CASE on the rows that pass the cheap tests:
        DuckDB evaluates every operand of an AND on every row, and parsing attrs on all events
        cost a sixth of the fleet pass."""
        parts = []
        if self.code:
            parts.append(f"code IN ({_ints(self.code)})")
        if self.event is not None:
            parts.append(f"event = {_text(self.event)}")
        if self.source is not None:
            parts.append(f"source = {_text(self.source)}")
        cheap = " AND ".join(parts)
        if self.attr is None:
            return cheap or "true"
        value = f"(attrs->>{_text(self.attr)})"
        if self.equals is not None:
            test = f"{value} = {_text(self.equals)}"
        elif self.contains is not None:
            test = f"contains(lower({value}), {_text(self.contains.lower())})"
        elif self.matches is not None:
            test = f"regexp_matches({value}, {_text(self.matches)})"
        else:
            test = f"{value} IS NOT NULL"
        return f"CASE WHEN {cheap} THEN {test} ELSE false END" if cheap else test

    @property
    def column(self) -> str:
        """The aggregate column that says whether a session logged such an event."""
        return "m_" + hashlib.sha1(self.predicate().encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Clause:
    final: tuple[int, ...] = ()
    any: tuple[int, ...] = ()
    only: tuple[int, ...] = ()
    active: bool | None = None
    seen: tuple[Matcher, ...] = ()
    unless: tuple[Matcher, ...] = ()
    server_ended: bool | None = None  # the server's log holds the session's end

    @property
    def codes(self) -> tuple[int, ...]:
        return self.final + self.any + self.only + tuple(c for m in self.seen for c in m.code)

    def sql(self) -> str:
        """The clause as a predicate over the session aggregate columns.

        The codes a session logged are tested on its code_mask (a bit per code of the table,
        ingest.code_bit_sql) and unknown_codes (whether it logged codes outside the table,
        which no rule names): list functions on every session's codes took a sixth of the
        session facts' time (0.09 s of 0.58 at 10 M events)."""
        parts = ["ended"]
        if self.final:
            parts.append(f"final_code IN ({_ints(self.final)})")
        if self.any:
            parts.append(f"(coalesce(code_mask, 0) & {code_bits(self.any)}) <> 0")
        if self.only:
            others = code_bits(tuple(c.number for c in codes.TABLE if c.number not in self.only))
            parts.append(f"NOT unknown_codes AND (coalesce(code_mask, 0) & {others}) = 0")
        if self.active is not None:
            parts.append("active" if self.active else "NOT active")
        if self.server_ended is not None:
            parts.append(f"server_end_ts IS {'NOT ' if self.server_ended else ''}NULL")
        parts += [f"coalesce({m.column}, false)" for m in self.seen]
        parts += [f"NOT coalesce({m.column}, false)" for m in self.unless]
        return "(" + " AND ".join(parts) + ")"


@dataclass(frozen=True)
class Rule:
    category: str
    title: str
    fallback_owner: str
    explanation: str
    action: str
    clauses: tuple[Clause, ...]

    @property
    def codes(self) -> tuple[int, ...]:
        """Every code the rule names, in first-seen order: its evidence."""
        seen: dict[int, None] = {}
        for clause in self.clauses:
            seen.update(dict.fromkeys(clause.codes))
        return tuple(seen)

    @property
    def owner(self) -> str:
        """Who acts on it, from the code table's fault of the codes it names (so the table stays
        the one source); rules.toml's `owner` only for a rule that names no code."""
        faults: dict[str, None] = {}
        for number in self.codes:
            row = codes.lookup(number)
            if row is not None:
                faults[row.fault.value] = None
        return " / ".join(faults) or self.fallback_owner

    @property
    def matchers(self) -> tuple[Matcher, ...]:
        return tuple(m for clause in self.clauses for m in clause.seen + clause.unless)


def _ints(values: tuple[int, ...]) -> str:
    return ", ".join(str(v) for v in values)


def code_bits(numbers: tuple[int, ...]) -> str:
    """The code_mask bits of these codes of the table (bit i: the table's i-th code)."""
    mask = sum(1 << i for i, c in enumerate(codes.TABLE) if c.number in numbers)
    return f"{mask}::UBIGINT"


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _code_list(category: str, key: str, values: object) -> tuple[int, ...]:
    if isinstance(values, int):
        values = [values]
    if not isinstance(values, list) or not all(isinstance(v, int) for v in values):
        raise RuleError(f"rule {category}: '{key}' must be a list of codes")
    for value in values:
        if codes.lookup(value) is None:
            raise RuleError(f"rule {category}: {value} is not in the code table")
    return tuple(values)


def _matcher(category: str, data: object) -> Matcher:
    if not isinstance(data, dict) or not data or set(data) - MATCH_KEYS:
        raise RuleError(f"rule {category}: an event condition takes only {sorted(MATCH_KEYS)}")
    tests = [k for k in ("equals", "contains", "matches") if k in data]
    if len(tests) > 1 or (tests and "attr" not in data):
        raise RuleError(f"rule {category}: one of equals/contains/matches, with 'attr'")
    text = {k: None if data.get(k) is None else str(data[k]) for k in MATCH_KEYS - {"code"}}
    return Matcher(
        event=text["event"],
        code=_code_list(category, "code", data.get("code", [])),
        source=text["source"],
        attr=text["attr"],
        equals=text["equals"],
        contains=text["contains"],
        matches=text["matches"],
    )


def _flag(category: str, data: dict[str, object], key: str) -> bool | None:
    value = data.get(key)
    if value is not None and not isinstance(value, bool):
        raise RuleError(f"rule {category}: '{key}' must be true or false")
    return value


def _clause(category: str, data: dict[str, object]) -> Clause:
    unknown = set(data) - {"final", "any", "only", "active", "server_ended", "seen", "unless"}
    if unknown:
        raise RuleError(f"rule {category}: unknown condition(s) {sorted(unknown)}")
    lists = {key: _code_list(category, key, data.get(key, [])) for key in ("final", "any", "only")}
    active, server_ended = (_flag(category, data, key) for key in ("active", "server_ended"))
    events: dict[str, tuple[Matcher, ...]] = {}
    for key in ("seen", "unless"):
        items = data.get(key, [])
        if not isinstance(items, list):
            raise RuleError(f"rule {category}: '{key}' must be a list of event conditions")
        events[key] = tuple(_matcher(category, item) for item in items)
    return Clause(
        lists["final"],
        lists["any"],
        lists["only"],
        active,
        events["seen"],
        events["unless"],
        server_ended,
    )


def parse_rules(text: str) -> tuple[Rule, ...]:
    data = tomllib.loads(text)
    rules: list[Rule] = []
    for entry in data.get("rule", []):
        category = str(entry.get("category", "?"))
        try:
            rule = Rule(
                category=category,
                title=str(entry["title"]),
                fallback_owner=str(entry.get("owner", "")),
                explanation=" ".join(str(entry["explanation"]).split()),
                action=" ".join(str(entry["action"]).split()),
                clauses=tuple(_clause(category, c) for c in entry.get("when", [])),
            )
        except KeyError as exc:
            raise RuleError(f"rule {category}: missing {exc}") from None
        rules.append(rule)
    categories = [r.category for r in rules]
    if len(set(categories)) != len(categories):
        raise RuleError("each category must have exactly one rule")
    if not rules or rules[-1].category != UNKNOWN or rules[-1].clauses:
        raise RuleError(f"the last rule must be '{UNKNOWN}' with no conditions (the fallback)")
    return tuple(rules)


@cache
def load_rules() -> tuple[Rule, ...]:
    text = resources.files("openfrp.analysis").joinpath("rules.toml").read_text("utf-8")
    return parse_rules(text)


def by_category() -> dict[str, Rule]:
    return {rule.category: rule for rule in load_rules()}


def uncovered_codes(rules: tuple[Rule, ...]) -> list[int]:
    """Codes of the table that no rule names: must stay empty (a test checks it)."""
    named = {code for rule in rules for code in rule.codes}
    return [c.number for c in codes.TABLE if c.number not in named]


# Matchers per bit mask: a BIGINT's bits but its sign bit.
BITS_PER_MASK = 63


def matchers(rules: tuple[Rule, ...]) -> dict[str, Matcher]:
    """Every event condition of the rules, once each, by its column."""
    return {m.column: m for rule in rules for m in rule.matchers}


def matcher_aggregates(rules: tuple[Rule, ...]) -> tuple[dict[str, str], list[str]]:
    """The per-session aggregates (by name) that say which event conditions a session met
    (`bit_or` of a bit per condition: one aggregate for them all, where one `bool_or` each cost
    the fleet pass a tenth of its aggregation), and the expressions that turn their bits into
    the matchers' columns (true, or NULL for a session without such an event)."""
    found = list(matchers(rules).items())
    aggregates: dict[str, str] = {}
    columns: list[str] = []
    for start in range(0, len(found), BITS_PER_MASK):
        mask = f"m_bits_{start // BITS_PER_MASK}"
        chunk = found[start : start + BITS_PER_MASK]
        bits = " + ".join(
            f"CASE WHEN {m.predicate()} THEN {1 << i} ELSE 0 END" for i, (_, m) in enumerate(chunk)
        )
        aggregates[mask] = f"bit_or({_gated(bits, [m for _, m in chunk])})"
        columns += [
            f"CASE WHEN {mask} & {1 << i} <> 0 THEN true END AS {column}"
            for i, (column, _) in enumerate(chunk)
        ]
    return aggregates, columns


def _gated(bits: str, chunk: list[Matcher]) -> str:
    """`bits` only on the events with a code some matcher names, when each names codes: one
    test on every event instead of every matcher's (at 10 M events 0.1 s of the fleet pass);
    elsewhere NULL, which bit_or skips."""
    if not all(m.code for m in chunk):
        return bits
    named = sorted({code for m in chunk for code in m.code})
    return f"CASE WHEN code IN ({_ints(tuple(named))}) THEN {bits} END"


def category_sql(rules: tuple[Rule, ...]) -> str:
    """A CASE expression naming the first matching rule's category."""
    whens = [
        f"WHEN {' OR '.join(c.sql() for c in rule.clauses)} THEN '{rule.category}'"
        for rule in rules
        if rule.clauses
    ]
    return "CASE " + " ".join(whens) + f" ELSE '{UNKNOWN}' END"


def evidence_sql(rules: tuple[Rule, ...], column: str) -> str:
    """Keep, from a list of coded events, those the session's rule names, and the final one.

    A `message.shown` only repeats a code some other event already carries, so it is never
    evidence of its own."""
    whens = [
        f"WHEN '{rule.category}' THEN list_filter({column}, "
        f"lambda e: (e.code IN ({_ints(rule.codes)}) AND e.event <> 'message.shown') "
        "OR e.event = 'session.ended')"
        for rule in rules
        if rule.codes
    ]
    return "CASE category " + " ".join(whens) + f" ELSE {column} END"
