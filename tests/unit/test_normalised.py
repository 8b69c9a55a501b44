"""The first pass's phone numbers, kept for the second (campaign.loading.normalised)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign import loading, phones
from campaign.loading.normalised import NormalisedNumbers
from campaign.models import Channel

# E.164 as the normaliser writes it: "+", a digit other than 0, up to 14 more digits.
E164 = st.from_regex(r"\+[1-9][0-9]{0,14}", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(
    numbers=st.lists(st.one_of(st.none(), E164), min_size=1, max_size=50),
    first=st.integers(1, 10_000),
)
def test_kept_numbers_come_back_as_they_were(numbers: list[str | None], first: int) -> None:
    cells = pl.Series("phone", [f"cell {i}" for i in range(len(numbers))], dtype=pl.String)
    kept = pl.Series("phone", numbers, dtype=pl.String)
    with NormalisedNumbers() as store:
        store.keep(first, cells, kept)
        back = store.numbers(first, cells)
    assert back is not None
    assert back.dtype == pl.String
    assert back.to_list() == numbers


def test_cells_that_changed_since_are_not_answered() -> None:
    cells = pl.Series("phone", ["+1 201 555 0123", None, "bad"])
    numbers = pl.Series("phone", ["+12015550123", None, None])
    with NormalisedNumbers() as store:
        store.keep(1, cells, numbers)
        store.keep(4, cells, numbers)
        back = store.numbers(4, cells)
        assert back is not None and back.to_list() == numbers.to_list()
        changed = pl.Series("phone", ["+1 201 555 0123", None, "+12015550199"])
        assert store.numbers(1, changed) is None  # normalised again by the caller
        assert store.numbers(2, cells) is None  # other rows
        assert store.numbers(5, cells) is None  # past what was kept
    assert store.numbers(1, cells) is None  # closed


def test_what_does_not_fit_is_left_to_the_second_pass() -> None:
    cells = pl.Series("phone", ["a"])
    with NormalisedNumbers() as store:
        store.keep(1, cells, pl.Series("phone", ["+1234567890123456789012"]))
        assert not store.usable
        assert store.numbers(1, cells) is None


def _file(tmp_path: Path, raws: list[str]) -> Path:
    path = tmp_path / "r.csv"
    path.write_text("phone,name\n" + "".join(f'"{raw}",n{i}\n' for i, raw in enumerate(raws)))
    return path


RAWS = [
    "+1 201-555-0123",
    "(201) 555-0123",
    "",
    "   ",
    "0044 20 7946 0958",
    "+44 (0)20 7946 0958",
    "555-CALL-NOW",
    "12345",
    "2015550124",
    "1.2015550123E10",
] * 7


def test_the_second_pass_with_kept_numbers_gives_the_same_rows(tmp_path: Path) -> None:
    spec = loading.LoadSpec(_file(tmp_path, RAWS), Channel.SMS, "phone", "US", ("name",), {})
    source = loading.open_recipients(spec)
    plain = pl.concat(list(source.slices(rows_per_slice=8)))
    with NormalisedNumbers() as numbers:
        source.duplicates(rows_per_slice=3, keep=numbers)  # sliced otherwise: rows decide
        assert numbers.usable
        cells = pl.Series("phone", RAWS[:8])
        cells = cells.set(cells == "", None)
        back = numbers.numbers(1, cells)
        assert back is not None and back.to_list() == phones.normalise(cells, "US").to_list()
        kept = pl.concat(list(source.slices(rows_per_slice=8, numbers=numbers)))
    assert kept.equals(plain)
    assert kept.get_column("identity").null_count() < kept.height  # some are valid


def test_a_file_changed_between_the_passes_is_normalised_again(tmp_path: Path) -> None:
    path = _file(tmp_path, RAWS)
    spec = loading.LoadSpec(path, Channel.SMS, "phone", "US", ("name",), {})
    source = loading.open_recipients(spec)
    with NormalisedNumbers() as numbers:
        source.duplicates(keep=numbers)
        other = ["+12015550100"] * len(RAWS)
        _file(tmp_path, other)
        rows = pl.concat(list(source.slices(rows_per_slice=8, numbers=numbers)))
    assert rows.get_column("identity").to_list() == other
