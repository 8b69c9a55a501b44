"""The wire format of requests to Sinch: recipient keys, ``messages:send`` and Batch API
bodies, and the ``recipient_and_params`` entries as JSON text (written here one batch at a
time, by Polars a chunk at a time, or by the database: the same text)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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


def recipient(channel: str, identity: str) -> dict[str, Any]:
    """A request's ``recipient``: the identity on ``channel``, or a contact ID (the campaign
    names its recipients by Sinch contact ID: :attr:`Channel.CONTACT_ID`)."""
    if channel == Channel.CONTACT_ID:
        return {"contact_id": identity}
    return {"identified_by": {"channel_identities": [{"channel": channel, "identity": identity}]}}


def individual_body(
    *,
    channel: str,
    identity: str,
    message: Mapping[str, Any],
    key: str,
    send: Mapping[str, Any],
) -> dict[str, Any]:
    """The ``messages:send`` body for one recipient (``app_id`` is added by the client)."""
    body: dict[str, Any] = {
        "recipient": recipient(channel, identity),
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


def batch_entries(channel: str, recipients: Iterable[tuple[str, str, str]]) -> orjson.Fragment:
    """``recipient_and_params``: one entry per ``(identity, parameters, key)``, ``parameters``
    being the JSON object the store keeps. Each recipient's key goes in its
    ``message_metadata``, so its callbacks (``metadata`` JSON beside ``_batch_id``) find it.

    JSON written once, here, and copied as is when the body is serialised (parameters are never
    parsed again). Chunks formed at ingest get the same text from :func:`entry_pieces`: from
    Polars while their slice is staged (:func:`batch_entries_by_chunk`), or from SQL when
    claimed (:meth:`campaign.store.batches.BatchQueries.claim_formed_chunks`).
    """
    head, middle, tail, end = entry_pieces(channel)
    dumps = orjson.dumps
    return orjson.Fragment(
        "["
        + ",".join(
            f"{head}{dumps(identity).decode()}{middle}{parameters}{tail}{dumps(key).decode()}{end}"
            for identity, parameters, key in recipients
        )
        + "]"
    )


# A chunk's entries as :func:`batch_entries_by_chunk` writes them: (how many, the JSON array).
ChunkEntries = tuple[int, str]


def batch_entries_by_chunk(
    rows: pl.DataFrame, channel: str, campaign_key: str, room: int | None = None
) -> dict[int, ChunkEntries]:
    """:func:`batch_entries` of each chunk of ``rows``, written by Polars expressions (no
    Python object per recipient): ``rows`` holds ``chunk``, ``position``, ``identity`` and
    ``parameters`` (JSON objects), in the order the entries take. With ``room``, the first
    chunks whose text fits in that many characters, one chunk at a time (memory holds no
    more)."""
    head, middle, tail, end = entry_pieces(channel)
    key = pl.lit(recipient_key_prefix(campaign_key)) + pl.col("position").cast(pl.String)
    entry = pl.concat_str(
        [
            pl.lit(head),
            json_string(pl.col("identity")),
            pl.lit(middle),
            pl.col("parameters"),
            pl.lit(tail),
            json_string(key),
            pl.lit(end),
        ]
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


def json_string(text: pl.Expr) -> pl.Expr:
    """``text`` as a JSON string (null as ``null``), escaped by Polars' own JSON writer: a
    one-field struct encoded, its key taken off."""
    encoded = pl.struct(text.cast(pl.String).alias("v")).struct.json_encode()
    return encoded.str.slice(len('{"v":')).str.strip_suffix("}")


def entry_pieces(channel: str) -> tuple[str, str, str, str]:
    """The constant text of an entry: ``head + identity + middle + parameters + tail + key +
    end``, the identity and the key being JSON strings and the parameters a JSON object (the
    same JSON as :func:`recipient`'s)."""
    metadata = ',"message_metadata":{"recipient":'
    if channel == Channel.CONTACT_ID:
        return '{"recipient":{"contact_id":', '},"parameters":', metadata, "}}"
    head = (
        '{"recipient":{"identified_by":{"channel_identities":[{"channel":'
        + orjson.dumps(channel).decode()
        + ',"identity":'
    )
    return head, '}]}},"parameters":', metadata, "}}"
