"""``messages:transcode``: what each channel makes of a message, with nothing sent.

Sinch answers each channel's form as a JSON string; :func:`text_of` takes the text a recipient
reads out of it, for measuring (an SMS's parts are counted on its text, not on its JSON).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

from campaign import errors
from campaign.sinch.client import SinchClient

# Where the text sits in the channels' forms (the sandbox's; Sinch's own are close to them).
_TEXT_PATHS: Final = (
    ("body",),
    ("text",),
    ("text", "body"),
    ("message", "text"),
    ("contentMessage", "text"),
    ("content", "text"),
    ("interactive", "body", "text"),
)


async def transcode(
    client: SinchClient,
    message: Mapping[str, Any],
    channels: Iterable[str],
    *,
    sender: str | None = None,
) -> dict[str, str]:
    """``message`` (an AppMessage) in the form of each of ``channels``, for the configured app:
    the channel's name to its JSON string. ``sender``: the ``from`` of the channels that have
    one (an SMS sender)."""
    body: dict[str, Any] = {
        "app_id": client.config.app_id,
        "app_message": dict(message),
        "channels": list(dict.fromkeys(channels)),
    }
    if sender:
        body["from"] = sender
    answer = await client.conversation("POST", "/messages:transcode", body)
    forms = answer.get("transcoded_message") if isinstance(answer, dict) else None
    if not isinstance(forms, dict) or not all(isinstance(v, str) for v in forms.values()):
        raise errors.SinchError("messages:transcode answered without a transcoded_message map")
    return dict(forms)


def text_of(form: str) -> str | None:
    """The text a recipient reads in a channel's ``form``: its body or text when it is JSON
    that has one; the form itself when it is not JSON (an ``explicit_channel_message`` is sent
    as written); None for a form with no one text (a carousel, an image)."""
    try:
        native = json.loads(form)
    except ValueError:
        return form
    for path in _TEXT_PATHS:
        found = _at(native, path)
        if isinstance(found, str):
            return found
    return None


def _at(value: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value
