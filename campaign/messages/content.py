"""Light structural checks of a Conversation API ``message`` (an AppMessage).

Sinch validates a message in two stages: the synchronous checks answer 400 at once, the
channel-specific ones come later as a FAILED callback. This module is the first stage (the
sandbox answers 400 with it; the campaign file parser refuses a ``[message]`` with it): exactly
one of the nine content keys, each with the fields it cannot do without and the right JSON
types. Values are not judged (the Java SDK fixtures use ``"an url value"`` as a URL).
"""

from __future__ import annotations

import math
from typing import Any, Final

from campaign import models
from campaign.messages.violations import Violations

CONTENT_KEYS: Final[tuple[str, ...]] = models.CONTENT_KEYS
EXTRA_KEYS: Final = frozenset(
    {
        "explicit_channel_message",
        "explicit_channel_omni_message",
        "channel_specific_message",
        "agent",
    }
)
CHOICE_KEYS: Final[tuple[str, ...]] = (
    "text_message",
    "url_message",
    "call_message",
    "location_message",
    "calendar_message",
    "share_location_message",
)
CARD_HEIGHTS: Final = frozenset({"UNSPECIFIED_HEIGHT", "SHORT", "MEDIUM", "TALL"})
AGENT_TYPES: Final = frozenset({"UNKNOWN_AGENT_TYPE", "HUMAN", "BOT"})
MAX_CHOICES: Final = 10
MAX_CARDS: Final = 10


def check_message(value: Any, path: str, v: Violations, *, strict: bool = True) -> None:
    """Record in ``v`` what is wrong with the AppMessage ``value`` found at ``path``."""
    msg = v.obj(value, path)
    if msg is None:
        return
    present = [key for key in CONTENT_KEYS if key in msg]
    if not present:
        v.add(path, f"exactly one of {', '.join(CONTENT_KEYS)} is required")
    elif len(present) > 1:
        v.add(path, f"only one content type may be set, found {', '.join(present)}")
    for key in present:
        _CHECKS[key](msg[key], f"{path}.{key}", v)
    if strict:
        for key in msg:
            if key not in CONTENT_KEYS and key not in EXTRA_KEYS:
                v.add(f"{path}.{key}", "unknown field")
    _check_extras(msg, path, v)


def _check_extras(msg: dict[str, Any], path: str, v: Violations) -> None:
    if (explicit := v.channel_map(msg, "explicit_channel_message", path)) is not None:
        for channel, text in explicit.items():
            if not isinstance(text, str):
                v.add(f"{path}.explicit_channel_message.{channel}", "must be a string")
    if (omni := v.channel_map(msg, "explicit_channel_omni_message", path)) is not None:
        for channel, item in omni.items():
            v.obj(item, f"{path}.explicit_channel_omni_message.{channel}")
    if (specific := v.channel_map(msg, "channel_specific_message", path)) is not None:
        for channel, item in specific.items():
            where = f"{path}.channel_specific_message.{channel}"
            if (obj := v.obj(item, where)) is not None:
                v.string(obj, "message_type", where)
                if "message" in obj:
                    v.obj(obj["message"], f"{where}.message")
    if "agent" in msg and (agent := v.obj(msg["agent"], f"{path}.agent")) is not None:
        v.string(agent, "display_name", f"{path}.agent", required=False)
        v.string(agent, "picture_url", f"{path}.agent", required=False)
        v.enum(agent, "type", f"{path}.agent", AGENT_TYPES)


def _text(value: Any, path: str, v: Violations) -> None:
    if (obj := v.obj(value, path)) is not None:
        v.string(obj, "text", path)


def _media(value: Any, path: str, v: Violations) -> None:
    if (obj := v.obj(value, path)) is not None:
        v.string(obj, "url", path)
        v.string(obj, "thumbnail_url", path, required=False)
        v.string(obj, "filename_override", path, required=False)


def _template(value: Any, path: str, v: Violations) -> None:
    if (obj := v.obj(value, path)) is None:
        return
    if "omni_template" not in obj and "channel_template" not in obj:
        v.add(path, "one of omni_template or channel_template is required")
    if "omni_template" in obj:
        _template_ref(obj["omni_template"], f"{path}.omni_template", v)
    if (per_channel := v.channel_map(obj, "channel_template", path)) is not None:
        for channel, ref in per_channel.items():
            _template_ref(ref, f"{path}.channel_template.{channel}", v)


def _template_ref(value: Any, path: str, v: Violations) -> None:
    if (obj := v.obj(value, path)) is None:
        return
    v.string(obj, "template_id", path)
    v.string(obj, "version", path, required=False)
    v.string(obj, "language_code", path, required=False)
    v.string_map(obj, "parameters", path)


def _card(value: Any, path: str, v: Violations) -> None:
    if (obj := v.obj(value, path)) is None:
        return
    v.string(obj, "title", path, required=False)
    v.string(obj, "description", path, required=False)
    if "media_message" in obj:
        _media(obj["media_message"], f"{path}.media_message", v)
    v.enum(obj, "height", path, CARD_HEIGHTS)
    _choices(obj, path, v, required=False)


def _choice_message(value: Any, path: str, v: Violations) -> None:
    if (obj := v.obj(value, path)) is None:
        return
    if "text_message" in obj:
        _text(obj["text_message"], f"{path}.text_message", v)
    _choices(obj, path, v, required=True)


def _carousel(value: Any, path: str, v: Violations) -> None:
    if (obj := v.obj(value, path)) is None:
        return
    cards = v.array(obj, "cards", path, minimum=1, maximum=MAX_CARDS)
    for i, card in enumerate(cards or ()):
        _card(card, f"{path}.cards[{i}]", v)
    _choices(obj, path, v, required=False)


def _choices(obj: dict[str, Any], path: str, v: Violations, *, required: bool) -> None:
    items = v.array(obj, "choices", path, minimum=1 if required else 0, maximum=MAX_CHOICES)
    for i, item in enumerate(items or ()):
        _choice(item, f"{path}.choices[{i}]", v)


def _choice(value: Any, path: str, v: Violations) -> None:
    if (obj := v.obj(value, path)) is None:
        return
    present = [key for key in CHOICE_KEYS if key in obj]
    if len(present) != 1:
        v.add(path, f"exactly one of {', '.join(CHOICE_KEYS)} is required")
    for key in present:
        _CHOICE_CHECKS[key](obj[key], f"{path}.{key}", v)
    v.string(obj, "postback_data", path, required=False)


def _strings(*required: str, optional: tuple[str, ...] = ()) -> Any:
    def check(value: Any, path: str, v: Violations) -> None:
        if (obj := v.obj(value, path)) is not None:
            for key in required:
                v.string(obj, key, path)
            for key in optional:
                v.string(obj, key, path, required=False)

    return check


def _location(value: Any, path: str, v: Violations) -> None:
    if (obj := v.obj(value, path)) is None:
        return
    where = f"{path}.coordinates"
    if "coordinates" not in obj:
        v.add(where, "is required")
    elif (coords := v.obj(obj["coordinates"], where)) is not None:
        for key, limit in (("latitude", 90.0), ("longitude", 180.0)):
            number = coords.get(key)
            if isinstance(number, bool) or not isinstance(number, int | float):
                v.add(f"{where}.{key}", "must be a number")
            elif not math.isfinite(number) or abs(number) > limit:
                v.add(f"{where}.{key}", f"must be between -{limit:g} and {limit:g}")
    v.string(obj, "title", path)
    v.string(obj, "label", path, required=False)


def _list(value: Any, path: str, v: Violations) -> None:
    if (obj := v.obj(value, path)) is None:
        return
    v.string(obj, "title", path)
    v.string(obj, "description", path, required=False)
    if "media" in obj:
        _media(obj["media"], f"{path}.media", v)
    sections = v.array(obj, "sections", path, minimum=1, maximum=10)
    for i, section in enumerate(sections or ()):
        where = f"{path}.sections[{i}]"
        if (sec := v.obj(section, where)) is None:
            continue
        v.string(sec, "title", where, required=False)
        for j, item in enumerate(v.array(sec, "items", where, minimum=1) or ()):
            _list_item(item, f"{where}.items[{j}]", v)


def _list_item(value: Any, path: str, v: Violations) -> None:
    if (obj := v.obj(value, path)) is None:
        return
    if ("choice" in obj) == ("product" in obj):
        v.add(path, "exactly one of choice or product is required")
    if "choice" in obj and (choice := v.obj(obj["choice"], f"{path}.choice")) is not None:
        v.string(choice, "title", f"{path}.choice")
        v.string(choice, "description", f"{path}.choice", required=False)
        v.string(choice, "postback_data", f"{path}.choice", required=False)
        if "media" in choice:
            _media(choice["media"], f"{path}.choice.media", v)
    if "product" in obj and (product := v.obj(obj["product"], f"{path}.product")) is not None:
        v.string(product, "id", f"{path}.product")
        v.string(product, "marketplace", f"{path}.product")


def _contact_info(value: Any, path: str, v: Violations) -> None:
    if (obj := v.obj(value, path)) is None:
        return
    if "name" not in obj:
        v.add(f"{path}.name", "is required")
    elif (name := v.obj(obj["name"], f"{path}.name")) is not None:
        v.string(name, "full_name", f"{path}.name")
    for i, phone in enumerate(v.array(obj, "phone_numbers", path, minimum=1) or ()):
        if (entry := v.obj(phone, f"{path}.phone_numbers[{i}]")) is not None:
            v.string(entry, "phone_number", f"{path}.phone_numbers[{i}]")
    for key in ("addresses", "email_addresses", "urls"):
        for i, item in enumerate(v.array(obj, key, path, minimum=0) or ()):
            v.obj(item, f"{path}.{key}[{i}]")
    if "organization" in obj:
        v.obj(obj["organization"], f"{path}.organization")
    v.string(obj, "birthday", path, required=False)


_CHECKS: Final = {
    "text_message": _text,
    "media_message": _media,
    "template_message": _template,
    "card_message": _card,
    "choice_message": _choice_message,
    "carousel_message": _carousel,
    "location_message": _location,
    "list_message": _list,
    "contact_info_message": _contact_info,
}
_CHOICE_CHECKS: Final = {
    "text_message": _text,
    "url_message": _strings("title", "url"),
    "call_message": _strings("title", "phone_number"),
    "location_message": _location,
    "calendar_message": _strings(
        "title",
        "event_start",
        "event_end",
        "event_title",
        "fallback_url",
        optional=("event_description",),
    ),
    "share_location_message": _strings("title", "fallback_url"),
}
