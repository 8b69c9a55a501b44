"""``GET /metrics``: the receiver's counters in Prometheus' text format, written by
``prometheus_client`` from :class:`~campaign.receiver.settings.ReceiverStats` as they are at
each scrape (one registry per receiver, never the process-wide one: a process may hold
several receivers, as the tests do)."""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from campaign.receiver.settings import ReceiverStats

# Every reason the receiver refuses a callback for, so that each series exists from the start
# (a rate over a series that appears later misses its first increase).
REJECT_REASONS = (
    "signature",  # 401: missing, malformed or wrong signature
    "stale",  # 401: timestamp outside the window
    "replay",  # 401: nonce already seen
    "too_large",  # 413: body over max_body_bytes
    "timeout",  # 408: body not received in time
    "too_deep",  # 400: JSON nested too deep
    "not_callback",  # 400: not a Sinch callback
    "unstorable",  # 400: values the database refuses
    "unavailable",  # 503: the database did not store it
)


class _StatsCollector(Collector):
    def __init__(self, stats: ReceiverStats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        s = self._stats
        yield _counter("received", "Callback requests received.", s.received)
        yield _counter("stored", "Callbacks stored durably (answered 200).", s.stored)
        yield _counter(
            "duplicates", "Callbacks answered 200 that were stored already.", s.duplicates
        )
        rejected = CounterMetricFamily(
            "campaign_receiver_callbacks_rejected",
            "Callback requests refused, by reason.",
            labels=["reason"],
        )
        for reason in sorted({*REJECT_REASONS, *s.rejected}):
            rejected.add_metric([reason], s.rejected.get(reason, 0))
        yield rejected
        yield _counter("applied", "Stored callbacks applied to their recipient.", s.applied)
        yield _counter(
            "unmatched", "Stored callbacks given up: no recipient within the window.", s.unmatched
        )
        yield CounterMetricFamily(
            "campaign_receiver_commits", "Successful group commits.", value=s.commits
        )
        yield CounterMetricFamily(
            "campaign_receiver_database_errors",
            "Group commits and applies that the database refused or failed.",
            value=s.commit_failures + s.apply_failures,
        )
        yield CounterMetricFamily(
            "campaign_receiver_connections_refused",
            "Connections answered 503 and closed: max_connections were open.",
            value=s.connections_refused,
        )
        yield _gauge("pending", "Callbacks queued for or in a group commit.", s.pending)
        yield _gauge(
            "waiting",
            "Stored callbacks waiting for their recipient, as of the last apply (up to 10,000).",
            s.waiting or 0,
        )
        yield _gauge("connections", "Open connections.", s.connections)
        yield _gauge("store_up", "1 when the last group commit succeeded, else 0.", s.store_ok)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(f"campaign_receiver_callbacks_{name}", documentation, value=value)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"campaign_receiver_{name}", documentation, value=value)


def registry_for(stats: ReceiverStats) -> CollectorRegistry:
    """A registry of this receiver's counters and its group commits' histograms."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(_StatsCollector(stats))
    registry.register(stats.commit_seconds)
    registry.register(stats.commit_size)
    return registry


METRICS = web.AppKey("receiver_metrics", CollectorRegistry)


async def serve(request: web.Request) -> web.Response:
    """``GET /metrics``, in the format the scraper asks for (its ``Accept``: Prometheus'
    text format by default, OpenMetrics when asked), as prometheus_client's own servers do."""
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    response = web.Response(body=encode(request.app[METRICS]))
    response.headers["Content-Type"] = content_type
    return response
