"""How many SMS parts a text takes, which is what an SMS bill counts, not characters.

A text that the GSM 03.38 alphabet can write goes as GSM-7: 160 septets in one SMS, 153 per part
once it is split (each part gives 7 septets to the concatenation header). An extension-table
character (``€``, ``[``, ``{``, ``~``...) is an escape and a septet: it counts 2. One character
outside both tables (an emoji, a curly quote, ``ç``) sends the whole text as UCS-2: 70 UTF-16
code units in one SMS, 67 per part, and an emoji outside the Basic Multilingual Plane is a
surrogate pair, 2 units.

Parts are counted as ``ceil(units / per_part)``, the same figure row by row (:func:`measure`)
and over a whole column (:func:`segments_expr`, for the dry run). Some SMSCs move an escape pair
or a surrogate pair that would straddle two parts into the next one, so a text that fills its
parts to the last unit can take one more there: the count is the bill's floor.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import polars as pl

# GSM 03.38 default alphabet (ESC, 0x1B, left out: it introduces the extension table).
GSM7_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table: each is ESC + one septet.
GSM7_EXTENSION: Final = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE: Final = 160
GSM7_PART: Final = 153
UCS2_SINGLE: Final = 70
UCS2_PART: Final = 67


class Encoding(StrEnum):
    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


@dataclass(frozen=True)
class SmsLength:
    """A text as an SMS: its encoding, its length in that encoding's units (septets or UTF-16
    code units), and the parts it is sent in."""

    encoding: Encoding
    units: int
    parts: int


def is_gsm7(text: str) -> bool:
    """Whether every character of ``text`` is in the GSM-7 basic or extension table."""
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def measure(text: str) -> SmsLength:
    """``text``'s encoding, units and parts (an empty text is still one SMS)."""
    if is_gsm7(text):
        septets = len(text) + sum(1 for ch in text if ch in GSM7_EXTENSION)
        return SmsLength(Encoding.GSM7, septets, parts(septets, GSM7_SINGLE, GSM7_PART))
    units = len(text.encode("utf-16-le")) // 2
    return SmsLength(Encoding.UCS2, units, parts(units, UCS2_SINGLE, UCS2_PART))


def parts(units: int, single: int, per_part: int) -> int:
    """SMS parts for ``units``: one up to ``single``, else ``per_part`` each."""
    if units <= single:
        return 1
    return -(-units // per_part)


# --- the same over a column --------------------------------------------------------------------


def _char_class(chars: frozenset[str]) -> str:
    """A Rust-regex character class of ``chars``, each as ``\\x{..}``: no escaping to get wrong."""
    return "[" + "".join(f"\\x{{{ord(ch):X}}}" for ch in sorted(chars)) + "]"


_GSM7_ONLY: Final = rf"\A{_char_class(GSM7_BASIC | GSM7_EXTENSION)}*\z"
_EXTENSION: Final = _char_class(GSM7_EXTENSION)
_ASTRAL: Final = r"[\x{10000}-\x{10FFFF}]"


def segments_expr(text: pl.Expr) -> pl.Expr:
    """The SMS parts of each text of ``text`` (a String expression), as :func:`measure` counts
    them: vectorised, for counting a whole file's parts without a Python call per row."""
    chars = text.str.len_chars()
    septets = chars + text.str.count_matches(_EXTENSION)
    units = chars + text.str.count_matches(_ASTRAL)
    return (
        pl.when(gsm7_expr(text))
        .then(_parts_expr(septets, GSM7_SINGLE, GSM7_PART))
        .otherwise(_parts_expr(units, UCS2_SINGLE, UCS2_PART))
    )


def gsm7_expr(text: pl.Expr) -> pl.Expr:
    """Whether each text of ``text`` goes as GSM-7, as :func:`is_gsm7` says."""
    return text.str.contains(_GSM7_ONLY)


def _parts_expr(units: pl.Expr, single: int, per_part: int) -> pl.Expr:
    return (
        pl.when(units <= single)
        .then(pl.lit(1, dtype=pl.Int64))
        .otherwise((units.cast(pl.Int64) + (per_part - 1)) // per_part)
    )
