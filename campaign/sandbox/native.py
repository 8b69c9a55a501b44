"""An AppMessage in each channel's own form, as ``messages:transcode`` answers it.

Plausible shapes modelled on each channel's public API (WhatsApp Cloud API, Messenger Send
API, Google RBM, Viber Business Messages, Sinch's SMS REST API), not Sinch's byte-exact output,
which it does not publish: enough for a preview to show what a recipient gets on each channel,
above all what SMS makes of rich content (:mod:`campaign.sandbox.fallback`). A channel with an
``explicit_channel_message`` gets that text as it is, and one with an
``explicit_channel_omni_message`` gets that message transcoded, as Sinch sends them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from campaign import jsonutil
from campaign.sandbox import fallback

Content = Mapping[str, Any]
Native = dict[str, Any]

MAX_WHATSAPP_BUTTONS: Final = 3
MAX_QUICK_REPLIES: Final = 13


def transcode(
    message: Content, channel: str, sender: str | None = None, to: str | None = None
) -> str:
    """``message`` in ``channel``'s form, as the JSON string that Sinch's answer carries."""
    explicit = message.get("explicit_channel_message") or {}
    if channel in explicit:
        return str(explicit[channel])
    omni = message.get("explicit_channel_omni_message") or {}
    if channel in omni:
        message = omni[channel]
    build = _BUILDERS.get(channel, _generic)
    native = build(message)
    if channel in ("SMS", "MMS"):
        native = {**({"from": sender} if sender else {}), **({"to": [to]} if to else {}), **native}
    return jsonutil.dumps(native)


def _sms(message: Content) -> Native:
    return {"body": fallback.text_of(message)}


def _mms(message: Content) -> Native:
    media = _media_url(message)
    text = fallback.text_of(message)
    native: Native = {"body": text}
    if media:
        native["media_url"] = media
    return native


def _media_url(message: Content) -> str | None:
    """The one media link of a media message or a card, if it has one."""
    if "media_message" in message:
        return str(message["media_message"].get("url", "")) or None
    card = message.get("card_message")
    if isinstance(card, Mapping) and isinstance(card.get("media_message"), Mapping):
        return str(card["media_message"].get("url", "")) or None
    return None


# --- WhatsApp (Cloud API message objects) --------------------------------------------------------


def _whatsapp(message: Content) -> Native:
    base: Native = {"messaging_product": "whatsapp", "recipient_type": "individual"}
    if "text_message" in message:
        return {**base, "type": "text", "text": {"body": message["text_message"]["text"]}}
    if "media_message" in message:
        url = message["media_message"]["url"]
        return {**base, "type": "image", "image": {"link": url}}
    if "location_message" in message:
        return {**base, "type": "location", "location": _whatsapp_location(message)}
    if "template_message" in message:
        return {**base, "type": "template", "template": _whatsapp_template(message)}
    card = message.get("card_message")
    if isinstance(card, Mapping) and 0 < len(card.get("choices") or []) <= MAX_WHATSAPP_BUTTONS:
        return {**base, "type": "interactive", "interactive": _whatsapp_buttons(card)}
    return {**base, "type": "text", "text": {"body": fallback.text_of(message)}}


def _whatsapp_location(message: Content) -> Native:
    location = message["location_message"]
    coordinates = location["coordinates"]
    found = {"latitude": coordinates["latitude"], "longitude": coordinates["longitude"]}
    return {**found, "name": location.get("title", ""), "address": location.get("label", "")}


def _whatsapp_template(message: Content) -> Native:
    content = message["template_message"]
    ref = content.get("channel_template", {}).get("WHATSAPP") or content.get("omni_template", {})
    params = ref.get("parameters") or {}
    body = [{"type": "text", "text": value} for value in params.values()]
    return {
        "name": ref.get("template_id", ""),
        "language": {"code": ref.get("language_code", "en")},
        "components": [{"type": "body", "parameters": body}] if body else [],
    }


def _whatsapp_buttons(card: Content) -> Native:
    body = "\n".join(str(t) for t in (card.get("title"), card.get("description")) if t)
    interactive: Native = {"type": "button", "body": {"text": body}}
    media = card.get("media_message")
    if isinstance(media, Mapping):
        interactive["header"] = {"type": "image", "image": {"link": media.get("url", "")}}
    interactive["action"] = {
        "buttons": [
            {"type": "reply", "reply": {"id": _postback(choice, i), "title": _title(choice)}}
            for i, choice in enumerate(card["choices"])
        ]
    }
    return interactive


# --- Messenger and Instagram (Send API) ----------------------------------------------------------


def _messenger(message: Content) -> Native:
    if "text_message" in message:
        return {"message": {"text": message["text_message"]["text"]}}
    if "media_message" in message:
        url = message["media_message"]["url"]
        return {"message": {"attachment": {"type": "image", "payload": {"url": url}}}}
    cards = _cards(message)
    if cards:
        elements = [_messenger_element(card) for card in cards]
        payload = {"template_type": "generic", "elements": elements}
        return {"message": {"attachment": {"type": "template", "payload": payload}}}
    if "choice_message" in message:
        content = message["choice_message"]
        replies = [
            {"content_type": "text", "title": _title(c), "payload": _postback(c, i)}
            for i, c in enumerate(content["choices"][:MAX_QUICK_REPLIES])
        ]
        text = content.get("text_message", {}).get("text", "")
        return {"message": {"text": text, "quick_replies": replies}}
    return {"message": {"text": fallback.text_of(message)}}


def _messenger_element(card: Content) -> Native:
    element: Native = {"title": card.get("title", ""), "subtitle": card.get("description", "")}
    media = card.get("media_message")
    if isinstance(media, Mapping):
        element["image_url"] = media.get("url", "")
    buttons = [_messenger_button(choice, i) for i, choice in enumerate(card.get("choices") or [])]
    if buttons:
        element["buttons"] = buttons
    return element


def _messenger_button(choice: Content, index: int) -> Native:
    if "url_message" in choice:
        url = choice["url_message"]
        return {"type": "web_url", "url": url.get("url", ""), "title": url.get("title", "")}
    if "call_message" in choice:
        call = choice["call_message"]
        return {
            "type": "phone_number",
            "title": call.get("title", ""),
            "payload": call.get("phone_number", ""),
        }
    return {"type": "postback", "title": _title(choice), "payload": _postback(choice, index)}


# --- RCS (RBM agent messages) --------------------------------------------------------------------


def _rcs(message: Content) -> Native:
    if "text_message" in message:
        return {"contentMessage": {"text": message["text_message"]["text"]}}
    if "card_message" in message:
        card = {"standaloneCard": {"cardContent": _rcs_card(message["card_message"])}}
        return {"contentMessage": {"richCard": card}}
    if "carousel_message" in message:
        contents = [_rcs_card(card) for card in message["carousel_message"]["cards"]]
        carousel = {"cardWidth": "MEDIUM", "cardContents": contents}
        return {"contentMessage": {"richCard": {"carouselCard": carousel}}}
    if "choice_message" in message:
        content = message["choice_message"]
        return {
            "contentMessage": {
                "text": content.get("text_message", {}).get("text", ""),
                "suggestions": _rcs_suggestions(content["choices"]),
            }
        }
    if "media_message" in message:
        url = message["media_message"]["url"]
        return {"contentMessage": {"contentInfo": {"fileUrl": url}}}
    return {"contentMessage": {"text": fallback.text_of(message)}}


def _rcs_card(card: Content) -> Native:
    content: Native = {"title": card.get("title", ""), "description": card.get("description", "")}
    media = card.get("media_message")
    if isinstance(media, Mapping):
        height = card.get("height", "MEDIUM")
        content["media"] = {
            "height": "MEDIUM" if height == "UNSPECIFIED_HEIGHT" else height,
            "contentInfo": {"fileUrl": media.get("url", "")},
        }
    if card.get("choices"):
        content["suggestions"] = _rcs_suggestions(card["choices"])
    return content


def _rcs_suggestions(choices: list[Content]) -> list[Native]:
    suggestions: list[Native] = []
    for i, choice in enumerate(choices):
        postback = _postback(choice, i)
        if "url_message" in choice:
            url = choice["url_message"]
            action = {"text": url.get("title", ""), "postbackData": postback}
            suggestions.append({"action": {**action, "openUrlAction": {"url": url.get("url")}}})
        elif "call_message" in choice:
            call = choice["call_message"]
            action = {"text": call.get("title", ""), "postbackData": postback}
            dial = {"phoneNumber": call.get("phone_number")}
            suggestions.append({"action": {**action, "dialAction": dial}})
        else:
            suggestions.append({"reply": {"text": _title(choice), "postbackData": postback}})
    return suggestions


# --- Viber Business Messages ---------------------------------------------------------------------


def _viber(message: Content) -> Native:
    card = message.get("card_message")
    if isinstance(card, Mapping):
        content: Native = {"text": "\n".join(fallback.card_lines({**card, "choices": []}))}
        media = card.get("media_message")
        if isinstance(media, Mapping):
            content["image_url"] = media.get("url", "")
        url_choice = next((c for c in card.get("choices") or [] if "url_message" in c), None)
        if url_choice is not None:
            url = url_choice["url_message"]
            content["button"] = {"caption": url.get("title", ""), "action": url.get("url", "")}
        return {"message_type": "TEXT_IMAGE_BUTTON", "content": content}
    if "media_message" in message:
        url = message["media_message"]["url"]
        return {"message_type": "IMAGE", "content": {"image_url": url}}
    return {"message_type": "TEXT", "content": {"text": fallback.text_of(message)}}


# --- the rest --------------------------------------------------------------------------------


def _generic(message: Content) -> Native:
    """Channels without a richer form here: the text that stands in for the message."""
    return {"text": fallback.text_of(message)}


def _cards(message: Content) -> list[Content]:
    if "card_message" in message:
        return [message["card_message"]]
    if "carousel_message" in message:
        return list(message["carousel_message"].get("cards") or [])
    return []


def _title(choice: Content) -> str:
    return fallback.choice_text(choice).split(": ")[0]


def _postback(choice: Content, index: int) -> str:
    return str(choice.get("postback_data") or f"choice_{index + 1}")


_BUILDERS: Final[dict[str, Callable[[Content], Native]]] = {
    "SMS": _sms,
    "MMS": _mms,
    "WHATSAPP": _whatsapp,
    "MESSENGER": _messenger,
    "INSTAGRAM": _messenger,
    "RCS": _rcs,
    "VIBERBM": _viber,
}
