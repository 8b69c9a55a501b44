"""Unit tests of the pure core: reporting, progress figures, status view."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from campaign import reporting
from campaign.models import AppQueue, DispatchStats, Status
from campaign.progress import RateMeter, Snapshot, snapshot
from campaign.status_view import (
    Pace,
    campaign_view,
    queue_now,
    render_text,
)
from campaign.store import records
from campaign.store.repository import CampaignRow

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ('=HYPERLINK("x")', '\'=HYPERLINK("x")'),
        ("+SUM(A1)", "'+SUM(A1)"),
        ("-2+3", "'-2+3"),
        ("@cmd", "'@cmd"),
        ("\tx", "'\tx"),
        ("+15551234567", "+15551234567"),
        ("+1 (555) 123-4567", "+1 (555) 123-4567"),
        ("0044 20 7946 0958", "0044 20 7946 0958"),
        ("plain", "plain"),
        (None, None),
    ],
)
def test_defuse_formula_cells_but_not_phone_numbers(cell: str | None, expected: str | None) -> None:
    assert reporting.defuse(cell) == expected


def test_report_frame_is_spreadsheet_safe_and_iso_utc() -> None:
    delivered = (1, "+15551234567", "555-123-4567", "SMS", "DELIVERED", "M1", None)
    rejected = (2, None, "=1+1", "SMS", "REJECTED", None, None)
    missing = (3, None, None, "SMS", "REJECTED", None, None)
    at = "2026-11-21T12:00:00.000000Z"  # as the store gives timestamps
    frame = reporting.report_frame(
        store_page(
            [
                (*delivered, None, None, at, at, 1, at, "SMS"),
                (*rejected, "INVALID_IDENTITY", "bad", None, at, 0, None, None),
                (*missing, "MISSING_IDENTITY", "x", None, at, 0, None, None),
            ]
        )
    )
    assert frame.columns == list(reporting.REPORT_FILE_COLUMNS)
    assert frame["identity"].to_list() == ["+15551234567", "'=1+1", None]
    assert frame["sent_at"].to_list() == [at, None, None]
    assert frame["row"].to_list() == [1, 2, 3]
    assert frame["status_at"].to_list() == [at, None, None]
    assert frame["delivery_channel"].to_list() == ["SMS", None, None]
    assert reporting.report_frame(store_page([])).height == 0


def store_page(rows: list[tuple[object, ...]]) -> pl.DataFrame:
    """Rows as :meth:`campaign.store.repository.Store.report_pages` gives them."""
    numbers = {"position": pl.Int64, "attempts": pl.Int64}
    schema = {name: numbers.get(name, pl.String) for name in records.REPORT_READ_COLUMNS}
    return pl.DataFrame(rows, schema=schema, orient="row")


def test_exit_code_and_summary() -> None:
    assert reporting.exit_code_for({Status.QUEUED: 5, Status.DUPLICATE: 2}) == 0
    for bad in (Status.FAILED, Status.REJECTED, Status.IN_DOUBT):
        assert reporting.exit_code_for({Status.QUEUED: 5, bad: 1}) == 1
    lines = reporting.summary_lines(
        "c",
        {Status.QUEUED: 3, Status.DUPLICATE: 1},
        [("DUPLICATE", "DUPLICATE", 1), ("FAILED", "INVALID_ARGUMENT", 2)],
    )
    assert ("QUEUED", "3 (75.0%)") in lines
    assert ("  FAILED: INVALID_ARGUMENT", "2") in lines
    assert not any("DUPLICATE:" in label for label, _ in lines)


def test_rate_meter_shows_the_recent_rate() -> None:
    meter = RateMeter(span=2.0)
    assert meter.rate(0.0, 0) == 0.0
    assert meter.rate(1.0, 100) == 100.0
    assert meter.rate(2.0, 200) == 100.0
    assert meter.rate(10.0, 200) == 0.0  # nothing sent lately: the current rate is zero
    stats = DispatchStats(sent=7, failed=2, in_doubt=1, requests=12)
    snap = snapshot(stats, total=20, already_done=5, limit=800.0, rate=42.0)
    assert (snap.done, snap.total, snap.rate, snap.limit) == (15, 20, 42.0, 800.0)
    assert "failed 2" in snap.detail


def test_progress_shows_both_clocks_behind_the_apps_queue() -> None:
    stats = DispatchStats(sent=100, requests=100)
    snap = snapshot(
        stats,
        total=1_100,
        already_done=0,
        limit=800.0,
        rate=500.0,
        queue=AppQueue(4_000, 5_000, 500),
    )
    assert snap.eta == "submit 2.0 s · drain 10.0 s"
    assert snap.detail.endswith(" · Sinch queue 4,000/5,000 at 500/s")
    batch = snapshot(stats, total=1_100, already_done=0, limit=800.0, rate=1.0, per_request=1_000)
    assert batch.eta == "submit 1.0 s"  # the queue not read


def test_status_shows_the_queue_drained_since_it_was_read() -> None:
    row = CampaignRow(1, "c", "K", "individual", "SMS", "{}", "r.csv", "READY", 3, NOW, NOW)
    read = dataclasses.replace(
        row, app_queue_size=1_000, app_queue_limit=5_000, app_outbound=20, app_read_at=NOW
    )
    later = NOW + timedelta(seconds=10)
    assert queue_now(read, later) == 800
    assert queue_now(read, NOW + timedelta(hours=1)) == 0
    assert queue_now(row, later) is None
    view = campaign_view(read, {Status.PENDING: 200}, [], pace=Pace(100.0), now=later)
    assert (view["submit_seconds"], view["drain_seconds"]) == (2.0, 50.0)
    assert view["queue"]["now"] == 800
    text = "\n".join(render_text([view]))
    assert "to submit 2.0 s · to leave Sinch's queue 50.0 s at 20 messages/s" in text
    blind = campaign_view(row, {Status.PENDING: 200}, [], pace=Pace(100.0), now=later)
    assert "not known" in "\n".join(render_text([blind]))
    done = campaign_view(read, {Status.QUEUED: 3}, [], now=NOW + timedelta(hours=1))
    assert done["drain_seconds"] is None  # nothing left, and the queue has drained


def test_status_view() -> None:
    row = CampaignRow(1, "c", "K", "individual", "SMS", "{}", "r.csv", "READY", 3, NOW, NOW)
    view = campaign_view(row, {Status.QUEUED: 2, Status.PENDING: 1}, [("FAILED", "X", 1)])
    assert view["settled"] == 2
    assert view["counts"]["QUEUED"] == 2
    assert view["counts"]["READ"] == 0
    text = render_text([view])
    assert text[0].startswith("c  [READY, individual, SMS]  2/3 settled")
    assert "X" in text[2]


def test_status_shows_the_delivering_channels_and_the_fallbacks() -> None:
    channels = {"WHATSAPP": 7, "SMS": 3}
    row = CampaignRow(1, "c", "K", "individual", "SMS", "{}", "r.csv", "READY", 10, NOW, NOW)
    view = campaign_view(row, {Status.DELIVERED: 10}, [], channels=channels, fell_back=3)
    assert view["delivered_by_channel"] == channels and view["fell_back"] == 3
    assert "  delivered on  SMS 3  WHATSAPP 7 · fell back 3" in render_text([view])


async def test_the_progress_keeps_the_wait_in_sight_at_80_columns() -> None:
    """On an 80-column terminal the count, the wait for what is left and the rate stay on the
    line; the detail gives way (cut short, never wrapped onto further lines)."""
    import io

    from rich.console import Console

    from campaign.progress import ProgressDisplay

    screen = io.StringIO()
    console = Console(file=screen, width=80, force_terminal=True, color_system=None)
    display = ProgressDisplay(console, interval=0.01)
    stats = DispatchStats(sent=6_782, requests=6_782, in_flight=22)
    queue = AppQueue(1_200, 500_000, 100_000)

    def read() -> Snapshot:
        return snapshot(stats, total=9_416, already_done=0, limit=800.0, rate=665.0, queue=queue)

    async with display.track("sample-rich-2026", read):
        pass
    lines = re.sub(r"\x1b\[[?0-9;]*[A-Za-z]", "", screen.getvalue()).splitlines()
    last = [line for line in lines if "sample-rich-2026" in line][-1]
    assert "6,782/9,416" in last and "submit 4.0 s · drain 4.0 s" in last
    assert "665 / 800 req/s" in last
    assert all(len(line) <= 80 for line in lines)
