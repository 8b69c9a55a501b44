"""Phone numbers to E.164: phonenumbers' answers, computed over whole Polars columns.

:func:`normalise_one` is the definition: the trimmed text, repaired where Excel mangled it, given
to ``phonenumbers.parse`` + ``is_valid_number`` + ``format_number(E164)``; when that is not valid
and the text starts with ``00``, the same again with ``+`` in place of the ``00`` (phonenumbers
only knows the default country's own international prefix, and ``0044 ...`` is common in files
from countries that dial out with ``011``).

:func:`normalise` gives the same answer for every value, tens of times faster. Its fast path
replays in Polars what phonenumbers does with text made only of digits, one leading ``+`` and
the separators `` -.()/``: ``+`` or the default country's international prefix, the country
calling code, the default country's code written without ``+``, national prefix stripping (the
``0`` of ``(0)`` included), and validation against regular expressions built from phonenumbers'
own metadata (:mod:`campaign.phone_rules`), choosing the region among those sharing a calling
code as phonenumbers does.
Whatever it does not replay (other characters, an unknown calling code, a national prefix
transform rule, a ``00`` number it finds invalid) goes to :func:`normalise_one`, once per
distinct text. ``tests/unit/test_phones.py`` compares the two over thousands of numbers.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

import phonenumbers
import polars as pl

from campaign.frames import nulls
from campaign.phone_rules import (
    CallingCodeRules,
    RegionRules,
    calling_code_rules,
    country_code_pattern,
    region_rules,
)

# phonenumbers refuses longer input (its _MAX_INPUT_STRING_LENGTH).
_MAX_INPUT_LENGTH = 250

# Excel turns 15551234567 into 1.5551234567E+10, or 15551234567.0 on the way through a float.
# Repaired only when no digit was lost: as many decimals as the exponent says.
_EXCEL_SCIENTIFIC = r"([0-9])\.([0-9]+)[eE]\+?([0-9]+)"
# Six digits at least, so that a dotted local number such as 555.0000 is left alone.
_EXCEL_FLOAT = r"([0-9]{6,})\.0+"
_EXCEL_SCIENTIFIC_RE = re.compile(_EXCEL_SCIENTIFIC)
_EXCEL_FLOAT_RE = re.compile(_EXCEL_FLOAT)

# "00" then a country calling code, whatever the default country dials out with.
_DOUBLE_ZERO = r"[ \-.()/]*00"
_DOUBLE_ZERO_RE = re.compile(_DOUBLE_ZERO)

# Removed by the fast path. phonenumbers ignores them too (they are in its _VALID_PUNCTUATION)
# and none of them can introduce an extension.
_SEPARATORS = [" ", "-", ".", "(", ")", "/"]


def is_known_region(code: str) -> bool:
    """Whether ``code`` is an ISO 3166 alpha-2 region that phonenumbers has metadata for."""
    return code.upper() in phonenumbers.SUPPORTED_REGIONS


def repair_excel(text: str) -> str:
    """``text`` with Excel's number mangling undone when no digit was lost, else ``text``."""
    match = _EXCEL_SCIENTIFIC_RE.fullmatch(text)
    if match and len(match[2]) == int(match[3]):
        return match[1] + match[2]
    match = _EXCEL_FLOAT_RE.fullmatch(text)
    return match[1] if match else text


def normalise_one(raw: str | None, default_country: str | None) -> str | None:
    """The E.164 form of ``raw``, or None when it is not a valid phone number.

    ``default_country`` (ISO 3166 alpha-2) is the country of numbers written without a country
    code; without it such numbers are invalid.
    """
    if raw is None:
        return None
    text = repair_excel(raw.strip())
    if not text:
        return None
    region = default_country.upper() if default_country else None
    candidates = [text]
    double_zero = _DOUBLE_ZERO_RE.match(text)
    if double_zero:
        candidates.append("+" + text[double_zero.end() :])
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None


def normalise(values: pl.Series, default_country: str | None) -> pl.Series:
    """E.164 for every value of a String column; null where invalid, empty or null.

    Equal to ``[normalise_one(v, default_country) for v in values]``.
    """
    region = default_country.upper() if default_country else None
    text = values.cast(pl.String).str.strip_chars()
    text = text.set(text == "", None)
    settled = _fast_path(text, region)
    result = nulls(text.len(), pl.String, values.name)
    result.scatter(settled["_i"], settled["e164"])
    # The rest: phonenumbers decides, once per distinct text.
    open_rows = text.is_not_null()
    open_rows.scatter(settled["_i"], False)
    positions = open_rows.arg_true()
    if positions.len():
        rest = text.gather(positions)
        distinct = rest.unique()
        answers = pl.Series(_decide(distinct.to_list(), region), dtype=pl.String)
        result.scatter(positions, rest.replace_strict(distinct, answers, return_dtype=pl.String))
    return result


def _decide(texts: list[str], region: str | None) -> list[str | None]:
    """:func:`normalise_one` of each text, worked out on a thread of its own.

    ``parse`` keeps an error it recovers from in a local: the error, its traceback and the frame
    then refer to one another until the garbage collector runs, and that frame refers to its
    callers'. On this thread the callers hold these texts; on ours they would hold whole columns.
    """
    answers: list[str | None] = []
    failure: list[BaseException] = []

    def work() -> None:
        try:
            answers.extend(normalise_one(text, region) for text in texts)
        except BaseException as exc:  # handed over to the calling thread
            failure.append(exc)

    worker = threading.Thread(target=work, name="phonenumbers")
    worker.start()
    worker.join()
    if failure:
        raise failure[0]
    return answers


# --- the fast path ---------------------------------------------------------------------------


def _fast_path(text: pl.Series, region: str | None) -> pl.DataFrame:
    """``_i`` (position) and ``e164`` (null: invalid) of the rows whose answer is certain."""
    shaped = _shape(text)
    international = shaped.filter("plus").select("_i", after="digits", again=_NO_TEXT)
    national = shaped.filter(~pl.col("plus")).select("_i", "digits", "again")
    rules = region_rules(0, region) if region else None
    groups = []
    unplaced = _EMPTY_CHECKED  # without a default country, phonenumbers refuses these outright
    if rules is not None:
        if rules.international_prefix is not None:
            national, dialled_out = _split_off(national, rules.international_prefix)
            international = pl.concat([international, dialled_out])
        groups += _locate_national(national, rules)
    else:
        unplaced = national.select("_i", e164=_NO_TEXT, unsure=pl.lit(False), again="again")
    groups += _locate_international(international)
    checked = pl.concat([unplaced, *(_validate(*group) for group in groups)])
    checked = checked.filter(~pl.col("unsure"))
    # "00..." surely invalid: normalise_one reads it again as "+...", and so does this.
    again = pl.col("e164").is_null() & pl.col("again").is_not_null()
    retry = checked.filter(again).select("_i", after="again", again=_NO_TEXT)
    retried = [_validate(*group) for group in _locate_international(retry)]
    checked = pl.concat([checked.filter(~again), *retried])
    return checked.filter(~pl.col("unsure")).select("_i", "e164")


_NO_TEXT = pl.lit(None, dtype=pl.String)
_EMPTY_CHECKED = pl.DataFrame(
    schema={"_i": pl.UInt32, "e164": pl.String, "unsure": pl.Boolean, "again": pl.String}
)
# Fewer rows than this of one calling code cost less one by one (normalise_one) than here.
_MIN_GROUP = 64

_Group = tuple[pl.DataFrame, int, str | None]  # rows (_i, nat, again), calling code, region


def _shape(text: pl.Series) -> pl.DataFrame:
    """The rows the fast path can read: ``_i``, ``plus``, ``digits`` (what follows the plus,
    if any) and ``again`` (for "00..." the digits after the 00, for a second reading)."""
    fixed = _patch(text, text.str.contains_any(["e", "E"]), _repair_scientific)
    fixed = _patch(fixed, fixed.str.ends_with("0"), _repair_float)
    cleaned = _patch(
        fixed,
        fixed.str.contains_any(_SEPARATORS),
        lambda s: s.str.replace_many(_SEPARATORS, [""] * len(_SEPARATORS)),
    )
    frame = pl.DataFrame(
        {"cleaned": cleaned, "fixed": fixed, "short": fixed.str.len_bytes() <= _MAX_INPUT_LENGTH}
    ).with_row_index("_i")
    frame = frame.filter(pl.col("short") & pl.col("cleaned").str.contains(r"^\+?[0-9]+$"))
    zeros = pl.col("fixed").str.contains(f"^(?:{_DOUBLE_ZERO})")
    return frame.select(
        "_i",
        plus=pl.col("cleaned").str.starts_with("+"),
        digits=pl.col("cleaned").str.strip_prefix("+"),
        again=pl.when(zeros).then(pl.col("cleaned").str.slice(2)),
    )


def _split_off(national: pl.DataFrame, prefix: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rows that start with the default country's international ``prefix`` (not followed by a
    0, as phonenumbers wants) apart, with ``after`` the digits that follow it."""
    candidates = national.filter(pl.col("digits").str.contains(prefix)).with_columns(
        after=pl.col("digits").str.replace(prefix, "")
    )
    dialled_out = candidates.filter(~pl.col("after").str.starts_with("0"))
    return (
        national.join(dialled_out.select("_i"), on="_i", how="anti", maintain_order="left"),
        dialled_out.select("_i", "after", "again"),
    )


def _locate_international(frame: pl.DataFrame) -> list[_Group]:
    """Digits that follow ``+`` or an international prefix, by calling code (an unknown one is
    left to phonenumbers). The code's main region strips the national prefix."""
    code = pl.col("after").str.extract(country_code_pattern(), 1)
    located = frame.select(
        "_i", "again", cc=code.cast(pl.Int32), nat=pl.col("after").str.slice(code.str.len_bytes())
    ).filter(pl.col("cc").is_not_null())
    return [
        (part.select("_i", "nat", "again"), int(part["cc"][0]), None)
        for part in located.partition_by("cc", maintain_order=True)
        if part.height >= _MIN_GROUP
    ]


def _locate_national(frame: pl.DataFrame, rules: RegionRules) -> list[_Group]:
    """Numbers without ``+`` are the default country's, whose code may still be written (without
    ``+``): phonenumbers takes it off when that turns a non-number into a number, or when the
    whole is too long to be national, and then strips with the code's main region."""
    code = str(rules.country_code)
    starts = frame["digits"].str.starts_with(code).fill_null(False)
    plain = frame.filter(~starts).select("_i", nat="digits", again="again")
    coded = frame.filter(starts)
    full = coded["digits"]
    stripped, unsure = _strip_national_prefix(full.str.slice(len(code)), rules)
    taken = (~_general(full, rules) & _general(stripped, rules)) | _too_long(
        full.str.len_bytes(), rules
    )
    coded = coded.with_columns(nat=stripped, taken=taken, unsure=unsure).filter(~pl.col("unsure"))
    groups: list[_Group] = [
        (
            pl.concat(
                [plain, coded.filter(~pl.col("taken")).select("_i", nat="digits", again="again")]
            ),
            rules.country_code,
            rules.code,
        ),
        (coded.filter("taken").select("_i", "nat", "again"), rules.country_code, None),
    ]
    return [group for group in groups if group[0].height >= _MIN_GROUP]


def _validate(frame: pl.DataFrame, cc: int, meta: str | None) -> pl.DataFrame:
    """``_i``, ``e164`` (null: invalid), ``unsure`` and ``again`` of one calling code's rows whose
    national prefix is stripped with region ``meta`` (None: the code's main region)."""
    calling = calling_code_rules(cc)
    if calling is None:
        return _EMPTY_CHECKED
    rules = calling.main if meta is None else region_rules(cc, meta)
    if rules is None:
        return _EMPTY_CHECKED
    nat = frame["nat"]
    potential, unsure = _strip_national_prefix(nat, rules)
    # Stripping must leave a possible length, or phonenumbers keeps the prefix.
    nsn = potential.zip_with(_possible_after_stripping(potential.str.len_bytes(), rules), nat)
    valid, left = _valid(nsn, calling)
    return pl.DataFrame(
        {"_i": frame["_i"], "nsn": nsn, "valid": valid, "unsure": unsure | left}
    ).select(
        "_i",
        e164=pl.when("valid").then(pl.lit(f"+{cc}") + pl.col("nsn")),
        unsure="unsure",
        again=frame["again"],
    )


def _valid(nsn: pl.Series, calling: CallingCodeRules) -> tuple[pl.Series, pl.Series]:
    """``is_valid_number`` for national significant numbers of one calling code, and where the
    answer is left to phonenumbers (a handful of rows is cheaper one by one).

    phonenumbers takes the regions sharing the code in order and settles on the first whose
    leading digits match, or (a region without leading digits) in which the number is valid;
    then it validates in that region. Replayed on the rows still pending, which shrink fast.
    """
    valid, unsure = _constant(False, nsn.len()), _constant(False, nsn.len())
    pending = pl.int_range(nsn.len(), dtype=pl.UInt32, eager=True)
    candidates = nsn
    may_lead: bool | None = None  # whether any pending number has some region's leading digits
    for rules in calling.regions:
        if pending.len() == 0:
            break
        if rules.leading_digits is None:
            if pending.len() < min(_MIN_GROUP, nsn.len()):
                unsure.scatter(pending, True)
                break
            chosen = ok = _valid_in_region(candidates, rules)
        else:
            if may_lead is None:
                leading = candidates.str.contains(calling.leading_digits).fill_null(False)
                may_lead = leading.sum() >= _MIN_GROUP
                if not may_lead:  # then leave them all to phonenumbers, and skip these regions
                    unsure.scatter(pending.filter(leading), True)
                    pending, candidates = pending.filter(~leading), candidates.filter(~leading)
            if not may_lead:
                continue
            chosen = candidates.str.contains(rules.leading_digits).fill_null(False)
            count = chosen.sum()
            if count == 0:
                continue
            if count < _MIN_GROUP:
                unsure.scatter(pending.filter(chosen), True)
                ok = _constant(False, chosen.len())
            else:
                ok = chosen.clone()
                ok.scatter(chosen.arg_true(), _valid_in_region(candidates.filter(chosen), rules))
        valid.scatter(pending.filter(ok), True)
        pending, candidates = pending.filter(~chosen), candidates.filter(~chosen)
    return valid, unsure


def _valid_in_region(nsn: pl.Series, rules: RegionRules) -> pl.Series:
    """``_number_type_helper(...) != UNKNOWN``: the general description, then some type."""
    if rules.types is None:
        return _constant(False, nsn.len())
    length = nsn.str.len_bytes()
    ok = _general(nsn, rules) & length.is_in(rules.possible_lengths)
    if rules.types_by_length:
        nsn = length.cast(pl.String).str.zfill(2) + ":" + nsn
    return (ok & nsn.str.contains(rules.types)).fill_null(False)


def _strip_national_prefix(number: pl.Series, rules: RegionRules) -> tuple[pl.Series, pl.Series]:
    """``_maybe_strip_national_prefix_carrier_code``: the number without its national prefix,
    and where phonenumbers would apply a transform rule instead (not replayed)."""
    unsure = _constant(False, number.len())
    if rules.national_prefix is None:
        return number, unsure
    hit = number.str.contains(rules.national_prefix).fill_null(False)
    positions = hit.arg_true()
    if positions.len() == 0:
        return number, unsure
    found = number.gather(positions)
    stripped = found.str.replace(rules.national_prefix, "")
    # Not stripped when that turns a plausible number into an implausible one.
    keep = _general(found, rules) & ~_general(stripped, rules)
    if rules.transform_group:
        last = found.str.extract(rules.national_prefix, rules.transform_group)
        unsure.scatter(positions, last.is_not_null())
    result = number.clone()
    result.scatter(positions, found.zip_with(keep, stripped))
    return result, unsure


def _general(number: pl.Series, rules: RegionRules) -> pl.Series:
    """``_match_national_number`` against the general description (pattern only)."""
    if rules.general is None:
        return _constant(False, number.len())
    return number.str.contains(rules.general).fill_null(False)


def _possible_after_stripping(length: pl.Series, rules: RegionRules) -> pl.Series:
    """``_test_number_length`` is IS_POSSIBLE or TOO_LONG, replayed literally."""
    lengths = rules.possible_lengths
    first, last = lengths[0], lengths[-1]
    ok = (length == first) | ((length > first) & ((length > last) | length.is_in(lengths[1:])))
    return ok & ~length.is_in(rules.local_lengths)


def _too_long(length: pl.Series, rules: RegionRules) -> pl.Series:
    """``_test_number_length(...) == TOO_LONG``."""
    lengths = rules.possible_lengths
    too_long = (length > lengths[0]) & (length > lengths[-1])
    return too_long & ~length.is_in(rules.local_lengths)


def _patch(
    values: pl.Series, where: pl.Series, change: Callable[[pl.Series], pl.Series]
) -> pl.Series:
    """``values`` with ``change`` applied to the rows where ``where`` holds, and only to them."""
    where = where.fill_null(False)
    positions = where.arg_true()
    if positions.len() == 0:
        return values
    if positions.len() * 2 > values.len():  # most rows: cheaper than gathering and scattering
        return change(values).zip_with(where, values)
    result = values.clone()
    result.scatter(positions, change(values.gather(positions)))
    return result


def _constant(value: bool | int | str, n: int, dtype: type[pl.DataType] = pl.Boolean) -> pl.Series:
    return pl.repeat(value, n, dtype=dtype, eager=True)


def _repair_scientific(text: pl.Series) -> pl.Series:
    """:func:`repair_excel` for the scientific notation, on a column."""
    parts = text.str.extract_groups(f"^{_EXCEL_SCIENTIFIC}$").struct.unnest()
    lossless = parts["2"].str.len_bytes() == parts["3"].cast(pl.Int64, strict=False)
    return (parts["1"] + parts["2"]).zip_with(lossless.fill_null(False), text)


def _repair_float(text: pl.Series) -> pl.Series:
    """:func:`repair_excel` for the ``.0`` of a float, on a column."""
    digits = text.str.strip_chars_end("0").str.strip_suffix(".")
    return digits.zip_with(text.str.contains(f"^{_EXCEL_FLOAT}$").fill_null(False), text)
