"""The wire format of requests to Sinch: recipient keys, ``messages:send`` and Batch API
bodies, and the ``recipient_and_params`` entries as JSON text (written here one batch at a
time, by Polars a chunk at a time, or by the database: the same text)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson
import polars as pl

from campaign.models import Channel

# Every request carries the recipient's own key, so that a delivery callback can be matched to
# its row even when it arrives before the send was recorded.
_KEY_SEPARATOR = "-"


def recipient_key(campaign_key: str, position: int) -> str:
    return f"{recipient_key_prefix(campaign_key)}{position}"


def recipient_key_prefix(campaign_key: str) -> str:
    """What every recipient key of the campaign starts with; the row's position follows."""
    return campaign_key + _KEY_SEPARATOR


def parse_recipient_key(key: str) -> tuple[str, int] | None:
    """``(campaign_key, position)`` from a key made by :func:`recipient_key`, else None."""
    campaign_key, sep, position = key.rpartition(_KEY_SEPARATOR)
    if not sep or not campaign_key or not position.isdigit():
        return None
    return campaign_key, int(position)


def recipient(channel: str, identity: str, identities: str | None = None) -> dict[str, Any]:
    """A request's ``recipient``: the identity on ``channel``, or every identity of the
    recipient (``identities``: channel_identities as JSON, as the store keeps them), or a
    contact ID (the campaign names its recipients by Sinch contact ID:
    :attr:`Channel.CONTACT_ID`)."""
    if channel == Channel.CONTACT_ID:
        return {"contact_id": identity}
    if identities is not None:
        return {"identified_by": {"channel_identities": orjson.loads(identities)}}
    return {"identified_by": {"channel_identities": [{"channel": channel, "identity": identity}]}}


def individual_body(
    *,
    channel: str,
    identity: str,
    identities: str | None = None,
    message: Mapping[str, Any],
    key: str,
    send: Mapping[str, Any],
) -> dict[str, Any]:
    """The ``messages:send`` body for one recipient (``app_id`` is added by the client)."""
    body: dict[str, Any] = {
        "recipient": recipient(channel, identity, identities),
        "message": message,
        "correlation_id": key,
        "message_metadata": key,
    }
    for name, value in send.items():
        if name == "send_after":  # a scheduling instruction of ours, not a messages:send field
            continue
        body[name] = value
    return body


def batch_body(
    *,
    message: Mapping[str, Any],
    entries: orjson.Fragment,
    campaign_key: str,
    tag: str,
    send: Mapping[str, Any],
) -> dict[str, Any]:
    """A Batch API request: the message as written (Sinch substitutes ``${...}``), the
    recipients' ``entries`` (:func:`batch_entries`, or the same JSON written by the database),
    ``batch_metadata`` naming the campaign and the chunk's ``tag``, which finds the batch again
    after a lost answer, and the campaign's send fields."""
    return {
        "message": message,
        "recipient_and_params": entries,
        "batch_metadata": {"campaign": campaign_key, "chunk": tag},
        **send,
    }


# A recipient of a batch: its channel, identity, every identity when it has several (JSON),
# parameters (a JSON object) and key.
Entry = tuple[str, str, str | None, str, str]


def batch_entries(recipients: Iterable[Entry]) -> orjson.Fragment:
    """``recipient_and_params``: one entry per recipient (:data:`Entry`), ``parameters``
    being the JSON object the store keeps. Each recipient's key goes in its
    ``message_metadata``, so its callbacks (``metadata`` JSON beside ``_batch_id``) find it.

    JSON written once, here, and copied as is when the body is serialised (parameters are never
    parsed again). Chunks formed at ingest get the same text (:data:`ENTRY`): from Polars while
    their slice is staged (:func:`batch_entries_by_chunk`), or from SQL when claimed
    (:meth:`campaign.store.batches.BatchQueries.claim_formed_chunks`).
    """
    dumps = orjson.dumps
    return orjson.Fragment(
        "["
        + ",".join(
            ENTRY.format(
                recipient=_recipient_text(channel, identity, identities),
                parameters=parameters,
                key=dumps(key).decode(),
            )
            for channel, identity, identities, parameters, key in recipients
        )
        + "]"
    )


def _recipient_text(channel: str, identity: str, identities: str | None) -> str:
    """:func:`recipient` as JSON text, ``identities`` copied as they are."""
    if channel == Channel.CONTACT_ID:
        return CONTACT.format(identity=orjson.dumps(identity).decode())
    if identities is None:
        identities = ONE_IDENTITY.format(
            channel=orjson.dumps(channel).decode(), identity=orjson.dumps(identity).decode()
        )
    return IDENTIFIED.format(identities=identities)


# The text of an entry and of its parts, with their fields already JSON: the same in Python,
# Polars and SQL (:func:`entry_parts`).
ENTRY = (
    '{{"recipient":{recipient},"parameters":{parameters},"message_metadata":{{"recipient":{key}}}}}'
)
CONTACT = '{{"contact_id":{identity}}}'
IDENTIFIED = '{{"identified_by":{{"channel_identities":{identities}}}}}'
ONE_IDENTITY = '[{{"channel":{channel},"identity":{identity}}}]'


def entry_parts(template: str) -> list[str]:
    """The constant text of ``template`` around its fields, in order (a field between each):
    for those that write an entry with string concatenation."""
    return [part.replace("{{", "{").replace("}}", "}") for part in re.split(r"\{\w+\}", template)]


# A chunk's entries as :func:`batch_entries_by_chunk` writes them: (how many, the JSON array).
ChunkEntries = tuple[int, str]


def batch_entries_by_chunk(
    rows: pl.DataFrame, channel: str, campaign_key: str, room: int | None = None
) -> dict[int, ChunkEntries]:
    """:func:`batch_entries` of each chunk of ``rows``, written by Polars expressions (no
    Python object per recipient): ``rows`` holds ``chunk``, ``position``, ``identity``,
    ``parameters`` (JSON objects), and maybe ``channel`` (null: ``channel``) and
    ``identities`` as the store keeps them, in the order the entries take. With ``room``, the
    first chunks whose text fits in that many characters, one chunk at a time (memory holds no
    more)."""
    key = pl.lit(recipient_key_prefix(campaign_key)) + pl.col("position").cast(pl.String)

    def optional(name: str) -> pl.Expr:
        return pl.col(name) if name in rows.columns else pl.lit(None, pl.String)

    entry = entry_text(
        channel,
        pl.coalesce(optional("channel"), pl.lit(channel)),
        pl.col("identity"),
        optional("identities"),
        pl.col("parameters"),
        key,
        quote=json_string,
        concat=lambda parts: pl.concat_str(parts),
        coalesce=lambda a, b: pl.coalesce(a, b),
        lit=pl.lit,
    )
    array = pl.concat_str([pl.lit("["), entry.str.join(","), pl.lit("]")])
    found: dict[int, ChunkEntries] = {}
    if room is not None and room <= 0:
        return found
    for (number,), part in rows.group_by("chunk", maintain_order=True):
        text = str(part.select(array).item())
        if room is not None:
            room -= len(text)
            if room < 0:
                break
        found[int(number)] = (part.height, text)
    return found


def entry_text(
    campaign_channel: str,
    channel: Any,
    identity: Any,
    identities: Any,
    parameters: Any,
    key: Any,
    *,
    quote: Callable[[Any], Any],
    concat: Callable[[list[Any]], Any],
    coalesce: Callable[[Any, Any], Any],
    lit: Callable[[str], Any],
) -> Any:
    """An entry of :func:`batch_entries` as an expression (Polars' or SQL's, by the functions
    given) of the row's columns: the same text, written where the rows are."""

    def fill(template: str, *fields: Any) -> Any:
        parts = entry_parts(template)
        pieces = [lit(parts[0])]
        for field, part in zip(fields, parts[1:], strict=True):
            pieces += [field, lit(part)]
        return concat(pieces)

    if campaign_channel == Channel.CONTACT_ID:
        recipient_text = fill(CONTACT, quote(identity))
    else:
        one = fill(ONE_IDENTITY, quote(channel), quote(identity))
        recipient_text = fill(IDENTIFIED, coalesce(identities, one))
    return fill(ENTRY, recipient_text, parameters, quote(key))


def channel_identities(identities: list[tuple[str, pl.Expr, bool]]) -> pl.Expr:
    """Each row's ``(channel, identity, is_e164)`` whose identity is not null, as the JSON
    array of a request's ``identified_by.channel_identities``, in the order given; null where a
    row has fewer than two (its one identity is written from its ``identity`` and channel).
    E.164 numbers need no escaping: they are quoted as they are."""
    objects = [
        pl.when(identity.is_not_null()).then(
            pl.concat_str(
                [
                    pl.lit(_identity_head(channel) + ('"' if e164 else "")),
                    identity if e164 else json_string(identity),
                    pl.lit('"}' if e164 else "}"),
                ]
            )
        )
        for channel, identity, e164 in identities
    ]
    several = pl.sum_horizontal(identity.is_not_null() for _, identity, _ in identities) > 1
    joined = pl.concat_str(objects, separator=",", ignore_nulls=True)
    return pl.when(several).then(pl.concat_str([pl.lit("["), joined, pl.lit("]")]))


def _identity_head(channel: str) -> str:
    return '{"channel":' + orjson.dumps(channel).decode() + ',"identity":'


def json_string(text: pl.Expr) -> pl.Expr:
    """``text`` as a JSON string (null as ``null``), escaped by Polars' own JSON writer: a
    one-field struct encoded, its key taken off."""
    encoded = pl.struct(text.cast(pl.String).alias("v")).struct.json_encode()
    return encoded.str.slice(len('{"v":')).str.strip_suffix("}")
