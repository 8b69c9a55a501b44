"""``messages:transcode`` over real HTTP: each channel's form of a message, sent to nobody."""

from __future__ import annotations

import json
from typing import Any

import pytest

from campaign.sandbox import SandboxServer

from .helpers import APP, PROJECT, Api, basic

PATH = f"/v1/projects/{PROJECT}/messages:transcode"

CARD: dict[str, Any] = {
    "card_message": {
        "title": "Spring sale",
        "description": "20% off everything until Sunday",
        "media_message": {"url": "https://example.com/sale.jpg"},
        "choices": [
            {"text_message": {"text": "Yes please"}, "postback_data": "yes"},
            {"url_message": {"title": "Shop now", "url": "https://example.com/shop"}},
            {"call_message": {"title": "Call us", "phone_number": "+15551230000"}},
        ],
    }
}


def body(message: Any = None, channels: Any = ("SMS",), **extra: Any) -> dict[str, Any]:
    return {
        "app_id": APP,
        "app_message": message if message is not None else CARD,
        "channels": list(channels),
        **extra,
    }


async def transcode(api: Api, payload: Any, **kw: Any) -> tuple[int, Any]:
    status, answer, _ = await api.call("POST", PATH, json=payload, **kw)
    return status, answer


async def test_a_card_becomes_sms_text_with_its_title_description_link_and_choices(
    api: Api,
) -> None:
    status, answer = await transcode(api, body())
    assert status == 200, answer
    assert set(answer) == {"transcoded_message"}
    sms = json.loads(answer["transcoded_message"]["SMS"])
    assert sms["body"].splitlines() == [
        "Spring sale",
        "20% off everything until Sunday",
        "https://example.com/sale.jpg",
        "1. Yes please",
        "2. Shop now: https://example.com/shop",
        "3. Call us: +15551230000",
    ]


async def test_every_channel_asked_for_gets_its_own_json_string(api: Api) -> None:
    channels = ["SMS", "WHATSAPP", "MESSENGER", "RCS", "VIBERBM", "MMS", "TELEGRAM"]
    status, answer = await transcode(api, body(channels=channels))
    assert status == 200, answer
    forms = answer["transcoded_message"]
    assert list(forms) == channels
    assert all(isinstance(form, str) for form in forms.values())
    whatsapp = json.loads(forms["WHATSAPP"])
    assert whatsapp["type"] == "interactive"
    buttons = whatsapp["interactive"]["action"]["buttons"]
    assert [b["reply"]["title"] for b in buttons] == ["Yes please", "Shop now", "Call us"]
    assert buttons[0]["reply"]["id"] == "yes"
    element = json.loads(forms["MESSENGER"])["message"]["attachment"]["payload"]["elements"][0]
    assert element["title"] == "Spring sale"
    assert element["image_url"] == "https://example.com/sale.jpg"
    assert [b["type"] for b in element["buttons"]] == ["postback", "web_url", "phone_number"]
    card = json.loads(forms["RCS"])["contentMessage"]["richCard"]["standaloneCard"]
    assert card["cardContent"]["media"]["contentInfo"]["fileUrl"].endswith("sale.jpg")
    viber = json.loads(forms["VIBERBM"])
    assert viber["content"]["button"] == {
        "caption": "Shop now",
        "action": "https://example.com/shop",
    }
    assert json.loads(forms["MMS"])["media_url"] == "https://example.com/sale.jpg"
    assert json.loads(forms["TELEGRAM"])["text"].startswith("Spring sale\n")


async def test_text_is_the_text_and_from_and_to_reach_the_sms(api: Api) -> None:
    message = {"text_message": {"text": "Hi Ana, 20% off ☺"}}
    payload = body(message, ["SMS", "WHATSAPP"], **{"from": "+15550000000", "to": "+15551112222"})
    status, answer = await transcode(api, payload)
    assert status == 200, answer
    forms = answer["transcoded_message"]
    assert json.loads(forms["SMS"]) == {
        "from": "+15550000000",
        "to": ["+15551112222"],
        "body": "Hi Ana, 20% off ☺",
    }
    assert json.loads(forms["WHATSAPP"])["text"] == {"body": "Hi Ana, 20% off ☺"}


async def test_an_explicit_channel_message_is_that_channels_form(api: Api) -> None:
    message = {
        "text_message": {"text": "Hello"},
        "explicit_channel_message": {"SMS": "Short hello"},
    }
    status, answer = await transcode(api, body(message, ["SMS", "RCS"]))
    assert status == 200, answer
    assert answer["transcoded_message"]["SMS"] == "Short hello"
    assert json.loads(answer["transcoded_message"]["RCS"]) == {"contentMessage": {"text": "Hello"}}


@pytest.mark.parametrize(
    "message",
    [
        {"carousel_message": {"cards": [CARD["card_message"], {"title": "Two"}]}},
        {
            "choice_message": {
                "text_message": {"text": "Pick"},
                "choices": CARD["card_message"]["choices"],
            }
        },
        {
            "location_message": {
                "title": "Shop",
                "label": "Main St 1",
                "coordinates": {"latitude": 59.3, "longitude": 18.1},
            }
        },
        {
            "list_message": {
                "title": "Menu",
                "sections": [
                    {
                        "title": "Drinks",
                        "items": [{"choice": {"title": "Tea", "description": "hot"}}],
                    }
                ],
            }
        },
        {
            "template_message": {
                "omni_template": {
                    "template_id": "T1",
                    "version": "2",
                    "parameters": {"name": "Ana"},
                }
            }
        },
        {"media_message": {"url": "https://example.com/a.png"}},
        {
            "contact_info_message": {
                "name": {"full_name": "Ana"},
                "phone_numbers": [{"phone_number": "+15551112222"}],
            }
        },
    ],
)
async def test_every_content_type_has_a_form_on_every_channel(api: Api, message: Any) -> None:
    channels = ["SMS", "MMS", "WHATSAPP", "MESSENGER", "INSTAGRAM", "RCS", "VIBERBM", "LINE"]
    status, answer = await transcode(api, body(message, channels))
    assert status == 200, answer
    for form in answer["transcoded_message"].values():
        assert json.loads(form)
    assert json.loads(answer["transcoded_message"]["SMS"])["body"]


async def test_missing_app_message_and_channels_are_field_violations(api: Api) -> None:
    status, answer = await transcode(api, {"app_id": APP})
    assert status == 400
    assert answer["error"]["status"] == "INVALID_ARGUMENT"
    violations = answer["error"]["details"][0]["field_violations"]
    assert [v["field"] for v in violations] == ["app_message", "channels"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (body(channels=["SMS", "PIGEON"]), "channels[1]"),
        (body(channels=["CHANNEL_UNSPECIFIED"]), "channels[0]"),
        (body(channels=[]), "channels"),
        (body({"text_message": {}}), "app_message.text_message.text"),
        (body({"text_message": {"text": "a"}, "card_message": {}}), "app_message"),
        ({**body(), "app_id": ""}, "app_id"),
        (body(**{"from": 1}), "from"),
        (body(sender="x"), "sender"),
        (["not", "an", "object"], ""),
    ],
)
async def test_invalid_requests_answer_400_naming_the_field(
    api: Api, payload: Any, field: str
) -> None:
    status, answer = await transcode(api, payload)
    assert status == 400, answer
    fields = [v["field"] for v in answer["error"]["details"][0]["field_violations"]]
    assert field in fields


async def test_an_unknown_app_is_404(api: Api) -> None:
    status, answer = await transcode(api, {**body(), "app_id": "01UNKNOWNAPP000000000000000"})
    assert status == 404
    assert answer["error"]["status"] == "NOT_FOUND"


async def test_without_credentials_it_is_401_and_basic_is_accepted(api: Api) -> None:
    status, _ = await transcode(api, body(), headers={"Authorization": "Bearer wrong"})
    assert status == 401
    status, answer = await transcode(api, body(), headers={"Authorization": basic()})
    assert status == 200, answer


async def test_nothing_is_sent(sandbox: tuple[SandboxServer, Api]) -> None:
    server, api = sandbox
    status, _ = await transcode(api, body(channels=["SMS", "WHATSAPP"]))
    assert status == 200
    assert list(server.state.messages) == []
