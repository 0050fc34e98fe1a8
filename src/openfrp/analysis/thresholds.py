"""--fail-if "METRIC OP VALUE": turn the summary into an exit status for alerting."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
_PATTERN = re.compile(r"^\s*([a-z0-9_]+)\s*(>=|<=|==|!=|>|<)\s*(-?\d+(?:\.\d+)?)\s*$")


class ThresholdError(ValueError):
    """A --fail-if expression that cannot be understood; exit 2."""


@dataclass(frozen=True)
class Threshold:
    metric: str
    op: str
    value: float

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


def parse(text: str, known: set[str]) -> Threshold:
    match = _PATTERN.match(text)
    if match is None:
        raise ThresholdError(
            f"--fail-if '{text}': expected METRIC OP VALUE, e.g. mid_session_drop_pct>5 "
            f"(ops: {' '.join(OPERATORS)})"
        )
    metric, op, value = match.groups()
    if metric not in known:
        listed = sorted(name for name in known if not name.startswith("code_"))
        raise ThresholdError(
            f"--fail-if '{text}': unknown metric '{metric}' "
            f"(known: {', '.join(listed)}, code_<N>_sessions)"
        )
    return Threshold(metric, op, float(value))


def crossed(thresholds: list[Threshold], metrics: Mapping[str, float | None]) -> list[str]:
    """One line per threshold that is crossed, naming the measured value."""
    return [
        f"{t}: {t.metric} is {value:g}"
        for t in thresholds
        if (value := metrics[t.metric]) is not None and OPERATORS[t.op](value, t.value)
    ]


def unchecked(
    thresholds: list[Threshold], metrics: Mapping[str, float | None], why: Callable[[str], str]
) -> list[str]:
    """One line per threshold whose metric has no data (a share of no sessions, a time never
    measured), saying `why`: counting it as 0 would cross `< 50` on a log with no losses."""
    return [
        f"{t}: {t.metric} has no data ({why(t.metric)})"
        for t in thresholds
        if metrics[t.metric] is None
    ]
