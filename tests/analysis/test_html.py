"""The HTML report opens offline in headless Chromium with its charts and no errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from openfrp.analysis import report_html, sessions, summary

CHROMIUM = Path("/usr/bin/chromium")
CHARTS = ("chart-failure-rate", "chart-codes-over-time", "chart-duration", "chart-time-to-connect")


@pytest.fixture(scope="module")
def report(fleet_analysis: sessions.Analysis, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("html") / "report.html"
    return report_html.write(summary.build(fleet_analysis), path)


def test_report_is_self_contained(report: Path) -> None:
    html = report.read_text()
    assert "<script" not in html
    assert not re.search(r"(src|href)=[\"']https?:", html)
    for chart in CHARTS:
        assert f'id="{chart}"' in html


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium")
def test_report_renders_charts_in_headless_chromium(report: Path) -> None:
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-sync",
            ],
        )
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(report.as_uri())
            for chart in CHARTS:
                svg = page.locator(f"svg#{chart}")
                assert svg.count() == 1
                assert svg.locator("title").first.text_content()
                paths = svg.locator("path")
                assert paths.count() > 0
                assert all(
                    d for d in paths.evaluate_all("els => els.map(e => e.getAttribute('d'))")
                )
                box = svg.bounding_box()
                assert box is not None and box["width"] > 100 and box["height"] > 100
            assert page.locator("#table-codes tr").count() > 5
            assert page.locator("#table-categories tr").count() == 10
        finally:
            browser.close()
    assert errors == []
    assert all(url.startswith("file:") for url in requests)


def test_trend_lines_stand_on_a_true_time_axis() -> None:
    """Buckets minutes apart and one an hour later are not drawn evenly spaced: the empty
    buckets between them count as zeros."""

    def bucket(t: str, sessions: int) -> dict[str, object]:
        return {
            "t": t,
            "sessions": sessions,
            "failures": 1,
            "failure_pct": 50.0,
            "code_counts": [1],
        }

    held = [
        bucket("2026-03-02T10:00:00", 2),
        bucket("2026-03-02T10:05:00", 3),
        bucket("2026-03-02T11:00:00", 1),
    ]
    every = report_html.every_bucket(held, 300, 1)
    assert [row["t"] for row in every][:3] == [
        "2026-03-02T10:00:00",
        "2026-03-02T10:05:00",
        "2026-03-02T10:10:00",
    ]
    assert len(every) == 13 and every[-1] is held[-1]
    assert [row["sessions"] for row in every] == [2, 3] + [0] * 10 + [1]
    assert every[5]["code_counts"] == [0]
    assert report_html.every_bucket(held[:1], 300, 1) == held[:1]
    far = [held[0], bucket("2026-06-02T10:00:00", 1)]  # past MAX_SPAN buckets: left as they are
    assert report_html.every_bucket(far, 300, 1) == far


def test_a_log_with_nothing_failed_says_so_and_counts_stand_on_whole_ticks(
    tmp_path: Path,
) -> None:
    """One session ended as meant, one still open: no empty 'For whom', an Open card, and
    a chart of one session a bin ticks 0-4 sessions, not 0.25 of one."""
    from openfrp.analysis import charts
    from tests.analysis.conftest import ev, write_log

    lines = [
        ev("a", 0, "server", "session.created"),
        ev("a", 1, "server", "connection.established", client="cli", resume=False),
        ev("a", 2, "server", "session.started"),
        ev("a", 60, "server", "session.ended", 4000),
        ev("b", 90, "server", "session.created"),
        ev("b", 91, "server", "connection.established", client="cli", resume=False),
        ev("b", 92, "server", "session.started"),
    ]
    built = summary.build(sessions.analyze([str(write_log(tmp_path / "log.jsonl", lines))]))
    html = report_html.render(built)
    assert "<h2>For whom</h2>\n<p class='muted'>No session failed.</p>" in html
    assert "Open<b>1</b>" in html
    ticks = re.findall(r'class="tick">([0-9.]+)</text>', charts.bars("c", "t", ["0s"], [1]))
    assert ticks == ["0", "1", "2", "3", "4"]
    boxes = charts.boxes("d", "t", [("x", [1, 2, 3, 4, 5])], " min")
    assert 'text-anchor="end" class="tick">5 min<' in boxes  # the last label not cut off


@pytest.mark.parametrize(
    ("largest", "ticks"),
    [
        (2630, ["0", "658", "1,316", "1,974", "2,632"]),
        (99_999, ["0", "25,000", "50,000", "75,000", "100k"]),
        (12_345_678, ["0", "3.1M", "6.2M", "9.3M", "12M"]),
    ],
)
def test_count_axis_labels_are_whole_numbers_that_fit_left_of_the_plot(
    largest: int, ticks: list[str]
) -> None:
    """No 2.63e+03, which also lost its first digit to the chart's left edge: an 11 px label
    of up to 7 characters fits in the margin."""
    from openfrp.analysis import charts

    for svg in (
        charts.bars("c", "t", ["0s", "1s"], [largest, 1]),
        charts.lines("l", "t", ["a", "b"], [("n", [largest, 1])]),
    ):
        found = re.findall(r'text-anchor="end" class="tick">([^<]*)</text>', svg)
        assert found == ticks
        assert all(len(label) * 11 * 0.6 <= charts.LEFT - 6 for label in found)
