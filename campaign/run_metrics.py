"""``campaign run --metrics-file PATH``: a run's figures in node_exporter's textfile-collector
format, written atomically (``prometheus_client.write_to_textfile``) when the run ends, whatever
its exit code.

The figures are the campaign's, read from the store when the run ends (recipients per status,
failures per error code), with the run's exit code, duration and end time, and this run's own
requests from its send loop: how many, how many accepted, 429s for the rate, and sends refused
for a full app queue (held back and sent again).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from campaign.models import DispatchStats, Status


@dataclass(frozen=True)
class RunFigures:
    """What a run ended with: plain values, no I/O."""

    campaign: str
    exit_code: int
    duration: float  # seconds
    ended_at: float  # Unix time
    counts: Mapping[Status, int] = field(default_factory=dict)
    errors: Sequence[tuple[str, str, int]] = ()  # (status, error_code, count)
    sending: DispatchStats | None = None  # this run's own requests (None: it sent none)


def registry_for(figures: RunFigures) -> CollectorRegistry:
    """The figures as gauges labelled by campaign, in a registry of their own."""
    registry = CollectorRegistry()
    label = ("campaign",)
    name = figures.campaign

    def gauge(metric: str, doc: str, value: float) -> None:
        Gauge(metric, doc, label, registry=registry).labels(name).set(value)

    gauge("campaign_run_exit_code", "Exit code of the last campaign run", figures.exit_code)
    gauge("campaign_run_duration_seconds", "Duration of the last campaign run", figures.duration)
    gauge("campaign_run_end_time_seconds", "When the last campaign run ended", figures.ended_at)
    if figures.exit_code == 0:
        gauge(
            "campaign_run_last_success_time_seconds",
            "When a campaign run last ended with exit code 0",
            figures.ended_at,
        )
    sending = figures.sending or DispatchStats()
    gauge("campaign_run_requests", "Requests this run made to send", sending.requests)
    gauge("campaign_run_sent", "Requests of this run that Sinch accepted", sending.sent)
    gauge(
        "campaign_run_rate_limited",
        "429s this run got for the request rate (each paused every sender)",
        sending.rate_limited,
    )
    gauge(
        "campaign_run_queue_full",
        "Sends of this run refused for a full app queue, held back and sent again",
        sending.queue_full,
    )
    counts = figures.counts
    gauge(
        "campaign_accepted",
        "Recipients Sinch accepted (QUEUED or a later delivery status)",
        sum(counts.get(s, 0) for s in _ACCEPTED),
    )
    gauge("campaign_failed", "Recipients FAILED", counts.get(Status.FAILED, 0))
    gauge("campaign_in_doubt", "Recipients IN_DOUBT", counts.get(Status.IN_DOUBT, 0))
    by_status = Gauge(
        "campaign_recipients", "Recipients per status", ("campaign", "status"), registry=registry
    )
    for status in Status:
        by_status.labels(name, status.value).set(counts.get(status, 0))
    by_code = Gauge(
        "campaign_failed_by_code",
        "FAILED recipients per error code",
        ("campaign", "code"),
        registry=registry,
    )
    for status_name, code, count in figures.errors:
        if status_name == Status.FAILED.value:
            by_code.labels(name, code).set(count)
    return registry


_ACCEPTED = (
    Status.QUEUED,
    Status.QUEUED_ON_CHANNEL,
    Status.DELIVERED,
    Status.READ,
    Status.SWITCHING_CHANNEL,
)


def write(path: Path, figures: RunFigures) -> None:
    """Write ``figures`` to ``path`` atomically (a temporary file renamed over it)."""
    write_to_textfile(str(path), registry_for(figures))
