"""A string that never shows itself: secrets are carried in this type end to end.

Every :class:`Secret` (and every other secret value the process learns: a database password, a
bearer token) is also remembered here, so that text leaving the process (error lines, log
records, crash traces) can be passed through :func:`redact` in one place, whatever library put
the value into it.
"""

from __future__ import annotations

import logging
from typing import Final
from urllib.parse import quote, quote_plus

_MASK: Final = "********"
# Shorter values are not redacted: they would mask ordinary words and numbers in the output.
MIN_REDACTED_LENGTH: Final = 6

_known: set[str] = set()


class Secret:
    """Wraps a secret value; ``str``, ``repr`` and f-strings show a mask, never the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register(value)

    def reveal(self) -> str:
        """The real value, for the one place that needs it (an auth header, an HMAC key)."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return f"Secret({_MASK!r})"

    def __str__(self) -> str:
        return _MASK


def register(value: str | None) -> None:
    """Remember ``value`` (and its URL-encoded forms) as secret: :func:`redact` masks it."""
    if not value or len(value) < MIN_REDACTED_LENGTH:
        return
    _known.update({value, quote(value, safe=""), quote_plus(value)})


def redact(text: str) -> str:
    """``text`` with every registered secret value replaced by ``********``."""
    if not _known:
        return text
    for value in sorted(_known, key=len, reverse=True):  # longest first: no partial leftovers
        if value in text:
            text = text.replace(value, _MASK)
    return text


class RedactingFormatter(logging.Formatter):
    """A log formatter whose output (message, arguments, exception trace) is :func:`redact`-ed."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
