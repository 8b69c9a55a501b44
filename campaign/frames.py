"""Polars helpers shared by the phone rules and the loading."""

from __future__ import annotations

import polars as pl


def nulls(length: int, dtype: pl.DataType | type[pl.DataType], name: str = "") -> pl.Series:
    """``length`` nulls of ``dtype``. Built by Polars: a Series made from a Python list of
    Nones is first scanned in Python for a value (6 ms per 200,000 rows, against 1.3 ms)."""
    return pl.repeat(None, length, dtype=dtype, eager=True).alias(name)
