"""Unit tests of the pure core: planning, reporting, progress figures, status view."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaign import planning, reporting
from campaign.models import DispatchStats, Status
from campaign.progress import RateMeter, snapshot
from campaign.status_view import campaign_view, render_text
from campaign.store import records
from campaign.store.repository import CampaignRow

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("key", "position"), [("01J5ABC", 1), ("a-b-c", 12345678)])
def test_recipient_keys_round_trip(key: str, position: int) -> None:
    made = planning.recipient_key(key, position)
    assert planning.parse_recipient_key(made) == (key, position)
    assert len(planning.recipient_key("X" * 26, 10**10)) <= 128  # fits correlation_id


@pytest.mark.parametrize("bad", ["", "nokey", "-5", "abc-", "abc-x1"])
def test_foreign_keys_are_not_ours(bad: str) -> None:
    assert planning.parse_recipient_key(bad) is None


def test_individual_body_carries_the_key_and_the_send_fields() -> None:
    body = planning.individual_body(
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


def test_in_flight_bound_sustains_the_rate_at_200_ms() -> None:
    assert planning.default_max_in_flight(800) == 200
    assert planning.default_max_in_flight(1) == 8
    assert planning.default_max_in_flight(None) == 1000


def test_preflight_counts_requests_and_time() -> None:
    individual = planning.preflight(
        rows=10,
        valid=8,
        rejected={"x": 1},
        duplicates=1,
        mode="individual",
        batch_size=1000,
        rate=4,
    )
    assert (individual.requests, individual.seconds) == (8, 2.0)
    batch = planning.preflight(
        rows=2500, valid=2500, rejected={}, duplicates=0, mode="batch", batch_size=1000, rate=800
    )
    assert batch.requests == 3


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ('=HYPERLINK("x")', '\'=HYPERLINK("x")'),
        ("+SUM(A1)", "'+SUM(A1)"),
        ("-2+3", "'-2+3"),
        ("@cmd", "'@cmd"),
        ("\tx", "'\tx"),
        ("+15551234567", "+15551234567"),
        ("+1 (555) 123-4567", "+1 (555) 123-4567"),
        ("0044 20 7946 0958", "0044 20 7946 0958"),
        ("plain", "plain"),
        (None, None),
    ],
)
def test_defuse_formula_cells_but_not_phone_numbers(cell: str | None, expected: str | None) -> None:
    assert reporting.defuse(cell) == expected


def test_report_frame_is_spreadsheet_safe_and_iso_utc() -> None:
    delivered = (1, "+15551234567", "555-123-4567", "SMS", "DELIVERED", "M1", None)
    rejected = (2, None, "=1+1", "SMS", "REJECTED", None, None)
    missing = (3, None, None, "SMS", "REJECTED", None, None)
    at = "2026-11-21T12:00:00.000000Z"  # as the store gives timestamps
    frame = reporting.report_frame(
        store_page(
            [
                (*delivered, None, None, at, at, 1, at, "SMS"),
                (*rejected, "INVALID_IDENTITY", "bad", None, at, 0, None, None),
                (*missing, "MISSING_IDENTITY", "x", None, at, 0, None, None),
            ]
        )
    )
    assert frame.columns == list(reporting.REPORT_FILE_COLUMNS)
    assert frame["identity"].to_list() == ["+15551234567", "'=1+1", None]
    assert frame["sent_at"].to_list() == [at, None, None]
    assert frame["row"].to_list() == [1, 2, 3]
    assert frame["status_at"].to_list() == [at, None, None]
    assert frame["delivery_channel"].to_list() == ["SMS", None, None]
    assert reporting.report_frame(store_page([])).height == 0


def store_page(rows: list[tuple[object, ...]]) -> pl.DataFrame:
    """Rows as :meth:`campaign.store.repository.Store.report_pages` gives them."""
    numbers = {"position": pl.Int64, "attempts": pl.Int64}
    schema = {name: numbers.get(name, pl.String) for name in records.REPORT_READ_COLUMNS}
    return pl.DataFrame(rows, schema=schema, orient="row")


def test_exit_code_and_summary() -> None:
    assert reporting.exit_code_for({Status.QUEUED: 5, Status.DUPLICATE: 2}) == 0
    for bad in (Status.FAILED, Status.REJECTED, Status.IN_DOUBT):
        assert reporting.exit_code_for({Status.QUEUED: 5, bad: 1}) == 1
    lines = reporting.summary_lines(
        "c",
        {Status.QUEUED: 3, Status.DUPLICATE: 1},
        [("DUPLICATE", "DUPLICATE", 1), ("FAILED", "INVALID_ARGUMENT", 2)],
    )
    assert ("QUEUED", "3 (75.0%)") in lines
    assert ("  FAILED: INVALID_ARGUMENT", "2") in lines
    assert not any("DUPLICATE:" in label for label, _ in lines)


def test_rate_meter_shows_the_recent_rate() -> None:
    meter = RateMeter(span=2.0)
    assert meter.rate(0.0, 0) == 0.0
    assert meter.rate(1.0, 100) == 100.0
    assert meter.rate(2.0, 200) == 100.0
    assert meter.rate(10.0, 200) == 0.0  # nothing sent lately: the current rate is zero
    stats = DispatchStats(sent=7, failed=2, in_doubt=1, requests=12)
    snap = snapshot(stats, total=20, already_done=5, limit=800.0, rate=42.0)
    assert (snap.done, snap.total, snap.rate, snap.limit) == (15, 20, 42.0, 800.0)
    assert "failed 2" in snap.detail


def test_status_view() -> None:
    row = CampaignRow(1, "c", "K", "individual", "SMS", "{}", "r.csv", "READY", 3, NOW, NOW)
    view = campaign_view(row, {Status.QUEUED: 2, Status.PENDING: 1}, [("FAILED", "X", 1)])
    assert view["settled"] == 2
    assert view["counts"]["QUEUED"] == 2
    assert view["counts"]["READ"] == 0
    text = render_text([view])
    assert text[0].startswith("c  [READY, individual, SMS]  2/3 settled")
    assert "X" in text[2]


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
    found = planning.batch_entries_by_chunk(rows, "WHATSAPP", campaign_key)
    assert sorted(found) == list(range((len(recipients) + size - 1) // size))
    for number, (count, text) in found.items():
        part = rows.filter(pl.col("chunk") == number)
        expected = planning.batch_entries(
            "WHATSAPP",
            (
                (identity, parameters, planning.recipient_key(campaign_key, position))
                for identity, parameters, position in part.select(
                    "identity", "parameters", "position"
                ).iter_rows()
            ),
        )
        assert count == part.height
        assert text == orjson.dumps(expected).decode()


def test_batch_body_entries_are_json_written_once_and_escaped() -> None:
    entries = planning.batch_entries(
        "SMS", [("+12015550001", '{"name":"Zoë \\"Z\\""}', "K-1"), ('a"b\\c', "{}", "K-2")]
    )
    body = planning.batch_body(
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
