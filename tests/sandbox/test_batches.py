"""The Batch API over HTTP: substitution, metadata, scheduling, status, cancellation."""

from __future__ import annotations

import asyncio
import gc
from datetime import UTC, datetime, timedelta
from typing import Any

from campaign import jsonutil
from campaign.sandbox import SandboxServer, scheduling

from .helpers import APP, PROJECT, Api, eventually, sms

BATCH = f"/v1/projects/{PROJECT}/messages"


def batch_body(n: int = 2, **extra: Any) -> dict[str, Any]:
    return {
        "app_id": APP,
        "message": {"text_message": {"text": "Hi ${name}"}},
        "recipient_and_params": [
            {"recipient": sms(f"+1555000{i:04d}"), "parameters": {"name": f"R{i}"}}
            for i in range(n)
        ],
        **extra,
    }


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


async def test_batch_becomes_one_message_per_recipient(api: Api) -> None:
    body = batch_body(
        message={
            "card_message": {
                "title": "Offer for ${name}",
                "choices": [
                    {"text_message": {"text": "Yes ${name}"}, "postback_data": "yes-${code}"},
                    {"url_message": {"title": "More", "url": "https://x.test/${code}"}},
                ],
            }
        },
        recipient_and_params=[
            {"recipient": sms("+15550000001"), "parameters": {"name": "Jane", "code": "J1"}},
            {"recipient": sms("+15550000002"), "parameters": {"name": "${code}", "code": "K2"}},
        ],
    )
    status, answer, _ = await api.batch(body)
    assert status == 200, answer
    assert set(answer) == {"batch_id"} and len(answer["batch_id"]) == 26
    listed = await api.inspect("messages")
    assert listed["total"] == 2
    first, second = listed["messages"]
    assert first["batch_id"] == second["batch_id"] == answer["batch_id"]
    assert first["identity"] == "+15550000001" and first["channel"] == "SMS"
    assert first["message"] == {
        "card_message": {
            "title": "Offer for Jane",
            "choices": [
                {"text_message": {"text": "Yes Jane"}, "postback_data": "yes-J1"},
                {"url_message": {"title": "More", "url": "https://x.test/J1"}},
            ],
        }
    }
    # A value containing ${code} is inserted literally, never substituted again.
    assert second["message"]["card_message"]["title"] == "Offer for ${code}"
    assert second["message"]["card_message"]["choices"][0]["text_message"]["text"] == "Yes ${code}"
    assert first["message_id"] != second["message_id"]


async def test_metadata_merge_and_reserved_batch_id(api: Api) -> None:
    body = batch_body(
        message_metadata={"campaign": "spring", "row": "0", "_batch_id": "mine"},
        conversation_metadata={"segment": "all"},
        correlation_id="run-42",
    )
    body["recipient_and_params"][0]["message_metadata"] = {"row": "17"}
    body["recipient_and_params"][1]["conversation_metadata"] = {"segment": "b", "_batch_id": "x"}
    status, answer, _ = await api.batch(body)
    assert status == 200
    batch_id = answer["batch_id"]
    first, second = (await api.inspect("messages"))["messages"]
    assert first["message_metadata"] == jsonutil.dumps(
        {"campaign": "spring", "row": "17", "_batch_id": batch_id}
    )
    assert jsonutil.loads(second["message_metadata"]) == {
        "campaign": "spring",
        "row": "0",
        "_batch_id": batch_id,
    }
    assert first["conversation_metadata"] == {"segment": "all", "_batch_id": batch_id}
    assert second["conversation_metadata"] == {"segment": "b", "_batch_id": batch_id}
    assert first["correlation_id"] == "run-42"


async def test_bad_recipient_rejects_whole_batch_with_index(api: Api) -> None:
    body = batch_body(5)
    body["recipient_and_params"][3]["recipient"] = sms("+0000")
    status, answer, _ = await api.batch(body)
    assert status == 400
    violations = answer["error"]["details"][0]["field_violations"]
    assert [v["field"] for v in violations] == [
        "recipient_and_params[3].recipient.identified_by.channel_identities[0].identity"
    ]
    assert (await api.inspect("messages"))["total"] == 0
    assert (await api.inspect("batches"))["total"] == 0


async def test_unknown_app_is_404(api: Api) -> None:
    status, answer, _ = await api.batch(batch_body(app_id="other"))
    assert status == 404 and answer["error"]["status"] == "NOT_FOUND"


async def test_unknown_parameter_policies(
    sandbox: tuple[SandboxServer, Api],
) -> None:
    _, api = sandbox
    body = batch_body(3, message={"text_message": {"text": "Hi ${name} ${missing}"}})
    body["recipient_and_params"][2]["parameters"] = {"name": "C", "missing": "M"}
    assert (await api.batch(body))[0] == 200
    texts = [
        m["message"]["text_message"]["text"] for m in (await api.inspect("messages"))["messages"]
    ]
    assert texts == ["Hi R0 ${missing}", "Hi R1 ${missing}", "Hi C M"]

    await api.patch(unknown_parameter="empty")
    assert (await api.batch(body))[0] == 200
    texts = [
        m["message"]["text_message"]["text"] for m in (await api.inspect("messages"))["messages"]
    ]
    assert texts[3:] == ["Hi R0 ", "Hi R1 ", "Hi C M"]

    await api.patch(unknown_parameter="error")
    status, answer, _ = await api.batch(body)
    assert status == 400
    violations = answer["error"]["details"][0]["field_violations"]
    assert [v["field"] for v in violations] == [
        "recipient_and_params[0].parameters",
        "recipient_and_params[1].parameters",
    ]
    assert "missing" in violations[0]["description"]


async def test_status_of_an_immediate_batch(api: Api) -> None:
    _, answer, _ = await api.batch(batch_body(batch_metadata={"campaign_id": "c1"}))
    status, got, _ = await api.call("GET", f"{BATCH}/{answer['batch_id']}")
    assert status == 200
    assert got == {
        "batch_id": answer["batch_id"],
        "meta_data": {"campaign_id": "c1"},
        "status": "PROCESSED",
    }
    status, got, _ = await api.call("GET", f"{BATCH}/01ARZ3NDEKTSV4RRFFQ69G5FAV")
    assert status == 404
    assert got["error"]["status"] == "NOT_FOUND" and got["error"]["code"] == 404


async def test_lookup_by_metadata(api: Api) -> None:
    ids = []
    for campaign in ("a", "b", "a"):
        _, answer, _ = await api.batch(batch_body(1, batch_metadata={"campaign": campaign}))
        ids.append(answer["batch_id"])
    status, found, _ = await api.call("GET", f"{BATCH}?metadataKey=campaign&metadataValue=a")
    assert status == 200
    assert [b["batch_id"] for b in found] == [ids[0], ids[2]]
    assert all(b["status"] == "PROCESSED" and b["meta_data"] == {"campaign": "a"} for b in found)
    status, found, _ = await api.call("GET", f"{BATCH}?metadataKey=campaign&metadataValue=z")
    assert (status, found) == (200, [])
    status, _, _ = await api.call("GET", f"{BATCH}?metadataKey=campaign")
    assert status == 400


def test_send_after_rounding_rules() -> None:
    now = datetime(2026, 3, 1, 12, 0, 10, tzinfo=UTC)
    soon = now + timedelta(seconds=30)
    assert scheduling.effective_send_after(soon, now) == soon
    assert scheduling.effective_send_after(now + timedelta(minutes=1), now) == now + timedelta(
        minutes=1
    )
    later = datetime(2026, 3, 1, 12, 3, 20, tzinfo=UTC)
    assert scheduling.effective_send_after(later, now) == datetime(2026, 3, 1, 12, 5, tzinfo=UTC)
    on_mark = datetime(2026, 3, 1, 13, 0, tzinfo=UTC)
    assert scheduling.effective_send_after(on_mark, now) == on_mark
    past = now - timedelta(hours=1)
    assert scheduling.effective_send_after(past, now) == past
    assert scheduling.too_far(now + timedelta(days=7, seconds=1), now)
    assert not scheduling.too_far(now + timedelta(days=7), now)
    assert scheduling.parse_time("2026-03-01T12:00:00") == datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert scheduling.parse_time("2026-03-01T14:00:00+02:00") == datetime(
        2026, 3, 1, 12, tzinfo=UTC
    )
    assert scheduling.parse_time("soon") is None


async def test_send_after_is_rounded_up_and_echoed(api: Api) -> None:
    target = datetime.now(UTC) + timedelta(hours=2, seconds=7)
    status, answer, _ = await api.batch(batch_body(send_after=iso(target)))
    assert status == 200
    echoed = datetime.strptime(answer["send_after"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert echoed >= target and echoed - target < timedelta(minutes=5)
    assert echoed.minute % 5 == 0 and echoed.second == 0
    _, got, _ = await api.call("GET", f"{BATCH}/{answer['batch_id']}")
    assert got["status"] == "SCHEDULED" and got["send_after"] == answer["send_after"]
    assert (await api.inspect("messages"))["total"] == 0


async def test_send_after_beyond_seven_days_is_400(api: Api) -> None:
    target = datetime.now(UTC) + timedelta(days=7, minutes=10)
    status, answer, _ = await api.batch(batch_body(send_after=iso(target)))
    assert status == 400
    assert answer["error"]["details"][0]["field_violations"][0]["field"] == "send_after"


async def test_send_after_in_the_past_sends_now(api: Api) -> None:
    target = datetime.now(UTC) - timedelta(minutes=3)
    status, answer, _ = await api.batch(batch_body(send_after=iso(target)))
    assert status == 200 and answer["send_after"] == iso(target)
    _, got, _ = await api.call("GET", f"{BATCH}/{answer['batch_id']}")
    assert got["status"] == "PROCESSED"
    assert (await api.inspect("messages"))["total"] == 2


async def test_scheduled_batch_is_released_at_its_time(api: Api) -> None:
    target = datetime.now(UTC) + timedelta(seconds=0.3)
    status, answer, _ = await api.batch(batch_body(send_after=iso(target)))
    assert status == 200
    path = f"{BATCH}/{answer['batch_id']}"
    assert (await api.call("GET", path))[1]["status"] == "SCHEDULED"
    assert (await api.inspect("messages"))["total"] == 0

    async def processed() -> bool:
        return (await api.call("GET", path))[1]["status"] == "PROCESSED"

    await eventually(processed, within=3)
    messages = (await api.inspect("messages"))["messages"]
    assert len(messages) == 2
    accepted = datetime.strptime(messages[0]["accepted_time"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert accepted.replace(tzinfo=UTC) >= target - timedelta(milliseconds=5)


async def test_cancel_by_id_and_by_metadata(api: Api) -> None:
    later = iso(datetime.now(UTC) + timedelta(seconds=0.4))
    ids = []
    for tag in ("x", "y", "y", "z"):
        _, answer, _ = await api.batch(batch_body(send_after=later, batch_metadata={"tag": tag}))
        ids.append(answer["batch_id"])
    _, immediate, _ = await api.batch(batch_body(batch_metadata={"tag": "y"}))

    status, answer, _ = await api.call("DELETE", BATCH, json={"batch_id": ids[0]})
    assert (status, answer) == (200, {})
    status, answer, _ = await api.call(
        "DELETE", BATCH, json={"metadata_key": "tag", "metadata_value": "y"}
    )
    assert (status, answer) == (200, {})
    # Nothing matches: still 200.
    status, answer, _ = await api.call("DELETE", BATCH, json={"batch_ids": ["nope"]})
    assert (status, answer) == (200, {})

    statuses = [(await api.call("GET", f"{BATCH}/{i}"))[1]["status"] for i in ids]
    assert statuses == ["CANCELLED", "CANCELLED", "CANCELLED", "SCHEDULED"]
    # An already processed batch cannot be cancelled.
    assert (await api.call("GET", f"{BATCH}/{immediate['batch_id']}"))[1]["status"] == "PROCESSED"

    await asyncio.sleep(0.6)
    statuses = [(await api.call("GET", f"{BATCH}/{i}"))[1]["status"] for i in ids]
    assert statuses == ["CANCELLED", "CANCELLED", "CANCELLED", "PROCESSED"]
    batch_ids = {m["batch_id"] for m in (await api.inspect("messages"))["messages"]}
    assert batch_ids == {ids[3], immediate["batch_id"]}


async def test_cancel_with_camel_case_metadata_and_id_list(api: Api) -> None:
    later = iso(datetime.now(UTC) + timedelta(minutes=30))
    ids = [
        (await api.batch(batch_body(send_after=later, batch_metadata={"k": str(i)})))[1]["batch_id"]
        for i in range(3)
    ]
    await api.call("DELETE", BATCH, json={"metadataKey": "k", "metadataValue": "0"})
    await api.call("DELETE", BATCH, json={"batch_ids": [ids[1]]})
    statuses = [(await api.call("GET", f"{BATCH}/{i}"))[1]["status"] for i in ids]
    assert statuses == ["CANCELLED", "CANCELLED", "SCHEDULED"]
    status, _, _ = await api.call("DELETE", BATCH, json={"nothing": 1})
    assert status == 400
    # Without a body, the query string names the batches.
    status, answer, _ = await api.call("DELETE", f"{BATCH}?batch_id={ids[2]}")
    assert (status, answer) == (200, {})
    assert (await api.call("GET", f"{BATCH}/{ids[2]}"))[1]["status"] == "CANCELLED"


async def test_without_history_or_callbacks_batch_messages_are_counted_alike(api: Api) -> None:
    """Messages nobody can look at are counted, not built; the answers stay the same."""
    await api.patch(record_history=False)
    assert (await api.batch(batch_body(5)))[0] == 200
    later = iso(datetime.now(UTC) + timedelta(hours=1))
    status, answer, _ = await api.batch(batch_body(3, send_after=later))
    assert status == 200
    assert (await api.inspect("stats"))["accepted_messages"] == 5  # the scheduled 3 not yet
    assert (await api.inspect("messages"))["total"] == 0
    # The unknown-parameter policy is still applied to every recipient.
    await api.patch(unknown_parameter="error")
    body = batch_body(2, message={"text_message": {"text": "Hi ${name} ${nope}"}})
    status, answer, _ = await api.batch(body)
    assert status == 400
    assert "nope" in str(answer)


async def test_the_garbage_collector_is_left_as_it_was(api: Api) -> None:
    """A batch is handled with the cyclic collector paused; it is back on afterwards, and
    left off when it was off before (someone else's choice)."""
    assert gc.isenabled()
    assert (await api.batch(batch_body(3)))[0] == 200
    assert (await api.batch({"app_id": APP}))[0] == 400
    assert gc.isenabled()
    gc.disable()
    try:
        assert (await api.batch(batch_body(3)))[0] == 200
        assert not gc.isenabled()
    finally:
        gc.enable()
