"""The input rows of a campaign, read again from its recipients file, for ``campaign report
--with-input``.

The store keeps of each row only what sending needs (the identity, its raw cell, the message's
parameters), not every column of the file; the file itself is the record of the rest. It is
read again here, whole and as text, and its rows are numbered as the load numbered them (the
first row under the header is 1). The file must be the one the campaign loaded: when its
SHA-256 differs from the digest stored at load time (it was edited), or it is gone, the report
refuses with one line rather than pair rows with the wrong people. A campaign stored before
digests were kept is read without that check.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import polars as pl

from campaign import jsonutil
from campaign.errors import InputFileError
from campaign.loading import files
from campaign.store.records import CampaignRow

ROW = "row"  # the report's row number, the join key


def read_input(campaign: CampaignRow) -> pl.DataFrame:
    """Every row of ``campaign``'s recipients file, every column as text, with its 1-based
    ``row`` number first. Blocking: run it in a thread."""
    path = Path(campaign.source)
    if not path.is_file():
        raise InputFileError(
            f"{path}: the recipients file of campaign {campaign.name!r} is gone;"
            " --with-input needs it"
        )
    definition: dict[str, Any] = jsonutil.loads(campaign.definition)
    if path.suffix.lower() == ".parquet":
        digest = files.digest(path)
        _same_file(campaign, path, digest)
        frame = pl.read_parquet(path)
        frame = frame.with_columns(pl.all().cast(pl.String))
    else:
        digest, encoding = files.check_text(path, definition.get("encoding"))
        _same_file(campaign, path, digest)
        delimiter = definition.get("delimiter") or files.sniff_delimiter(path)
        text = path.read_bytes().decode(encoding).removeprefix("\ufeff")
        frame = pl.read_csv(
            io.StringIO(text),
            separator=delimiter,
            infer_schema=False,
        )
    return frame.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.UInt64))


def _same_file(campaign: CampaignRow, path: Path, digest: str) -> None:
    if campaign.source_digest is not None and campaign.source_digest != digest:
        raise InputFileError(
            f"{path}: changed since campaign {campaign.name!r} loaded it; --with-input pairs"
            " report rows with input rows by number, and would pair them wrongly"
        )
