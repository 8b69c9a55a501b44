"""A CSV file read a block of bytes at a time, each block parsed by Polars on its own.

Memory holds one block and what Polars makes of it, whatever the file's size, and nothing is
read before it is asked for (``scan_csv(...).collect_batches()`` reads hundreds of MB ahead
when its consumer is slower than the parser, as ours is). Blocks end at record ends: after a
newline preceded by an even number of double quotes, since a quoted field (which may hold
newlines, and ``""`` for a quote) always adds an even number of them; a quote anywhere else is
malformed CSV, which Polars refuses anyway. So each block parses as it would within the whole
file (``tests/unit/test_loading.py`` compares the two).
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator, Sequence
from typing import BinaryIO

import polars as pl

from campaign.errors import InputFileError

BLOCK_BYTES = 8 << 20
# A record longer than this is an opening quote that is never closed, not a recipient.
_MAX_RECORD_BYTES = 64 << 20
_QUOTE = b'"'
_NEWLINE = b"\n"


def check(stream: BinaryIO, name: str, block_bytes: int = BLOCK_BYTES) -> int:
    """How many rows the file has, once each of them parsed; :class:`InputFileError` if one
    does not (more fields than the header, a quote that never closes, ...).

    The very reading of :func:`read_blocks`, so that a file that passes is then read without a
    malformed-row error, keeping nothing but a count: it is done before any row is used.
    """
    return sum(frame.height for frame in read_blocks(stream, name, None, block_bytes))


def read_blocks(
    stream: BinaryIO, name: str, columns: Sequence[str] | None, block_bytes: int = BLOCK_BYTES
) -> Iterator[pl.DataFrame]:
    """``columns`` (by header name, all as text; all when None) of every row, in order, block
    after block.

    ``name`` names the file in errors (:class:`InputFileError`, for a malformed row).
    """
    header, pending = _split_header(stream, name, block_bytes)
    rows = 0
    eof = False
    while not eof:
        more = stream.read(block_bytes)
        eof = not more
        pending += more
        cut = len(pending) if eof else _last_record_end(pending)
        if cut < 0:
            if len(pending) > _MAX_RECORD_BYTES:
                raise InputFileError(
                    f"{name}: row {rows + 1} is over {_MAX_RECORD_BYTES >> 20} MB "
                    "(a quoted field that never ends?)"
                )
            continue
        block, pending = pending[:cut], pending[cut:]
        if not block:
            continue
        frame = _parse(header + block, name, columns, rows)
        rows += frame.height
        yield frame


def _split_header(stream: BinaryIO, name: str, block_bytes: int) -> tuple[bytes, bytes]:
    """The header record (with its newline; without a BOM) and the bytes read after it."""
    data = b""
    while True:
        more = stream.read(block_bytes)
        data += more
        if len(data) >= len(codecs.BOM_UTF8) or not more:
            data = data.removeprefix(codecs.BOM_UTF8)
            cut = _first_record_end(data)
            if cut >= 0:
                return data[:cut], data[cut:]
        if not more:
            return data + _NEWLINE, b""
        if len(data) > _MAX_RECORD_BYTES:
            raise InputFileError(f"{name}: the header never ends (an unclosed quote?)")


def _first_record_end(data: bytes) -> int:
    """Just after the first newline outside quotes, or -1."""
    quotes = 0
    start = 0
    while (newline := data.find(_NEWLINE, start)) >= 0:
        quotes += data.count(_QUOTE, start, newline)
        if quotes % 2 == 0:
            return newline + 1
        start = newline + 1
    return -1


def _last_record_end(data: bytes) -> int:
    """Just after the last newline outside quotes (``data`` starts a record), or -1."""
    before = data.count(_QUOTE)  # quotes before the end of the data
    end = len(data)
    while (newline := data.rfind(_NEWLINE, 0, end)) >= 0:
        before -= data.count(_QUOTE, newline, end)
        if before % 2 == 0:
            return newline + 1
        end = newline
    return -1


def _parse(data: bytes, name: str, columns: Sequence[str] | None, rows_before: int) -> pl.DataFrame:
    # All columns are parsed, not just the ones asked for: only then does Polars refuse a row
    # with more fields than the header (an unquoted comma), instead of shifting its values.
    try:
        frame = pl.read_csv(
            data, has_header=True, infer_schema=False, encoding="utf8", raise_if_empty=False
        )
        return frame if columns is None else frame.select(columns)
    except pl.exceptions.PolarsError as exc:
        detail = _bad_row(data, rows_before)
        if detail is None:
            message = str(exc).strip()
            detail = message.splitlines()[0] if message else type(exc).__name__
            detail = f"malformed CSV after row {rows_before}: {detail}"
        raise InputFileError(f"{name}: {detail}") from exc


def _bad_row(data: bytes, rows_before: int) -> str | None:
    """Which row has more fields than the header (Python's csv finds it), or which one opens
    a double quote that never closes (the one after the last record end), if one does."""
    if data.count(_QUOTE) % 2:
        cut = _last_record_end(data)
        if cut < 0:
            return None
        rows = sum(1 for _ in _records(data[:cut])) - 1  # not the header
        return f"row {rows_before + rows + 1} opens a double quote that never closes"
    records = _records(data)
    width = len(next(records, []))
    try:
        for number, record in enumerate(records, start=rows_before + 1):
            if len(record) > width:
                return (
                    f"row {number} has {len(record)} fields, the header {width} "
                    "(a value with a comma must be in double quotes)"
                )
    except csv.Error:
        return None
    return None


def _records(data: bytes) -> Iterator[list[str]]:
    return csv.reader(io.StringIO(data.decode("utf-8", errors="replace"), newline=""))
