"""phonenumbers' metadata as anchored patterns for Polars: the rules of each region and of each
calling code that the fast path of :mod:`campaign.phones` validates against (Rust regex: the
metadata is written in a common subset).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneMetadata

# The number types that make is_valid_number true.
_NUMBER_TYPES = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
    "mobile",
)


@dataclass(frozen=True)
class RegionRules:
    """What the fast path needs of one region's metadata. Patterns are anchored."""

    code: str
    country_code: int
    international_prefix: str | None  # ^(?:...)
    national_prefix: str | None  # ^(?:...), phonenumbers' national_prefix_for_parsing
    transform_group: int  # its last capture group when there is a transform rule, else 0
    general: str | None  # ^(?:...)$
    possible_lengths: tuple[int, ...]  # of the general description, in metadata order
    local_lengths: tuple[int, ...]
    types: str | None  # the number types' patterns; None when the region has no type
    types_by_length: bool  # types is matched against "LL:number" (the types' lengths differ)
    leading_digits: str | None  # ^(?:...)


@dataclass(frozen=True)
class CallingCodeRules:
    code: int
    main: RegionRules
    regions: tuple[RegionRules, ...]  # in phonenumbers' order
    leading_digits: str  # any of the regions' leading digits


@functools.cache
def country_code_pattern() -> str:
    """A known calling code at the start, shortest first as phonenumbers tries them."""
    codes = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE, key=lambda c: (len(str(c)), c))
    return "^(" + "|".join(str(code) for code in codes) + ")"


@functools.cache
def calling_code_rules(cc: int) -> CallingCodeRules | None:
    codes = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(cc, ())
    regions = tuple(r for r in (region_rules(cc, code) for code in codes) if r is not None)
    main = region_rules(cc, phonenumbers.region_code_for_country_code(cc))
    if main is None or len(regions) != len(codes):
        return None  # some metadata is missing: leave these numbers to phonenumbers
    leading = [r.leading_digits for r in regions if r.leading_digits is not None]
    return CallingCodeRules(cc, main, regions, "|".join(leading) or "^$.")


@functools.cache
def region_rules(cc: int, code: str) -> RegionRules | None:
    """Rules of region ``code``; ``"001"`` is the non-geographic entity of calling code ``cc``."""
    if code == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
        meta = PhoneMetadata.metadata_for_nongeo_region(cc, None)
    else:
        meta = PhoneMetadata.metadata_for_region(code, None)
    if meta is None or meta.country_code is None or meta.general_desc is None:
        return None
    general = meta.general_desc
    if not general.possible_length:
        return None  # phonenumbers would fail on it; leave it to phonenumbers
    entries: list[tuple[frozenset[int], str]] = []
    for name in _NUMBER_TYPES:
        if name == "mobile" and meta.same_mobile_and_fixed_line_pattern:
            continue  # never consulted: fixed_line answers for both
        desc = getattr(meta, name)
        if desc is not None and desc.national_number_pattern and desc.possible_length != (-1,):
            entries.append((frozenset(desc.possible_length), desc.national_number_pattern))
    types, by_length = _types_pattern(general.possible_length, entries)
    npp = meta.national_prefix_for_parsing or None
    transform_group = 0
    if npp and meta.national_prefix_transform_rule:
        transform_group = re.compile(npp).groups
    return RegionRules(
        code=code,
        country_code=meta.country_code,
        international_prefix=_anchor_start(meta.international_prefix),
        national_prefix=_anchor_start(npp),
        transform_group=transform_group,
        general=f"^(?:{general.national_number_pattern})$"
        if general.national_number_pattern
        else None,
        possible_lengths=tuple(general.possible_length),
        local_lengths=tuple(general.possible_length_local_only),
        types=types,
        types_by_length=by_length,
        leading_digits=_anchor_start(meta.leading_digits),
    )


def _types_pattern(
    general_lengths: tuple[int, ...], entries: list[tuple[frozenset[int], str]]
) -> tuple[str | None, bool]:
    """One pattern for "matches some number type, with a length that type allows".

    The general description's lengths are checked apart. When every type allows all of them,
    the union of the patterns is enough; otherwise each type is prefixed with its lengths and
    the pattern is matched against ``"LL:number"``.
    """
    if not entries:
        return None, False
    general = frozenset(general_lengths)
    if all(not lengths or general <= lengths for lengths, _ in entries):
        return "^(?:" + "|".join(pattern for _, pattern in entries) + ")$", False
    parts = []
    for lengths, pattern in entries:
        prefix = "|".join(f"{n:02d}" for n in sorted(lengths)) if lengths else "[0-9]{2}"
        parts.append(f"(?:{prefix}):(?:{pattern})")
    return "^(?:" + "|".join(parts) + ")$", True


def _anchor_start(pattern: str | None) -> str | None:
    return f"^(?:{pattern})" if pattern else None
