"""The recipients file: checked as a whole when opened, then read in slices of rows."""

from __future__ import annotations

import codecs
import csv
import dataclasses
import hashlib
import logging
import os
import re
import stat
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl

from campaign import phones
from campaign.errors import ConfigError, InputFileError
from campaign.loading import csvblocks
from campaign.loading.duplicates import Duplicates, bucket_bits
from campaign.loading.normalised import NormalisedNumbers
from campaign.loading.rows import ROW, Parameter, SlicePlan, prepare_slice
from campaign.messages.limits import TextLimit
from campaign.models import PHONE_CHANNELS, Channel

logger = logging.getLogger(__name__)

_PARQUET_MAGIC = b"PAR1"
_HEAD_BYTES = 64 << 10  # enough to tell an empty file
# A header has bounds, as a row has (csvblocks): a list of recipients names its columns in a few
# hundred bytes. Past these it is not a recipients file, and parsing it would take gigabytes.
MAX_HEADER_BYTES = 1 << 20
MAX_COLUMNS = 4_096
_CHECK_BYTES = 4 << 20  # read at a time by the encoding check
_WORKERS = 2  # slices prepared at once: Polars works without the GIL, so both cores are used


@dataclass(frozen=True)
class LoadSpec:
    """What to read and how to judge it."""

    path: Path
    channel: Channel
    identity_column: str
    default_country: str | None  # ISO 3166 alpha-2, for phone numbers without a country code
    parameters: tuple[str, ...]  # the columns the message uses (``${name}``)
    defaults: Mapping[str, str]  # the value of a parameter whose cell is empty
    text_limit: TextLimit | None = None  # the message's text and the channel's limit
    # Quiet hours: work out each row's time zone, from ``zone_column`` (which the file must
    # have) or, when that is None, from a column named ``timezone`` if the file has one.
    zones: bool = False
    zone_column: str | None = None


# Rows per slice of the first pass, which holds only the identity column: the larger the
# slice, the fewer Polars calls per row (1M numbers: 0.67 s with 50,000, 0.50 s with 200,000).
FIRST_PASS_ROWS = 200_000


class PassStopped(Exception):
    """A pass over the file was stopped before its end: what it found is not whole."""


@dataclass(frozen=True)
class RecipientSource:
    """A recipients file that passed the file-level checks."""

    path: Path
    format: Literal["csv", "parquet"]
    columns: tuple[str, ...]  # every column of the file, in order
    plan: SlicePlan
    rows: int  # data rows (the header not counted)
    digest: str  # SHA-256 of the file's bytes, hex

    def slices(
        self, rows_per_slice: int = 250_000, numbers: NormalisedNumbers | None = None
    ) -> Iterator[pl.DataFrame]:
        """The recipient rows in input order, ``rows_per_slice`` at a time (the last fewer).

        Columns as in :data:`campaign.loading.rows.OUTPUT_SCHEMA`. Memory holds a few slices,
        whatever the file's size. A malformed row (more fields than the header, a quote that
        never closes) was already refused when the file was opened. ``numbers``: what
        :meth:`duplicates` normalised, not normalised again.
        """
        if rows_per_slice < 1:
            raise ValueError("rows_per_slice must be at least 1")
        frames = self._frames(rows_per_slice, self.plan.columns())
        return self._prepared(_numbered(frames, rows_per_slice), self.plan, numbers)

    def duplicates(
        self,
        rows_per_slice: int = FIRST_PASS_ROWS,
        keep: NormalisedNumbers | None = None,
        stop: threading.Event | None = None,
    ) -> Duplicates:
        """The file's duplicates, ready to :meth:`~Duplicates.mark` the slices of
        :meth:`slices`: a first pass over the file that reads and normalises only the identity
        column (see :mod:`campaign.loading.duplicates`); the phone numbers it normalised go to
        ``keep``, for :meth:`slices`. :class:`PassStopped` once ``stop`` is set (looked at
        between slices)."""
        plan = dataclasses.replace(
            self.plan, parameters=(), text_limit=None, zones=False, zone_column=None
        )
        found = Duplicates(bucket_bits(self.rows))
        frames = self._frames(rows_per_slice, plan.columns())
        for frame in self._prepared(_numbered(frames, rows_per_slice), plan):
            if stop is not None and stop.is_set():
                raise PassStopped(f"{self.path}: the first pass was stopped")
            identities = frame.get_column("identity")
            found.observe(identities)
            if keep is not None and plan.phone and frame.height:
                keep.keep(int(frame.item(0, "row")), frame.get_column("identity_raw"), identities)
        return found

    def _prepared(
        self,
        numbered: Iterable[pl.DataFrame],
        plan: SlicePlan,
        numbers: NormalisedNumbers | None = None,
    ) -> Iterator[pl.DataFrame]:
        """:func:`prepare_slice` of each slice, in order, with at most _WORKERS slices being
        prepared while the caller works on the one before."""
        with ThreadPoolExecutor(_WORKERS, thread_name_prefix="recipients") as pool:
            in_flight: deque[Future[pl.DataFrame]] = deque()
            try:
                for batch in numbered:
                    in_flight.append(pool.submit(_prepare, batch, plan, numbers))
                    if len(in_flight) >= _WORKERS:
                        yield in_flight.popleft().result()
                while in_flight:
                    yield in_flight.popleft().result()
            finally:
                for future in in_flight:
                    future.cancel()

    def _frames(self, rows_per_slice: int, columns: list[str]) -> Iterator[pl.DataFrame]:
        """``columns`` of every row, as text, in pieces of any size."""
        try:
            if self.format == "csv":
                with self.path.open("rb") as stream:
                    yield from csvblocks.read_blocks(stream, str(self.path), columns)
            else:
                scan = pl.scan_parquet(self.path).select(pl.col(columns).cast(pl.String))
                yield from scan.collect_batches(chunk_size=rows_per_slice, lazy=True)
        except OSError as exc:
            raise InputFileError(f"{self.path}: cannot be read ({exc.strerror or exc})") from exc
        except pl.exceptions.PolarsError as exc:
            raise InputFileError(f"{self.path}: {_first_line(exc)}") from exc


def open_recipients(spec: LoadSpec) -> RecipientSource:
    """Check the file as a whole and say how to read it; raises :class:`InputFileError`.

    Checked, before any row is used: the file exists, is a readable file, is Parquet (by its
    magic bytes) or UTF-8 text without NUL bytes read as CSV with a header, and has the
    identity column and every parameter column that ``defaults`` does not stand in for. An
    unknown ``default_country`` is a :class:`ConfigError`.
    """
    country = spec.default_country.upper() if spec.default_country else None
    if country is not None and not phones.is_known_region(country):
        raise ConfigError(f"default_country {spec.default_country!r} is not a known ISO region")
    path = spec.path
    if _read_head(path).startswith(_PARQUET_MAGIC):
        kind: Literal["csv", "parquet"] = "parquet"
        schema, rows = _parquet_schema(path)
        digest = _digest(path)
    else:
        kind = "csv"
        _check_header(path)
        digest = _check_text(path)
        schema, rows = _csv_schema(path)
    columns = tuple(schema)
    identity_column = _require(path, columns, spec.identity_column, "the identity column")
    parameters = tuple(
        _parameter(path, columns, name, spec.defaults) for name in dict.fromkeys(spec.parameters)
    )
    plan = SlicePlan(
        identity_column=identity_column,
        phone=spec.channel in PHONE_CHANNELS,
        default_country=country,
        parameters=parameters,
        text_limit=spec.text_limit,
        zones=spec.zones,
        zone_column=_zone_column(path, columns, spec),
    )
    for name in plan.columns():
        dtype = schema[name]
        if dtype.is_nested() or isinstance(dtype, _NOT_TEXT_TYPES):
            raise InputFileError(f"{path}: column {name!r} holds {dtype}, not text")
    logger.info(
        "recipients file opened",
        extra={"action": "open_recipients", "path": str(path), "format": kind},
    )
    return RecipientSource(
        path=path, format=kind, columns=columns, plan=plan, rows=rows, digest=digest
    )


# Parquet column types that are not read as text: bytes (maybe not UTF-8), durations, objects.
_NOT_TEXT_TYPES = (pl.Binary, pl.Duration, pl.Object, pl.Null)


def _prepare(
    batch: pl.DataFrame, plan: SlicePlan, numbers: NormalisedNumbers | None
) -> pl.DataFrame:
    """:func:`prepare_slice`, with the slice's phone numbers from ``numbers`` where it has
    them for these very cells."""
    known = None
    if numbers is not None and plan.phone and batch.height:
        cells = batch.get_column(plan.identity_column)
        known = numbers.numbers(int(batch.item(0, ROW)), cells.set(cells == "", None))
    return prepare_slice(batch, plan, known)


def _numbered(frames: Iterable[pl.DataFrame], size: int) -> Iterator[pl.DataFrame]:
    """The rows of ``frames`` again, ``size`` at a time, with their 1-based number (ROW)."""
    waiting: list[pl.DataFrame] = []
    count = 0
    first = 1
    for frame in frames:
        if not frame.height:
            continue
        waiting.append(frame)
        count += frame.height
        while count >= size:
            whole = pl.concat(waiting) if len(waiting) > 1 else waiting[0]
            yield _with_row_numbers(whole.head(size), first)
            first += size
            rest = whole.slice(size)
            waiting, count = ([rest] if rest.height else []), rest.height
    if count:
        yield _with_row_numbers(pl.concat(waiting), first)


def _with_row_numbers(frame: pl.DataFrame, first: int) -> pl.DataFrame:
    return frame.with_columns(
        pl.int_range(first, first + frame.height, dtype=pl.UInt64, eager=True).alias(ROW)
    )


# --- file-level checks -------------------------------------------------------------------------


def _read_head(path: Path) -> bytes:
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


def _check_header(path: Path) -> None:
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
    columns = line.count(b",") + 1  # an upper bound: a quoted name may hold a comma
    if columns > MAX_COLUMNS:
        fields = next(csv.reader([line.decode("utf-8", "replace")]), [])
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


def _check_text(path: Path) -> str:
    """All of the file is UTF-8 text: one pass, a block at a time, before any row is used.
    Returns the file's digest (as :func:`_digest`), taken on the way.

    The error says where (line and byte) the first bad byte is, and names UTF-16 (what Excel's
    "Unicode text" saves), which is full of NUL bytes, rather than calling it binary data.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    digest = hashlib.sha256()
    offset = lines = 0

    def where(position: int, block: bytes) -> str:
        line = lines + block.count(b"\n", 0, position) + 1
        return f"line {line}, byte {offset + position}"

    try:
        with path.open("rb") as stream:
            while block := stream.read(_CHECK_BYTES):
                if not offset:
                    _check_kind(path, block)
                if (nul := block.find(b"\0")) >= 0:
                    raise InputFileError(
                        f"{path}: is neither CSV text nor Parquet "
                        f"(binary data: a NUL byte at {where(nul, block)})"
                    )
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as exc:
                    raise InputFileError(
                        f"{path}: is not UTF-8 text ({where(exc.start, block)}: "
                        f"0x{block[exc.start]:02X}; Latin-1 or Windows-1252?); "
                        "save it as CSV UTF-8"
                    ) from exc
                digest.update(block)
                offset += len(block)
                lines += block.count(b"\n")
            decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise InputFileError(f"{path}: is not UTF-8 text (it ends mid-character)") from exc
    except OSError as exc:
        raise InputFileError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    return digest.hexdigest()


def _digest(path: Path) -> str:
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


def _csv_schema(path: Path) -> tuple[pl.Schema, int]:
    """The header's columns and the number of rows, once every row of the file parsed (one more
    pass, a block at a time), so that a malformed row stops the run before any row is stored
    or sent."""
    try:
        schema = pl.scan_csv(path, infer_schema=False, encoding="utf8").collect_schema()
    except pl.exceptions.PolarsError as exc:
        raise InputFileError(f"{path}: is not a readable CSV file ({_first_line(exc)})") from exc
    try:
        with path.open("rb") as stream:
            rows = csvblocks.check(stream, str(path))
    except OSError as exc:
        raise InputFileError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    except InputFileError as exc:
        names = schema.names()
        if len(names) == 1 and any(sep in names[0] for sep in ";\t|"):
            hint = "the file seems separated by something other than commas"
            raise InputFileError(f"{exc}; {hint}") from exc
        raise
    return schema, rows


def _parquet_schema(path: Path) -> tuple[pl.Schema, int]:
    """The file's columns and its number of rows (from its metadata)."""
    try:
        scan = pl.scan_parquet(path)
        return scan.collect_schema(), int(scan.select(pl.len()).collect().item())
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputFileError(
            f"{path}: is not a readable Parquet file ({_first_line(exc)})"
        ) from exc


# A header cell that is a phone number or another number, not a column name.
_LOOKS_LIKE_DATA = re.compile(r"\s*\+?[0-9][0-9 ().\-/]{5,}\s*")


def _require(path: Path, columns: tuple[str, ...], name: str, role: str) -> str:
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


DEFAULT_ZONE_COLUMN = "timezone"


def _zone_column(path: Path, columns: tuple[str, ...], spec: LoadSpec) -> str | None:
    if not spec.zones:
        return None
    if spec.zone_column is not None:
        return _require(path, columns, spec.zone_column, "the time-zone column")
    return DEFAULT_ZONE_COLUMN if DEFAULT_ZONE_COLUMN in columns else None


def _parameter(
    path: Path, columns: tuple[str, ...], name: str, defaults: Mapping[str, str]
) -> Parameter:
    default = defaults.get(name)
    if name not in columns and default is not None:
        return Parameter(name, None, default)
    role = "used by the message, and [defaults] has no value for it"
    return Parameter(name, _require(path, columns, name, role), default)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
