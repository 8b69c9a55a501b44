"""The dry run's estimate: how many requests a campaign takes and how long, and how many
requests to keep in flight to hold a rate.

Two clocks: the time to submit (requests at the request rate) and the time for Sinch to pass
the messages on (the app's MT queue drains towards the channels at the app's outbound rate,
20-25 messages/s unless raised, whatever the request rate)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


def default_max_in_flight(rate: float | None, latency: float = 0.2) -> int:
    """Enough concurrent requests to hold ``rate`` at ``latency`` seconds each, with 25% spare."""
    if rate is None:
        return 1000
    return max(8, math.ceil(rate * latency * 1.25))


@dataclass(frozen=True)
class Preflight:
    rows: int
    valid: int
    rejected: Mapping[str, int]
    duplicates: int
    requests: int
    seconds: float


def preflight(
    *,
    rows: int,
    valid: int,
    rejected: Mapping[str, int],
    duplicates: int,
    mode: str,
    batch_size: int,
    rate: float,
) -> Preflight:
    """How many requests the campaign takes and how long at ``rate`` requests per second."""
    requests = math.ceil(valid / batch_size) if mode == "batch" else valid
    return Preflight(rows, valid, dict(rejected), duplicates, requests, requests / rate)


def drain_seconds(messages: int, outbound_rate: int | None, queued: int = 0) -> float | None:
    """How long the app's queue takes to pass ``messages`` on to the channels, behind the
    ``queued`` already waiting, at ``outbound_rate`` messages/s (None: not known)."""
    if not outbound_rate or outbound_rate <= 0:
        return None
    return (max(0, queued) + messages) / outbound_rate


@dataclass(frozen=True)
class Clocks:
    """The two clocks of what is left: seconds to submit it at the request rate, and seconds
    until Sinch's queue has passed it (and what the queue holds) on. None: not known."""

    submit: float | None
    drain: float | None

    def text(self) -> str:
        """``submit 41.0 s · drain 13 h 53 min``, what is known of it."""
        parts = [
            f"{name} {duration(value)}"
            for name, value in (("submit", self.submit), ("drain", self.drain))
            if value is not None
        ]
        return " · ".join(parts)


def clocks(
    *,
    messages: int,
    requests: int,
    rate: float | None,
    queued: int | None = None,
    outbound: int | None = None,
) -> Clocks:
    """The clocks of ``messages`` left to send in ``requests`` at ``rate`` requests/s, behind
    ``queued`` messages in an app queue draining at ``outbound`` per second. A message cannot
    leave the queue before it is sent: the drain is never shorter than the submission."""
    submit = requests / rate if rate and rate > 0 else None
    drain = drain_seconds(messages, outbound, queued or 0)
    if drain is not None and submit is not None:
        drain = max(drain, submit)
    return Clocks(submit, drain)


def duration(seconds: float) -> str:
    """``seconds`` as a person reads it: 11.8 s, 8 min 20 s, 13 h 53 min, 2 d 4 h."""
    if seconds < 60:
        return f"{seconds:,.1f} s"
    whole = round(seconds)
    for size, unit, next_size, next_unit in ((86400, "d", 3600, "h"), (3600, "h", 60, "min")):
        if whole >= size:
            return f"{whole // size:,} {unit} {whole % size // next_size} {next_unit}"
    return f"{whole // 60} min {whole % 60} s"
