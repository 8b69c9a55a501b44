"""Loaded recipient rows for store-level tests, as the loader hands them to ``Store.ingest``."""

from __future__ import annotations

import polars as pl

from campaign.loading.duplicates import Duplicates, bucket_bits


def loaded(
    identities: list[str],
    parameters: list[str] | None = None,
    zones: list[str | None] | None = None,
) -> pl.DataFrame:
    """Valid rows 1..n with these identities (as given and normalised alike), parameters
    (JSON objects; ``{}`` when not given) and time-zone keys (none when not given)."""
    n = len(identities)
    return pl.DataFrame(
        {
            "row": pl.Series(range(1, n + 1), dtype=pl.UInt64),
            "identity_raw": identities,
            "identity": identities,
            "reason": pl.Series([None] * n, dtype=pl.String),
            "parameters": parameters if parameters is not None else ["{}"] * n,
            "time_zone": pl.Series(zones if zones is not None else [None] * n, dtype=pl.String),
        }
    )


def us_numbers(n: int) -> list[str]:
    """``n`` distinct valid US numbers, +12015550001 onwards."""
    return [f"+1201555{i:04d}" for i in range(1, n + 1)]


def deduplicated(*slices: pl.DataFrame) -> list[pl.DataFrame]:
    """``slices`` of one file with ``duplicate_of``, as the load decides it over the file."""
    found = Duplicates(bucket_bits(sum(frame.height for frame in slices)))
    for frame in slices:
        found.observe(frame.get_column("identity"))
    return [found.mark(frame) for frame in slices]
