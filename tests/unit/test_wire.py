"""Unit tests of the wire format: recipient keys, request bodies, the entries as JSON text."""

from __future__ import annotations

import orjson
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaign.sinch import wire


@pytest.mark.parametrize(("key", "position"), [("01J5ABC", 1), ("a-b-c", 12345678)])
def test_recipient_keys_round_trip(key: str, position: int) -> None:
    made = wire.recipient_key(key, position)
    assert wire.parse_recipient_key(made) == (key, position)
    assert len(wire.recipient_key("X" * 26, 10**10)) <= 128  # fits correlation_id


@pytest.mark.parametrize("bad", ["", "nokey", "-5", "abc-", "abc-x1"])
def test_foreign_keys_are_not_ours(bad: str) -> None:
    assert wire.parse_recipient_key(bad) is None


def test_individual_body_carries_the_key_and_the_send_fields() -> None:
    body = wire.individual_body(
        channel="SMS",
        identity="+15551234567",
        message={"text_message": {"text": "hi"}},
        key="K-7",
        send={"ttl": "60s", "send_after": "2026-01-01T00:00:00Z", "channel_properties": {"A": "b"}},
    )
    assert body == {
        "recipient": {
            "identified_by": {
                "channel_identities": [{"channel": "SMS", "identity": "+15551234567"}]
            }
        },
        "message": {"text_message": {"text": "hi"}},
        "correlation_id": "K-7",
        "message_metadata": "K-7",
        "ttl": "60s",
        "channel_properties": {"A": "b"},
    }


@given(
    st.lists(
        st.tuples(st.text(min_size=1), st.dictionaries(st.text(), st.text(), max_size=3)),
        min_size=1,
        max_size=12,
    ),
    st.integers(1, 5),
    st.text(min_size=1, max_size=30),
)
def test_entries_by_chunk_are_the_text_that_batch_entries_writes(
    recipients: list[tuple[str, dict[str, str]]], size: int, campaign_key: str
) -> None:
    """Polars writes each chunk's entries (while a slice is staged) as the Python does, byte
    for byte, whatever the identities, the parameters and the campaign's key."""
    rows = pl.DataFrame(
        {
            "chunk": [i // size for i in range(len(recipients))],
            "position": list(range(7, 7 + len(recipients))),
            "identity": [identity for identity, _ in recipients],
            "parameters": [orjson.dumps(values).decode() for _, values in recipients],
        }
    )
    # Every third recipient is on SMS, every other has its identity on two channels.
    channels = [None if i % 3 else "SMS" for i in range(len(recipients))]
    several = [
        orjson.dumps(
            [{"channel": "WHATSAPP", "identity": i}, {"channel": "SMS", "identity": i}]
        ).decode()
        if n % 2
        else None
        for n, (i, _) in enumerate(recipients)
    ]
    rows = rows.with_columns(
        channel=pl.Series(channels, dtype=pl.String),
        identities=pl.Series(several, dtype=pl.String),
    )
    found = wire.batch_entries_by_chunk(rows, "WHATSAPP", campaign_key)
    assert sorted(found) == list(range((len(recipients) + size - 1) // size))
    for number, (count, text) in found.items():
        part = rows.filter(pl.col("chunk") == number)
        expected = wire.batch_entries(
            (
                channel or "WHATSAPP",
                identity,
                several,
                parameters,
                wire.recipient_key(campaign_key, position),
            )
            for identity, parameters, position, channel, several in part.select(
                "identity", "parameters", "position", "channel", "identities"
            ).iter_rows()
        )
        assert count == part.height
        assert text == orjson.dumps(expected).decode()


def test_a_contact_id_recipient_in_both_modes() -> None:
    """A campaign by contact ID sends ``recipient.contact_id``, in an individual body and in
    a batch's entries (whether Python or Polars writes them)."""
    body = wire.individual_body(
        channel="CONTACT_ID", identity="01CONTACT", message={}, key="K-1", send={}
    )
    assert body["recipient"] == {"contact_id": "01CONTACT"}
    entries = wire.batch_entries([("CONTACT_ID", "01CONTACT", None, '{"a":"b"}', "K-1")])
    assert orjson.loads(orjson.dumps(entries)) == [
        {
            "recipient": {"contact_id": "01CONTACT"},
            "parameters": {"a": "b"},
            "message_metadata": {"recipient": "K-1"},
        }
    ]
    rows = pl.DataFrame(
        {"chunk": [0], "position": [1], "identity": ["01CONTACT"], "parameters": ['{"a":"b"}']}
    )
    ((count, text),) = wire.batch_entries_by_chunk(rows, "CONTACT_ID", "K").values()
    assert count == 1 and text == orjson.dumps(entries).decode()


def test_batch_body_entries_are_json_written_once_and_escaped() -> None:
    entries = wire.batch_entries(
        [
            ("SMS", "+12015550001", None, '{"name":"Zoë \\"Z\\""}', "K-1"),
            ("SMS", 'a"b\\c', None, "{}", "K-2"),
        ]
    )
    body = wire.batch_body(
        message={"text_message": {"text": "Hi ${name}"}},
        entries=entries,
        campaign_key="K",
        tag="K:7",
        send={"ttl": 60},
    )
    assert orjson.loads(orjson.dumps(body)) == {
        "message": {"text_message": {"text": "Hi ${name}"}},
        "recipient_and_params": [
            {
                "recipient": {
                    "identified_by": {
                        "channel_identities": [{"channel": "SMS", "identity": "+12015550001"}]
                    }
                },
                "parameters": {"name": 'Zoë "Z"'},
                "message_metadata": {"recipient": "K-1"},
            },
            {
                "recipient": {
                    "identified_by": {
                        "channel_identities": [{"channel": "SMS", "identity": 'a"b\\c'}]
                    }
                },
                "parameters": {},
                "message_metadata": {"recipient": "K-2"},
            },
        ],
        "batch_metadata": {"campaign": "K", "chunk": "K:7"},
        "ttl": 60,
    }
