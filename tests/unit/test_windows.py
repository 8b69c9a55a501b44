"""Sending windows: send_after and deadline (pure), and the campaign file's keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from campaign import campaignfile, windows
from campaign.errors import InputFileError

T = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_phase_before_during_and_after() -> None:
    window = windows.Window(send_after=T, deadline=T + timedelta(hours=2))
    assert window.phase(T - timedelta(seconds=1)) is windows.Phase.EARLY
    assert window.phase(T) is windows.Phase.OPEN
    assert window.phase(T + timedelta(hours=2) - timedelta(microseconds=1)) is windows.Phase.OPEN
    assert window.phase(T + timedelta(hours=2)) is windows.Phase.CLOSED
    assert windows.Window().phase(T) is windows.Phase.OPEN


def test_ttl_is_capped_by_the_deadline() -> None:
    window = windows.Window(deadline=T + timedelta(seconds=90))
    assert window.capped_send({"ttl": "3600s"}, T) == {"ttl": "90s"}
    assert window.capped_send({"ttl": "60s", "x": 1}, T) == {"ttl": "60s", "x": 1}  # shorter
    assert window.capped_send({}, T) == {"ttl": "90s"}  # none given: the time left
    assert window.capped_send({}, T + timedelta(seconds=89.5)) == {"ttl": "3s"}  # Sinch's least
    assert windows.Window().capped_send({"ttl": "3600s"}, T) == {"ttl": "3600s"}


def _spec(tmp_path: Path, extra: str) -> campaignfile.CampaignSpec:
    path = tmp_path / "c.toml"
    path.write_text(
        'name = "w"\nrecipients = "r.csv"\nchannel = "SMS"\nidentity_column = "phone"\n'
        + extra
        + '\n[message]\ntext_message = { text = "hi" }\n'
    )
    return campaignfile.load(path)


def test_campaign_file_takes_offset_date_times(tmp_path: Path) -> None:
    spec = _spec(
        tmp_path, 'send_after = 2026-12-01T10:00:00+01:00\ndeadline = "2026-12-01T11:00:00Z"'
    )
    assert spec.send_after == T
    assert spec.deadline == T + timedelta(hours=2)
    assert spec.definition()["deadline"] == "2026-12-01T11:00:00+00:00"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("send_after = 2026-12-01T10:00:00", "UTC offset"),  # a local time: ambiguous
        ('deadline = "tomorrow"', "not an ISO 8601"),
        ('send_after = "2026-12-01T10:00:00Z"\ndeadline = "2026-12-01T09:00:00Z"', "after"),
    ],
)
def test_bad_windows_are_refused(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(InputFileError, match=message):
        _spec(tmp_path, extra)
