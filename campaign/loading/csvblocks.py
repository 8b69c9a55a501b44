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
from dataclasses import dataclass
from typing import Protocol

import polars as pl

from campaign.errors import InputFileError

BLOCK_BYTES = 8 << 20
# A record longer than this is an opening quote that is never closed, not a recipient.
_MAX_RECORD_BYTES = 64 << 20
_QUOTE = b'"'
_NEWLINE = b"\n"


@dataclass(frozen=True)
class CsvFormat:
    """How a CSV file is written: its field separator, and its encoding (a Python codec name;
    anything but UTF-8 is turned into UTF-8 as it is read)."""

    delimiter: str = ","
    encoding: str = "utf-8"

    @property
    def utf8(self) -> bool:
        return codecs.lookup(self.encoding).name == "utf-8"


UTF8_COMMAS = CsvFormat()


class Readable(Protocol):
    """What is read of a file: its bytes, a block at a time."""

    def read(self, size: int = -1, /) -> bytes: ...


class _Transcoded:
    """A binary stream of another encoding, read as UTF-8 bytes (a block at a time)."""

    def __init__(self, stream: Readable, encoding: str) -> None:
        self._stream = stream
        self._decoder = codecs.getincrementaldecoder(encoding)()

    def read(self, size: int = -1, /) -> bytes:
        raw = self._stream.read(size)
        return self._decoder.decode(raw, final=not raw).encode("utf-8")


def _utf8(stream: Readable, form: CsvFormat) -> Readable:
    return stream if form.utf8 else _Transcoded(stream, form.encoding)


def check(
    stream: Readable, name: str, block_bytes: int = BLOCK_BYTES, form: CsvFormat = UTF8_COMMAS
) -> int:
    """How many rows the file has, once each of them parsed; :class:`InputFileError` if one
    does not (more fields than the header, a quote that never closes, ...).

    The very reading of :func:`read_blocks`, so that a file that passes is then read without a
    malformed-row error, keeping nothing but a count: it is done before any row is used.
    """
    return sum(frame.height for frame in read_blocks(stream, name, None, block_bytes, form))


def header(stream: Readable, name: str, form: CsvFormat = UTF8_COMMAS) -> list[str]:
    """The column names of the header record, as Polars names them (a repeated name gets
    ``_duplicated_N``)."""
    record, _ = _split_header(_utf8(stream, form), name, 64 << 10)
    return _parse(record, name, None, 0, form).columns


def read_blocks(
    stream: Readable,
    name: str,
    columns: Sequence[str] | None,
    block_bytes: int = BLOCK_BYTES,
    form: CsvFormat = UTF8_COMMAS,
) -> Iterator[pl.DataFrame]:
    """``columns`` (by header name, all as text; all when None) of every row, in order, block
    after block, the file written as ``form`` says.

    ``name`` names the file in errors (:class:`InputFileError`, for a malformed row).
    """
    stream = _utf8(stream, form)
    head, pending = _split_header(stream, name, block_bytes)
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
        frame = _parse(head + block, name, columns, rows, form)
        rows += frame.height
        yield frame


def _split_header(stream: Readable, name: str, block_bytes: int) -> tuple[bytes, bytes]:
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


def _parse(
    data: bytes,
    name: str,
    columns: Sequence[str] | None,
    rows_before: int,
    form: CsvFormat = UTF8_COMMAS,
) -> pl.DataFrame:
    # All columns are parsed, not just the ones asked for: only then does Polars refuse a row
    # with more fields than the header (an unquoted comma), instead of shifting its values.
    try:
        frame = pl.read_csv(
            data,
            has_header=True,
            infer_schema=False,
            encoding="utf8",
            raise_if_empty=False,
            separator=form.delimiter,
        )
        frame = _quotes_undoubled(frame, data, form.delimiter)
        return frame if columns is None else frame.select(columns)
    except pl.exceptions.PolarsError as exc:
        detail = _bad_row(data, rows_before, form.delimiter)
        if detail is None:
            message = str(exc).strip()
            detail = message.splitlines()[0] if message else type(exc).__name__
            detail = f"malformed CSV after row {rows_before}: {detail}"
        raise InputFileError(f"{name}: {detail}") from exc


def _quotes_undoubled(frame: pl.DataFrame, data: bytes, delimiter: str) -> pl.DataFrame:
    """``frame`` with its column names as CSV means them: Polars keeps a quoted header field's
    doubled quotes (the field ``"a""b"`` is named ``a""b``, not ``a"b``). Only names holding
    two quotes in a row are looked at, each taken as Python's csv reads the header where that
    is what Polars had kept."""
    if not any('""' in name for name in frame.columns):
        return frame
    end = _first_record_end(data)
    record = data if end < 0 else data[:end]
    decoded = next(_records(record, delimiter), [])
    if len(decoded) != frame.width:
        return frame
    names = [
        meant if kept == meant.replace('"', '""') else kept
        for kept, meant in zip(frame.columns, decoded, strict=True)
    ]
    return (
        frame.rename(dict(zip(frame.columns, names, strict=True)))
        if len(set(names)) == len(names)
        else frame
    )


def _bad_row(data: bytes, rows_before: int, delimiter: str = ",") -> str | None:
    """Which row has more fields than the header (Python's csv finds it), or which one opens
    a double quote that never closes (the one after the last record end), if one does."""
    if data.count(_QUOTE) % 2:
        cut = _last_record_end(data)
        if cut < 0:
            return None
        rows = sum(1 for _ in _records(data[:cut], delimiter)) - 1  # not the header
        return f"row {rows_before + rows + 1} opens a double quote that never closes"
    records = _records(data, delimiter)
    width = len(next(records, []))
    try:
        for number, record in enumerate(records, start=rows_before + 1):
            if len(record) > width:
                return (
                    f"row {number} has {len(record)} fields, the header {width} "
                    f"(a value with a {_NAMES.get(delimiter, repr(delimiter))} must be in double "
                    "quotes)"
                )
    except csv.Error:
        return None
    return None


def _records(data: bytes, delimiter: str = ",") -> Iterator[list[str]]:
    text = io.StringIO(data.decode("utf-8", errors="replace"), newline="")
    return csv.reader(text, delimiter=delimiter)


_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "vertical bar"}
