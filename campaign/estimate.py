"""The dry run's estimate: how many requests a campaign takes and how long, and how many
requests to keep in flight to hold a rate."""

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
