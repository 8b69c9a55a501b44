"""Staging a loaded slice for the database (pure: no database here).

SQLite reads a slice as JSON that Polars writes (``campaign.store.staging.json_members`` for the
valid rows, ``json_arrays`` for the others): whatever a cell holds must come back from the JSON
exactly.
"""

from __future__ import annotations

import orjson
import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from campaign.models import Status
from campaign.store import chunks
from campaign.store.staging import STAGED, Chunking, json_arrays, json_members, stage

texts = st.one_of(st.none(), st.text())


@given(st.lists(st.tuples(st.one_of(st.none(), st.integers(-(2**62), 2**62)), texts, texts)))
def test_json_arrays_give_back_every_value(
    rows: list[tuple[int | None, str | None, str | None]],
) -> None:
    frame = pl.DataFrame(rows, schema={"n": pl.Int64, "a": pl.String, "b": pl.String}, orient="row")
    assert orjson.loads(json_arrays(frame, ("n", "a", "b"))) == [list(row) for row in rows]


def test_json_arrays_escape_what_json_must() -> None:
    cells = ['say "hi"', "back\\slash", "tab\tnew\nline\r", "\x00\x1f", "é ✓ 😀", "", "}"]
    frame = pl.DataFrame({"cell": cells})
    assert orjson.loads(json_arrays(frame, ("cell",))) == [[cell] for cell in cells]


@given(
    st.lists(
        st.tuples(texts, st.text(min_size=1), st.text(), texts, texts, texts),
        unique_by=lambda row: row[1],
    )
)
def test_json_members_give_back_every_valid_row(
    rows: list[tuple[str | None, str, str, str | None, str | None, str | None]],
) -> None:
    """(identity_raw, identity, parameters, time_zone, channel, identities): a member per row,
    in order, named by position and identity, valued by the parameters alone when nothing else
    is set."""
    frame = pl.DataFrame(
        [(i + 1, *row) for i, row in enumerate(rows)],
        schema={
            "position": pl.Int64,
            "identity_raw": pl.String,
            "identity": pl.String,
            "parameters": pl.String,
            "time_zone": pl.String,
            "channel": pl.String,
            "identities": pl.String,
        },
        orient="row",
    )
    members = list(orjson.loads(json_members(frame)).items())
    assert [name for name, _ in members] == [f"{i + 1} {row[1]}" for i, row in enumerate(rows)]
    for (_, value), (raw, _, parameters, zone, *several) in zip(members, rows, strict=True):
        if several != [None, None]:
            assert value == [parameters, raw, zone, *several]
        else:
            assert value == (
                parameters if raw is None and zone is None else [parameters, raw, zone]
            )


def loaded(rows: list[tuple[int, str, str | None, str | None]]) -> pl.DataFrame:
    """Loader output: (row, identity_raw, identity, reason)."""
    frame = pl.DataFrame(
        rows,
        schema={
            "row": pl.UInt64,
            "identity_raw": pl.String,
            "identity": pl.String,
            "reason": pl.String,
        },
        orient="row",
    )
    return frame.with_columns(parameters=pl.format('{{"n":"{}"}}', pl.col("row")))


SLICE = loaded(
    [
        (1, "+12015550001", "+12015550001", None),
        (2, "(201) 555-0002", "+12015550002", None),
        (3, "nope", None, "not a phone number"),
        (4, "+12015550004", "+12015550004", None),
        (5, "", None, "empty identity"),
    ]
)


def test_stage_for_sqlite_splits_valid_and_rejected_rows() -> None:
    staged = stage(SLICE, Chunking(2, "K"), "sqlite")
    assert staged.valid == 3 and staged.height == 5 and staged.duplicates == 0
    assert staged.valid_json is not None and staged.unsendable_json is not None
    valid = orjson.loads(staged.valid_json)
    # "position identity": parameters, or [parameters, raw cell, zone] where the raw cell
    # differs from the identity
    assert valid == {
        "1 +12015550001": '{"n":"1"}',
        "2 +12015550002": ['{"n":"2"}', "(201) 555-0002", None],
        "4 +12015550004": '{"n":"4"}',
    }
    rejected = [dict(zip(STAGED, row, strict=True)) for row in orjson.loads(staged.unsendable_json)]
    assert [(r["position"], r["identity_raw"], r["status"]) for r in rejected] == [
        (3, "nope", Status.REJECTED.value),
        (5, "", Status.REJECTED.value),
    ]
    assert all(r["identity"] is None and r["chunk"] is None for r in rejected)


def test_staged_frame_numbers_chunks_from_zero_among_valid_rows() -> None:
    frame = stage(SLICE, Chunking(2, "K"), "postgresql").frame
    assert frame.get_column("chunk").to_list() == [0, 0, None, 1, None]
    assert frame.get_column("status").to_list() == [
        chunks.FOLLOWS,
        chunks.FOLLOWS,
        Status.REJECTED.value,
        chunks.FOLLOWS,
        Status.REJECTED.value,
    ]
    unchunked = stage(SLICE, None, "postgresql").frame
    assert unchunked.get_column("chunk").null_count() == 5
    assert unchunked.get_column("status").to_list()[0] == Status.PENDING.value


def test_a_duplicate_is_staged_naming_its_first_row_and_takes_no_place_in_a_chunk() -> None:
    marked = SLICE.with_columns(
        duplicate_of=pl.Series([None, None, None, 1, None], dtype=pl.UInt64)
    )
    staged = stage(marked, Chunking(2, "K"), "sqlite")
    assert (staged.valid, staged.duplicates) == (2, 1)
    frame = staged.frame
    assert frame.get_column("chunk").to_list() == [0, 0, None, None, None]
    assert frame.row(3, named=True) == {
        "position": 4,
        "identity_raw": "+12015550004",
        "identity": None,  # only the row that is sent holds the identity
        "parameters": '{"n":"4"}',
        "status": Status.DUPLICATE.value,
        "error_code": "DUPLICATE",
        "error_description": "same identity as row 1",
        "time_zone": None,
        "chunk": None,
        "channel": None,
        "identities": None,
    }
    assert staged.unsendable_json is not None
    unsendable = orjson.loads(staged.unsendable_json)
    assert [row[0] for row in unsendable] == [3, 4, 5]
