"""The recipients file as a whole, checked before any of it is parsed: a regular file that is
not empty, Parquet by its magic bytes or else UTF-8 CSV text with a bounded header, the columns
it must have; and its digest, which a resumed load compares.

Each check raises :class:`~campaign.errors.InputFileError`, one line that names the file and,
where it can, says what the file is instead and what to do about it.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import os
import re
import stat
from pathlib import Path

import polars as pl

from campaign.errors import InputFileError
from campaign.loading import csvblocks

PARQUET_MAGIC = b"PAR1"
_HEAD_BYTES = 64 << 10  # enough to tell an empty file
# A header has bounds, as a row has (csvblocks): a list of recipients names its columns in a few
# hundred bytes. Past these it is not a recipients file, and parsing it would take gigabytes.
MAX_HEADER_BYTES = 1 << 20
MAX_COLUMNS = 4_096
_CHECK_BYTES = 4 << 20  # read at a time by the encoding check


def read_head(path: Path) -> bytes:
    """The first bytes of a readable, non-empty regular file."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InputFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputFileError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if stat.S_ISDIR(mode):
        raise InputFileError(f"{path}: is a directory, not a recipients file")
    if not stat.S_ISREG(mode):
        # Never opened: a FIFO would block the run until a writer came, a device never ends.
        kind = _SPECIAL.get(stat.S_IFMT(mode), "not a regular file")
        raise InputFileError(
            f"{path}: is {kind}, not a recipients file; give a CSV or Parquet file"
        )
    try:
        with path.open("rb") as stream:
            head = stream.read(_HEAD_BYTES)
            size = os.fstat(stream.fileno()).st_size
    except OSError as exc:
        raise InputFileError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if not head.removeprefix(codecs.BOM_UTF8).strip():
        raise InputFileError(f"{path}: is empty")
    if size < len(head):  # /proc and /sys: made up as they are read, and cannot be mapped
        raise InputFileError(
            f"{path}: is not a file stored on disk (it says {size} bytes and holds more); "
            "copy it to a file first"
        )
    return head


_SPECIAL = {
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def check_header(path: Path, delimiter: str = ",") -> None:
    """The header line is within :data:`MAX_HEADER_BYTES` and :data:`MAX_COLUMNS`; read with a
    bound, before Polars parses it (it would hold the whole line and a column per field)."""
    with path.open("rb") as stream:
        head = stream.read(MAX_HEADER_BYTES + 1)
    end = head.find(b"\n")
    if end < 0 and len(head) > MAX_HEADER_BYTES:
        raise InputFileError(
            f"{path}: the header line is over {MAX_HEADER_BYTES >> 20} MB; a recipients file "
            "names its columns on its first line"
        )
    line = head if end < 0 else head[:end]
    columns = line.count(delimiter.encode()) + 1  # an upper bound: a quoted name may hold one
    if columns > MAX_COLUMNS:
        fields = next(csv.reader([line.decode("utf-8", "replace")], delimiter=delimiter), [])
        if len(fields) > MAX_COLUMNS:
            raise InputFileError(
                f"{path}: the header names {len(fields):,} columns, over {MAX_COLUMNS:,}; a "
                "recipients file has an identity column and its parameters"
            )


# What a file that is not text often is, by its first bytes, and what to do about it.
_NOT_TEXT = (
    (codecs.BOM_UTF32_LE, "is UTF-32 text, not UTF-8; save it as CSV UTF-8"),
    (codecs.BOM_UTF32_BE, "is UTF-32 text, not UTF-8; save it as CSV UTF-8"),
    (codecs.BOM_UTF16_LE, "is UTF-16 text, not UTF-8; save it as CSV UTF-8"),
    (codecs.BOM_UTF16_BE, "is UTF-16 text, not UTF-8; save it as CSV UTF-8"),
    (b"\x1f\x8b", "is neither CSV text nor Parquet: it is gzip-compressed; uncompress it first"),
    (b"PK\x03\x04", "is neither CSV text nor Parquet: it is a ZIP archive (an Excel workbook?)"),
    (b"\xd0\xcf\x11\xe0", "is neither CSV text nor Parquet: it is an Excel 97-2003 workbook"),
)


# What a CSV file that is not UTF-8 is taken for: what Excel saves as "CSV" on Windows in most
# of the Americas and western Europe.
FALLBACK_ENCODING = "windows-1252"


def check_text(path: Path, encoding: str | None = None) -> tuple[str, str]:
    """All of the file is text in ``encoding``, or when None in UTF-8, else in
    :data:`FALLBACK_ENCODING`: one pass, a block at a time, before any row is used (two when
    the file is not UTF-8). Returns the file's digest (as :func:`digest`), taken on the way,
    and the encoding it is read in.

    The error says where (line and byte) the first bad byte is, and names UTF-16 (what Excel's
    "Unicode text" saves), which is full of NUL bytes, rather than calling it binary data.
    """
    if encoding is not None:
        return _check_text(path, encoding), encoding
    try:
        return _check_text(path, "utf-8"), "utf-8"
    except _NotInEncoding as utf8:
        try:
            return _check_text(path, FALLBACK_ENCODING), FALLBACK_ENCODING
        except _NotInEncoding:
            raise InputFileError(
                f"{path}: is not UTF-8 text ({utf8.where}: 0x{utf8.byte:02X}) nor "
                f"{FALLBACK_ENCODING}; save it as CSV UTF-8, or name its encoding with "
                "'encoding' in the campaign file"
            ) from None


class _NotInEncoding(Exception):
    def __init__(self, where: str, byte: int) -> None:
        super().__init__(where)
        self.where, self.byte = where, byte


def _check_text(path: Path, encoding: str) -> str:
    """The digest of ``path`` once all of it decoded as ``encoding`` without a NUL byte (in an
    encoding where ASCII is itself); :class:`_NotInEncoding` where a byte does not decode."""
    decoder = codecs.getincrementaldecoder(encoding)()
    wide = codecs.lookup(encoding).name.startswith(("utf-16", "utf-32"))
    digest = hashlib.sha256()
    offset = lines = 0

    def where(position: int, block: bytes) -> str:
        line = lines + block.count(b"\n", 0, position) + 1
        return f"line {line}, byte {offset + position}"

    try:
        with path.open("rb") as stream:
            while block := stream.read(_CHECK_BYTES):
                if not offset and not wide:
                    _check_kind(path, block)
                if not wide and (nul := block.find(b"\0")) >= 0:
                    raise InputFileError(
                        f"{path}: is neither CSV text nor Parquet "
                        f"(binary data: a NUL byte at {where(nul, block)})"
                    )
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as exc:
                    raise _NotInEncoding(where(exc.start, block), block[exc.start]) from exc
                digest.update(block)
                offset += len(block)
                lines += block.count(b"\n")
            decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise _NotInEncoding("its end (mid-character)", 0) from exc
    except OSError as exc:
        raise InputFileError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    return digest.hexdigest()


def sniff_delimiter(path: Path) -> str:
    """The field separator of the header line: a comma if it has one outside quotes, else a
    semicolon (Excel's CSV where the decimal mark is a comma), else a tab, else a comma."""
    with path.open("rb") as stream:
        head = stream.read(MAX_HEADER_BYTES)
    line = head.removeprefix(codecs.BOM_UTF8).split(b"\n", 1)[0]
    outside = b"".join(line.split(b'"')[::2])  # the parts outside double quotes
    for candidate in (b",", b";", b"\t"):
        if candidate in outside:
            return candidate.decode()
    return ","


def digest(path: Path) -> str:
    """SHA-256 of the file's bytes, hex: a resumed load refuses a file that changed."""
    try:
        with path.open("rb") as stream:
            return hashlib.file_digest(stream, "sha256").hexdigest()
    except OSError as exc:
        raise InputFileError(f"{path}: cannot be read ({exc.strerror or exc})") from exc


def _check_kind(path: Path, head: bytes) -> None:
    """Refuse, by name, the usual files that are not UTF-8 text (UTF-16, compressed, Excel)."""
    for magic, problem in _NOT_TEXT:
        if head.startswith(magic):
            raise InputFileError(f"{path}: {problem}")
    # UTF-16 without a BOM: every other byte is NUL (all of ASCII), most of the time.
    sample = head[:4096]
    for order, nuls in (("LE", sample[1::2]), ("BE", sample[0::2])):
        if len(nuls) >= 2 and nuls.count(0) > 0.9 * len(nuls):
            raise InputFileError(
                f"{path}: looks like UTF-16 text ({order}, no BOM), not UTF-8; save it as CSV UTF-8"
            )


def csv_schema(path: Path, form: csvblocks.CsvFormat) -> tuple[pl.Schema, int]:
    """The header's columns and the number of rows, once every row of the file parsed (one more
    pass, a block at a time), so that a malformed row stops the run before any row is stored
    or sent."""
    names: list[str] = []
    try:
        with path.open("rb") as stream:
            names = csvblocks.header(stream, str(path), form)
        with path.open("rb") as stream:
            rows = csvblocks.check(stream, str(path), form=form)
    except OSError as exc:
        raise InputFileError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    except InputFileError as exc:
        if len(names) == 1 and any(sep in names[0] for sep in ";\t|"):
            hint = "the file seems separated by something other than its delimiter"
            raise InputFileError(f"{exc}; {hint}") from exc
        raise
    schema = pl.Schema(dict.fromkeys(names, pl.String()))
    return schema, rows


def parquet_schema(path: Path) -> tuple[pl.Schema, int]:
    """The file's columns and its number of rows (from its metadata)."""
    try:
        scan = pl.scan_parquet(path)
        return scan.collect_schema(), int(scan.select(pl.len()).collect().item())
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputFileError(f"{path}: is not a readable Parquet file ({first_line(exc)})") from exc


# A header cell that is a phone number or another number, not a column name.
_LOOKS_LIKE_DATA = re.compile(r"\s*\+?[0-9][0-9 ().\-/]{5,}\s*")


def require(path: Path, columns: tuple[str, ...], name: str, role: str) -> str:
    """``name`` if the file has that column, once; else an error that lists what it has."""
    if f"{name}_duplicated_0" in columns:  # Polars' name for a repeated header
        raise InputFileError(f"{path}: column {name!r} appears more than once in the header")
    if name in columns:
        return name
    listed = ", ".join(repr(c) for c in columns if "_duplicated_" not in c)
    near = [c for c in columns if c.strip().casefold() == name.strip().casefold()]
    hint = f"; did you mean {near[0]!r}?" if near else ""
    if not near and len(columns) == 1 and any(sep in columns[0] for sep in ";\t|"):
        hint = "; the file seems separated by something other than commas"
    elif not near and any(_LOOKS_LIKE_DATA.fullmatch(c) for c in columns):
        hint = "; its first line looks like data: the file needs a header line naming its columns"
    raise InputFileError(f"{path}: has no column {name!r} ({role}); its columns: {listed}{hint}")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
