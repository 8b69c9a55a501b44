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


def test_two_clocks_of_what_is_left() -> None:
    """Submitting 1,000 recipients at 800 requests/s takes 1.25 s; the queue, holding 4,000
    already and draining 20/s, takes 250 s to pass them on. Nothing leaves before it is sent."""
    clocks = estimate.clocks(messages=1_000, requests=1_000, rate=800, queued=4_000, outbound=20)
    assert (clocks.submit, clocks.drain) == (1.25, 250.0)
    assert clocks.text() == "submit 1.2 s · drain 4 min 10 s"
    fast = estimate.clocks(messages=1_000, requests=1, rate=0.5, outbound=100_000)
    assert fast.drain == fast.submit == 2.0
    unknown = estimate.clocks(messages=1_000, requests=1_000, rate=None)
    assert (unknown.submit, unknown.drain, unknown.text()) == (None, None, "")
