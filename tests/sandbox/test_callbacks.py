"""Delivery simulation: signed MESSAGE_SUBMIT / MESSAGE_DELIVERY callbacks, failures, retries."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from campaign import jsonutil
from campaign.sandbox import FailureRule, SandboxSettings, delivery, records
from campaign.sinch import signature

from .helpers import APP, PROJECT, WEBHOOK_SECRET, Receiver, SandboxFactory, sms, text_send

Body = dict[str, Any]


def statuses(bodies: list[Body]) -> list[str]:
    """``SUBMIT`` or the delivery status of each callback, with its channel."""
    out = []
    for body in bodies:
        if "message_submit_notification" in body:
            out.append(
                "SUBMIT:" + body["message_submit_notification"]["channel_identity"]["channel"]
            )
        else:
            report = body["message_delivery_report"]
            out.append(f"{report['status']}:{report['channel_identity']['channel']}")
    return out


def ends_with(final: str) -> Any:
    return lambda bodies: bool(bodies) and statuses(bodies)[-1].startswith(final)


def identities(*pairs: tuple[str, str]) -> dict[str, Any]:
    return {
        "identified_by": {"channel_identities": [{"channel": c, "identity": i} for c, i in pairs]}
    }


async def test_sms_sequence_has_no_read_and_callbacks_are_signed(
    with_callbacks: SandboxFactory, receiver: Receiver
) -> None:
    async with with_callbacks() as (_, api):
        body = text_send("Hi", message_metadata="meta-1", correlation_id="corr-1")
        status, answer, _ = await api.send(body)
        assert status == 200
        await receiver.wait_for(ends_with("DELIVERED"))
        await asyncio.sleep(0.1)  # a READ would have come by now
        assert statuses(receiver.bodies) == ["SUBMIT:SMS", "QUEUED_ON_CHANNEL:SMS", "DELIVERED:SMS"]

        for parsed, raw, headers in receiver.calls:
            verified = signature.verify(
                WEBHOOK_SECRET, raw, {k.lower(): v for k, v in headers.items()}
            )
            assert abs(verified.timestamp - datetime.now(UTC).timestamp()) < 10
            assert headers["x-sinch-webhook-signature-algorithm"] == "HmacSHA256"
            assert headers["Content-Type"] == "application/json"
            assert parsed["app_id"] == APP and parsed["project_id"] == PROJECT
            assert parsed["message_metadata"] == "meta-1"
            assert parsed["correlation_id"] == "corr-1"
            assert parsed["accepted_time"].endswith("Z") and parsed["event_time"].endswith("Z")
        nonces = {headers["x-sinch-webhook-signature-nonce"] for _, _, headers in receiver.calls}
        assert len(nonces) == 3

        submit = receiver.bodies[0]["message_submit_notification"]
        assert submit == {
            "message_id": answer["message_id"],
            "conversation_id": "",
            "contact_id": "",
            "channel_identity": {"channel": "SMS", "identity": "15551234567", "app_id": ""},
            "submitted_message": {"text_message": {"text": "Hi"}},
            "metadata": "meta-1",
            "processing_mode": "DISPATCH",
        }
        report = receiver.bodies[2]["message_delivery_report"]
        assert report == {
            "message_id": answer["message_id"],
            "conversation_id": "",
            "status": "DELIVERED",
            "channel_identity": {"channel": "SMS", "identity": "15551234567", "app_id": ""},
            "contact_id": "",
            "metadata": "meta-1",
            "processing_mode": "DISPATCH",
        }
        stats = await api.inspect("stats")
        assert stats["callbacks_sent"] == 3 and stats["callbacks_pending"] == 0


async def test_whatsapp_sequence_ends_with_read(
    with_callbacks: SandboxFactory, receiver: Receiver
) -> None:
    async with with_callbacks(triggers=("MESSAGE_DELIVERY",)) as (_, api):
        await api.send(text_send(recipient=identities(("WHATSAPP", "+46701234567"))))
        await receiver.wait_for(ends_with("READ"))
        assert statuses(receiver.bodies) == [
            "QUEUED_ON_CHANNEL:WHATSAPP",
            "DELIVERED:WHATSAPP",
            "READ:WHATSAPP",
        ]


async def test_failure_rule_gives_failed_with_reason(
    with_callbacks: SandboxFactory, receiver: Receiver
) -> None:
    rule = FailureRule(pattern="0000$", code="RECIPIENT_NOT_REACHABLE")
    async with with_callbacks(failure_rules=(rule,), triggers=("MESSAGE_DELIVERY",)) as (_, api):
        await api.send(text_send(recipient=sms("+15550000000")))
        await receiver.wait_for(ends_with("FAILED"))
        assert statuses(receiver.bodies) == ["QUEUED_ON_CHANNEL:SMS", "FAILED:SMS"]
        reason = receiver.bodies[-1]["message_delivery_report"]["reason"]
        assert reason["code"] == "RECIPIENT_NOT_REACHABLE"
        assert reason["sub_code"] == "UNSPECIFIED_SUB_CODE"
        assert reason["description"]


async def test_switching_channel_then_delivery_on_the_next(
    with_callbacks: SandboxFactory, receiver: Receiver
) -> None:
    rule = FailureRule(pattern=r"^\+1555", code="RECIPIENT_NOT_OPTED_IN", channel="WHATSAPP")
    async with with_callbacks(failure_rules=(rule,)) as (_, api):
        recipient = identities(("WHATSAPP", "+15551112222"), ("SMS", "+15551112222"))
        await api.send(text_send(recipient=recipient))
        await receiver.wait_for(ends_with("DELIVERED"))
        assert statuses(receiver.bodies) == [
            "SUBMIT:WHATSAPP",
            "QUEUED_ON_CHANNEL:WHATSAPP",
            "SWITCHING_CHANNEL:WHATSAPP",
            "QUEUED_ON_CHANNEL:SMS",
            "DELIVERED:SMS",
        ]
        switching = receiver.bodies[2]["message_delivery_report"]
        assert switching["reason"]["code"] == "RECIPIENT_NOT_OPTED_IN"


async def test_priority_order_and_failure_on_every_channel(
    with_callbacks: SandboxFactory, receiver: Receiver
) -> None:
    rule = FailureRule(pattern="2222$", code="CHANNEL_FAILURE")
    async with with_callbacks(failure_rules=(rule,), triggers=("MESSAGE_DELIVERY",)) as (_, api):
        recipient = identities(("SMS", "+15551112222"), ("RCS", "+15551112222"))
        await api.send(text_send(recipient=recipient, channel_priority_order=["RCS", "SMS"]))
        await receiver.wait_for(ends_with("FAILED"))
        assert statuses(receiver.bodies) == [
            "QUEUED_ON_CHANNEL:RCS",
            "SWITCHING_CHANNEL:RCS",
            "QUEUED_ON_CHANNEL:SMS",
            "FAILED:SMS",
        ]
        assert receiver.bodies[-1]["message_delivery_report"]["reason"]["code"] == "CHANNEL_FAILURE"


async def test_retries_until_the_receiver_answers_2xx(
    with_callbacks: SandboxFactory, receiver: Receiver
) -> None:
    receiver.statuses = [500, 503]
    async with with_callbacks(triggers=("MESSAGE_SUBMIT",)) as (_, api):
        await api.send(text_send())
        await receiver.wait_for(lambda bodies: len(bodies) == 3)
        raws = [raw for _, raw, _ in receiver.calls]
        assert raws[0] == raws[1] == raws[2]  # the same event, re-signed each time
        log = (await api.inspect("callbacks"))["callbacks"]
        assert [(c["attempt"], c["response_status"]) for c in log] == [(1, 500), (2, 503), (3, 200)]
        assert log[0]["trigger"] == "MESSAGE_SUBMIT" and log[0]["url"] == receiver.url
        stats = await api.inspect("stats")
        assert stats["callbacks_sent"] == 1
        assert stats["callback_attempts_failed"] == 2
        assert stats["callbacks_failed"] == 0


async def test_gives_up_after_max_attempts_and_survives_unreachable_targets(
    with_callbacks: SandboxFactory, receiver: Receiver
) -> None:
    receiver.statuses = [500] * 10
    async with with_callbacks(triggers=("MESSAGE_SUBMIT",), callback_max_attempts=2) as (_, api):
        await api.send(text_send())
        await api.send(text_send(callback_url="http://127.0.0.1:9/unreachable"))

        async def done() -> bool:
            return (await api.inspect("stats"))["callbacks_failed"] == 2

        deadline = asyncio.get_running_loop().time() + 5
        while not await done():
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
        log = (await api.inspect("callbacks"))["callbacks"]
        errors = [c for c in log if c["error"]]
        assert len(errors) == 2 and all(c["response_status"] is None for c in errors)
        assert len(receiver.calls) == 2


async def test_duplicates(with_callbacks: SandboxFactory, receiver: Receiver) -> None:
    async with with_callbacks(duplicate_callback_rate=1.0) as (_, api):
        await api.send(text_send())
        await receiver.wait_for(lambda bodies: len(bodies) == 6)
        await asyncio.sleep(0.05)
        raws = [raw for _, raw, _ in receiver.calls]
        assert len(raws) == 6 and len(set(raws)) == 3  # each event twice, identical bodies
        log = (await api.inspect("callbacks"))["callbacks"]
        assert sum(c["duplicate"] for c in log) == 3


async def test_reorder_delivers_every_event(
    with_callbacks: SandboxFactory, receiver: Receiver
) -> None:
    async with with_callbacks(reorder=True, seed=3) as (_, api):
        await api.send(text_send(recipient=identities(("RCS", "+15551234567"))))
        await receiver.wait_for(lambda bodies: len(bodies) == 4)
        assert sorted(statuses(receiver.bodies)) == [
            "DELIVERED:RCS",
            "QUEUED_ON_CHANNEL:RCS",
            "READ:RCS",
            "SUBMIT:RCS",
        ]


async def test_unsigned_when_no_secret_and_per_request_url(
    make_sandbox: SandboxFactory, receiver: Receiver
) -> None:
    settings = {"webhook_secret": None, "queued_delay_s": 0.01, "delivered_delay_s": 0.01}
    async with make_sandbox(**settings) as (_, api):  # no global callback_url
        await api.send(text_send())
        await asyncio.sleep(0.1)
        assert receiver.calls == []
        await api.send(text_send(callback_url=receiver.url))
        await receiver.wait_for(ends_with("DELIVERED"))
        assert all(
            "x-sinch-webhook-signature" not in {k.lower() for k in headers}
            for _, _, headers in receiver.calls
        )


async def test_batch_callbacks_carry_the_merged_metadata_string(
    with_callbacks: SandboxFactory, receiver: Receiver
) -> None:
    async with with_callbacks(triggers=("MESSAGE_SUBMIT",)) as (_, api):
        body = {
            "app_id": APP,
            "message": {"text_message": {"text": "Hi ${name}"}},
            "message_metadata": {"campaign": "c1"},
            "recipient_and_params": [
                {
                    "recipient": sms(),
                    "parameters": {"name": "Jane"},
                    "message_metadata": {"row": "1"},
                }
            ],
        }
        _, answer, _ = await api.batch(body)
        (callback,) = await receiver.wait_for(lambda bodies: len(bodies) == 1)
        expected = jsonutil.dumps({"campaign": "c1", "row": "1", "_batch_id": answer["batch_id"]})
        submit = callback["message_submit_notification"]
        assert submit["metadata"] == expected and callback["message_metadata"] == expected
        assert submit["submitted_message"] == {"text_message": {"text": "Hi Jane"}}


async def test_dropped_requests_still_get_callbacks(
    with_callbacks: SandboxFactory, receiver: Receiver
) -> None:
    async with with_callbacks(drop_rate=1.0, triggers=("MESSAGE_SUBMIT",)) as (_, api):
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await api.send(text_send())
        await receiver.wait_for(lambda bodies: len(bodies) == 1)


async def test_callbacks_follow_runtime_settings(
    with_callbacks: SandboxFactory, receiver: Receiver
) -> None:
    async with with_callbacks(triggers=("MESSAGE_SUBMIT",)) as (_, api):
        await api.patch(triggers=[], callback_url=None)
        await api.send(text_send())
        await asyncio.sleep(0.05)
        assert receiver.calls == []
        await api.patch(triggers=["MESSAGE_DELIVERY"], callback_url=receiver.url)
        await api.send(text_send())
        await receiver.wait_for(ends_with("DELIVERED"))


# --- the pure planner -----------------------------------------------------------------------------


def sent(*hops: tuple[str, str]) -> records.SentMessage:
    return records.SentMessage(
        message_id="m",
        project_id=PROJECT,
        app_id=APP,
        recipient={},
        message={},
        route=tuple(records.Hop(c, i) for c, i in hops),
        accepted_time=datetime.now(UTC),
    )


def test_plan_offsets_accumulate_with_jitter() -> None:
    settings = SandboxSettings(queued_delay_s=1, delivered_delay_s=2, read_delay_s=3)
    events = delivery.plan(sent(("WHATSAPP", "+15551234567")), settings, random.Random(1))
    assert [e.status for e in events] == [None, "QUEUED_ON_CHANNEL", "DELIVERED", "READ"]
    offsets = [e.offset_s for e in events]
    assert offsets == sorted(offsets)
    assert 1 <= offsets[1] <= 1.1 and 3 <= offsets[2] <= 3.6 and 6 <= offsets[3] <= 8.6


def test_plan_reorder_permutes_offsets() -> None:
    settings = SandboxSettings(reorder=True)
    message = sent(("RCS", "+15551234567"))
    orders = set()
    for seed in range(20):
        events = delivery.plan(message, settings, random.Random(seed))
        offsets = [e.offset_s for e in events]
        orders.add(tuple(sorted(range(len(offsets)), key=offsets.__getitem__)))
    assert len(orders) > 1


def test_contact_id_recipients_route_on_priority_or_sms() -> None:
    assert records.route_of({"contact_id": "c"}, None) == (records.Hop("SMS", ""),)
    assert records.route_of({"contact_id": "c"}, ["RCS", "SMS"]) == (
        records.Hop("RCS", ""),
        records.Hop("SMS", ""),
    )
    recipient = identities(("SMS", "+1"), ("RCS", "+2"))
    assert records.route_of(recipient, ["RCS", "LINE"]) == (
        records.Hop("RCS", "+2"),
        records.Hop("SMS", "+1"),
    )
