"""When a campaign's recipients may be sent to, at the pace of a run: the campaign's window
(``send_after``, ``deadline``) and each recipient's quiet hours."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from campaign import quiet, windows
from campaign.store import repository as repo


class Timing:
    def __init__(
        self,
        *,
        send_fields: Mapping[str, Any],
        clock: Callable[[], datetime],
        window: windows.Window | None = None,
        quiet_hours: quiet.Plan | None = None,
    ) -> None:
        self._send_fields = dict(send_fields)
        self._clock = clock
        self._window = window or windows.Window()
        self.gate = quiet.Gate(quiet_hours) if quiet_hours is not None else None
        self._zones_look_at: datetime | None = None  # when to defer closed zones again

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
        for key in zones:
            until = self.gate.held_until(key, now)
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
        for claim in claims:
            until = self.gate.held_until(claim.time_zone, now)
            if until is None:
                keep.append(claim)
            else:
                later.append(repo.Deferred(claim.id, until))
        return keep, later
