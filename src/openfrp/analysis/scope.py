"""--since/--until and --account/--launchpad/--user/--host: which sessions a report covers.

A session is in the window when it started in it (start_ts in [since, until)), so a report for
yesterday counts each session once, on the day it began. Times are ISO 8601 (UTC when no zone
is given) or a span back from now such as 90m, 24h or 7d.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from openfrp.analysis.ingest import quote, quote_list

SPAN = re.compile(r"^(\d+)([smhdw])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
FIELDS = ("account", "launchpad", "user", "host")


class ScopeError(ValueError):
    """A --since/--until value that is neither a time nor a span; one line for the user."""


def parse_time(option: str, text: str, now: datetime) -> datetime:
    """A naive UTC datetime (the sessions table's clock) from ISO 8601 or a span before now."""
    span = SPAN.match(text.strip())
    try:
        if span:
            value = now - timedelta(**{UNITS[span.group(2)]: int(span.group(1))})
        else:
            value = datetime.fromisoformat(text.strip())
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
    except ValueError:
        raise ScopeError(
            f"{option} {text!r}: expected a time like 2026-03-02 or 2026-03-02T10:00Z, "
            "or a span before now like 90m, 24h or 7d"
        ) from None
    except OverflowError:  # a span longer than the calendar, or a zone that leaves year 1
        raise ScopeError(
            f"{option} {text!r}: out of the range of dates (years 1 to 9999); "
            "give a shorter span or a time within them"
        ) from None
    return value


@dataclass(frozen=True)
class Scope:
    since: datetime | None = None
    until: datetime | None = None
    only: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_options(
        cls,
        since: str | None,
        until: str | None,
        only: dict[str, list[str] | None],
        now: datetime | None = None,
    ) -> Scope:
        moment = (now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
        start = parse_time("--since", since, moment) if since else None
        end = parse_time("--until", until, moment) if until else None
        if start is not None and end is not None and end <= start:
            raise ScopeError(f"--until {until!r} is not after --since {since!r}")
        return cls(start, end, {k: tuple(v) for k, v in only.items() if v})

    @property
    def active(self) -> bool:
        return self.since is not None or self.until is not None or bool(self.only)

    def where(self) -> str:
        """The SQL condition a session row must meet."""
        parts = ["true"]
        if self.since is not None:
            parts.append(f"start_ts >= TIMESTAMP {quote(self.since.isoformat())}")
        if self.until is not None:
            parts.append(f"start_ts < TIMESTAMP {quote(self.until.isoformat())}")
        for name, values in self.only.items():
            parts.append(f'"{name}" IN ({quote_list(values)})')
        return " AND ".join(parts)

    def describe(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat() + "Z" if self.since else None,
            "until": self.until.isoformat() + "Z" if self.until else None,
            **{name: list(values) for name, values in self.only.items()},
        }
