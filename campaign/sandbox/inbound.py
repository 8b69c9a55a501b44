"""Inbound replies: the sandbox answers some delivered messages as a person would, with a
MESSAGE_INBOUND callback signed like every other, so that the opt-out loop (a STOP reply puts
its sender on the suppression list) runs in tests and the demo.

An identity that ``inbound_pattern`` finds replies ``inbound_text`` (default STOP) about
``inbound_delay_s`` after its message's last delivery event, on the channel it was delivered
on, naming the message it answers (``contact_message.reply_to``).
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

from campaign.sandbox import responses
from campaign.sandbox.records import SentMessage
from campaign.sandbox.settings import SandboxSettings


def replies(settings: SandboxSettings, channel: str, identity: str) -> bool:
    """Whether ``identity`` replies to what it receives."""
    if settings.inbound_pattern is None:
        return False
    found = re.compile(settings.inbound_pattern)
    return bool(found.search(identity) or found.search(identity.removeprefix("+")))


def reply_body(
    message: SentMessage, channel: str, identity: str, text: str, now: datetime
) -> dict[str, Any]:
    """The MESSAGE_INBOUND callback of ``identity``'s reply ``text`` to ``message``."""
    moment = responses.iso_millis(now)
    return {
        "app_id": message.app_id,
        "project_id": message.project_id,
        "accepted_time": moment,
        "event_time": moment,
        "message_metadata": "",
        "correlation_id": "",
        "message": {
            "id": uuid.uuid4().hex.upper()[:26],
            "direction": "TO_APP",
            # Sinch writes phone numbers without the +.
            "channel_identity": {
                "channel": channel,
                "identity": identity.removeprefix("+"),
                "app_id": message.app_id,
            },
            "conversation_id": "",
            "contact_id": message.contact_id,
            "metadata": "",
            "accept_time": moment,
            "sender_id": identity.removeprefix("+"),
            "processing_mode": "DISPATCH",
            "injected": False,
            "contact_message": {
                "text_message": {"text": text},
                "reply_to": {"message_id": message.message_id},
            },
        },
    }
