"""An AppMessage as plain text: what Sinch sends on a channel with no rich content (SMS, and
the text of the others' fallbacks).

A card becomes its title, description and media link; choices become numbered lines, so that
the recipient can still see what the buttons offered (and reply with a number); a location
becomes a map link. The sandbox's own rendering, plausible rather than byte-exact: Sinch does
not publish its transcoder's text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

MAP_URL: Final = "https://maps.google.com/?q={latitude},{longitude}"

Content = Mapping[str, Any]


def text_of(message: Content) -> str:
    """The plain text of the AppMessage ``message`` (its one content key)."""
    for key, render in _RENDERERS.items():
        if key in message:
            return render(message[key])
    return ""


def numbered_choices(choices: Any) -> list[str]:
    """``1. Yes``, ``2. Visit us: https://...``: one line per choice."""
    if not isinstance(choices, list):
        return []
    return [f"{i}. {choice_text(choice)}" for i, choice in enumerate(choices, 1)]


def choice_text(choice: Content) -> str:
    """What one choice (button, quick reply) says, with where it leads."""
    if "text_message" in choice:
        return str(choice["text_message"].get("text", ""))
    if "url_message" in choice:
        url = choice["url_message"]
        return _joined(": ", url.get("title"), url.get("url"))
    if "call_message" in choice:
        call = choice["call_message"]
        return _joined(": ", call.get("title"), call.get("phone_number"))
    if "location_message" in choice:
        return _joined(": ", *_location_parts(choice["location_message"]))
    for key in ("calendar_message", "share_location_message"):
        if key in choice:
            return str(choice[key].get("title", ""))
    return ""


def card_lines(card: Content) -> list[str]:
    """A card's title, description, media link and numbered choices, the empty ones left out."""
    media = card.get("media_message")
    lines = [
        card.get("title"),
        card.get("description"),
        media.get("url") if isinstance(media, Mapping) else None,
    ]
    return [str(line) for line in lines if line] + numbered_choices(card.get("choices"))


def location_url(location: Content) -> str:
    """A map link to the location's coordinates."""
    coordinates = location.get("coordinates") or {}
    return MAP_URL.format(
        latitude=coordinates.get("latitude"), longitude=coordinates.get("longitude")
    )


def _text(content: Content) -> str:
    return str(content.get("text", ""))


def _media(content: Content) -> str:
    return str(content.get("url", ""))


def _card(content: Content) -> str:
    return "\n".join(card_lines(content))


def _carousel(content: Content) -> str:
    cards = content.get("cards") or []
    blocks = ["\n".join(card_lines(card)) for card in cards]
    choices = numbered_choices(content.get("choices"))
    if choices:
        blocks.append("\n".join(choices))
    return "\n\n".join(blocks)


def _choice(content: Content) -> str:
    text = content.get("text_message", {}).get("text")
    return "\n".join(([str(text)] if text else []) + numbered_choices(content.get("choices")))


def _location_parts(location: Content) -> list[str]:
    parts = [location.get("title"), location.get("label"), location_url(location)]
    return [str(part) for part in parts if part]


def _location(content: Content) -> str:
    return "\n".join(_location_parts(content))


def _list(content: Content) -> str:
    lines = [str(line) for line in (content.get("title"), content.get("description")) if line]
    number = 0
    for section in content.get("sections") or []:
        if section.get("title"):
            lines.append(str(section["title"]))
        for item in section.get("items") or []:
            number += 1
            lines.append(f"{number}. {_list_item(item)}")
    return "\n".join(lines)


def _list_item(item: Content) -> str:
    if "choice" in item:
        choice = item["choice"]
        return _joined(" - ", choice.get("title"), choice.get("description"))
    product = item.get("product") or {}
    return f"product {product.get('id', '')}"


def _template(content: Content) -> str:
    """The sandbox holds no templates: it names the one that Sinch would fill in."""
    ref = content.get("omni_template") or {}
    if not ref:
        channel_refs = content.get("channel_template") or {}
        ref = next(iter(channel_refs.values()), {})
    params = ref.get("parameters") or {}
    filled = ", ".join(f"{key}={value}" for key, value in params.items())
    version = f" version {ref['version']}" if ref.get("version") else ""
    return f"[template {ref.get('template_id', '')}{version}]" + (f" {filled}" if filled else "")


def _contact_info(content: Content) -> str:
    name = (content.get("name") or {}).get("full_name", "")
    numbers = [str(p.get("phone_number", "")) for p in content.get("phone_numbers") or []]
    return "\n".join([str(name), *numbers])


def _joined(separator: str, *parts: Any) -> str:
    return separator.join(str(part) for part in parts if part)


_RENDERERS: Final[dict[str, Callable[[Content], str]]] = {
    "text_message": _text,
    "media_message": _media,
    "card_message": _card,
    "carousel_message": _carousel,
    "choice_message": _choice,
    "location_message": _location,
    "list_message": _list,
    "template_message": _template,
    "contact_info_message": _contact_info,
}
