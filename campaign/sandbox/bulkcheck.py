"""A batch's ``recipient_and_params`` proved valid in bulk, a thousand at a time.

Checking a batch item by item costs about two microseconds a recipient in Python, more than
parsing the body and everything else the sandbox does for it. Almost every batch a client
sends is made of well-formed recipients of one shape, so :func:`all_valid` proves that with
one C-level pass per field (``map``, ``set``, ``str.join``, one regex over all identities)
instead of a Python loop. It answers ``True`` only when the item-by-item check would find no
violation in any item; ``False`` means "look closer" (the caller then runs that check, which
says what is wrong and where), never "invalid". It may refuse valid shapes it does not know,
such as ``contact_id`` recipients: they only take the slower road.

Every lookup below indexes with a string key (``itemgetter``). Among parsed JSON values only
an object allows that; the other types raise ``TypeError``, a missing key ``KeyError``, and
both mean "look closer". So a successful lookup has also proved that its input was an object.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from itertools import chain, repeat
from operator import attrgetter, itemgetter
from typing import Annotated, Any, Final

import msgspec
import orjson

from campaign.messages.channels import CHANNELS
from campaign.sandbox import channels

#: :data:`channels.E164` for many identities at once, each followed by a newline.
E164_LINES: Final = re.compile(rf"(?:{channels.E164.pattern}\n)*")

_OBJECT_FIELDS: Final = ("message_metadata", "conversation_metadata")
_NO_VALUE: Final[dict[str, Any]] = {}
_recipient = itemgetter("recipient")
_identified_by = itemgetter("identified_by")
_channel_identities = itemgetter("channel_identities")
_channel = itemgetter("channel")
_identity = itemgetter("identity")


# --- a batch body proven valid as it is parsed --------------------------------------------------
#
# Parsing a thousand recipients into dicts, then proving them valid, costs the sandbox more than
# everything else it does for a batch. msgspec parses them into typed structs instead, which
# proves on the way what :func:`all_valid` proves (a struct refuses what it does not declare, a
# missing field, a value of another type), in about half the time; :func:`proven_batch` then
# checks the channels and identities in bulk. Anything it cannot prove takes the ordinary road.


class _ChannelIdentity(msgspec.Struct, gc=False):
    channel: str
    identity: str


class _IdentifiedBy(msgspec.Struct, gc=False):
    channel_identities: Annotated[list[_ChannelIdentity], msgspec.Meta(min_length=1)]


class _Recipient(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    identified_by: _IdentifiedBy


class _Object(msgspec.Struct, gc=False):
    """Any JSON object: proven one, its content skipped (nothing is built of it)."""


class _Item(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A ``recipient_and_params`` item: only :data:`validation.RECIPIENT_FIELDS`."""

    recipient: _Recipient
    parameters: dict[str, str] | msgspec.UnsetType = msgspec.UNSET
    message_metadata: _Object | msgspec.UnsetType = msgspec.UNSET
    conversation_metadata: _Object | msgspec.UnsetType = msgspec.UNSET


_FIELDS: Final = msgspec.json.Decoder(dict[str, msgspec.Raw])
_entry_channel = attrgetter("channel")
_entry_identity = attrgetter("identity")
_ITEMS: Final = msgspec.json.Decoder(list[_Item])
ITEMS_FIELD: Final = "recipient_and_params"


def proven_batch(raw: bytes, most: int) -> tuple[dict[str, Any], msgspec.Raw, int] | None:
    """A Batch API body whose ``recipient_and_params`` (1 to ``most`` items) is proven to have
    no violation: the body without that field, the field's JSON, and how many items it holds.
    None: nothing proven (not JSON, not an object, an item of another shape...); the caller
    then parses and checks the body the ordinary way, which says what is wrong."""
    try:
        fields = _FIELDS.decode(raw)
        items = fields.pop(ITEMS_FIELD, None)
        if items is None:
            return None
        parsed = _ITEMS.decode(items)
        body = {name: orjson.loads(memoryview(value)) for name, value in fields.items()}
    except (msgspec.DecodeError, orjson.JSONDecodeError):  # ValidationError is a DecodeError
        return None
    if not 1 <= len(parsed) <= most:
        return None
    entries = list(
        chain.from_iterable(item.recipient.identified_by.channel_identities for item in parsed)
    )
    names, identities = list(map(_entry_channel, entries)), list(map(_entry_identity, entries))
    return (body, items, len(parsed)) if _identities_valid(names, identities) else None


def all_valid(items: list[Any], known: frozenset[str] | None) -> bool:
    """Whether no item of ``items`` has a violation; ``known``: the allowed fields of an item,
    or ``None`` when unknown fields are let through."""
    try:
        recipients = list(map(_recipient, items))  # also proves that every item is an object
        fields: set[str] = set().union(*items)
        if known is not None and not fields <= known:
            return False
        return _recipients_valid(recipients) and _optional_fields_valid(items, fields)
    except (KeyError, TypeError):  # a lookup failed (see the module docstring)
        return False


def _recipients_valid(recipients: list[dict[str, Any]]) -> bool:
    """Every recipient identified by channel identities of the right shape."""
    identified = list(map(_identified_by, recipients))  # also proves them all objects
    # Only ``identified_by`` (a recipient with ``contact_id``, or both, looks closer).
    if set().union(*recipients) != {"identified_by"}:
        return False
    lists = list(map(_channel_identities, identified))
    if _types(lists) != {list} or not all(lists):
        return False
    entries = list(chain.from_iterable(lists))
    return _identities_valid(list(map(_channel, entries)), list(map(_identity, entries)))


def _identities_valid(names: list[Any], identities: list[Any]) -> bool:
    """Every channel known, and every identity a string of its channel's shape."""
    found = set(names)
    if not found <= CHANNELS or _types(identities) != {str}:
        return False
    if found <= channels.PHONE_CHANNELS:
        return _all_e164(identities)
    return all(map(channels.valid_identity, names, identities))


def _all_e164(identities: list[str]) -> bool:
    """Every identity an E.164 number: one regex over all of them, a newline after each.
    E.164 has no newline, so the lines are the identities only if none contains one."""
    lines = "\n".join(identities) + "\n"
    return lines.count("\n") == len(identities) and E164_LINES.fullmatch(lines) is not None


def _optional_fields_valid(items: list[dict[str, Any]], fields: set[str]) -> bool:
    """``parameters`` maps strings to strings; the metadata fields are objects."""
    if "parameters" in fields:
        parameters = _values(items, "parameters")
        if _types(parameters) != {dict} or not _all_strings(
            chain.from_iterable(map(dict.values, parameters))
        ):
            return False
    return all(_types(_values(items, key)) == {dict} for key in _OBJECT_FIELDS if key in fields)


def _all_strings(values: Iterable[Any]) -> bool:
    """Whether every value is a string: ``str.join`` takes nothing else, at C speed."""
    try:
        "".join(values)
    except TypeError:
        return False
    return True


def _values(items: list[dict[str, Any]], key: str) -> list[Any]:
    """``item[key]`` of every item, an empty object where it is absent."""
    return list(map(dict.get, items, repeat(key), repeat(_NO_VALUE)))


def _types(values: Iterable[Any]) -> set[type]:
    return set(map(type, values))
