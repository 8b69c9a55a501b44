"""The recipients file: checked as a whole when opened (:mod:`campaign.loading.files`), then
read in slices of rows."""

from __future__ import annotations

import dataclasses
import logging
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
from campaign.loading import csvblocks, files
from campaign.loading.duplicates import Duplicates, bucket_bits
from campaign.loading.normalised import NormalisedNumbers
from campaign.loading.rows import ROW, IdentitySource, Parameter, SlicePlan, prepare_slice
from campaign.messages.limits import TextLimit
from campaign.models import PHONE_CHANNELS, Channel

logger = logging.getLogger(__name__)

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
    # Further channels, each from a column, after ``channel`` (the campaign's [identities]).
    identities: tuple[tuple[Channel, str], ...] = ()
    # CSV: the field separator and the encoding; None: told from the file (a comma, else a
    # semicolon or a tab; UTF-8, else Windows-1252), and said (RecipientSource.assumed).
    delimiter: str | None = None
    encoding: str | None = None


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
    form: csvblocks.CsvFormat = csvblocks.UTF8_COMMAS  # CSV: how it is written
    # CSV: what was told from the file rather than said by the campaign, in words (None: all
    # as the defaults: UTF-8 with commas, or as the campaign said).
    assumed: str | None = None

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
                # The first choice's numbers: a row whose identity is on another channel
                # has none.
                numbers = identities.set(frame.get_column("channel").is_not_null(), None)
                keep.keep(int(frame.item(0, "row")), frame.get_column("identity_raw"), numbers)
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
                    yield from csvblocks.read_blocks(
                        stream, str(self.path), columns, form=self.form
                    )
            else:
                scan = pl.scan_parquet(self.path).select(pl.col(columns).cast(pl.String))
                yield from scan.collect_batches(chunk_size=rows_per_slice, lazy=True)
        except OSError as exc:
            raise InputFileError(f"{self.path}: cannot be read ({exc.strerror or exc})") from exc
        except pl.exceptions.PolarsError as exc:
            raise InputFileError(f"{self.path}: {files.first_line(exc)}") from exc


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
    form, assumed = csvblocks.UTF8_COMMAS, None
    if files.read_head(path).startswith(files.PARQUET_MAGIC):
        kind: Literal["csv", "parquet"] = "parquet"
        schema, rows = files.parquet_schema(path)
        digest = files.digest(path)
    else:
        kind = "csv"
        delimiter = spec.delimiter or files.sniff_delimiter(path)
        files.check_header(path, delimiter)
        digest, encoding = files.check_text(path, spec.encoding)
        form = csvblocks.CsvFormat(delimiter, encoding)
        assumed = _assumed(spec, form)
        schema, rows = files.csv_schema(path, form)
    columns = tuple(schema)
    identity_column = files.require(path, columns, spec.identity_column, "the identity column")
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
        extra=tuple(
            IdentitySource(
                channel.value,
                files.require(path, columns, column, f"the {channel.value} identity column"),
                channel in PHONE_CHANNELS,
            )
            for channel, column in spec.identities
        ),
        channel=spec.channel.value,
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
        path=path,
        format=kind,
        columns=columns,
        plan=plan,
        rows=rows,
        digest=digest,
        form=form,
        assumed=assumed,
    )


_DELIMITERS = {",": "commas", ";": "semicolons", "\t": "tabs"}


def _assumed(spec: LoadSpec, form: csvblocks.CsvFormat) -> str | None:
    """What was told from the file and differs from UTF-8 with commas, in words."""
    told = []
    if spec.encoding is None and not form.utf8:
        told.append(f"{form.encoding} text (not UTF-8)")
    if spec.delimiter is None and form.delimiter != ",":
        told.append(f"fields separated by {_DELIMITERS.get(form.delimiter, form.delimiter)}")
    return " with ".join(told) or None


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


DEFAULT_ZONE_COLUMN = "timezone"


def _zone_column(path: Path, columns: tuple[str, ...], spec: LoadSpec) -> str | None:
    if not spec.zones:
        return None
    if spec.zone_column is not None:
        return files.require(path, columns, spec.zone_column, "the time-zone column")
    return DEFAULT_ZONE_COLUMN if DEFAULT_ZONE_COLUMN in columns else None


def _parameter(
    path: Path, columns: tuple[str, ...], name: str, defaults: Mapping[str, str]
) -> Parameter:
    default = defaults.get(name)
    if name not in columns and default is not None:
        return Parameter(name, None, default)
    role = "used by the message, and [defaults] has no value for it"
    return Parameter(name, files.require(path, columns, name, role), default)
