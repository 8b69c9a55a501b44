"""The app resource and its MT queue: messages leave at the app's outbound rate, callbacks start
when they leave, a full queue answers 429 without Retry-After, a ttl can run out in the queue."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from .helpers import APP, PROJECT, Api, Receiver, SandboxFactory, eventually, sms, text_send

APP_PATH = f"/v1/projects/{PROJECT}/apps/{APP}"


def batch_body(count: int, **extra: Any) -> dict[str, Any]:
    """A Batch API body with ``count`` SMS recipients."""
    items = [{"recipient": sms(f"+1555000{i:04d}")} for i in range(count)]
    return {
        "app_id": APP,
        "message": {"text_message": {"text": "Hi"}},
        "recipient_and_params": items,
        **extra,
    }


async def outbound_size(api: Api) -> int:
    status, body, _ = await api.call("GET", APP_PATH)
    assert status == 200, body
    return int(body["queue_stats"]["outbound_size"])


def statuses(bodies: list[dict[str, Any]], message_id: str) -> list[str]:
    """The delivery statuses reported for ``message_id``, in arrival order."""
    return [
        b["message_delivery_report"]["status"]
        for b in bodies
        if b.get("message_delivery_report", {}).get("message_id") == message_id
    ]


async def test_the_app_shows_its_mode_rate_limits_and_queue(make_sandbox: SandboxFactory) -> None:
    async with make_sandbox(outbound_rate=20, queue_limit=1000, processing_mode="DISPATCH") as (
        _,
        api,
    ):
        status, app, _ = await api.call("GET", APP_PATH)
        assert status == 200, app
        assert app["id"] == APP and app["display_name"] and app["channel_credentials"] == []
        assert app["processing_mode"] == "DISPATCH"
        assert app["rate_limits"] == {"outbound": 20, "inbound": 25, "webhooks": 25}
        assert app["queue_stats"] == {"outbound_size": 0, "outbound_limit": 1000}

        status, listed, _ = await api.call("GET", f"/v1/projects/{PROJECT}/apps")
        assert status == 200 and listed["apps"] == [app]

        await api.patch(outbound_rate=25, processing_mode="CONVERSATION")
        _, app, _ = await api.call("GET", APP_PATH)
        assert app["rate_limits"]["outbound"] == 25 and app["processing_mode"] == "CONVERSATION"


async def test_an_unknown_app_is_404_and_the_app_needs_credentials(api: Api) -> None:
    status, body, _ = await api.call("GET", f"/v1/projects/{PROJECT}/apps/01NOSUCHAPP")
    assert status == 404
    assert body["error"]["status"] == "NOT_FOUND" and "01NOSUCHAPP" in body["error"]["message"]
    status, body, _ = await api.call("GET", APP_PATH, headers={"Authorization": "Bearer nope"})
    assert status == 401


async def test_an_app_deleted_mid_run_answers_404_on_every_call(
    make_sandbox: SandboxFactory,
) -> None:
    async with make_sandbox(delete_app_after_reads=2) as (_, api):
        send = f"/v1/projects/{PROJECT}/messages:send"
        for _read in range(2):
            status, body, _ = await api.call("GET", APP_PATH)
            assert status == 200, body
        status, body, _ = await api.call("POST", send, json=text_send())
        assert status == 404 and APP in body["error"]["message"]
        status, body, _ = await api.call("GET", APP_PATH)
        assert status == 404


async def test_the_queue_fills_as_messages_are_accepted_and_drains_at_the_rate(
    make_sandbox: SandboxFactory,
) -> None:
    async with make_sandbox(outbound_rate=50) as (_, api):
        answers = await asyncio.gather(*(api.send(text_send()) for _ in range(20)))
        assert [status for status, _, _ in answers] == [200] * 20
        # 20 messages take 0.4 s to leave at 50/s; sending them took a fraction of that.
        first = await outbound_size(api)
        assert 10 <= first <= 20
        assert (await api.inspect("stats"))["queue_size"] <= first
        await asyncio.sleep(0.15)
        second = await outbound_size(api)
        assert second < first
        await eventually(lambda: _empty(api), within=1.0)
        stats = await api.inspect("stats")
        assert stats["queue_size"] == 0 and stats["outbound_rate"] == 50
        assert stats["queue_limit"] == 500_000


async def _empty(api: Api) -> bool:
    return await outbound_size(api) == 0


async def test_a_full_queue_answers_429_without_retry_after(make_sandbox: SandboxFactory) -> None:
    async with make_sandbox(outbound_rate=1, queue_limit=3) as (_, api):
        for _ in range(3):
            status, body, _ = await api.send(text_send())
            assert status == 200, body
        status, body, headers = await api.send(text_send())
        assert status == 429
        assert body["error"]["code"] == 429
        assert body["error"]["status"] == "RESOURCE_EXHAUSTED"
        assert "queue is full" in body["error"]["message"]
        assert "Retry-After" not in headers
        # A batch that does not fit is refused whole, and not recorded.
        status, body, headers = await api.batch(batch_body(2))
        assert status == 429 and "Retry-After" not in headers
        assert body["error"]["status"] == "RESOURCE_EXHAUSTED"
        stats = await api.inspect("stats")
        assert stats["queue_full"] == 2 and stats["rate_limited"] == 0
        assert stats["accepted_messages"] == 3 and stats["batches"] == 0
        assert stats["queue_size"] == 3 and stats["queue_limit"] == 3

        await api.call("POST", "/_sandbox/reset")
        assert await outbound_size(api) == 0
        status, _, _ = await api.send(text_send())
        assert status == 200


async def test_callbacks_start_when_the_message_leaves_the_queue(
    with_callbacks: SandboxFactory, receiver: Receiver
) -> None:
    async with with_callbacks(outbound_rate=10) as (_, api):
        started = time.monotonic()
        ids = []
        for _ in range(3):
            status, body, _ = await api.send(text_send())
            assert status == 200
            ids.append(body["message_id"])
        # The third leaves 0.3 s after the first was accepted, at the earliest.
        await receiver.wait_for(lambda b: "QUEUED_ON_CHANNEL" in statuses(b, ids[2]))
        assert time.monotonic() - started >= 0.3
        bodies = await receiver.wait_for(lambda b: "DELIVERED" in statuses(b, ids[2]))
        queued = [
            b["message_delivery_report"]["message_id"]
            for b in bodies
            if b.get("message_delivery_report", {}).get("status") == "QUEUED_ON_CHANNEL"
        ]
        assert queued == ids
        accepted = datetime.fromisoformat(body["accepted_time"])
        report = next(
            b
            for b in bodies
            if b.get("message_delivery_report", {}).get("message_id") == ids[2]
            and b["message_delivery_report"]["status"] == "QUEUED_ON_CHANNEL"
        )
        assert datetime.fromisoformat(report["event_time"]) - accepted >= timedelta(seconds=0.1)


async def test_a_ttl_that_runs_out_in_the_queue_fails_the_message(
    with_callbacks: SandboxFactory, receiver: Receiver
) -> None:
    async with with_callbacks(outbound_rate=10) as (_, api):
        # 35 recipients ahead take 3.5 s to leave: a ttl of 3 s runs out before its turn.
        status, _, _ = await api.batch(batch_body(35))
        assert status == 200
        status, body, _ = await api.send(text_send(ttl="3s"))
        assert status == 200
        late = body["message_id"]
        assert (await api.inspect("stats"))["expired_in_queue"] == 0
        bodies = await receiver.wait_for(lambda b: statuses(b, late) != [], within=6.0)
        assert statuses(bodies, late) == ["FAILED"]
        report = next(
            b["message_delivery_report"]
            for b in bodies
            if b.get("message_delivery_report", {}).get("message_id") == late
        )
        assert report["reason"]["code"] == "MESSAGE_EXPIRED"
        assert not any(
            b.get("message_submit_notification", {}).get("message_id") == late for b in bodies
        )
        stats = await api.inspect("stats")
        assert stats["expired_in_queue"] == 1 and stats["queue_size"] == 0


async def test_batch_recipients_enter_the_queue(
    with_callbacks: SandboxFactory, receiver: Receiver
) -> None:
    async with with_callbacks(outbound_rate=50) as (_, api):
        status, body, _ = await api.batch(batch_body(20))
        assert status == 200, body
        assert await outbound_size(api) >= 10
        await eventually(lambda: _empty(api), within=1.0)
        await receiver.wait_for(lambda b: _count(b, "QUEUED_ON_CHANNEL") == 20)


async def test_a_scheduled_batch_that_does_not_fit_when_due_is_refused_then(
    with_callbacks: SandboxFactory, receiver: Receiver
) -> None:
    async with with_callbacks(outbound_rate=1, queue_limit=2) as (_, api):
        due = datetime.now(UTC) + timedelta(seconds=0.3)
        status, body, _ = await api.batch(batch_body(3, send_after=due.isoformat()))
        assert status == 200, body
        batch_id = body["batch_id"]
        await receiver.wait_for(lambda b: _count(b, "FAILED") == 3)
        reasons = {
            b["message_delivery_report"]["reason"]["code"]
            for b in receiver.bodies
            if "message_delivery_report" in b
        }
        assert reasons == {"RATE_LIMITED"}
        (batch,) = (await api.inspect("batches"))["batches"]
        assert batch["batch_id"] == batch_id and batch["status"] == "PROCESSED"
        assert "queue" in batch["refused"]
        stats = await api.inspect("stats")
        assert stats["queue_full"] == 1 and stats["queue_size"] == 0
        assert stats["accepted_messages"] == 0


def _count(bodies: list[dict[str, Any]], status: str) -> int:
    return sum(1 for b in bodies if b.get("message_delivery_report", {}).get("status") == status)


async def test_an_app_in_dispatch_mode_refuses_contact_ids(make_sandbox: SandboxFactory) -> None:
    """DISPATCH mode keeps no contacts: a request that names a contact_id is refused with 400,
    in messages:send and in a batch (naming the recipient), and accepted once the app is in
    CONVERSATION mode."""
    async with make_sandbox(processing_mode="DISPATCH") as (_, api):
        status, body, _ = await api.send(text_send(recipient={"contact_id": "01CONTACT"}))
        assert status == 400, body
        assert "DISPATCH" in str(body)
        batch = batch_body(2)
        batch["recipient_and_params"][1]["recipient"] = {"contact_id": "01CONTACT"}
        status, body, _ = await api.batch(batch)
        assert status == 400 and "recipient_and_params[1].recipient" in str(body), body
        status, body, _ = await api.send(text_send())  # identities: fine in DISPATCH mode
        assert status == 200, body
        await api.patch(processing_mode="CONVERSATION")
        status, body, _ = await api.send(text_send(recipient={"contact_id": "01CONTACT"}))
        assert status == 200, body
        status, body, _ = await api.batch(batch)
        assert status == 200, body
