"""Opt-out keywords: is an inbound reply a request to stop? Pure: no I/O.

A reply opts out when its text, trimmed and case-folded, is one of the keywords (``[optout]
keywords``, default :data:`DEFAULT_KEYWORDS`). "stop " and "Stop" do; "stop it" and "STOP!"
do not (a sentence is kept and counted, not acted on).
"""

from __future__ import annotations

from collections.abc import Iterable

DEFAULT_KEYWORDS: tuple[str, ...] = ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT")


def fold(text: str) -> str:
    """``text`` trimmed and case-folded, as replies and keywords are compared."""
    return text.strip().casefold()


class Keywords:
    """The configured keywords, folded once."""

    def __init__(self, keywords: Iterable[str] = DEFAULT_KEYWORDS) -> None:
        self._folded = frozenset(fold(k) for k in keywords if fold(k))

    def opts_out(self, text: str | None) -> bool:
        """True when the reply ``text`` is one of the keywords."""
        return text is not None and fold(text) in self._folded


def reply_text(message: dict[str, object]) -> str | None:
    """The text of an inbound ``contact_message`` (a text_message's text), else None."""
    contact = message.get("contact_message")
    if not isinstance(contact, dict):
        return None
    text_message = contact.get("text_message")
    if not isinstance(text_message, dict):
        return None
    text = text_message.get("text")
    return text if isinstance(text, str) else None
