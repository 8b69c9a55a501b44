"""Regenerate the sample recipients (deterministic): ``python sample_data/generate.py``.

About 10,000 rows across several countries, in the number formats real files carry (E.164,
national with spaces, dashes, dots and parentheses, ``00`` prefixes, Excel-mangled scientific
notation), with some invalid numbers, some duplicates, and names in many scripts.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import phonenumbers
import polars as pl
from phonenumbers import PhoneNumberFormat, PhoneNumberType

HERE = Path(__file__).resolve().parent
ROWS = 10_000
COUNTRIES = ["US"] * 40 + ["GB"] * 12 + ["DE"] * 10 + ["FR"] * 8 + ["BR"] * 8 + ["SE"] * 6
COUNTRIES += ["ES"] * 6 + ["MX"] * 5 + ["IN"] * 5
FIRST = [
    "Ana",
    "José",
    "Zoë",
    "Björn",
    "Łukasz",
    "François",
    "Müller",
    "Siobhán",
    "Søren",
    "Ægir",
    "Chloé",
    "Renée",
    "İlker",
    "Мария",
    "Дмитрий",
    "陈伟",
    "さくら",
    "민준",
    "محمد",
    "Ελένη",
    "Priya",
    "Nguyễn",
    "Olga",
    "Jane",
    "John",
    "O'Brien",
    "Anne-Marie",
    "Đorđe",
    "Ömer",
    "Jürgen",
]
CITIES = ["São Paulo", "München", "Malmö", "Zürich", "Kraków", "Montréal", "Córdoba", "New York"]


def valid_number(rng: random.Random, region: str) -> phonenumbers.PhoneNumber:
    example = phonenumbers.example_number_for_type(region, PhoneNumberType.MOBILE)
    assert example is not None
    digits = str(example.national_number)
    keep = max(3, len(digits) - 7)  # vary the last digits: enough numbers for no accidental repeat
    while True:
        tail = "".join(rng.choice("0123456789") for _ in range(len(digits) - keep))
        candidate = phonenumbers.parse(f"+{example.country_code}{digits[:keep]}{tail}")
        if phonenumbers.is_valid_number(candidate):
            return candidate


def written(rng: random.Random, number: phonenumbers.PhoneNumber, region: str) -> str:
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    style = rng.random()
    if style < 0.35:
        return e164
    if style < 0.50:
        return phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    if style < 0.60:
        return "00" + e164[1:]
    if style < 0.65 and len(e164) <= 12:
        # Excel's scientific notation; only where it keeps every digit (11 digits or fewer):
        # a longer number written this way has lost digits and is rightly rejected.
        return f"{float(e164[1:]):.{len(e164) - 2}E}".replace("E+", "E")
    if region == "US":  # local US formats, resolved with default_country = "US"
        national = str(number.national_number)
        if style < 0.80:
            return f"({national[:3]}) {national[3:6]}-{national[6:]}"
        if style < 0.90:
            return f"{national[:3]}.{national[3:6]}.{national[6:]}"
        return f" {national[:3]}-{national[3:6]}-{national[6:]} "
    return phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL).replace(" ", "-")


def invalid(rng: random.Random) -> str:
    return rng.choice(
        ["", "12345", "555-CALL-NOW", "+44 20", "+999 123 456 789", "n/a", "+1 555 01", "📞"]
    )


def main() -> None:
    rng = random.Random(20261121)
    rows: list[dict[str, str]] = []
    issued: list[tuple[phonenumbers.PhoneNumber, str]] = []
    for index in range(ROWS):
        roll = rng.random()
        if roll < 0.03:
            phone = invalid(rng)
        elif roll < 0.05 and issued:
            number, region = rng.choice(issued)  # the same person again, written differently
            phone = written(rng, number, region)
        else:
            region = rng.choice(COUNTRIES)
            number = valid_number(rng, region)
            issued.append((number, region))
            phone = written(rng, number, region)
        rows.append(
            {
                "phone": phone,
                "first_name": rng.choice(FIRST),
                "code": f"{rng.randrange(10**6):06d}",
                "city": rng.choice(CITIES),
                "customer_id": f"C{index + 1:06d}",
            }
        )
    with (HERE / "recipients.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    pl.DataFrame(rows).write_parquet(HERE / "recipients.parquet")


if __name__ == "__main__":
    main()
