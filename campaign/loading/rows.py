"""Rows as read -> recipient rows: identity normalised, rejection reason, parameters as JSON.

Pure functions over DataFrames; the file and its reading are :mod:`campaign.loading.source`'s.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import polars as pl

from campaign import phones
from campaign.frames import nulls
from campaign.loading import zones
from campaign.messages.limits import TextLimit
from campaign.sinch import wire

MISSING_IDENTITY = "missing identity"
INVALID_PHONE = "invalid phone number"

ROW = "__campaign_row__"  # the row number while reading; no real column is called that

OUTPUT_SCHEMA: dict[str, type[pl.DataType]] = {
    "row": pl.UInt64,  # 1-based, header not counted
    "identity_raw": pl.String,  # the cell as in the file, null when empty
    "identity": pl.String,  # normalised; null when the row is rejected
    "reason": pl.String,  # null when the row is valid
    "parameters": pl.String,  # JSON object of the message's parameters
    "time_zone": pl.String,  # with quiet hours: the zone key (campaign.quiet), null if unknown
    # With [identities]: the channel of ``identity`` when it is not the first choice (whose
    # identity the row lacks), and every identity of the row as Sinch's channel_identities
    # (a JSON array) when it has more than one; null otherwise.
    "channel": pl.String,
    "identities": pl.String,
}


def missing_parameter(name: str) -> str:
    """The rejection reason of a row without a value for parameter ``name``."""
    return f"missing value for parameter '{name}'"


@dataclass(frozen=True)
class Parameter:
    """Where a parameter's value comes from: a column, a default for its empty cells, or both."""

    name: str
    column: str | None
    default: str | None


@dataclass(frozen=True)
class IdentitySource:
    """A further channel a recipient is reached on (``[identities]``), and its column."""

    channel: str
    column: str
    phone: bool  # the identity is a phone number, to E.164


@dataclass(frozen=True)
class SlicePlan:
    """What :func:`prepare_slice` needs, settled when the file is opened."""

    identity_column: str
    phone: bool  # the identity is a phone number, to E.164
    default_country: str | None
    parameters: tuple[Parameter, ...]
    text_limit: TextLimit | None = None
    # With quiet hours, each row's time zone is worked out (campaign.loading.zones): from
    # ``zone_column`` when given (the file has it), else from the phone number.
    zones: bool = False
    zone_column: str | None = None
    # The further channels, after the first choice, in the campaign's order.
    extra: tuple[IdentitySource, ...] = ()
    channel: str = ""  # the first choice's, with ``extra``: for the rows' channel_identities

    def columns(self) -> list[str]:
        """The file's columns that are read, each once."""
        wanted = [self.identity_column, *(source.column for source in self.extra)]
        wanted += [p.column for p in self.parameters if p.column]
        if self.zones and self.zone_column:
            wanted.append(self.zone_column)
        return list(dict.fromkeys(wanted))


def prepare_slice(
    batch: pl.DataFrame, plan: SlicePlan, numbers: pl.Series | None = None
) -> pl.DataFrame:
    """Rows as read (:data:`ROW` and the plan's columns, as text) -> recipient rows.

    Columns as in :data:`OUTPUT_SCHEMA`. A row is rejected for its first problem among: no
    identity, an invalid phone number, no value for a parameter (in the plan's order), a text
    over the channel's limit. A cell holding only spaces is empty; other values are kept as
    they are. ``numbers``: the identity cells already normalised to E.164 (null: not a valid
    number), by a first pass over the file (:mod:`campaign.loading.normalised`).
    """
    values, first_missing = _parameters(plan)
    computed = batch.select(
        row=pl.col(ROW).cast(pl.UInt64),
        parameters=pl.struct(values).struct.json_encode() if values else pl.lit("{}"),
        missing=first_missing,
    )
    raw, trimmed, identity = _identities(batch, plan, numbers)
    channel = identities = nulls(batch.height, pl.String)
    phone_identity = identity if plan.phone else None
    if plan.extra:
        trimmed, identity, channel, identities, phone_identity = _several(
            batch, plan, trimmed, identity
        )
    zone, zone_reason = _zones(batch, plan, phone_identity)
    reason = (
        pl.when(pl.col("trimmed").is_null())
        .then(pl.lit(MISSING_IDENTITY))
        .when(pl.col("identity").is_null())
        .then(pl.lit(INVALID_PHONE))
        .otherwise(pl.coalesce("zone_reason", "missing"))
    )
    return pl.DataFrame(
        {
            "row": computed["row"],
            "identity_raw": raw,
            "identity": identity,
            "trimmed": trimmed,
            "missing": computed["missing"],
            "parameters": computed["parameters"],
            "zone": zone,
            "zone_reason": zone_reason,
            "channel": channel,
            "identities": identities,
        }
    ).select(
        "row",
        "identity_raw",
        identity=pl.when(reason.is_null()).then("identity"),
        reason=reason,
        parameters="parameters",
        time_zone=pl.when(reason.is_null()).then("zone"),
        channel=pl.when(reason.is_null()).then("channel"),
        identities=pl.when(reason.is_null()).then("identities"),
    )


def _parameters(plan: SlicePlan) -> tuple[list[pl.Expr], pl.Expr]:
    """Each parameter's value (its default standing in for an empty cell), and the row's first
    problem with them: a parameter without a value, else a text over the limit (null: none)."""
    values, missing = [], []
    for parameter in plan.parameters:
        cell = pl.col(parameter.column) if parameter.column else pl.lit(None, dtype=pl.String)
        empty = cell.is_null() | (cell.str.strip_chars() == "")
        if parameter.default is None:
            missing.append((empty, missing_parameter(parameter.name)))
        else:
            cell = pl.when(empty).then(pl.lit(parameter.default)).otherwise(cell)
        values.append(cell.alias(parameter.name))
    first_missing = pl.lit(None, dtype=pl.String)
    for empty, text in reversed(missing):
        first_missing = pl.when(empty).then(pl.lit(text)).otherwise(first_missing)
    if plan.text_limit is not None:
        first_missing = pl.coalesce(first_missing, _too_long(plan.text_limit, values))
    return values, first_missing


def _identities(
    batch: pl.DataFrame, plan: SlicePlan, numbers: pl.Series | None
) -> tuple[pl.Series, pl.Series, pl.Series]:
    """The identity cells as written (null when empty), trimmed (null when blank), and
    normalised (phone numbers to E.164, null when not a valid number)."""
    raw = batch[plan.identity_column]
    raw = raw.set(raw == "", None)
    trimmed = raw.str.strip_chars()
    trimmed = trimmed.set(trimmed == "", None)
    if not plan.phone:
        identity = trimmed
    elif numbers is not None:
        identity = numbers
    else:
        identity = phones.normalise(raw, plan.default_country)
    return raw, trimmed, identity


def _several(
    batch: pl.DataFrame, plan: SlicePlan, trimmed: pl.Series, first: pl.Series
) -> tuple[pl.Series, pl.Series, pl.Series, pl.Series, pl.Series | None]:
    """With further channels: the rows' cells trimmed and their identity (each the first in
    the campaign's order that the row has), that identity's channel where it is not the first
    choice, every identity as Sinch's channel_identities (JSON) where the row has several, and
    the row's first phone number (its zone). A cell that is empty, or not a valid phone
    number, leaves its channel out of the row; the row is rejected only when none is left."""
    found = {(plan.identity_column, plan.phone): (trimmed, first)}
    for source in plan.extra:
        if (source.column, source.phone) not in found:  # one phone column, several channels
            alone = dataclasses.replace(plan, identity_column=source.column, phone=source.phone)
            found[(source.column, source.phone)] = _identities(batch, alone, None)[1:]
    sources = [(plan.channel, plan.identity_column, plan.phone)]
    sources += [(source.channel, source.column, source.phone) for source in plan.extra]
    frame = pl.DataFrame(
        {f"c{k}": found[(column, phone)][0] for k, (_, column, phone) in enumerate(sources)}
        | {f"i{k}": found[(column, phone)][1] for k, (_, column, phone) in enumerate(sources)}
    )
    ids = [pl.col(f"i{k}") for k in range(len(sources))]
    channels = [channel for channel, _, _ in sources]
    which = pl.lit(None, pl.String)
    for channel, identity in reversed(list(zip(channels[1:], ids[1:], strict=True))):
        which = pl.when(identity.is_not_null()).then(pl.lit(channel)).otherwise(which)
    phones = [ids[k] for k, (_, _, phone) in enumerate(sources) if phone]
    out = frame.select(
        trimmed=pl.coalesce(pl.col(f"c{k}") for k in range(len(sources))),
        identity=pl.coalesce(ids),
        channel=pl.when(ids[0].is_null()).then(which),
        identities=wire.channel_identities(
            [(channel, ids[k], phone) for k, (channel, _, phone) in enumerate(sources)]
        ),
        phone=pl.coalesce(phones) if phones else pl.lit(None, pl.String),
    )
    phone = out["phone"] if phones else None
    return out["trimmed"], out["identity"], out["channel"], out["identities"], phone


def _zones(
    batch: pl.DataFrame, plan: SlicePlan, identity: pl.Series | None
) -> tuple[pl.Series, pl.Series]:
    """Each row's zone key and, for an unknown zone name in the file, its rejection reason;
    ``identity``: the row's phone number, if it has one (its country tells its zone)."""
    none = nulls(batch.height, pl.String)
    if not plan.zones:
        return none, none
    key, reason = zones.column_zones(batch[plan.zone_column]) if plan.zone_column else (none, none)
    if identity is not None:
        missing = key.is_null() & identity.is_not_null()
        positions = missing.arg_true()
        if positions.len():
            key = key.clone().scatter(positions, zones.phone_zones(identity.gather(positions)))
    return key, reason


def _too_long(check: TextLimit, values: list[pl.Expr]) -> pl.Expr:
    """The reason when the rendered text is over the limit, else null."""
    by_name = {value.meta.output_name(): value for value in values}
    rendered = pl.concat_str(
        [by_name[piece] if is_parameter else pl.lit(piece) for is_parameter, piece in check.pieces]
    )
    length = rendered.str.len_chars()
    reason = f"text of {{}} characters is over the {check.channel} limit of {check.limit}"
    return pl.when(length > check.limit).then(pl.format(reason, length))
