"""Duplicates over the whole file: the first valid row of an identity is the recipient, every
later valid row with that identity is a duplicate of it.

Decided in Polars, in two passes over the file, in bounded memory and without a Python loop
over rows:

1. :meth:`Duplicates.observe` sees every row's normalised identity, hashed to a bucket of a
   bitmap, and remembers which buckets were seen twice or more. A 10M-row file takes two
   bitmaps of 16 MiB; most identities (some 97% of a 1M-row file of distinct numbers, some 93%
   of a 10M-row one) land alone in their bucket, and are thereby known to be unique.
2. :meth:`Duplicates.mark` then takes the prepared slices in file order. Only the rows whose
   bucket was seen twice are compared, by their identity itself, against the first rows of those
   identities seen so far (a frame that holds only such rows). The hash only picks what to
   compare: two identities sharing a bucket are never taken for each other.

The result depends on nothing but the file, so a resumed or concurrent load of the same file
decides exactly what the first one did (the runner refuses a file that changed meanwhile).
"""

from __future__ import annotations

import math

import polars as pl

# Bucket bits: about 32 buckets per row, at most 2^27 (two bitmaps of 16 MiB).
_MIN_BITS = 10
_MAX_BITS = 27
_BUCKETS_PER_ROW = 32


def bucket_bits(rows: int) -> int:
    """How many bits of the hash pick a bucket, for a file of about ``rows`` rows."""
    wanted = math.ceil(math.log2(max(rows, 1) * _BUCKETS_PER_ROW))
    return max(_MIN_BITS, min(_MAX_BITS, wanted))


class Duplicates:
    """The duplicates of one file: :meth:`observe` every slice, then :meth:`mark` every slice,
    each pass in file order."""

    def __init__(self, bits: int) -> None:
        if not 1 <= bits <= 32:
            raise ValueError("bits must be within 1..32")
        self._shift = 1 << (64 - bits)
        none = pl.Series("seen", [False], dtype=pl.Boolean).extend_constant(False, (1 << bits) - 1)
        self._seen = none
        self._twice = none.clone()
        # The first row of each identity whose bucket was seen twice, from the slices marked.
        self._firsts = pl.DataFrame(schema={"identity": pl.String, "first": pl.UInt64})
        self._marking = False

    def _buckets(self, identities: pl.Series) -> pl.Series:
        return (identities.hash(seed=0) // self._shift).cast(pl.UInt32)

    def observe(self, identities: pl.Series) -> None:
        """Pass 1: a slice's identities (nulls are ignored). Any superset of the rows that
        :meth:`mark` will find valid will do: a rejected row's identity only costs a comparison."""
        if self._marking:
            raise RuntimeError("observe() after mark(): the first pass is over")
        buckets = self._buckets(identities.drop_nulls())
        if buckets.is_empty():
            return
        again = self._seen.gather(buckets) | ~buckets.is_first_distinct()
        self._twice.scatter(buckets.filter(again), True)
        self._seen.scatter(buckets, True)

    def mark(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Pass 2: a prepared slice (``row``, ``identity``, ``reason``: see
        :data:`campaign.loading.rows.OUTPUT_SCHEMA`) with ``duplicate_of``: the row number of
        the first valid row with the same identity, or null (the row is not a duplicate)."""
        if not self._marking:
            self._marking = True
            self._seen = self._seen.clear()  # only the buckets seen twice are needed now
        valid = frame.filter(pl.col("reason").is_null() & pl.col("identity").is_not_null())
        buckets = self._buckets(valid.get_column("identity"))
        compared = valid.filter(self._twice.gather(buckets)).select(
            "identity", pl.col("row").cast(pl.UInt64)
        )
        if compared.is_empty():
            return frame.with_columns(duplicate_of=pl.lit(None, pl.UInt64))
        # Each identity's first row in this slice, and its first row in an earlier one if any.
        # The slice's few identities are looked up in the (large, growing) first rows, not the
        # other way round: a join builds its table on the slice's side, and memory stays flat.
        here = compared.unique("identity", keep="first", maintain_order=True)
        earlier = self._firsts.join(here.select("identity"), on="identity", how="semi")
        known = here.join(earlier, on="identity", how="left", maintain_order="left")
        self._firsts = pl.concat(
            [
                self._firsts,
                known.filter(pl.col("first").is_null()).select("identity", first="row"),
            ]
        )
        firsts = known.select("identity", first=pl.coalesce("first", "row"))
        repeated = (
            compared.join(firsts, on="identity", how="inner")
            .filter(pl.col("row") != pl.col("first"))
            .select("row", duplicate_of="first")
        )
        return frame.join(repeated, on="row", how="left", maintain_order="left")
