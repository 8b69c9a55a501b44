"""The longest text each channel takes in one message, and what of a message to measure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from campaign import rendering

# Longest text a channel takes in one message (characters). SMS allows concatenated messages
# up to Sinch's default of 10 parts.
TEXT_LIMITS: Mapping[str, int] = {
    "SMS": 1600,
    "MMS": 5000,
    "WHATSAPP": 4096,
    "RCS": 3072,
    "VIBERBM": 1000,
    "MESSENGER": 2000,
    "INSTAGRAM": 1000,
    "TELEGRAM": 4096,
    "LINE": 5000,
    "KAKAOTALK": 1000,
}


@dataclass(frozen=True)
class TextLimit:
    """The message's text, as pieces (literal text, or a parameter's name), and the most
    characters the channel takes: the loader renders each row's text and measures it."""

    pieces: tuple[tuple[bool, str], ...]  # (is a parameter, literal text or parameter name)
    limit: int
    channel: str


def text_limit(channel: str, message: Mapping[str, Any]) -> TextLimit | None:
    """What to check of ``message`` on ``channel``: its text's length, if both have one."""
    content = message.get("text_message")
    text = content.get("text") if isinstance(content, Mapping) else None
    limit = TEXT_LIMITS.get(channel)
    if not isinstance(text, str) or limit is None:
        return None
    return TextLimit(rendering.text_pieces(text), limit, channel)
