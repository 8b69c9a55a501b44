"""Opt-out keywords: is an inbound reply a request to stop? Pure: no I/O.

A reply opts out when its text, trimmed and case-folded, is one of the keywords (``[optout]
keywords``, default :data:`DEFAULT_KEYWORDS`). "stop " and "Stop" do; "stop it" and "STOP!"
do not (a sentence is kept and counted, not acted on).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from campaign import phones

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


def normalise_identity(raw: str, default_country: str | None = None) -> str | None:
    """An identity as recipients hold it: E.164 for a phone number (callbacks write it without
    the ``+``), else the text trimmed (an email, a PSID, a contact ID)."""
    text = raw.strip()
    if not text:
        return None
    if any(c.isalpha() for c in text) or "@" in text:
        return text
    if text.isdigit() and default_country is None:
        text = "+" + text
    return phones.normalise_one(text, default_country) or text


@dataclass(frozen=True)
class OptOut:
    """An opt-out found in a callback: who, on which channel, how (KEYWORD: a reply that is a
    keyword; OPT_OUT: Sinch's opt_out_notification), by which message, in answer to which of our
    messages (its message id, when the reply says)."""

    identity: str
    channel: str | None
    source: str
    by: str
    reply_to: str | None


def found_in(trigger: str, body: bytes | str, keywords: Keywords) -> OptOut | None:
    """The opt-out that a verified callback carries, if any: a MESSAGE_INBOUND whose text is a
    keyword, or an OPT_OUT notification. Anything else (another reply, a malformed body): None."""
    if trigger not in ("MESSAGE_INBOUND", "OPT_OUT"):
        return None
    try:
        envelope = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    key = "message" if trigger == "MESSAGE_INBOUND" else "opt_out_notification"
    payload = envelope.get(key) if isinstance(envelope, dict) else None
    if not isinstance(payload, dict):
        return None
    if trigger == "MESSAGE_INBOUND" and not keywords.opts_out(reply_text(payload)):
        return None
    who = payload.get("channel_identity")
    raw = who.get("identity") if isinstance(who, dict) else None
    identity = normalise_identity(raw) if isinstance(raw, str) else None
    if identity is None:
        return None
    channel = who.get("channel") if isinstance(who, dict) else None
    contact = payload.get("contact_message")
    reply = contact.get("reply_to") if isinstance(contact, dict) else None
    reply_to = reply.get("message_id") if isinstance(reply, dict) else None
    ident = payload.get("id") or payload.get("message_id") or ""
    return OptOut(
        identity=identity,
        channel=channel if isinstance(channel, str) and channel else None,
        source="KEYWORD" if trigger == "MESSAGE_INBOUND" else "OPT_OUT",
        by=f"{trigger} {ident}".strip(),
        reply_to=reply_to if isinstance(reply_to, str) and reply_to else None,
    )
