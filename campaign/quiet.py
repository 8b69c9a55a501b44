"""Quiet hours: no message reaches anyone at night in their own time zone. Pure.

``quiet_hours = "21:00-08:00"`` in the campaign file is a daily interval of local time, from its
start (included) to its end (excluded); it may wrap midnight. Each recipient has a *zone key*:
one IANA time zone, or several joined by ``|`` when the phone number cannot tell which (a
country with several zones). A recipient may be sent only when it is outside quiet hours in
every zone of its key, the most cautious reading. A key whose zones never share an open hour
(they span too much of the globe) falls back to the campaign's ``timezone``.

Recipients inside quiet hours are deferred, never skipped: they become due when their window
opens. A message sent in an open window gets a ``ttl`` that ends when the window closes, so that
Sinch cannot deliver it at night either.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

ZONE_SEPARATOR = "|"
_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_DAYS_AHEAD = 3  # boundaries are looked for this many local days ahead (DST shifts included)


class QuietHoursError(ValueError):
    """A ``quiet_hours`` range or a time zone name that cannot be used."""


@functools.cache
def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; :class:`QuietHoursError` when there is none by that name."""
    if name not in _known_zones():
        raise QuietHoursError(f"unknown time zone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise QuietHoursError(f"unknown time zone {name!r}") from None


@functools.cache
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def is_zone(name: str) -> bool:
    return name in _known_zones()


def zone_key(names: Iterable[str]) -> str:
    """The key of a set of zones: sorted, unique, joined by ``|``."""
    return ZONE_SEPARATOR.join(sorted(set(names)))


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        """``"HH:MM-HH:MM"``, local time; the end is excluded and may be past midnight."""
        match = _RANGE.match(text)
        if not match:
            raise QuietHoursError(f"quiet_hours {text!r}: give a range of local times, 21:00-08:00")
        hours = [int(match.group(i)) for i in (1, 3)]
        minutes = [int(match.group(i)) for i in (2, 4)]
        if any(h > 23 for h in hours) or any(m > 59 for m in minutes):
            raise QuietHoursError(f"quiet_hours {text!r}: not times of day")
        start, end = time(hours[0], minutes[0]), time(hours[1], minutes[1])
        if start == end:
            raise QuietHoursError(f"quiet_hours {text!r}: starts and ends at the same time")
        return cls(start, end)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    # --- one zone -----------------------------------------------------------------------------

    def _quiet_local(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def _boundaries(self, name: str, at: datetime) -> list[datetime]:
        """Every start and end of quiet hours in zone ``name`` from the day before ``at`` on,
        as UTC instants (a wall time that a DST change skips is taken as its shifted instant)."""
        tz = zone(name)
        first = at.astimezone(tz).date() - timedelta(days=1)
        out = []
        for day in range(_DAYS_AHEAD + 2):
            when = first + timedelta(days=day)
            for moment in (self.start, self.end):
                out.append(_instant(when, moment, tz))
        return sorted(out)

    # --- a zone key ---------------------------------------------------------------------------

    def quiet(self, key: str, at: datetime) -> bool:
        """Whether ``at`` falls in quiet hours in any zone of ``key``."""
        return any(
            self._quiet_local(at.astimezone(zone(name)).time().replace(tzinfo=None))
            for name in key.split(ZONE_SEPARATOR)
        )

    def opens(self, key: str, at: datetime) -> datetime | None:
        """The first instant from ``at`` on when no zone of ``key`` is quiet (``at`` itself when
        none is now); None when the zones never share an open hour."""
        if not self.quiet(key, at):
            return at
        candidates = sorted(
            {b for name in key.split(ZONE_SEPARATOR) for b in self._boundaries(name, at) if b > at}
        )
        for candidate in candidates:
            if not self.quiet(key, candidate):
                return candidate
        return None

    def closes(self, key: str, at: datetime) -> datetime:
        """When quiet hours next begin in any zone of ``key``, after ``at``."""
        starts = [
            b
            for name in key.split(ZONE_SEPARATOR)
            for b in self._boundaries(name, at)
            if b > at and self.quiet(name, b)
        ]
        return min(starts)


def _instant(day: date, moment: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of the local wall time ``day moment`` in ``tz`` (for a wall time that
    occurs twice, the first; for one a DST change skips, the instant it maps to)."""
    local = datetime.combine(day, moment, tzinfo=tz)
    return local.astimezone(UTC)


@dataclass(frozen=True)
class Plan:
    """Quiet hours as a campaign applies them: the range and the fallback zone."""

    hours: QuietHours
    fallback: str  # the campaign's ``timezone``

    def _deciding(self, key: str | None, at: datetime) -> tuple[str, datetime]:
        """The zone key that decides for ``key`` (itself, or the fallback when it is unknown
        or its zones never share an open hour) and when it opens from ``at`` on."""
        if key:
            opens = self.hours.opens(key, at)
            if opens is not None:
                return key, opens
        opens = self.hours.opens(self.fallback, at)
        assert opens is not None  # one zone always opens
        return self.fallback, opens

    def due(self, key: str | None, at: datetime) -> datetime:
        """When a recipient with zone key ``key`` may be sent, from ``at`` on."""
        return self._deciding(key, at)[1]

    def closes(self, key: str | None, at: datetime) -> datetime:
        """When quiet hours next begin for ``key``, after ``at``."""
        return self.hours.closes(self._deciding(key, at)[0], at)

    def window(self, key: str | None, at: datetime) -> tuple[datetime, datetime]:
        """The next window of ``key`` from ``at`` on (the current one if open): when it
        opens (``at`` itself when open now) and when it closes."""
        deciding, opens = self._deciding(key, at)
        return opens, self.hours.closes(deciding, opens)


class Gate:
    """Quiet hours at the pace of a run: each zone key's state, worked out once and kept until
    the first boundary (a window opening or closing) of any key it knows."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self._state: dict[str | None, tuple[datetime | None, datetime]] = {}
        self._until: datetime | None = None

    @property
    def until(self) -> datetime | None:
        """The first boundary of the keys looked at (None: none was)."""
        return self._until

    def expired(self, now: datetime) -> bool:
        """Whether a boundary passed since the states were worked out (or none were)."""
        return self._until is None or now >= self._until

    def _look(self, key: str | None, now: datetime) -> tuple[datetime | None, datetime]:
        if self.expired(now):
            self._state.clear()
            self._until = None
        found = self._state.get(key)
        if found is None:
            due, closes = self.plan.window(key, now)
            held = due if due > now else None
            found = self._state[key] = (held, closes)
            change = held or closes
            self._until = change if self._until is None else min(self._until, change)
        return found

    def held_until(self, key: str | None, now: datetime) -> datetime | None:
        """When ``key``'s window opens, if it is closed at ``now``; None when it is open."""
        return self._look(key, now)[0]

    def closes(self, key: str | None, now: datetime) -> datetime:
        """When ``key``'s current (or next) window closes."""
        return self._look(key, now)[1]

    def held_for(self, key: str | None, now: datetime, wait: float) -> datetime | None:
        """:meth:`held_until` for a message that waits ``wait`` seconds in Sinch's queue
        before it leaves for the channel: held, too, when its window closes before then
        (until the next one opens), rather than sent to expire in the queue."""
        held, closes = self._look(key, now)
        if held is not None or wait <= 0 or now + timedelta(seconds=wait) < closes:
            return held
        return self.plan.window(key, closes)[0]
