"""Each recipient's time zone key (see :mod:`campaign.quiet`), over whole Polars columns. Pure.

In order: the file's time-zone column when the row has a value there (an unknown zone name
rejects the row); else the zones that phonenumbers gives for the phone number (all of them when
a number cannot be placed more precisely, as for mobiles in a country with several zones); else
null, which the dispatcher reads as the campaign's ``timezone``.

phonenumbers answers ``time_zones_for_number`` in about 20 microseconds. Most calling codes
have one time zone for every number, and those are answered by a lookup of the code; only
numbers of the others (North America, Russia, Australia, Brazil, Mexico, Indonesia, ...) are
worked out one by one (:func:`phone_zone_key`, about 10 microseconds), once per distinct number.
"""

from __future__ import annotations

import functools

import phonenumbers
import polars as pl
from phonenumbers import timezone as phone_timezone
from phonenumbers.tzdata import TIMEZONE_DATA

from campaign import quiet

UNKNOWN_ZONE = "unknown time zone"
_NO_ZONE = "Etc/Unknown"  # phonenumbers' answer when it does not know


def unknown_zone(name: str) -> str:
    """The rejection reason of a row whose time-zone cell names no IANA zone."""
    return f"{UNKNOWN_ZONE} {name!r}"


@functools.cache
def _uniform_codes() -> dict[str, str]:
    """Calling codes (as text) whose every number has the same zones: code -> zone key."""
    out: dict[str, str] = {}
    for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
        text = str(code)
        answers = {zones for prefix, zones in TIMEZONE_DATA.items() if prefix.startswith(text)}
        if text in TIMEZONE_DATA and len(answers) == 1:
            (zones,) = answers
            if _NO_ZONE not in zones:
                out[text] = quiet.zone_key(zones)
    return out


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
    zones = [z for z in area if quiet.is_zone(z)]
    return quiet.zone_key(zones) if zones else None


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
    uniform = _uniform_codes()
    found = pl.Series("zones", [None] * e164.len(), dtype=pl.String)
    for length in (1, 2, 3):  # calling codes are prefix-free: at most one length matches
        code = e164.str.slice(1, length)
        found = found.fill_null(code.replace_strict(uniform, default=None, return_dtype=pl.String))
    rest = e164.is_not_null() & found.is_null()
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
