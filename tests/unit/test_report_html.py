"""The HTML report: the funnel's arithmetic, and the page opened in a real headless browser
(Debian's Chromium), with no network, where every chart must have drawn its SVG."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from campaign import report_html
from campaign.models import Status

COUNTS = {
    Status.QUEUED: 5,
    Status.QUEUED_ON_CHANNEL: 3,
    Status.DELIVERED: 40,
    Status.READ: 12,
    Status.FAILED: 7,
    Status.REJECTED: 2,
}
DATA = report_html.ReportData(
    name="spring <sale>",
    state="DONE",
    mode="batch",
    counts=COUNTS,
    failures=[("FAILED", "RECIPIENT_NOT_REACHABLE", 7), ("REJECTED", "INVALID_IDENTITY", 2)],
    channels={"SMS": 30, "WHATSAPP": 22},
    over_time=[("2026-12-05T09:00", 20), ("2026-12-05T09:01", 32)],
    generated=datetime(2026, 12, 5, 9, 2, tzinfo=UTC),
)
CHARTS = ("funnel", "status", "over-time", "failures", "channels")


def test_the_funnel_counts_those_that_reached_each_stage() -> None:
    assert report_html.funnel(COUNTS) == [
        ("accepted", 60),
        ("on channel", 55),
        ("delivered", 52),
        ("read", 12),
    ]


def test_the_page_is_self_contained_and_escapes_the_name() -> None:
    page = report_html.render(DATA)
    assert "spring &lt;sale&gt;" in page
    assert not re.search(r"<script[^>]+src=", page)  # nothing fetched
    assert "cdn.plot.ly" not in page.replace("https://cdn.plot.ly", "")  # no loader either
    for chart in CHARTS:
        assert f'id="{chart}-plot"' in page


def test_the_charts_render_in_headless_chromium(tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium; .ci/run does it)")
    page = tmp_path / "report.html"
    report_html.write(page, DATA)
    browser = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
    browser += [f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    dom = subprocess.run(
        [*browser, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    for chart in CHARTS:
        drawn = re.search(rf'id="{chart}-plot".*?<svg[^>]*class="main-svg"', dom, re.S)
        assert drawn, f"chart {chart} did not render"
    assert "RECIPIENT_NOT_REACHABLE" in dom
    screenshot = tmp_path / "report.png"
    subprocess.run(
        [*browser, f"--screenshot={screenshot}", "--window-size=1280,2000", page.as_uri()],
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert screenshot.stat().st_size > 10_000
    print(f"the report's screenshot: {screenshot}")
