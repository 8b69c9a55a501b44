"""Each recipient's time zone key (see :mod:`campaign.quiet`), over whole Polars columns. Pure.

In order: the file's time-zone column when the row has a value there (an unknown zone name
rejects the row); else the zones that phonenumbers gives for the phone number (all of them when
a number cannot be placed more precisely, as for mobiles in a country with several zones); else
null, which the dispatcher reads as the campaign's ``timezone``.

:func:`phone_zone_key` is the definition, one number at a time (about 10 microseconds).
:func:`phone_zones` gives the same answer for every number of a column, tens of times faster.
Most calling codes have one time zone for every number, and those are answered by a lookup of
the code. For the others (North America, Russia, Australia, Brazil, Mexico, Indonesia, ...) it
replays phonenumbers' decision in Polars, from phonenumbers' own data: the longest prefix of the
number in ``TIMEZONE_DATA`` (joins on prefixes of each length present, longest first) and, where
that area's zones are not the country's, the number's type (region chosen among those sharing
the code as phonenumbers chooses it, then its ``national_number_pattern`` and possible lengths in
phonenumbers' order), geographical or not. Whatever it does not replay (text that is not ``+``
and digits, a national number with leading zeros, a calling code with fewer than
:data:`_MIN_GROUP` numbers) goes to :func:`phone_zone_key`, once per distinct number.
``tests/unit/test_zones.py`` compares the two.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

import phonenumbers
import polars as pl
from phonenumbers import PhoneMetadata, PhoneNumberDesc, PhoneNumberType
from phonenumbers import timezone as phone_timezone
from phonenumbers.tzdata import TIMEZONE_DATA

from campaign import quiet
from campaign.frames import nulls

UNKNOWN_ZONE = "unknown time zone"
_NO_ZONE = "Etc/Unknown"  # phonenumbers' answer when it does not know


def unknown_zone(name: str) -> str:
    """The rejection reason of a row whose time-zone cell names no IANA zone."""
    return f"{UNKNOWN_ZONE} {name!r}"


def phone_zone_key(e164: str) -> str | None:
    """The zone key of an E.164 number, as phonenumbers' ``time_zones_for_number`` places it;
    None when it cannot.

    The same answer for less: the number is built from its parts rather than parsed, and its
    type (the costly part: geographic numbers get their area's zones, others their country's)
    is only asked for when the two answers differ.
    """
    number = _number(e164)
    if number is None or number.country_code is None:
        return None
    country = _country_zones(number.country_code)
    area = phone_timezone.time_zones_for_geographical_number(number)
    if area != country and not phonenumbers.is_number_type_geographical(
        phonenumbers.number_type(number), number.country_code
    ):
        area = country
    return _key(area)


def _key(zones: Iterable[str]) -> str | None:
    """The zone key of phonenumbers' answer: the zones that quiet knows, None without any."""
    known = [z for z in zones if quiet.is_zone(z)]
    return quiet.zone_key(known) if known else None


def _number(e164: str) -> phonenumbers.PhoneNumber | None:
    for length in (1, 2, 3):
        code = e164[1 : 1 + length]
        if code.isdigit() and int(code) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            national = e164[1 + length :]
            if not national.isdigit():
                return None
            if national.startswith("0"):  # Italian leading zeros: let phonenumbers say
                try:
                    return phonenumbers.parse(e164)
                except phonenumbers.NumberParseException:
                    return None
            return phonenumbers.PhoneNumber(country_code=int(code), national_number=int(national))
    return None


@functools.cache
def _country_zones(code: int) -> tuple[str, ...]:
    """phonenumbers' answer for a number it cannot place more precisely than its country."""
    text = str(code)
    for length in range(len(text), 0, -1):
        if text[:length] in TIMEZONE_DATA:
            return tuple(TIMEZONE_DATA[text[:length]])
    return (_NO_ZONE,)


def phone_zones(e164: pl.Series) -> pl.Series:
    """The zone key of every E.164 number (null for null, or where phonenumbers cannot tell).

    Equal to ``[phone_zone_key(v) for v in e164]``.
    """
    settled = _fast_path(e164)
    found = nulls(e164.len(), pl.String, "zones")
    found.scatter(settled["_i"], settled["zone"])
    rest = e164.is_not_null()
    rest.scatter(settled["_i"], False)
    positions = rest.arg_true()
    if positions.len():
        numbers = e164.gather(positions)
        distinct = numbers.unique()
        answers = pl.Series([phone_zone_key(v) for v in distinct.to_list()], dtype=pl.String)
        found.scatter(positions, numbers.replace_strict(distinct, answers, return_dtype=pl.String))
    return found


def column_zones(cells: pl.Series) -> tuple[pl.Series, pl.Series]:
    """The time-zone column's cells -> (zone key or null when empty, rejection reason or
    null). A cell may hold one IANA name, or several separated by ``|``."""
    trimmed = cells.str.strip_chars()
    trimmed = trimmed.set(trimmed == "", None)
    distinct = trimmed.drop_nulls().unique().to_list()
    keys: dict[str, str | None] = {}
    reasons: dict[str, str | None] = {}
    for cell in distinct:
        names = [name.strip() for name in cell.split(quiet.ZONE_SEPARATOR)]
        bad = next((name for name in names if not quiet.is_zone(name)), None)
        keys[cell] = None if bad is not None else quiet.zone_key(names)
        reasons[cell] = None if bad is None else unknown_zone(bad)
    key = trimmed.replace_strict(keys, default=None, return_dtype=pl.String)
    reason = trimmed.replace_strict(reasons, default=None, return_dtype=pl.String)
    return key, reason


# --- the fast path: phonenumbers' decision replayed over whole columns ------------------------

# Fewer numbers than this of one calling code cost less one by one (phone_zone_key) than here.
_MIN_GROUP = 64

# phonenumbers' _number_type_helper: the types tried before fixed line and mobile, in order.
_OTHER_TYPES = (
    ("premium_rate", PhoneNumberType.PREMIUM_RATE),
    ("toll_free", PhoneNumberType.TOLL_FREE),
    ("shared_cost", PhoneNumberType.SHARED_COST),
    ("voip", PhoneNumberType.VOIP),
    ("personal_number", PhoneNumberType.PERSONAL_NUMBER),
    ("pager", PhoneNumberType.PAGER),
    ("uan", PhoneNumberType.UAN),
    ("voicemail", PhoneNumberType.VOICEMAIL),
)


def _fast_path(e164: pl.Series) -> pl.DataFrame:
    """``_i`` (position) and ``zone`` (the key, null: none) of the numbers the replay settles:
    ``+``, a known calling code, then a national number without leading zeros."""
    parts = e164.str.extract_groups(_shape_pattern())
    frame = (
        pl.DataFrame(
            {
                "cc": parts.struct.field("cc"),
                "nsn": parts.struct.field("nsn"),
                "digits": e164.str.slice(1),
            }
        )
        .with_row_index("_i")
        .filter(pl.col("cc").is_not_null())
    )
    uniform = frame["cc"].replace_strict(_uniform_codes(), default=None, return_dtype=pl.String)
    settled = [frame.select("_i", zone=uniform).filter(uniform.is_not_null())]
    for part in frame.filter(uniform.is_null()).partition_by("cc"):
        if part.height >= _MIN_GROUP:
            zone = _code_zones(part["digits"], part["nsn"], int(part["cc"][0]))
            settled.append(part.select("_i", zone=zone))
    return pl.concat(settled)


@functools.cache
def _shape_pattern() -> str:
    """``+``, a calling code (they are prefix-free), a national number not starting with 0."""
    codes = "|".join(str(code) for code in sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE))
    return rf"^\+(?P<cc>{codes})(?P<nsn>[1-9][0-9]*)$"


@functools.cache
def _uniform_codes() -> dict[str, str]:
    """Calling codes (as text) whose every number has the same zones: code -> zone key."""
    out: dict[str, str] = {}
    for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
        text = str(code)
        answers = {zones for prefix, zones in TIMEZONE_DATA.items() if prefix.startswith(text)}
        if text in TIMEZONE_DATA and len(answers) == 1:
            (zones,) = answers
            key = _key(zones)
            if _NO_ZONE not in zones and key is not None:
                out[text] = key
    return out


@dataclass(frozen=True)
class _ZoneTable:
    """One calling code's part of ``TIMEZONE_DATA``, its answers numbered by their zone key."""

    keys: pl.Series  # number -> zone key (null: none that quiet knows)
    prefixes: tuple[tuple[int, dict[str, int]], ...]  # (length, prefix -> number), longest first
    unknown: int  # phonenumbers' answer when no prefix matches
    country: int  # the code's own zones (_country_zones)


@functools.cache
def _zone_table(cc: int) -> _ZoneTable:
    text = str(cc)
    numbered: dict[str | None, int] = {}

    def number(zones: Iterable[str]) -> int:
        return numbered.setdefault(_key(zones), len(numbered))

    by_length: dict[int, dict[str, int]] = {}
    for prefix, zones in TIMEZONE_DATA.items():
        if prefix.startswith(text) or text.startswith(prefix):  # a prefix of this code's numbers
            by_length.setdefault(len(prefix), {})[prefix] = number(zones)
    unknown, country = number((_NO_ZONE,)), number(_country_zones(cc))
    return _ZoneTable(
        keys=pl.Series(list(numbered), dtype=pl.String),
        prefixes=tuple(sorted(by_length.items(), reverse=True)),
        unknown=unknown,
        country=country,
    )


def _code_zones(digits: pl.Series, nsn: pl.Series, cc: int) -> pl.Series:
    """The zone keys of numbers of calling code ``cc`` (``digits``: all of them after ``+``;
    ``nsn``: the national significant number), as :func:`phone_zone_key` gives them."""
    table = _zone_table(cc)
    # time_zones_for_geographical_number: the longest prefix of the number that has zones.
    area = nulls(digits.len(), pl.UInt32)
    for length, zones in table.prefixes:
        found = digits.str.slice(0, length).replace_strict(
            zones, default=None, return_dtype=pl.UInt32
        )
        area = area.fill_null(found)
    area = area.fill_null(table.unknown)
    # The country's zones instead, unless the number's type is geographical; asked only where
    # the two answers differ.
    differ = area != table.country
    positions = differ.arg_true()
    if positions.len():
        geographical = _geographical(nsn.gather(positions), cc)
        country = pl.repeat(table.country, positions.len(), dtype=pl.UInt32, eager=True)
        area.scatter(positions, area.gather(positions).zip_with(geographical, country))
    return table.keys.gather(area)


def _geographical(nsn: pl.Series, cc: int) -> pl.Series:
    """``is_number_type_geographical(number_type(number), cc)`` of national significant numbers
    of calling code ``cc``."""
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(cc, ())
    if len(regions) == 1:  # region_code_for_number takes it without looking at the number
        meta = PhoneMetadata.metadata_for_region_or_calling_code(cc, regions[0])
        if meta is None:
            return _constant(False, nsn.len())
        return _number_type(nsn, meta).is_in(_geographical_types(cc))
    # _region_code_for_number_from_list: the first region whose leading digits match, or
    # (without leading digits) in which the number is of some type; no region: UNKNOWN.
    geographical = _constant(False, nsn.len())
    pending = pl.int_range(nsn.len(), dtype=pl.UInt32, eager=True)
    for region in regions:
        if pending.len() == 0:
            break
        meta = PhoneMetadata.metadata_for_region(region.upper(), None)
        if meta is None:
            continue
        if meta.leading_digits is not None:
            chosen = nsn.str.contains(f"^(?:{meta.leading_digits})")
            kinds = _number_type(nsn.filter(chosen), meta)
        else:
            every = _number_type(nsn, meta)
            chosen = every != PhoneNumberType.UNKNOWN
            kinds = every.filter(chosen)
        geographical.scatter(pending.filter(chosen), kinds.is_in(_geographical_types(cc)))
        pending, nsn = pending.filter(~chosen), nsn.filter(~chosen)
    return geographical


@functools.cache
def _geographical_types(cc: int) -> list[int]:
    kinds = [getattr(PhoneNumberType, name) for name in dir(PhoneNumberType) if name.isupper()]
    return [kind for kind in kinds if phonenumbers.is_number_type_geographical(kind, cc)]


def _number_type(nsn: pl.Series, meta: PhoneMetadata) -> pl.Series:
    """phonenumbers' ``_number_type_helper`` of national significant numbers, as Int8."""
    if not len(nsn):
        return pl.Series([], dtype=pl.Int8)
    frame = pl.DataFrame({"nsn": nsn}).with_columns(length=pl.col("nsn").str.len_bytes())
    kind = pl.lit(PhoneNumberType.UNKNOWN, dtype=pl.Int8)
    # Built from the last branch to the first, so that the first that holds wins.
    mobile = _matches(meta.mobile)
    if not meta.same_mobile_and_fixed_line_pattern:
        kind = pl.when(mobile).then(PhoneNumberType.MOBILE).otherwise(kind)
    fixed = pl.lit(PhoneNumberType.FIXED_LINE, dtype=pl.Int8)
    if meta.same_mobile_and_fixed_line_pattern:
        fixed = pl.lit(PhoneNumberType.FIXED_LINE_OR_MOBILE, dtype=pl.Int8)
    else:
        fixed = pl.when(mobile).then(PhoneNumberType.FIXED_LINE_OR_MOBILE).otherwise(fixed)
    kind = pl.when(_matches(meta.fixed_line)).then(fixed).otherwise(kind)
    for name, number_type in reversed(_OTHER_TYPES):
        kind = pl.when(_matches(getattr(meta, name))).then(number_type).otherwise(kind)
    kind = pl.when(_matches(meta.general_desc)).then(kind).otherwise(PhoneNumberType.UNKNOWN)
    return frame.select(kind.cast(pl.Int8)).to_series()


def _matches(desc: PhoneNumberDesc | None) -> pl.Expr:
    """phonenumbers' ``_is_number_matching_desc``: a possible length (when the type has any),
    and the whole number matching the type's pattern."""
    if desc is None or not desc.national_number_pattern:
        return pl.lit(False)
    matched = pl.col("nsn").str.contains(f"^(?:{desc.national_number_pattern})$")
    if desc.possible_length:
        matched = matched & pl.col("length").is_in(list(desc.possible_length))
    return matched


def _constant(value: bool, n: int) -> pl.Series:
    return pl.repeat(value, n, dtype=pl.Boolean, eager=True)
