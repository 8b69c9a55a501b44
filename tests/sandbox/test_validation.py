"""Sinch's synchronous validation of messages:send and Batch API bodies."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from campaign.sandbox import validation
from tests.conftest import FIXTURES

from .helpers import APP, PROJECT, Api, sms, text_send

REQUESTS = FIXTURES / "conversation-v1" / "messages" / "request"
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def fields(violations: list[tuple[str, str]]) -> list[str]:
    return [field for field, _ in violations]


def send_fields(body: Any) -> list[str]:
    return fields(validation.check_send(body))


def with_message(message: Any) -> dict[str, Any]:
    return {"app_id": APP, "recipient": sms(), "message": message}


# --- over HTTP: shapes and status codes ---------------------------------------------------------


async def test_valid_send_answers_ulid_and_millisecond_time(api: Api) -> None:
    status, body, _ = await api.send(text_send())
    assert status == 200
    assert set(body) == {"message_id", "accepted_time"}
    assert len(body["message_id"]) == 26
    assert set(body["message_id"]) <= set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
    parsed = datetime.strptime(body["accepted_time"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert len(body["accepted_time"]) == 24 and parsed.year >= 2024


async def test_invalid_send_lists_every_violation(api: Api) -> None:
    body = text_send()
    body["recipient"] = sms("12")
    body["ttl"] = "1s"
    body["message"] = {"text_message": {"text": 5}}
    status, answer, _ = await api.send(body)
    assert status == 400
    error = answer["error"]
    assert (error["code"], error["message"], error["status"]) == (
        400,
        "Invalid argument",
        "INVALID_ARGUMENT",
    )
    (detail,) = error["details"]
    assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert [v["field"] for v in detail["field_violations"]] == [
        "recipient.identified_by.channel_identities[0].identity",
        "message.text_message.text",
        "ttl",
    ]
    assert all(v["description"] for v in detail["field_violations"])
    assert await api.inspect("messages") == {"total": 0, "messages": []}


async def test_body_must_be_json_object_with_json_content_type(api: Api) -> None:
    path = f"{api.url}/v1/projects/{PROJECT}/messages:send"
    async with api.session.post(
        path, data=json.dumps(text_send()), headers={**api.auth(), "Content-Type": "text/plain"}
    ) as response:
        assert response.status == 400
        assert (await response.json())["error"]["status"] == "INVALID_ARGUMENT"
    async with api.session.post(
        path, data=b"{not json", headers={**api.auth(), "Content-Type": "application/json"}
    ) as response:
        assert response.status == 400
    status, body, _ = await api.send([text_send()])
    assert status == 400
    assert body["error"]["details"][0]["field_violations"][0]["field"] == ""


async def test_unknown_app_is_404(api: Api) -> None:
    status, body, _ = await api.send(text_send() | {"app_id": "other-app"})
    assert status == 404
    assert body["error"] == {
        "code": 404,
        "message": "App 'other-app' not found",
        "status": "NOT_FOUND",
        "details": [],
    }


@pytest.mark.parametrize("path", sorted(REQUESTS.glob("Send*MessageRequestDto.json")))
async def test_sdk_fixture_messages_are_accepted(api: Api, path: Path) -> None:
    message = json.loads(path.read_text())["message"]
    status, body, _ = await api.send(with_message(message))
    assert status == 200, body
    recorded = (await api.inspect("messages"))["messages"][-1]
    assert recorded["message"] == message


def test_all_nine_fixtures_are_there() -> None:
    assert len(list(REQUESTS.glob("Send*MessageRequestDto.json"))) == 9


# --- pure checks: request fields -----------------------------------------------------------------


def test_required_fields() -> None:
    assert send_fields({}) == ["app_id", "recipient", "message"]
    assert send_fields(
        {"app_id": "", "recipient": sms(), "message": {"text_message": {"text": "x"}}}
    ) == ["app_id"]
    assert send_fields(text_send(app_id=3)) == ["app_id"]


@pytest.mark.parametrize(
    ("recipient", "expected"),
    [
        ({"contact_id": "c"}, []),
        ({}, ["recipient"]),
        ({"contact_id": "c", **sms()}, ["recipient"]),
        ({"contact_id": 5}, ["recipient.contact_id"]),
        ({"contact_id": ""}, ["recipient.contact_id"]),
        ("c", ["recipient"]),
        ({"identified_by": {}}, ["recipient.identified_by.channel_identities"]),
        (
            {"identified_by": {"channel_identities": []}},
            ["recipient.identified_by.channel_identities"],
        ),
        (
            {"identified_by": {"channel_identities": [{"channel": "FAX", "identity": "1"}]}},
            ["recipient.identified_by.channel_identities[0].channel"],
        ),
        (
            {"identified_by": {"channel_identities": [{"identity": "+15551234567"}]}},
            ["recipient.identified_by.channel_identities[0].channel"],
        ),
        (
            {
                "identified_by": {
                    "channel_identities": [
                        {"channel": "SMS", "identity": "+15551234567"},
                        {"channel": "WHATSAPP", "identity": "+0123"},
                        {"channel": "MESSENGER", "identity": ""},
                        {"channel": "TELEGRAM", "identity": "tg-user"},
                    ]
                }
            },
            [
                "recipient.identified_by.channel_identities[1].identity",
                "recipient.identified_by.channel_identities[2].identity",
            ],
        ),
    ],
)
def test_recipient_rules(recipient: Any, expected: list[str]) -> None:
    assert send_fields(text_send(recipient=recipient)) == expected


@pytest.mark.parametrize(
    ("channel", "identity", "ok"),
    [
        ("SMS", "+15551234567", True),
        ("SMS", "15551234567", True),
        ("SMS", "+1555", False),
        ("SMS", "+1555123456789012", False),
        ("MMS", "phone", False),
        ("RCS", "+46701234567", True),
        ("VIBERBM", "046701234567", False),
        ("KAKAOTALK", "+821012345678", True),
        ("KAKAOTALKCHAT", "kakao-id", True),
        ("LINE", "U1234", True),
        ("WECHAT", " ", False),
        ("APPLEBC", "urn:mbid:1", True),
    ],
)
def test_identity_format_per_channel(channel: str, identity: str, ok: bool) -> None:
    recipient = {
        "identified_by": {"channel_identities": [{"channel": channel, "identity": identity}]}
    }
    assert (send_fields(text_send(recipient=recipient)) == []) is ok


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"message_metadata": "m" * 1024}, []),
        ({"message_metadata": "m" * 1025}, ["message_metadata"]),
        ({"message_metadata": {"a": 1}}, ["message_metadata"]),
        ({"correlation_id": "c" * 128}, []),
        ({"correlation_id": "c" * 129}, ["correlation_id"]),
        ({"channel_properties": {"SMS_SENDER": "+1555"}}, []),
        ({"channel_properties": {"SMS_SENDER": 1}}, ["channel_properties.SMS_SENDER"]),
        ({"channel_properties": {"X": "v" * 1025}}, ["channel_properties.X"]),
        ({"channel_properties": ["x"]}, ["channel_properties"]),
        ({"ttl": "3s"}, []),
        ({"ttl": "315576000000s"}, []),
        ({"ttl": "2s"}, ["ttl"]),
        ({"ttl": "315576000001s"}, ["ttl"]),
        ({"ttl": "60"}, ["ttl"]),
        ({"ttl": 60}, ["ttl"]),
        ({"ttl": "1.5s"}, ["ttl"]),
        ({"processing_strategy": "DISPATCH_ONLY"}, []),
        ({"processing_strategy": "FAST"}, ["processing_strategy"]),
        ({"queue": "HIGH_PRIORITY"}, []),
        ({"queue": "LOW"}, ["queue"]),
        ({"message_content_type": "CONTENT_MARKETING"}, []),
        ({"message_content_type": "SPAM"}, ["message_content_type"]),
        ({"callback_url": "https://example.com/cb"}, []),
        ({"callback_url": "http://127.0.0.1:8080/x?y=1"}, []),
        ({"callback_url": "callback URL value"}, ["callback_url"]),
        ({"callback_url": 5}, ["callback_url"]),
        ({"channel_priority_order": ["SMS", "WHATSAPP"]}, []),
        ({"channel_priority_order": ["SMS", "PIGEON"]}, ["channel_priority_order[1]"]),
        ({"channel_priority_order": "SMS"}, ["channel_priority_order"]),
        ({"conversation_metadata": {"a": "b"}}, []),
        ({"conversation_metadata": "conversation metadata"}, ["conversation_metadata"]),
        ({"conversation_metadata": {"a": "b" * 2100}}, ["conversation_metadata"]),
        ({"conversation_metadata_update_strategy": "MERGE_PATCH"}, []),
        ({"conversation_metadata_update_strategy": "X"}, ["conversation_metadata_update_strategy"]),
        ({"surprise": 1}, ["surprise"]),
    ],
)
def test_optional_request_fields(extra: dict[str, Any], expected: list[str]) -> None:
    assert send_fields(text_send(**extra)) == expected


def test_unknown_fields_allowed_when_not_strict() -> None:
    assert validation.check_send(text_send(surprise=1), strict=False) == []


# --- pure checks: message content ----------------------------------------------------------------


def choice(i: int) -> dict[str, Any]:
    return {"text_message": {"text": f"c{i}"}, "postback_data": str(i)}


CARD = {"title": "t", "choices": [choice(0)]}


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({}, ["message"]),
        ({"text_message": {"text": "a"}, "media_message": {"url": "u"}}, ["message"]),
        ({"agent": {"display_name": "x"}}, ["message"]),
        ({"text_message": {"text": "a"}, "surprise": {}}, ["message.surprise"]),
        ({"text_message": "hi"}, ["message.text_message"]),
        ({"text_message": {}}, ["message.text_message.text"]),
        ({"text_message": {"text": ["a"]}}, ["message.text_message.text"]),
        ({"media_message": {"url": "https://x/y.png"}}, []),
        ({"media_message": {}}, ["message.media_message.url"]),
        (
            {"media_message": {"url": "u", "thumbnail_url": 3}},
            ["message.media_message.thumbnail_url"],
        ),
        ({"template_message": {"omni_template": {"template_id": "t", "version": "1"}}}, []),
        ({"template_message": {}}, ["message.template_message"]),
        (
            {"template_message": {"channel_template": {"SMS": {"version": "1"}}}},
            ["message.template_message.channel_template.SMS.template_id"],
        ),
        (
            {"template_message": {"omni_template": {"template_id": "t", "parameters": {"a": 1}}}},
            ["message.template_message.omni_template.parameters.a"],
        ),
        ({"card_message": CARD}, []),
        ({"card_message": {**CARD, "height": "HUGE"}}, ["message.card_message.height"]),
        (
            {"card_message": {"choices": [choice(i) for i in range(11)]}},
            ["message.card_message.choices"],
        ),
        (
            {"card_message": {"media_message": {"thumbnail_url": "x"}}},
            ["message.card_message.media_message.url"],
        ),
        ({"choice_message": {"text_message": {"text": "pick"}, "choices": [choice(1)]}}, []),
        ({"choice_message": {"choices": [choice(i) for i in range(10)]}}, []),
        (
            {"choice_message": {"choices": [choice(i) for i in range(11)]}},
            ["message.choice_message.choices"],
        ),
        ({"choice_message": {"choices": []}}, ["message.choice_message.choices"]),
        (
            {"choice_message": {"choices": [{"postback_data": "x"}]}},
            ["message.choice_message.choices[0]"],
        ),
        (
            {"choice_message": {"choices": [{"url_message": {"title": "t"}}]}},
            ["message.choice_message.choices[0].url_message.url"],
        ),
        (
            {"choice_message": {"choices": [{"call_message": {"title": "t", "phone_number": 1}}]}},
            ["message.choice_message.choices[0].call_message.phone_number"],
        ),
        ({"carousel_message": {"cards": [CARD, CARD]}}, []),
        ({"carousel_message": {"cards": [CARD] * 11}}, ["message.carousel_message.cards"]),
        ({"carousel_message": {"cards": []}}, ["message.carousel_message.cards"]),
        (
            {"carousel_message": {"cards": [CARD, {"height": "X"}]}},
            ["message.carousel_message.cards[1].height"],
        ),
        (
            {
                "location_message": {
                    "coordinates": {"latitude": 55.6, "longitude": 13},
                    "title": "HQ",
                }
            },
            [],
        ),
        (
            {
                "location_message": {
                    "coordinates": {"latitude": "55", "longitude": True},
                    "title": "HQ",
                }
            },
            [
                "message.location_message.coordinates.latitude",
                "message.location_message.coordinates.longitude",
            ],
        ),
        (
            {"location_message": {"coordinates": {"latitude": 91, "longitude": 0}, "title": "HQ"}},
            ["message.location_message.coordinates.latitude"],
        ),
        ({"location_message": {"title": "HQ"}}, ["message.location_message.coordinates"]),
        (
            {
                "list_message": {
                    "title": "t",
                    "sections": [
                        {
                            "items": [
                                {"choice": {"title": "a"}},
                                {"product": {"id": "p", "marketplace": "FACEBOOK"}},
                            ]
                        }
                    ],
                }
            },
            [],
        ),
        ({"list_message": {"title": "t"}}, ["message.list_message.sections"]),
        (
            {"list_message": {"title": "t", "sections": [{"items": [{}]}]}},
            ["message.list_message.sections[0].items[0]"],
        ),
        (
            {
                "contact_info_message": {
                    "name": {"full_name": "Jane"},
                    "phone_numbers": [{"phone_number": "+1"}],
                }
            },
            [],
        ),
        (
            {"contact_info_message": {"phone_numbers": []}},
            ["message.contact_info_message.name", "message.contact_info_message.phone_numbers"],
        ),
        (
            {"text_message": {"text": "a"}, "explicit_channel_message": {"SMS": "x", "FAX": "y"}},
            ["message.explicit_channel_message.FAX"],
        ),
        (
            {"text_message": {"text": "a"}, "agent": {"display_name": "Bot", "type": "ROBOT"}},
            ["message.agent.type"],
        ),
    ],
)
def test_message_content_rules(message: Any, expected: list[str]) -> None:
    assert send_fields(with_message(message)) == expected


# --- pure checks: batch bodies -------------------------------------------------------------------


def batch_body(**extra: Any) -> dict[str, Any]:
    return {
        "app_id": APP,
        "message": {"text_message": {"text": "Hi ${name}"}},
        "recipient_and_params": [
            {"recipient": sms("+15550000001"), "parameters": {"name": "A"}},
            {"recipient": sms("+15550000002"), "parameters": {"name": "B"}},
        ],
        **extra,
    }


def batch_fields(body: Any) -> list[str]:
    return fields(validation.check_batch(body, now=NOW))


def test_valid_batch() -> None:
    assert batch_fields(batch_body()) == []
    assert (
        batch_fields(
            batch_body(
                batch_metadata={"campaign": "c"},
                message_metadata={"a": "b"},
                conversation_metadata={"c": "d"},
                send_after="2026-01-02T00:00:00Z",
                callback_url="https://example.com/cb",
                channel_priority_order=["SMS"],
                ttl="86400s",
                channel_properties={"SMS_SENDER": "+15550000000"},
                correlation_id="run-1",
                processing_strategy="DEFAULT",
            )
        )
        == []
    )


def test_batch_bad_recipient_index_is_precise() -> None:
    body = batch_body()
    body["recipient_and_params"] = [{"recipient": sms(f"+1555000{i:04d}")} for i in range(5)]
    body["recipient_and_params"][3]["recipient"] = sms("not-a-number")
    body["recipient_and_params"][4]["parameters"] = {"x": 1}
    assert batch_fields(body) == [
        "recipient_and_params[3].recipient.identified_by.channel_identities[0].identity",
        "recipient_and_params[4].parameters.x",
    ]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"recipient_and_params": []}, ["recipient_and_params"]),
        ({"recipient_and_params": None}, ["recipient_and_params"]),
        ({"batch_metadata": "x"}, ["batch_metadata"]),
        ({"message_metadata": "x"}, ["message_metadata"]),
        ({"send_after": "tomorrow"}, ["send_after"]),
        ({"send_after": "2026-01-08T12:00:00Z"}, []),
        ({"send_after": "2026-01-08T12:00:01Z"}, ["send_after"]),
        ({"ttl": "1s"}, ["ttl"]),
        ({"message": {"text_message": {}}}, ["message.text_message.text"]),
    ],
)
def test_batch_rules(change: dict[str, Any], expected: list[str]) -> None:
    assert batch_fields(batch_body() | change) == expected


def test_batch_item_rules() -> None:
    body = batch_body()
    body["recipient_and_params"] = [
        {"parameters": {}},
        {"recipient": {"contact_id": "c"}, "message_metadata": "x", "conversation_metadata": []},
        {"recipient": {"contact_id": "c"}, "extra": 1},
        "nope",
    ]
    assert batch_fields(body) == [
        "recipient_and_params[0].recipient",
        "recipient_and_params[1].message_metadata",
        "recipient_and_params[1].conversation_metadata",
        "recipient_and_params[2].extra",
        "recipient_and_params[3]",
    ]


def test_batch_at_most_1000_recipients() -> None:
    body = batch_body()
    body["recipient_and_params"] = [{"recipient": {"contact_id": "c"}}] * 1000
    assert batch_fields(body) == []
    body["recipient_and_params"] = [
        *body["recipient_and_params"],
        {"recipient": {"contact_id": "c"}},
    ]
    assert batch_fields(body) == ["recipient_and_params"]


def test_validation_does_not_mutate_the_body() -> None:
    body = batch_body()
    before = copy.deepcopy(body)
    validation.check_batch(body, now=NOW + timedelta(days=1))
    assert body == before
