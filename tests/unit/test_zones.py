"""campaign.loading.zones: the vectorised path must give phone_zone_key's answer for every
number, and phone_zone_key must give phonenumbers' own (time_zones_for_number) for valid ones."""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence

import phonenumbers
import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType
from phonenumbers import timezone as phone_timezone
from phonenumbers.tzdata import TIMEZONE_DATA

from campaign import quiet
from campaign.loading import zones

# Calling codes whose numbers do not all share one answer (the ones the replay is for).
MULTI_ZONE = [1, 7, 61, 55, 52, 62, 44, 39, 34, 47, 64, 243, 262, 299, 351, 358, 593, 599]
MULTI_ZONE += [689, 691, 976, 800, 882]
_TYPES = [getattr(PhoneNumberType, name) for name in dir(PhoneNumberType) if name.isupper()]


def _phonenumbers_answer(e164: str) -> str | None:
    """phonenumbers' own answer, read as zones.phone_zone_key reads it: the zones that
    campaign.quiet knows, None for Etc/Unknown."""
    found = phone_timezone.time_zones_for_number(phonenumbers.parse(e164))
    known = [zone for zone in found if quiet.is_zone(zone)]
    return quiet.zone_key(known) if known else None


def _e164(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


@functools.cache
def _examples() -> tuple[str, ...]:
    """Every region's example number of every type that has one, its invalid example, and the
    non-geographic entities' examples."""
    out = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in _TYPES:
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                out.append(_e164(example))
        invalid = phonenumbers.invalid_example_number(region)
        if invalid is not None:
            out.append(_e164(invalid))
    for code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        example = phonenumbers.example_number_for_non_geo_entity(code)
        if example is not None:
            out.append(_e164(example))
    return tuple(dict.fromkeys(out))


def _fast(values: Sequence[str | None], monkeypatch: pytest.MonkeyPatch) -> dict[int, str | None]:
    """What the vectorised path settles, by position, when it takes even lone numbers."""
    monkeypatch.setattr(zones, "_MIN_GROUP", 1)
    return dict(zones._fast_path(pl.Series(values, dtype=pl.String)).iter_rows())


def test_every_example_number_of_every_type(monkeypatch: pytest.MonkeyPatch) -> None:
    values = list(_examples())
    assert len(values) > 1200  # distinct ones: a mobile example is often the fixed line's
    expected = [zones.phone_zone_key(v) for v in values]
    settled = _fast(values, monkeypatch)
    # all of them but the national numbers with leading zeros (Italy's), left to phonenumbers
    leading_zeros = [i for i, v in enumerate(values) if _national(v).startswith("0")]
    assert len(leading_zeros) < 30
    assert sorted(settled) == sorted(set(range(len(values))) - set(leading_zeros))
    wrong = [(values[i], got, expected[i]) for i, got in settled.items() if got != expected[i]]
    assert wrong == []
    # and phone_zone_key is phonenumbers' own answer for the valid ones
    valid = [v for v in values if phonenumbers.is_valid_number(phonenumbers.parse(v))]
    assert len(valid) > 950
    assert [zones.phone_zone_key(v) for v in valid] == [_phonenumbers_answer(v) for v in valid]
    assert zones.phone_zones(pl.Series(values)).to_list() == expected


def test_the_examples_reach_every_branch() -> None:
    """Geographical and not, for a code of one region and for codes shared by several (chosen
    by leading digits or by validity), and numbers of no type at all."""
    by_code: dict[int, list[str]] = {}
    for value in _examples():
        by_code.setdefault(phonenumbers.parse(value).country_code or 0, []).append(value)
    for cc in (1, 7, 44, 52, 55, 61, 62):
        nsn = pl.Series([v[1 + len(str(cc)) :] for v in by_code[cc]])
        geographical = zones._geographical(nsn, cc)
        assert geographical.any() and not geographical.all(), cc
    # +1: the US (no leading digits), Antigua (leading digits), Canada (no leading digits).
    regions = {phonenumbers.region_code_for_number(phonenumbers.parse(v)) for v in by_code[1]}
    assert {"US", "AG", "CA", "PR", None} <= regions


def test_odd_text_is_left_to_phone_zone_key(monkeypatch: pytest.MonkeyPatch) -> None:
    values = [
        "+12015550123",  # the fast path's
        "+390612345678",  # an Italian leading zero: phonenumbers parses it
        "+4402079460958",  # a national prefix written after the code
        "12015550123",  # no +
        "+0112015550123",  # int("01") is a calling code for phone_zone_key
        "+1 201 555 0123",
        "+44",
        "+",
        "",
        "+999123456",  # no such calling code
        "+1\u0662\u0660\u0661\u0665\u0665\u0665\u0660\u0661\u0662\u0663",  # not ASCII digits
        "+49301234567",  # a code with one answer for every number
        None,
    ]
    settled = _fast(values, monkeypatch)
    assert sorted(settled) == [0, 11]
    assert zones.phone_zones(pl.Series(values, dtype=pl.String)).to_list() == [
        None if v is None else zones.phone_zone_key(v) for v in values
    ]


def test_a_few_numbers_of_a_code_are_left_to_phone_zone_key() -> None:
    """Fewer than _MIN_GROUP numbers of a calling code cost less one by one."""
    rng = random.Random(3)
    values = [f"+1201{rng.randrange(2, 10)}{rng.randrange(10**6):06d}" for _ in range(200)]
    values += ["+61412345678", "+61292345678", "+79161234567"]
    settled = zones._fast_path(pl.Series(values))
    assert sorted(settled["_i"].to_list()) == list(range(200))
    assert zones.phone_zones(pl.Series(values)).to_list() == [
        zones.phone_zone_key(v) for v in values
    ]


def test_uniform_codes_are_phone_zone_keys_answer() -> None:
    for code, key in zones._uniform_codes().items():
        sample = [p for p in TIMEZONE_DATA if p.startswith(code)][:3]
        for prefix in sample:
            number = f"+{prefix}{'2' * max(1, 11 - len(prefix))}"
            assert zones.phone_zone_key(number) == key, number


def test_the_longest_prefix_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    """TIMEZONE_DATA has +1 (all of North America), +1 907 (Alaska: Adak and Anchorage) and
    +1 907 22 (Juneau); +61 (all of Australia), +61 89 (Adelaide and Perth) and +61 89 162
    (Cocos). The longest prefix of the number decides."""
    values = ["+12015550123", "+19072223456", "+16045550123", "+61891620123", "+61891234567"]
    assert list(_fast(values, monkeypatch).values()) == [
        "America/New_York",
        "America/Juneau",
        "America/Vancouver",
        "Indian/Cocos",
        "Australia/Adelaide|Australia/Perth",
    ]
    assert [_phonenumbers_answer(v) for v in values] == list(_fast(values, monkeypatch).values())


# --- hypothesis: numbers of the multi-zone codes --------------------------------------------


@functools.cache
def _prefixes(cc: int) -> tuple[str, ...]:
    return tuple(sorted(p for p in TIMEZONE_DATA if p.startswith(str(cc)))) or (str(cc),)


@functools.cache
def _multi_zone_examples() -> tuple[str, ...]:
    return tuple(v for v in _examples() if str(_code(v)) not in zones._uniform_codes())


@st.composite
def _numbers(draw: st.DrawFn) -> str:
    """A number of a multi-zone code: a TIMEZONE_DATA prefix (or none) then digits, to a
    length around the code's own; or an example number of such a code with a digit changed,
    added or taken out."""
    if draw(st.booleans()):
        example = draw(st.sampled_from(_multi_zone_examples()))
        i = draw(st.integers(1 + len(str(_code(example))), len(example) - 1))
        digit = str(draw(st.integers(0, 9)))
        return draw(
            st.sampled_from(
                [
                    example,
                    example[:i] + digit + example[i + 1 :],
                    example[:i] + digit + example[i:],
                    example[:i] + example[i + 1 :],
                ]
            )
        )
    cc = draw(st.sampled_from(MULTI_ZONE))
    head = draw(st.sampled_from(_prefixes(cc))) if draw(st.booleans()) else str(cc)
    length = draw(st.integers(len(str(cc)) + 4, len(str(cc)) + 12))
    size = max(0, length - len(head))
    tail = draw(st.text(alphabet="0123456789", min_size=size, max_size=size))
    digits = head + tail
    if len(digits) > len(str(cc)) and digits[len(str(cc))] == "0":
        digits = digits[: len(str(cc))] + "1" + digits[len(str(cc)) + 1 :]
    return "+" + digits


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(_numbers(), min_size=1, max_size=60))
@example(values=["+11000", "+112684601234"])  # not E.164: the load writes "+12684601234"
def test_multi_zone_numbers_equal_phone_zone_key(values: list[str]) -> None:
    expected = [zones.phone_zone_key(v) for v in values]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(zones, "_MIN_GROUP", 1)  # the vectorised path takes them all
        settled = dict(zones._fast_path(pl.Series(values, dtype=pl.String)).iter_rows())
        got = zones.phone_zones(pl.Series(values, dtype=pl.String)).to_list()
    shaped = [i for i, v in enumerate(values) if _shaped(_national(v))]
    assert sorted(settled) == shaped
    assert got == expected
    for value, key in zip(values, expected, strict=True):
        number = phonenumbers.parse(value)
        # Only E.164 as the load writes it: phonenumbers also takes "+1 1 268..." (a trunk
        # prefix after the code), which the load writes as "+1 268..." before any zone is asked.
        if phonenumbers.is_valid_number(number) and _e164(number) == value:
            assert key == _phonenumbers_answer(value), value


def _code(e164: str) -> int:
    for length in (1, 2, 3):
        if int(e164[1 : 1 + length]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return int(e164[1 : 1 + length])
    raise AssertionError(e164)


def _national(e164: str) -> str:
    return e164[1 + len(str(_code(e164))) :]


def _shaped(national: str) -> bool:
    return national.isascii() and national.isdigit() and not national.startswith("0")


def test_a_column_of_a_million_rows_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many numbers of few codes, as in a real file: all settled by the vectorised path."""
    rng = random.Random(11)
    values = [
        f"+1{rng.choice(['201', '212', '907', '604', '787', '268'])}"
        f"{rng.randrange(200, 1000)}{rng.randrange(10**4):04d}"
        for _ in range(3000)
    ]
    values += [f"+614{rng.randrange(10**8):08d}" for _ in range(300)]
    values += [
        f"+7{rng.choice(['495', '912', '383'])}{rng.randrange(10**7):07d}" for _ in range(100)
    ]
    series = pl.Series(values)
    settled = zones._fast_path(series)
    assert settled.height == len(values)
    assert zones.phone_zones(series).to_list() == [zones.phone_zone_key(v) for v in values]
