"""The channel names the Conversation API knows."""

from __future__ import annotations

from typing import Final

CHANNELS: Final = frozenset(
    {
        "WHATSAPP",
        "RCS",
        "SMS",
        "MESSENGER",
        "VIBERBM",
        "MMS",
        "INSTAGRAM",
        "TELEGRAM",
        "KAKAOTALK",
        "KAKAOTALKCHAT",
        "LINE",
        "WECHAT",
        "APPLEBC",
    }
)
