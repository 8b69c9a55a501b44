"""Staging a slice of loaded rows for the database: pure CPU work, done off the event loop while
the previous slice is being stored (:mod:`campaign.store.ingest` stores it).

Loaded rows become :data:`STAGED` columns (:func:`staged_frame`): rejected rows keep their
reason, duplicates name the row that holds their identity, and in batch mode valid rows are
numbered into chunks. For SQLite they are also written as JSON by Polars expressions
(:func:`json_members`, :func:`json_arrays`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import polars as pl

from campaign.models import Status
from campaign.sinch import wire
from campaign.store import chunks
from campaign.store.records import reject_code
from campaign.store.suppression import OPTED_OUT, OPTED_OUT_NOTE, Listed


@dataclass(frozen=True)
class Chunking:
    """Batch mode: put valid rows in chunks of ``size`` as they are stored; each chunk's tag
    (its ``batch_metadata``) is ``<key>:<number>``. With ``channel``, each slice's chunks
    also get their request entries, written while the slice is staged (see
    :attr:`Staged.entries`)."""

    size: int
    key: str
    channel: str | None = None


# The staged columns, in order: what each slice row carries into ``recipients``.
STAGED = (
    "position",
    "identity_raw",
    "identity",
    "parameters",
    "status",
    "error_code",
    "error_description",
    "time_zone",
    "chunk",
    "channel",  # null: the campaign's channel
    "identities",  # every identity, as channel_identities JSON, when there are several
)

DUPLICATE_CODE = "DUPLICATE"
DUPLICATE_NOTE = "same identity as row {}"  # the row that holds its identity


def staged_frame(
    frame: pl.DataFrame, chunk_size: int | None = None, suppressed: Listed | None = None
) -> pl.DataFrame:
    """Loaded rows (``row, identity_raw, identity, reason, parameters``, and ``duplicate_of``
    when duplicates were decided) -> :data:`STAGED`; with ``chunk_size``, valid rows follow
    chunks numbered from 0 in the slice (the ingest adds the number of the campaign's next
    chunk). A valid row with an identity (any of its identities) in ``suppressed`` (the
    suppression list) is SUPPRESSED: kept with its identity, never sent, in no chunk."""
    reasons = frame.get_column("reason").drop_nulls().unique().to_list()
    codes = {reason: reject_code(reason) for reason in reasons}
    rejected = pl.col("reason").is_not_null()
    if "duplicate_of" in frame.columns:
        duplicate = rejected.not_() & pl.col("duplicate_of").is_not_null()
        note = pl.format(DUPLICATE_NOTE, pl.col("duplicate_of"))
    else:
        duplicate, note = pl.lit(False), pl.lit(None, pl.String)
    opted_out = rejected.not_() & duplicate.not_() & on_list(frame, suppressed)
    unsendable = rejected | duplicate | opted_out
    valid = pl.lit(Status.PENDING.value if chunk_size is None else chunks.FOLLOWS)
    if chunk_size is None:
        chunk = pl.lit(None, pl.Int64)
    else:
        order = (~unsendable).cast(pl.Int64).cum_sum() - 1
        chunk = pl.when(unsendable).then(None).otherwise(order // chunk_size)
    return frame.select(
        position=pl.col("row").cast(pl.Int64),
        # The cell as written, where it differs from the identity (most files hold E.164
        # already: the report shows the identity then).
        identity_raw=pl.when(unsendable | (pl.col("identity_raw") != pl.col("identity")))
        .then(pl.col("identity_raw"))
        .otherwise(None),
        # Only sendable rows hold an identity; the others keep the cell as it was written.
        identity=pl.when(rejected | duplicate).then(None).otherwise(pl.col("identity")),
        parameters=pl.col("parameters").fill_null("{}"),
        status=pl.when(rejected)
        .then(pl.lit(Status.REJECTED.value))
        .when(duplicate)
        .then(pl.lit(Status.DUPLICATE.value))
        .when(opted_out)
        .then(pl.lit(Status.SUPPRESSED.value))
        .otherwise(valid),
        error_code=pl.when(duplicate)
        .then(pl.lit(DUPLICATE_CODE))
        .when(opted_out)
        .then(pl.lit(OPTED_OUT))
        .otherwise(pl.col("reason").replace_strict(codes, default=None, return_dtype=pl.String)),
        error_description=pl.when(duplicate)
        .then(note)
        .when(opted_out)
        .then(pl.lit(OPTED_OUT_NOTE))
        .otherwise(pl.col("reason")),
        time_zone=pl.col("time_zone") if "time_zone" in frame.columns else pl.lit(None, pl.String),
        chunk=chunk.cast(pl.Int64),
        channel=_optional(frame, "channel", sendable=~unsendable),
        identities=_optional(frame, "identities", sendable=~unsendable),
    )


def on_list(frame: pl.DataFrame, suppressed: Listed | None) -> pl.Series | pl.Expr:
    """Whether the row's identity, or any of its identities, is on the suppression list."""
    if suppressed is None or not len(suppressed):
        return pl.lit(False)
    found = suppressed.holds(frame.get_column("identity"))
    several = frame.get_column("identities") if "identities" in frame.columns else None
    if several is not None and several.null_count() < several.len():
        rows = several.is_not_null().arg_true()
        others = several.gather(rows).str.json_decode(
            pl.List(pl.Struct({"channel": pl.String, "identity": pl.String}))
        )
        each = others.explode().struct.field("identity")
        owner = pl.Series(rows).gather(
            pl.int_range(0, others.len(), eager=True).repeat_by(others.list.len()).explode()
        )
        listed = owner.filter(suppressed.holds(each))
        found = found.scatter(listed, True) if listed.len() else found
    return found


def _optional(frame: pl.DataFrame, name: str, sendable: pl.Expr) -> pl.Expr:
    """A loaded column that a sendable row may have (null when the frame lacks it)."""
    if name not in frame.columns:
        return pl.lit(None, pl.String)
    return pl.when(sendable).then(pl.col(name))


@dataclass(frozen=True)
class Staged:
    """A slice of loaded rows made ready for the database by :func:`stage`: pure CPU work, done
    off the event loop while the previous slice is being stored."""

    frame: pl.DataFrame  # :data:`STAGED`
    chunk_size: int | None
    valid: int
    duplicates: int
    # SQLite: the valid rows as one JSON object (json_members), and the others (rejected,
    # duplicate) as one JSON array of arrays (json_arrays)
    valid_json: str | None = None
    unsendable_json: str | None = None
    # With Chunking.channel: each chunk's request entries (wire.batch_entries_by_chunk),
    # by its number within the slice; the run that stores the slice sends them without
    # reading its rows back (IngestCounts.first_chunk numbers them).
    entries: dict[int, wire.ChunkEntries] = dataclasses.field(default_factory=dict)

    @property
    def height(self) -> int:
        return self.frame.height


def stage(
    frame: pl.DataFrame,
    chunking: Chunking | None,
    dialect: str,
    entries_room: int | None = None,
    suppressed: Listed | None = None,
) -> Staged:
    """Loaded rows -> :class:`Staged` for ``dialect`` (``sqlite`` or ``postgresql``); with
    ``chunking.channel``, the entries of the slice's first chunks, as many as fit in
    ``entries_room`` characters (all when None); ``suppressed``: the suppression list."""
    chunk_size = chunking.size if chunking else None
    staged = staged_frame(frame, chunk_size, suppressed)
    is_valid = pl.col("error_code").is_null()
    valid, duplicates = staged.select(
        is_valid.sum(), (pl.col("status") == Status.DUPLICATE.value).sum()
    ).row(0)
    entries: dict[int, wire.ChunkEntries] = {}
    if chunking is not None and chunking.channel is not None:
        entries = wire.batch_entries_by_chunk(
            staged.filter(is_valid), chunking.channel, chunking.key, entries_room
        )
    if dialect != "sqlite":
        return Staged(staged, chunk_size, valid, duplicates, entries=entries)
    return Staged(
        staged,
        chunk_size,
        valid,
        duplicates,
        valid_json=json_members(staged.filter(is_valid)),
        unsendable_json=json_arrays(staged.filter(~is_valid), STAGED),
        entries=entries,
    )


def json_arrays(frame: pl.DataFrame, names: tuple[str, ...]) -> str:
    """``frame``'s ``names`` columns as one JSON array of arrays (one per row), written by
    Polars expressions: SQLite reads it with ``json_each``, several times faster than an array
    of objects, and without a Python object per value."""
    parts: list[pl.Expr] = []
    for name in names:
        parts.extend([pl.lit(","), _json_value(name, frame.schema[name])])
    row = pl.concat_str([pl.lit("["), *parts[1:], pl.lit("]")])
    return "[" + str(frame.select(row.str.join(",")).item()) + "]"


def json_members(valid: pl.DataFrame) -> str:
    """Valid rows (:data:`STAGED`) as one JSON object, a member per row, in order: named
    ``"<position> <identity>"``, and valued by the parameters (a JSON string), or where the row
    also has a raw cell or a zone, by ``[parameters, identity_raw, time_zone]``, and where it
    has another channel or several identities, by ``[parameters, identity_raw, time_zone,
    channel, identities]``. SQLite reads a plain row's values off ``json_each``'s ``key`` and
    ``value`` columns without parsing it again (:func:`_valid_source`)."""
    parameters = wire.json_string(pl.col("parameters"))
    usual = pl.col("channel").is_null() & pl.col("identities").is_null()
    plain = usual & pl.col("identity_raw").is_null() & pl.col("time_zone").is_null()
    extra = [pl.col("identity_raw"), pl.col("time_zone")]

    def array(values: list[pl.Expr]) -> pl.Expr:
        parts = [parameters]
        for value in values:
            parts += [pl.lit(","), wire.json_string(value)]
        return pl.concat_str([pl.lit("["), *parts, pl.lit("]")])

    value = (
        pl.when(plain)
        .then(parameters)
        .when(usual)
        .then(array(extra))
        .otherwise(array([*extra, pl.col("channel"), pl.col("identities")]))
    )
    name = wire.json_string(pl.format("{} {}", pl.col("position"), pl.col("identity")))
    member = pl.concat_str([name, pl.lit(":"), value])
    return "{" + str(valid.select(member.str.join(",")).item()) + "}"


def _json_value(name: str, dtype: pl.DataType) -> pl.Expr:
    """A column's values as JSON text (``null`` for null)."""
    if dtype.is_integer():
        return pl.col(name).cast(pl.String).fill_null("null")
    return wire.json_string(pl.col(name))
