"""What the sandbox knows about Conversation API channels and identities (the channel names
themselves are :data:`campaign.messages.channels.CHANNELS`)."""

from __future__ import annotations

import re
from typing import Final

#: Channels whose identity is a phone number, checked against :data:`E164`.
PHONE_CHANNELS: Final = frozenset({"SMS", "MMS", "WHATSAPP", "RCS", "VIBERBM", "KAKAOTALK"})

#: Channels that report ``READ``; SMS and MMS never do.
READ_CHANNELS: Final = frozenset(
    {
        "WHATSAPP",
        "RCS",
        "MESSENGER",
        "VIBERBM",
        "INSTAGRAM",
        "TELEGRAM",
        "LINE",
        "KAKAOTALKCHAT",
        "APPLEBC",
    }
)

E164: Final = re.compile(r"\+?[1-9]\d{6,14}")


def valid_identity(channel: str, identity: str) -> bool:
    """Whether ``identity`` has the shape ``channel`` expects (E.164 for phone channels)."""
    if channel in PHONE_CHANNELS:
        return E164.fullmatch(identity) is not None
    return bool(identity.strip())


def callback_identity(channel: str, identity: str) -> str:
    """The identity as callbacks show it: phone numbers in E.164 without the ``+``."""
    if channel in PHONE_CHANNELS:
        return identity.removeprefix("+")
    return identity
