"""A run's timing with Sinch's queue in it: what would leave the queue after the deadline is
held back (campaign.sending.timing). Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from campaign import windows
from campaign.sending.timing import QUEUE_MARGIN_S, Timing

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


def timing(deadline_in: float | None, wait: float) -> Timing:
    deadline = None if deadline_in is None else NOW + timedelta(seconds=deadline_in)
    return Timing(
        send_fields={},
        clock=lambda: NOW,
        window=windows.Window(deadline=deadline),
        queue_wait=lambda: wait,
    )


def test_the_run_stops_when_a_message_sent_now_would_leave_the_queue_after_the_deadline() -> None:
    assert timing(60, 0.0).too_late() is None  # the queue not read, or empty
    assert timing(60, 30.0).too_late() is None
    assert timing(60, 60.0).too_late() == NOW + timedelta(seconds=60)
    # The margin: the ttl is whole seconds, and the request takes a while to arrive.
    assert timing(60, 60 - QUEUE_MARGIN_S + 0.1).too_late() is not None
    assert timing(None, 3_600.0).too_late() is None  # no deadline
    assert not timing(60, 60.0).closed()  # the deadline itself has not passed
