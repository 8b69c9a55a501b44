"""A string that never shows itself: secrets are carried in this type end to end."""

from __future__ import annotations

from typing import Final

_MASK: Final = "********"


class Secret:
    """Wraps a secret value; ``str``, ``repr`` and f-strings show a mask, never the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

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
