"""When a campaign's recipients may be sent to, at the pace of a run: the campaign's window
(``send_after``, ``deadline``) and each recipient's quiet hours. A message leaves Sinch's queue
for the channel some time after it is sent (the app's queue drains at its outbound rate): one
that would leave only after the deadline, or after its recipient's window closes, is held back
rather than sent to expire in the queue."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from campaign import quiet, windows
from campaign.store import repository as repo

# Added to the expected wait in Sinch's queue: the ttl is whole seconds, rounded down, and the
# request itself takes a while to arrive.
QUEUE_MARGIN_S = 2.0


class Timing:
    def __init__(
        self,
        *,
        send_fields: Mapping[str, Any],
        clock: Callable[[], datetime],
        window: windows.Window | None = None,
        quiet_hours: quiet.Plan | None = None,
        queue_wait: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self._send_fields = dict(send_fields)
        self._clock = clock
        self._queue_wait = queue_wait  # seconds a message sent now waits in Sinch's queue

        self._window = window or windows.Window()
        self.gate = quiet.Gate(quiet_hours) if quiet_hours is not None else None
        self._zones_look_at: datetime | None = None  # when to defer closed zones again

    def _wait(self) -> float:
        """Seconds until a message sent now leaves Sinch's queue, with a margin (0: the queue
        is not read, or empty)."""
        wait = self._queue_wait()
        return wait + QUEUE_MARGIN_S if wait > 0 else 0.0

    def send_options(self, zones: list[str | None] | None = None) -> dict[str, Any]:
        """The campaign's send fields, the ``ttl`` capped by the deadline and, with quiet
        hours, by the first of ``zones`` whose window closes."""
        now = self._clock()
        closes = None
        if self.gate is not None and zones:
            closes = min(self.gate.closes(zone, now) for zone in zones)
        return self._window.capped_send(self._send_fields, now, closes)

    def closed(self) -> bool:
        """The deadline has passed: send nothing more (what is left is CANCELLED)."""
        return self._window.phase(self._clock()) is windows.Phase.CLOSED

    def too_late(self) -> datetime | None:
        """The deadline, when a message sent now would leave Sinch's queue only after it:
        send nothing more (what is left is CANCELLED at the deadline)."""
        deadline = self._window.deadline
        wait = self._wait()
        if deadline is None or wait <= 0:
            return None
        return deadline if self._clock() + timedelta(seconds=wait) >= deadline else None

    def quiet_due(self) -> bool:
        """Time to defer the PENDING rows of zones in quiet hours again: whenever a window
        opens or closes, and every minute."""
        if self.gate is None:
            return False
        return self._zones_look_at is None or self._clock() >= self._zones_look_at

    def held(self, zones: Mapping[str | None, int]) -> dict[str | None, datetime]:
        """Of the zone keys of PENDING rows, those in quiet hours now, and until when."""
        assert self.gate is not None
        now = self._clock()
        held = {}
        wait = self._wait()
        for key in zones:
            until = self.gate.held_for(key, now, wait)
            if until is not None:
                held[key] = until
        look_at = now + timedelta(seconds=60)
        self._zones_look_at = min(look_at, self.gate.until or look_at)
        return held

    def split(self, claims: list[repo.Claim]) -> tuple[list[repo.Claim], list[repo.Deferred]]:
        """``claims`` into those that may leave now and those whose quiet hours have begun
        (a retry that became due in the night, a claim at the boundary), deferred until their
        window opens."""
        if self.gate is None:
            return claims, []
        now = self._clock()
        keep: list[repo.Claim] = []
        later: list[repo.Deferred] = []
        wait = self._wait()
        for claim in claims:
            until = self.gate.held_for(claim.time_zone, now, wait)
            if until is None:
                keep.append(claim)
            else:
                later.append(repo.Deferred(claim.id, until))
        return keep, later
