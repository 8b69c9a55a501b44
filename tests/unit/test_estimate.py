"""Unit tests of the dry run's estimate."""

from __future__ import annotations

from campaign import estimate


def test_in_flight_bound_sustains_the_rate_at_200_ms() -> None:
    assert estimate.default_max_in_flight(800) == 200
    assert estimate.default_max_in_flight(1) == 8
    assert estimate.default_max_in_flight(None) == 1000


def test_preflight_counts_requests_and_time() -> None:
    individual = estimate.preflight(
        rows=10,
        valid=8,
        rejected={"x": 1},
        duplicates=1,
        mode="individual",
        batch_size=1000,
        rate=4,
    )
    assert (individual.requests, individual.seconds) == (8, 2.0)
    batch = estimate.preflight(
        rows=2500, valid=2500, rejected={}, duplicates=0, mode="batch", batch_size=1000, rate=800
    )
    assert batch.requests == 3


def test_the_drain_is_the_queue_ahead_and_the_campaign_at_the_outbound_rate() -> None:
    assert estimate.drain_seconds(10_000, 20) == 500.0
    assert estimate.drain_seconds(10_000, 20, queued=2_000) == 600.0
    assert estimate.drain_seconds(10_000, None) is None
    assert estimate.drain_seconds(10_000, 0) is None


def test_durations_read_as_a_person_reads_them() -> None:
    assert estimate.duration(11.83) == "11.8 s"
    assert estimate.duration(500) == "8 min 20 s"
    assert estimate.duration(50_000) == "13 h 53 min"
    assert estimate.duration(2 * 86_400 + 4 * 3_600 + 5) == "2 d 4 h"
