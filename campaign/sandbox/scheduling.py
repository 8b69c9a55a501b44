"""When a scheduled batch goes out: Sinch's ``send_after`` rules, as pure functions.

A ``send_after`` more than a minute ahead is rounded up to the next five-minute mark, more
than seven days ahead is refused, and a time in the past means "now".
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

MAX_AHEAD: Final = timedelta(days=7)
ROUND_BEYOND: Final = timedelta(minutes=1)
ROUND_STEP_S: Final = 300


def parse_time(text: str) -> datetime | None:
    """An ISO-8601 timestamp as an aware UTC datetime (naive means UTC); ``None`` if invalid."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def too_far(requested: datetime, now: datetime) -> bool:
    """Whether ``requested`` is beyond the seven days Sinch accepts."""
    return requested - now > MAX_AHEAD


def effective_send_after(requested: datetime, now: datetime) -> datetime:
    """``requested``, rounded up to the next five-minute mark when more than a minute ahead."""
    if requested - now <= ROUND_BEYOND:
        return requested
    epoch = requested.timestamp()
    marks = -(-epoch // ROUND_STEP_S)  # ceiling division, exact on a mark
    return datetime.fromtimestamp(marks * ROUND_STEP_S, tz=UTC)
