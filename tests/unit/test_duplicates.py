"""Duplicates over the whole file (campaign.loading.duplicates): pure, no database."""

from __future__ import annotations

import threading
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign import loading, run
from campaign.loading.duplicates import Duplicates, bucket_bits
from campaign.models import Channel


def _slice(rows: list[tuple[int, str | None, str | None]]) -> pl.DataFrame:
    """Prepared rows: (row, identity, reason)."""
    return pl.DataFrame(
        rows,
        schema={"row": pl.UInt64, "identity": pl.String, "reason": pl.String},
        orient="row",
    )


def _decide(slices: list[pl.DataFrame], bits: int) -> list[int | None]:
    """Both passes over ``slices``: each row's ``duplicate_of``, in file order."""
    found = Duplicates(bits)
    for frame in slices:
        found.observe(frame.get_column("identity"))
    marked = [found.mark(frame) for frame in slices]
    for before, after in zip(slices, marked, strict=True):
        assert after.columns == [*before.columns, "duplicate_of"]
        assert after.get_column("row").to_list() == before.get_column("row").to_list()
    return [value for frame in marked for value in frame.get_column("duplicate_of").to_list()]


def _expected(rows: list[tuple[int, str | None, str | None]]) -> list[int | None]:
    """The rule, one row at a time: a valid row repeats the first valid row of its identity."""
    first: dict[str, int] = {}
    out: list[int | None] = []
    for row, identity, reason in rows:
        if identity is None or reason is not None:
            out.append(None)
        elif identity in first:
            out.append(first[identity])
        else:
            first[identity] = row
            out.append(None)
    return out


ROWS = [
    (1, "+1", None),
    (2, "+2", None),
    (3, "+1", None),  # repeats row 1, in the same slice
    (4, "+3", "missing value for parameter 'x'"),  # rejected: holds no identity
    (5, "+3", None),  # so this is the first +3
    (6, None, "missing identity"),
    (7, "+2", None),  # repeats row 2, from an earlier slice
    (8, "+3", None),
    (9, "+4", None),
]


@pytest.mark.parametrize("bits", [1, 20])
def test_the_first_valid_row_of_an_identity_is_kept_across_slices(bits: int) -> None:
    slices = [_slice(ROWS[:4]), _slice(ROWS[4:7]), _slice(ROWS[7:])]
    assert _decide(slices, bits) == [None, None, 1, None, None, None, 2, 5, None]


def test_identities_that_share_a_bucket_are_told_apart() -> None:
    # One bucket for everything: every row is compared by its identity itself.
    rows = [(n, f"+{n % 7}", None) for n in range(1, 200)]
    slices = [_slice(rows[i : i + 23]) for i in range(0, len(rows), 23)]
    assert _decide(slices, bits=1) == _expected(rows)


@settings(max_examples=200, deadline=None)
@given(
    cells=st.lists(
        st.tuples(st.sampled_from(["+1", "+2", "+33", "+44", "+555", None]), st.booleans()),
        max_size=60,
    ),
    cut=st.integers(min_value=1, max_value=17),
    bits=st.sampled_from([1, 2, 3, 16]),
)
def test_the_decision_is_the_rule_whatever_the_slicing_and_the_bucket_size(
    cells: list[tuple[str | None, bool]], cut: int, bits: int
) -> None:
    rows = [
        (n, identity, "rejected" if rejected else None)
        for n, (identity, rejected) in enumerate(cells, start=1)
    ]
    slices = [_slice(rows[i : i + cut]) for i in range(0, len(rows), cut)] or [_slice([])]
    assert _decide(slices, bits) == _expected(rows)


def test_observing_after_marking_is_refused() -> None:
    found = Duplicates(4)
    found.mark(_slice(ROWS))
    with pytest.raises(RuntimeError, match="first pass is over"):
        found.observe(pl.Series(["+1"]))


def test_bucket_bits_grow_with_the_file_within_bounds() -> None:
    assert bucket_bits(0) == bucket_bits(1) == 10
    assert bucket_bits(1_000_000) == 25  # about 32 buckets per row
    assert bucket_bits(10_000_000) == bucket_bits(10**12) == 27  # two bitmaps of 16 MiB
    with pytest.raises(ValueError, match="bits"):
        Duplicates(0)


def test_a_file_s_duplicates_are_decided_on_normalised_numbers(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text(
        "phone,name\n"
        "+12015550123,a\n"
        "2015550124,b\n"
        "not a number,c\n"
        "(201) 555-0123,d\n"  # the first row, written another way
        "+1 201 555 0124,\n"  # row 2's number, but rejected: no name
        "001 201 555 0124,f\n"  # row 2's number again
    )
    spec = loading.LoadSpec(path, Channel.SMS, "phone", "US", ("name",), {})
    source = loading.open_recipients(spec)
    assert source.rows == 6
    found = source.duplicates(rows_per_slice=2)
    marked = pl.concat([found.mark(frame) for frame in source.slices(rows_per_slice=2)])
    assert marked.get_column("duplicate_of").to_list() == [None, None, None, 1, None, 2]


def test_the_source_knows_its_rows_and_digest(tmp_path: Path) -> None:
    csv_path, parquet_path = tmp_path / "r.csv", tmp_path / "r.parquet"
    csv_path.write_text("phone\n+12015550123\n+12015550124\n+12015550125\n")
    pl.read_csv(csv_path, infer_schema=False).write_parquet(parquet_path)
    spec = loading.LoadSpec(csv_path, Channel.SMS, "phone", "US", (), {})
    first = loading.open_recipients(spec)
    assert first.rows == 3 and len(first.digest) == 64
    assert loading.open_recipients(spec).digest == first.digest
    csv_path.write_text("phone\n+12015550123\n+12015550124\n+12015550126\n")
    assert loading.open_recipients(spec).digest != first.digest
    parquet = loading.open_recipients(
        loading.LoadSpec(parquet_path, Channel.SMS, "phone", "US", (), {})
    )
    assert parquet.rows == 3 and len(parquet.digest) == 64


def test_a_stopped_first_pass_says_so_rather_than_answer_half(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("phone\n" + "".join(f"+1201555{i:04d}\n" for i in range(10)))
    source = loading.open_recipients(loading.LoadSpec(path, Channel.SMS, "phone", "US", (), {}))
    stop = threading.Event()
    stop.set()
    with pytest.raises(loading.PassStopped):
        source.duplicates(rows_per_slice=3, stop=stop)


async def test_the_first_pass_begun_early_is_the_first_pass(tmp_path: Path) -> None:
    """campaign run begins the first pass as the file opens (campaign.run.load.FirstPass): the same
    duplicates, the numbers kept for the second pass, and a pass not needed stopped."""
    path = tmp_path / "r.csv"
    rows = [f"+1201555{i % 7:04d}" for i in range(40)]
    path.write_text("phone\n" + "".join(f"{row}\n" for row in rows))
    source = loading.open_recipients(loading.LoadSpec(path, Channel.SMS, "phone", "US", (), {}))
    plain = source.duplicates(rows_per_slice=6)
    expected = pl.concat([plain.mark(f) for f in source.slices(rows_per_slice=6)])
    assert expected.get_column("duplicate_of").null_count() == 7  # 33 repeat the first 7
    async with run.FirstPass(source) as first:
        found = await first.duplicates()
        assert first.numbers.usable
        marked = pl.concat(
            [found.mark(f) for f in source.slices(rows_per_slice=6, numbers=first.numbers)]
        )
    assert marked.equals(expected)
    assert not first.numbers.usable  # let go with the pass
    async with run.FirstPass(source) as unneeded:
        await unneeded.close()  # stopped (or over): no error, nothing left running
    assert not unneeded.numbers.usable
