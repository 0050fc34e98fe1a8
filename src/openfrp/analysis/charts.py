"""Inline SVG charts drawn in Python, so the HTML report needs no script and no network."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 28, 44
PALETTE = ("#d62728", "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")


def _frame(chart_id: str, title: str, body: list[str], height: int = HEIGHT) -> str:
    return (
        f'<svg id="{chart_id}" class="chart" role="img" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>"
        f'<text x="{LEFT}" y="18" class="chart-title">{escape(title)}</text>'
        + "".join(body)
        + "</svg>"
    )


def _count_top(largest: float) -> int:
    """The top of an axis of counts: a multiple of 4, so each of its 5 ticks is a whole number
    (a top of 1 put ticks at 0.25 and 0.75 sessions)."""
    return max(4, math.ceil(largest / 4) * 4)


def _tick(value: float) -> str:
    """A count's axis label, short enough for the LEFT margin: 2,632 up to 99,999, then
    263k, 3.1M or 12M (2.63e+03 read badly and lost its first digit to the chart's edge)."""
    if value < 1e5:
        return f"{value:,.0f}"
    if value < 1e6:
        return f"{value / 1e3:.0f}k"
    return f"{value / 1e6:.1f}M" if value < 1e7 else f"{value / 1e6:,.0f}M"


def _y_axis(top_value: float, unit: str, height: int = HEIGHT) -> list[str]:
    parts = []
    plot_h = height - TOP - BOTTOM
    for i in range(5):
        value = top_value * i / 4
        y = height - BOTTOM - plot_h * i / 4
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">'
            f"{_tick(value)}{escape(unit)}</text>"
        )
    return parts


def _x_labels(labels: Sequence[str], height: int = HEIGHT) -> list[str]:
    if not labels:
        return []
    plot_w = WIDTH - LEFT - RIGHT
    step = max(1, len(labels) // 6)
    parts = []
    for i in range(0, len(labels), step):
        x = LEFT + plot_w * (i + 0.5) / len(labels)
        parts.append(
            f'<text x="{x:.1f}" y="{height - BOTTOM + 16}" text-anchor="middle" class="tick">'
            f"{escape(labels[i])}</text>"
        )
    return parts


def _empty(chart_id: str, title: str) -> str:
    return _frame(
        chart_id, title, [f'<text x="{LEFT}" y="{HEIGHT / 2}" class="tick">no data</text>']
    )


def lines(
    chart_id: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    unit: str = "",
) -> str:
    """One polyline per series over shared x labels, with a legend."""
    if not labels or not series:
        return _empty(chart_id, title)
    top_value = _count_top(max((max(values, default=0.0) for _, values in series), default=0.0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    body = _y_axis(top_value, unit) + _x_labels(labels)
    for n, (name, values) in enumerate(series):
        color = PALETTE[n % len(PALETTE)]
        points = [
            f"{LEFT + plot_w * (i + 0.5) / len(values):.1f},"
            f"{HEIGHT - BOTTOM - plot_h * v / top_value:.1f}"
            for i, v in enumerate(values)
        ]
        body.append(
            f'<path class="series" d="M{" L".join(points)}" fill="none" stroke="{color}" '
            f'stroke-width="2"><title>{escape(name)}</title></path>'
        )
        legend_x = LEFT + 8 + n * 104
        body.append(
            f'<rect x="{legend_x}" y="{HEIGHT - 16}" width="10" height="10" fill="{color}"/>'
            f'<text x="{legend_x + 14}" y="{HEIGHT - 7}" class="tick">{escape(name)}</text>'
        )
    return _frame(chart_id, title, body)


def bars(
    chart_id: str, title: str, labels: Sequence[str], values: Sequence[float], unit: str = ""
) -> str:
    """A vertical bar per label (a histogram when labels are bins)."""
    if not labels:
        return _empty(chart_id, title)
    top_value = _count_top(max(values, default=0.0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    width = plot_w / len(values)
    body = _y_axis(top_value, unit) + _x_labels(labels)
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = plot_h * value / top_value
        body.append(
            f'<path class="bar" d="M{LEFT + i * width + 1:.1f},{HEIGHT - BOTTOM:.1f} '
            f'h{max(width - 2, 1):.1f} v{-h:.1f} h{-max(width - 2, 1):.1f} Z" '
            f'fill="{PALETTE[1]}"><title>{escape(label)}: {value:g}</title></path>'
        )
    return _frame(chart_id, title, body)


def boxes(
    chart_id: str, title: str, rows: Sequence[tuple[str, Sequence[float]]], unit: str = ""
) -> str:
    """Horizontal box plots from quantiles (p10, p25, p50, p75, p90), one row per label."""
    if not rows:
        return _empty(chart_id, title)
    left = 170
    height = TOP + BOTTOM + 28 * len(rows)
    top_value = max(q[-1] for _, q in rows) or 1.0
    plot_w = WIDTH - left - RIGHT
    body = []
    for i in range(5):
        x = left + plot_w * i / 4
        anchor = "end" if i == 4 else "middle"  # the last label inside the chart, not cut off
        body.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{height - BOTTOM}" class="grid"/>'
            f'<text x="{x:.1f}" y="{height - BOTTOM + 16}" text-anchor="{anchor}" class="tick">'
            f"{top_value * i / 4:.3g}{escape(unit)}</text>"
        )
    for n, (label, q) in enumerate(rows):
        y = TOP + 28 * n + 14
        p10, p25, p50, p75, p90 = (left + plot_w * v / top_value for v in q)
        color = PALETTE[n % len(PALETTE)]
        body.append(
            f'<text x="{left - 8}" y="{y + 4}" text-anchor="end" class="tick">'
            f"{escape(label)}</text>"
            f'<path class="whisker" d="M{p10:.1f},{y} H{p90:.1f}" stroke="#555"/>'
            f'<path class="box" d="M{p25:.1f},{y - 9} H{max(p75, p25 + 1):.1f} V{y + 9} '
            f'H{p25:.1f} Z" fill="{color}" fill-opacity="0.5" stroke="{color}">'
            f"<title>{escape(label)}: median {q[2]:.3g}{escape(unit)}</title></path>"
            f'<path class="median" d="M{p50:.1f},{y - 9} V{y + 9}" stroke="#000" '
            f'stroke-width="2"/>'
        )
    return _frame(chart_id, title, body, height)
