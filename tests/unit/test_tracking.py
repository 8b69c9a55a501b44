"""The status machine and callback parsing: pure, no network, no database."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaign import tracking
from campaign.models import Status
from tests.conftest import FIXTURES

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
EVENTS = FIXTURES / "conversation-v1" / "sinchevents"


def delivery(status: str, at: int, channel: str = "SMS", code: str | None = None) -> tracking.Event:
    return tracking.Event(
        trigger=tracking.DELIVERY,
        message_id="M",
        status=Status(status),
        channel=channel,
        event_time=T0 + timedelta(seconds=at),
        key="K-1",
        batch_id=None,
        reason_code=code,
        reason_description="why" if code else None,
    )


def submit(at: int, channel: str = "SMS") -> tracking.Event:
    return tracking.Event(
        tracking.SUBMIT, "M", None, channel, T0 + timedelta(seconds=at), "K-1", None, None, None
    )


def run(start: Status, *events: tracking.Event) -> tracking.Tracked:
    state = tracking.Tracked(start, None, None)
    for event in events:
        change = tracking.advance(state, event)
        if change is not None:
            state = tracking.Tracked(change.status, change.status_at, change.channel)
    return state


def test_the_normal_sequence() -> None:
    final = run(
        Status.QUEUED,
        delivery("QUEUED_ON_CHANNEL", 1),
        delivery("DELIVERED", 2),
        delivery("READ", 3),
    )
    assert final.status is Status.READ
    assert final.status_at == T0 + timedelta(seconds=3)


def test_status_never_moves_backwards() -> None:
    assert (
        run(Status.QUEUED, delivery("DELIVERED", 2), delivery("QUEUED_ON_CHANNEL", 1)).status
        is Status.DELIVERED
    )
    assert run(Status.QUEUED, delivery("READ", 3), delivery("DELIVERED", 2)).status is Status.READ
    # even when the late event claims a later time
    assert (
        run(Status.QUEUED, delivery("DELIVERED", 2), delivery("QUEUED_ON_CHANNEL", 9)).status
        is Status.DELIVERED
    )


def test_duplicates_change_nothing() -> None:
    state = tracking.Tracked(Status.DELIVERED, T0, "SMS")
    assert tracking.advance(state, delivery("DELIVERED", 0)) is None


def test_failed_is_final_and_keeps_the_reason() -> None:
    change = tracking.advance(
        tracking.Tracked(Status.QUEUED_ON_CHANNEL, T0, "SMS"),
        delivery("FAILED", 5, code="RECIPIENT_NOT_REACHABLE"),
    )
    assert change is not None
    assert (change.status, change.error_code, change.error_description) == (
        Status.FAILED,
        "RECIPIENT_NOT_REACHABLE",
        "why",
    )
    failed = tracking.Tracked(Status.FAILED, T0 + timedelta(seconds=5), "SMS")
    assert tracking.advance(failed, delivery("DELIVERED", 9)) is None  # same channel: no
    assert tracking.advance(failed, delivery("READ", 1, channel="WHATSAPP")) is None  # earlier: no


def test_delivery_on_a_later_channel_after_switching_counts() -> None:
    final = run(
        Status.QUEUED,
        delivery("QUEUED_ON_CHANNEL", 1, "WHATSAPP"),
        delivery("SWITCHING_CHANNEL", 2, "WHATSAPP", code="RECIPIENT_NOT_OPTED_IN"),
        delivery("FAILED", 3, "WHATSAPP", code="RECIPIENT_NOT_OPTED_IN"),
        delivery("DELIVERED", 4, "SMS"),
    )
    assert (final.status, final.channel) == (Status.DELIVERED, "SMS")


def test_switching_then_queued_on_the_next_channel() -> None:
    final = run(
        Status.QUEUED,
        delivery("SWITCHING_CHANNEL", 2, "WHATSAPP", code="X"),
        delivery("QUEUED_ON_CHANNEL", 3, "SMS"),
    )
    assert (final.status, final.channel) == (Status.QUEUED_ON_CHANNEL, "SMS")
    change = tracking.advance(
        tracking.Tracked(Status.SWITCHING_CHANNEL, T0, "WHATSAPP"),
        delivery("QUEUED_ON_CHANNEL", 3, "SMS"),
    )
    assert change is not None
    assert change.error_code is None  # the switch's reason no longer applies


def test_in_doubt_is_settled_by_any_callback() -> None:
    assert run(Status.IN_DOUBT, delivery("DELIVERED", 1)).status is Status.DELIVERED
    settled = run(Status.IN_DOUBT, submit(1, "RCS"))
    assert (settled.status, settled.channel) == (Status.QUEUED, "RCS")


def test_submit_records_the_channel_only() -> None:
    change = tracking.advance(tracking.Tracked(Status.DELIVERED, T0, None), submit(0, "SMS"))
    assert change is not None
    assert (change.status, change.channel) == (Status.DELIVERED, "SMS")
    assert tracking.advance(tracking.Tracked(Status.DELIVERED, T0, "SMS"), submit(0, "RCS")) is None


@pytest.mark.parametrize(
    "status",
    [Status.PENDING, Status.REJECTED, Status.DUPLICATE, Status.CANCELLED, Status.IN_FLIGHT],
)
def test_unsent_recipients_are_not_moved(status: Status) -> None:
    assert tracking.advance(tracking.Tracked(status, None, None), delivery("DELIVERED", 1)) is None


ORDER = {
    Status.QUEUED: 0,
    Status.QUEUED_ON_CHANNEL: 1,
    Status.SWITCHING_CHANNEL: 1,
    Status.DELIVERED: 2,
    Status.READ: 3,
    Status.FAILED: 4,
}


@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                ["QUEUED_ON_CHANNEL", "DELIVERED", "READ", "FAILED", "SWITCHING_CHANNEL"]
            ),
            st.integers(0, 50),
        ),
        max_size=12,
    )
)
def test_any_order_of_one_channels_events_ends_at_the_highest(
    events: list[tuple[str, int]],
) -> None:
    """On one channel, whatever the arrival order and duplicates, the end state is the highest
    status reported (FAILED above all), never something lower."""
    final = run(Status.QUEUED, *(delivery(s, at) for s, at in events))
    expected = max([Status.QUEUED, *(Status(s) for s, _ in events)], key=lambda s: ORDER[s])
    assert ORDER[final.status] == ORDER[expected]


# --- parsing -------------------------------------------------------------------------------------


def test_parse_the_delivery_receipt_fixture() -> None:
    body = (EVENTS / "delivery" / "MessageDeliveryReceiptEventDto.json").read_bytes()
    event = tracking.parse_callback(body)
    assert event.trigger == tracking.DELIVERY
    assert event.status is Status.DELIVERED
    assert event.message_id == "01JNZ9A7B3C5D7E9F1G3H5J7KM"
    assert event.channel == "WHATSAPP"
    assert event.reason_code == "OUTSIDE_ALLOWED_SENDING_WINDOW"
    assert event.event_time == datetime(2026, 3, 9, 14, 22, 5, tzinfo=UTC)
    assert event.key is None  # not one of ours


def test_parse_submit_and_inbound_fixtures() -> None:
    submit_event = tracking.parse_callback(
        (EVENTS / "message" / "MessageSubmitEventDto.json").read_bytes()
    )
    assert (submit_event.trigger, submit_event.channel) == (tracking.SUBMIT, "WHATSAPP")
    inbound = tracking.parse_callback(
        (EVENTS / "message" / "MessageInboundEventDto.json").read_bytes()
    )
    assert inbound.trigger == "MESSAGE_INBOUND"
    assert inbound.status is None


def envelope(**fields: Any) -> bytes:
    base: dict[str, Any] = {
        "app_id": "a",
        "event_time": "2026-11-21T12:00:01.5Z",
        "message_delivery_report": {
            "message_id": "M",
            "status": "DELIVERED",
            "channel_identity": {"channel": "SMS"},
        },
    }
    base.update(fields)
    return json.dumps(base).encode()


def test_our_key_is_found_in_correlation_id_or_metadata() -> None:
    assert tracking.parse_callback(envelope(correlation_id="01ABC-17")).key == "01ABC-17"
    assert tracking.parse_callback(envelope(message_metadata="01ABC-18")).key == "01ABC-18"
    batch = envelope(
        message_delivery_report={
            "message_id": "M",
            "status": "QUEUED_ON_CHANNEL",
            "metadata": json.dumps({"recipient": "01ABC-19", "_batch_id": "B1", "campaign": "x"}),
        }
    )
    event = tracking.parse_callback(batch)
    assert (event.key, event.batch_id) == ("01ABC-19", "B1")
    assert tracking.parse_callback(envelope(correlation_id="not ours")).key is None


def test_unknown_status_is_kept_without_a_status() -> None:
    body = envelope(message_delivery_report={"message_id": "M", "status": "TELEPORTED"})
    assert tracking.parse_callback(body).status is None


@pytest.mark.parametrize(
    "body", [b"", b"[]", b"{", b'{"app_id": "x"}', b'"text"', b'{"message_delivery_report": 5}']
)
def test_not_a_callback(body: bytes) -> None:
    with pytest.raises(tracking.CallbackError):
        tracking.parse_callback(body)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=30,
    )
)
def test_parser_never_crashes_on_any_json(value: Any) -> None:
    body = json.dumps({"message_delivery_report": value, "event_time": value}).encode()
    with contextlib.suppress(tracking.CallbackError):
        tracking.parse_callback(body)
