"""SMS parts: GSM-7 against UCS-2, single against concatenated, row by row and by column."""

from __future__ import annotations

import polars as pl
import pytest

from campaign import segments
from campaign.segments import Encoding, SmsLength

CASES = [
    ("", SmsLength(Encoding.GSM7, 0, 1)),
    ("a" * 160, SmsLength(Encoding.GSM7, 160, 1)),
    ("a" * 161, SmsLength(Encoding.GSM7, 161, 2)),
    ("a" * 306, SmsLength(Encoding.GSM7, 306, 2)),
    ("a" * 307, SmsLength(Encoding.GSM7, 307, 3)),
    # An extension character is two septets: 159 + one `€` is 161, two parts.
    ("a" * 158 + "€", SmsLength(Encoding.GSM7, 160, 1)),
    ("a" * 159 + "€", SmsLength(Encoding.GSM7, 161, 2)),
    ("[x]{y}~|^\\", SmsLength(Encoding.GSM7, 18, 1)),
    ("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà\r\n", SmsLength(Encoding.GSM7, 44, 1)),
    # One character outside the tables sends the whole text as UCS-2.
    ("a" * 69 + "ç", SmsLength(Encoding.UCS2, 70, 1)),
    ("a" * 70 + "ç", SmsLength(Encoding.UCS2, 71, 2)),
    ("a" * 133 + "\u2019", SmsLength(Encoding.UCS2, 134, 2)),
    ("a" * 134 + "\u2019", SmsLength(Encoding.UCS2, 135, 3)),
    # An emoji beyond the BMP is a surrogate pair: two UTF-16 code units.
    ("a" * 68 + "😀", SmsLength(Encoding.UCS2, 70, 1)),
    ("a" * 69 + "😀", SmsLength(Encoding.UCS2, 71, 2)),
    ("😀" * 35, SmsLength(Encoding.UCS2, 70, 1)),
    ("😀" * 36, SmsLength(Encoding.UCS2, 72, 2)),
    ("€" + "😀", SmsLength(Encoding.UCS2, 3, 1)),  # `€` is one UTF-16 unit in UCS-2
    ("☺" * 70, SmsLength(Encoding.UCS2, 70, 1)),  # BMP symbol: one unit
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_measure(text: str, expected: SmsLength) -> None:
    assert segments.measure(text) == expected


def test_the_column_expression_counts_as_measure_does() -> None:
    texts = [text for text, _ in CASES] + ["Hi José, ça va?", "Tab\there", "x" * 1600]
    frame = pl.DataFrame({"text": texts}).select(parts=segments.segments_expr(pl.col("text")))
    assert frame["parts"].to_list() == [segments.measure(t).parts for t in texts]


def test_is_gsm7() -> None:
    assert segments.is_gsm7("Hello [world] €5")
    assert not segments.is_gsm7("Tab\there")  # a tab is not in GSM 03.38
    assert not segments.is_gsm7("\x1b")  # ESC alone is not a character to send


@pytest.mark.parametrize(
    ("units", "single", "per_part", "expected"),
    [
        (0, 160, 153, 1),
        (160, 160, 153, 1),
        (161, 160, 153, 2),
        (459, 160, 153, 3),
        (460, 160, 153, 4),
        (71, 70, 67, 2),
        (134, 70, 67, 2),
        (135, 70, 67, 3),
    ],
)
def test_parts(units: int, single: int, per_part: int, expected: int) -> None:
    assert segments.parts(units, single, per_part) == expected
