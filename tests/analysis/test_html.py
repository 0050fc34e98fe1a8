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
