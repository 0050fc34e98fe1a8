"""Diagnosis rules, kept as data in rules.toml and turned into one SQL expression.

Matching runs inside DuckDB over per-session aggregates, so classifying millions of sessions
costs one pass; Python only reads the rule file and writes the CASE expression.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from openfrp import codes

UNKNOWN = "unknown"


class RuleError(ValueError):
    """rules.toml is malformed; a packaging bug, reported with the rule that is wrong."""


@dataclass(frozen=True)
class Clause:
    final: tuple[int, ...] = ()
    any: tuple[int, ...] = ()
    only: tuple[int, ...] = ()
    active: bool | None = None

    @property
    def codes(self) -> tuple[int, ...]:
        return self.final + self.any + self.only

    def sql(self) -> str:
        """The clause as a predicate over the session aggregate columns."""
        parts = ["ended"]
        if self.final:
            parts.append(f"final_code IN ({_ints(self.final)})")
        if self.any:
            parts.append(f"list_has_any(codes, [{_ints(self.any)}])")
        if self.only:
            parts.append(f"list_has_all([{_ints(self.only)}], codes)")
        if self.active is not None:
            parts.append("active" if self.active else "NOT active")
        return "(" + " AND ".join(parts) + ")"


@dataclass(frozen=True)
class Rule:
    category: str
    title: str
    owner: str
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


def _ints(values: tuple[int, ...]) -> str:
    return ", ".join(str(v) for v in values)


def _clause(category: str, data: dict[str, object]) -> Clause:
    unknown = set(data) - {"final", "any", "only", "active"}
    if unknown:
        raise RuleError(f"rule {category}: unknown condition(s) {sorted(unknown)}")
    lists: dict[str, tuple[int, ...]] = {}
    for key in ("final", "any", "only"):
        values = data.get(key, [])
        if not isinstance(values, list) or not all(isinstance(v, int) for v in values):
            raise RuleError(f"rule {category}: '{key}' must be a list of codes")
        for value in values:
            if codes.lookup(value) is None:
                raise RuleError(f"rule {category}: {value} is not in the code table")
        lists[key] = tuple(values)
    active = data.get("active")
    if active is not None and not isinstance(active, bool):
        raise RuleError(f"rule {category}: 'active' must be true or false")
    return Clause(lists["final"], lists["any"], lists["only"], active)


def parse_rules(text: str) -> tuple[Rule, ...]:
    data = tomllib.loads(text)
    rules: list[Rule] = []
    for entry in data.get("rule", []):
        category = str(entry.get("category", "?"))
        try:
            rule = Rule(
                category=category,
                title=str(entry["title"]),
                owner=str(entry["owner"]),
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
