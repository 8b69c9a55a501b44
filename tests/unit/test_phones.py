"""Unit tests for campaign.phones: the vectorised path must give phonenumbers' answers."""

from __future__ import annotations

import functools
import random

import phonenumbers
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from campaign import phones

# --- the formats seen in real files ------------------------------------------------------------
# 555 is not an area code (phonenumbers rejects +1 555 ...), and 07700 900xxx is Ofcom's
# drama range (rejected too), so the valid examples use 201-555-0123 and 07400 123456.

FORMATS = [
    ("+1 201-555-0123", "US", "+12015550123"),
    ("(201) 555-0123", "US", "+12015550123"),
    ("201.555.0123", "US", "+12015550123"),
    ("201/555-0123", "US", "+12015550123"),
    ("1 (201) 555-0123", "US", "+12015550123"),
    ("  +12015550123  ", "US", "+12015550123"),
    ("\t2015550123\n", "US", "+12015550123"),
    ("0044 20 7946 0958", "GB", "+442079460958"),  # 00 is GB's own international prefix
    ("0044 20 7946 0958", "US", "+442079460958"),  # the US dials 011: read again as +44
    ("0044 20 7946 0958", None, "+442079460958"),
    ("011 44 20 7946 0958", "US", "+442079460958"),
    ("+44 (0)20 7946 0958", None, "+442079460958"),
    ("+44 (0) 7400 123456", "US", "+447400123456"),
    ("07400 123456", "GB", "+447400123456"),
    ("020 7946 0958", "GB", "+442079460958"),
    ("1.2015550123E10", "US", "+12015550123"),  # Excel
    ("1.2015550123e+10", "US", "+12015550123"),
    ("12015550123.0", "US", "+12015550123"),
    ("4.47400123456E11", "GB", "+447400123456"),
    ("447400123456.00", "GB", "+447400123456"),
    ("12015550123", "US", "+12015550123"),  # the country code without +
    ("447400123456", "GB", "+447400123456"),
    ("📞 +1 201 555 0123", "US", "+12015550123"),  # phonenumbers skips what precedes the number
    ("+1 201 555 0123 ext. 7", "US", "+12015550123"),  # and drops an extension
    ("1-800-FLOWERS", "US", "+18003569377"),  # and reads letters on a keypad (3 or more)
    ("+7 912 345-67-89", None, "+79123456789"),
    ("8 912 345-67-89", "RU", "+79123456789"),
    ("(11) 91234-5678", "BR", "+5511912345678"),
    ("+1 604 555 0123", None, "+16045550123"),  # Canada shares +1 with the US
    ("+1 268 464 1234", None, "+12684641234"),  # Antigua, chosen by its leading digits
    ("090-1234-5678", "JP", "+819012345678"),
]

INVALID = [
    ("555-CALL-NOW", "US"),
    ("+1 555-123-4567", "US"),
    ("(555) 123-4567", "US"),
    ("07700 900123", "GB"),
    ("12345", "US"),
    ("+1 201 555 01234567", "US"),  # too long
    ("+1 201 555", "US"),  # too short
    ("020 7946 0958", "US"),  # a London number read as American
    ("2015550123", None),  # national, and no default country
    ("1.20155E10", "US"),  # Excel lost digits: not repaired
    ("+999 1234 5678", "US"),  # no such calling code
    ("😀", "US"),
    ("not a number", "US"),
    ("+", "US"),
    ("0", "US"),
    ("", "US"),
    ("   ", "US"),
    (None, "US"),
]


@pytest.mark.parametrize(("raw", "region", "expected"), FORMATS)
def test_formats_seen_in_real_files(raw: str, region: str | None, expected: str) -> None:
    assert phones.normalise_one(raw, region) == expected
    assert phones.normalise(pl.Series([raw]), region).to_list() == [expected]


@pytest.mark.parametrize(("raw", "region"), INVALID)
def test_invalid_numbers(raw: str | None, region: str | None) -> None:
    assert phones.normalise_one(raw, region) is None
    assert phones.normalise(pl.Series([raw], dtype=pl.String), region).to_list() == [None]


def test_formats_in_one_column_through_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(phones, "_MIN_GROUP", 1)
    for region in ("US", "GB", None):
        raws = [raw for raw, _, _ in FORMATS] + [raw for raw, _ in INVALID]
        expected = [phones.normalise_one(raw, region) for raw in raws]
        assert phones.normalise(pl.Series(raws, dtype=pl.String), region).to_list() == expected


def test_default_country_is_case_insensitive() -> None:
    assert phones.normalise_one("(201) 555-0123", "us") == "+12015550123"
    assert phones.normalise(pl.Series(["(201) 555-0123"]), "us").to_list() == ["+12015550123"]


def test_normalise_keeps_length_order_and_name() -> None:
    values = pl.Series("phone", [None, "+12015550123", "", "nope", "+12015550123"])
    result = phones.normalise(values, "US")
    assert result.name == "phone"
    assert result.dtype == pl.String
    assert result.to_list() == [None, "+12015550123", None, None, "+12015550123"]


def test_normalise_of_an_empty_column() -> None:
    assert phones.normalise(pl.Series([], dtype=pl.String), "US").to_list() == []


@pytest.mark.parametrize(
    ("text", "repaired"),
    [
        ("1.5551234567E10", "15551234567"),
        ("1.5551234567e+10", "15551234567"),
        ("15551234567.0", "15551234567"),
        ("15551234567.000", "15551234567"),
        ("1.55512E10", "1.55512E10"),  # digits lost: left alone (then invalid)
        ("1.5551234567E9", "1.5551234567E9"),  # not an integer
        ("555.0000", "555.0000"),  # a dotted number, not a float
        ("+1 555", "+1 555"),
    ],
)
def test_repair_excel(text: str, repaired: str) -> None:
    assert phones.repair_excel(text) == repaired


def test_known_regions() -> None:
    assert phones.is_known_region("US")
    assert phones.is_known_region("gb")
    assert not phones.is_known_region("XX")
    assert not phones.is_known_region("001")


# --- equivalence with phonenumbers ------------------------------------------------------------

_TYPES = (
    PhoneNumberType.FIXED_LINE,
    PhoneNumberType.MOBILE,
    PhoneNumberType.TOLL_FREE,
    PhoneNumberType.PREMIUM_RATE,
    PhoneNumberType.SHARED_COST,
    PhoneNumberType.VOIP,
    PhoneNumberType.PERSONAL_NUMBER,
    PhoneNumberType.PAGER,
    PhoneNumberType.UAN,
    PhoneNumberType.VOICEMAIL,
)


@functools.cache
def _examples() -> tuple[phonenumbers.PhoneNumber, ...]:
    """phonenumbers' example number of every type of every region and non-geographic code."""
    found = [
        phonenumbers.example_number_for_type(region, kind)
        for region in sorted(phonenumbers.SUPPORTED_REGIONS)
        for kind in _TYPES
    ]
    found += [
        phonenumbers.example_number_for_non_geo_entity(code)
        for code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS)
    ]
    return tuple(number for number in found if number is not None)


def _variants(number: phonenumbers.PhoneNumber, rng: random.Random) -> list[str]:
    """The number written in the ways files write it, and a few near misses."""
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    nsn = phonenumbers.national_significant_number(number)
    code = str(number.country_code)
    out = [
        e164,
        phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL),
        phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL),
        "00" + e164[1:],
        e164[1:],
        f"+{code} (0){nsn}",
        f"{e164[:4]}-{e164[4:7]}.{e164[7:]}",
        nsn,
        "0" + nsn,
        f"{e164[1:]}.0",
        f"{e164[1]}.{e164[2:]}E{len(e164) - 2}",
    ]
    if len(nsn) > 2:
        i = rng.randrange(len(nsn))
        out.append(f"+{code}{nsn[:i]}{nsn[i + 1 :]}")  # a digit missing
        out.append(f"+{code}{nsn[:i]}{rng.randrange(10)}{nsn[i:]}")  # one too many
        out.append(f"+{code}{nsn[:i]}{rng.randrange(10)}{nsn[i + 1 :]}")  # one wrong
    return out


@functools.cache
def _corpus() -> tuple[str, ...]:
    rng = random.Random(20240601)
    values = [v for number in _examples() for v in _variants(number, rng)]
    values += [raw for raw, _, _ in FORMATS] + [raw for raw, _ in INVALID if raw is not None]
    return tuple(values)


@pytest.mark.parametrize("region", ["US", "GB", "DE", "BR", "RU", "AR", "GG", "JP", None])
def test_fast_path_equals_phonenumbers(region: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every region's example numbers, in a dozen writings and with near misses: whatever the
    fast path settles is what phonenumbers answers. (What it leaves, normalise_one decides.)"""
    monkeypatch.setattr(phones, "_MIN_GROUP", 1)  # let the fast path take even lone numbers
    values = _corpus()
    expected = [phones.normalise_one(value, region) for value in values]
    settled = phones._fast_path(pl.Series(values, dtype=pl.String).str.strip_chars(), region)
    answers = dict(settled.iter_rows())
    wrong = [
        (values[i], answer, expected[i]) for i, answer in answers.items() if answer != expected[i]
    ]
    assert wrong == []
    # And it does the work: it settles most numbers, valid and invalid.
    assert len(answers) > 0.85 * len(values)
    valid = [i for i, answer in enumerate(expected) if answer is not None]
    assert sum(i in answers for i in valid) > 0.9 * len(valid)


def test_fast_path_settles_a_uniform_file_alone() -> None:
    rng = random.Random(5)
    valid = [f"+1 (201) 555-{rng.randrange(10_000):04d}" for _ in range(500)]
    invalid = [f"+1 (201) 555-{rng.randrange(100):02d}" for _ in range(100)]
    settled = phones._fast_path(pl.Series(valid + invalid), "US")
    assert settled.sort("_i")["e164"].to_list() == ["+1201555" + v[-4:] for v in valid] + [
        None
    ] * len(invalid)


def test_a_few_odd_rows_are_left_to_phonenumbers() -> None:
    """Fewer than _MIN_GROUP rows of a kind cost less one by one than through the fast path."""
    values = ["+12015550123"] * 100 + ["+44 20 7946 0958"] * 3 + ["+1 201 555"] * 3
    settled = phones._fast_path(pl.Series(values), "US")
    assert settled["_i"].to_list() == list(range(100))
    assert phones.normalise(pl.Series(values), "US").to_list() == [
        phones.normalise_one(v, "US") for v in values
    ]


# --- hypothesis: arbitrary text, and real numbers written arbitrarily ---------------------------

_REGIONS = st.sampled_from(["US", "GB", "DE", "FR", "IN", "BR", "CA", "AU", "JP", "AR", None])
_TEXT = st.text(alphabet="0123456789+ -.()/eExX#,;abc\t\u00a0٣", max_size=24)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(_TEXT, min_size=1, max_size=40), region=_REGIONS)
def test_any_text_equals_phonenumbers(values: list[str], region: str | None) -> None:
    expected = [phones.normalise_one(value, region) for value in values]
    assert phones.normalise(pl.Series(values, dtype=pl.String), region).to_list() == expected


_SEPARATOR = st.sampled_from(["", "", " ", "-", ".", "(", ")", "/", "  "])


@st.composite
def _written_numbers(draw: st.DrawFn) -> str:
    number = draw(st.sampled_from(_examples()))
    form = draw(st.sampled_from(["e164", "intl", "national", "00", "bare", "nsn"]))
    nsn = phonenumbers.national_significant_number(number)
    digits = {
        "e164": f"+{number.country_code}{nsn}",
        "intl": f"+{number.country_code}{nsn}",
        "national": phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL),
        "00": f"00{number.country_code}{nsn}",
        "bare": f"{number.country_code}{nsn}",
        "nsn": nsn,
    }[form]
    out = []
    for char in digits:
        out.append(draw(_SEPARATOR))
        out.append(char if draw(st.integers(0, 30)) else str(draw(st.integers(0, 9))))
    return "".join(out)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(_written_numbers(), min_size=1, max_size=40), region=_REGIONS)
def test_written_numbers_equal_phonenumbers(values: list[str], region: str | None) -> None:
    expected = [phones.normalise_one(value, region) for value in values]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(phones, "_MIN_GROUP", 1)  # the fast path takes them all
        got = phones.normalise(pl.Series(values, dtype=pl.String), region).to_list()
    assert got == expected
