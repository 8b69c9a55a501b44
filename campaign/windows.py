"""When a campaign may send: not before ``send_after``, nothing after ``deadline``. Pure.

``send_after`` and ``deadline`` are top-level keys of the campaign file (timestamps with a UTC
offset). Before ``send_after`` a run sends nothing: it says when the campaign is due and exits
0 (or waits, with ``--wait``), so that cron can simply call it often. From ``deadline`` on,
nothing more is sent, and recipients still PENDING are CANCELLED with the reason ``DEADLINE``.
A ``ttl`` sent to Sinch is capped so that no message is delivered after the deadline either
(nor, with quiet hours, after the recipient's window closes: see :mod:`campaign.quiet`).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

DEADLINE_CODE = "DEADLINE"
DEADLINE_REASON = "the campaign's deadline passed before it was sent"


class Phase(enum.Enum):
    EARLY = "early"  # before send_after
    OPEN = "open"
    CLOSED = "closed"  # at or after the deadline


@dataclass(frozen=True)
class Window:
    send_after: datetime | None = None
    deadline: datetime | None = None

    def phase(self, now: datetime) -> Phase:
        if self.deadline is not None and now >= self.deadline:
            return Phase.CLOSED
        if self.send_after is not None and now < self.send_after:
            return Phase.EARLY
        return Phase.OPEN

    def capped_send(
        self, send: Mapping[str, Any], now: datetime, closes: datetime | None = None
    ) -> dict[str, Any]:
        """``send`` with its ``ttl`` no longer than the time left before the deadline, or
        before ``closes`` (a recipient's quiet hours) when that comes first (Sinch takes at
        least 3 s): a message cannot be delivered after the campaign's window, or at night."""
        out = dict(send)
        ends = [t for t in (self.deadline, closes) if t is not None]
        if not ends:
            return out
        left = max(3, math.floor((min(ends) - now).total_seconds()))
        given = out.get("ttl")
        current = int(str(given).rstrip("s")) if given is not None else None
        if current is None or current > left:
            out["ttl"] = f"{left}s"
        return out
