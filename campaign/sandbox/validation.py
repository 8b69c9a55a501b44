"""The synchronous checks of ``messages:send`` and Batch API requests.

Each function returns every ``(field, description)`` violation found, with the dotted field
paths Sinch uses (``recipient.identified_by.channel_identities[0].identity``,
``recipient_and_params[3].recipient...``); an empty list means the request is valid. Whether
the app exists is the caller's business (404, not 400).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Final

from campaign import jsonutil
from campaign.messages import content
from campaign.messages.channels import CHANNELS
from campaign.messages.violations import Violations
from campaign.sandbox import bulkcheck, channels, scheduling

MAX_METADATA: Final = 1024
MAX_CONVERSATION_METADATA: Final = 2048
MAX_CORRELATION_ID: Final = 128
MAX_PROPERTY: Final = 1024
MAX_CALLBACK_URL: Final = 742
MAX_RECIPIENTS: Final = 1000
TTL_RANGE: Final = (3, 315_576_000_000)

PROCESSING_STRATEGIES: Final = frozenset({"DEFAULT", "DISPATCH_ONLY"})
QUEUES: Final = frozenset({"NORMAL_PRIORITY", "HIGH_PRIORITY"})
CONTENT_TYPES: Final = frozenset({"CONTENT_UNKNOWN", "CONTENT_MARKETING", "CONTENT_NOTIFICATION"})
UPDATE_STRATEGIES: Final = frozenset({"REPLACE", "MERGE_PATCH"})

_OPTIONS: Final = frozenset(
    {
        "callback_url",
        "channel_priority_order",
        "channel_properties",
        "correlation_id",
        "ttl",
        "processing_strategy",
        "queue",
        "message_content_type",
    }
)
SEND_FIELDS: Final = _OPTIONS | {
    "app_id",
    "recipient",
    "message",
    "message_metadata",
    "conversation_metadata",
    "conversation_metadata_update_strategy",
}
BATCH_FIELDS: Final = _OPTIONS | {
    "app_id",
    "message",
    "recipient_and_params",
    "batch_metadata",
    "message_metadata",
    "conversation_metadata",
    "send_after",
}
RECIPIENT_FIELDS: Final = frozenset(
    {"recipient", "parameters", "message_metadata", "conversation_metadata"}
)

_TTL: Final = re.compile(r"(\d{1,12})s")
_URL: Final = re.compile(r"https?://[^/\s?#]+(?:[/?#]\S*)?")


def check_send(body: Any, *, strict: bool = True) -> list[tuple[str, str]]:
    """Violations of a ``messages:send`` body."""
    v = Violations()
    if not isinstance(body, dict):
        return [("", "the request body must be a JSON object")]
    v.string(body, "app_id", "")
    _required(body, "recipient", v, check_recipient)
    _required(body, "message", v, content.check_message)
    v.string(body, "message_metadata", "", required=False, max_len=MAX_METADATA)
    if "conversation_metadata" in body:
        meta = v.obj(body["conversation_metadata"], "conversation_metadata")
        if meta is not None and len(jsonutil.dumpb(meta)) > MAX_CONVERSATION_METADATA:
            limit = MAX_CONVERSATION_METADATA
            v.add("conversation_metadata", f"must be at most {limit} characters as JSON")
    v.enum(body, "conversation_metadata_update_strategy", "", UPDATE_STRATEGIES)
    _check_options(body, v)
    if strict:
        _unknown(body, SEND_FIELDS, "", v)
    return v.items


def dispatch_violations(recipients: Iterable[tuple[str, Any]]) -> list[tuple[str, str]]:
    """For an app in DISPATCH mode, which has no contacts: each ``(path, recipient)`` that
    names a ``contact_id`` instead of ``identified_by``, refused."""
    return [
        (
            path,
            "contact_id is not supported for an app in DISPATCH processing mode; use identified_by",
        )
        for path, recipient in recipients
        if isinstance(recipient, dict) and "contact_id" in recipient
    ]


def check_batch(
    body: Any, *, now: datetime, strict: bool = True, items_proven: bool = False
) -> list[tuple[str, str]]:
    """Violations of a Batch API ``POST /messages`` body; ``now`` judges ``send_after``.
    ``items_proven``: its ``recipient_and_params`` was proven valid as it was parsed
    (:func:`bulkcheck.proven_batch`), and is not in ``body``."""
    v = Violations()
    if not isinstance(body, dict):
        return [("", "the request body must be a JSON object")]
    v.string(body, "app_id", "")
    _required(body, "message", v, content.check_message)
    if not items_proven:
        items = v.array(body, "recipient_and_params", "", minimum=1, maximum=MAX_RECIPIENTS)
        # The item-by-item check is what says what is wrong and where; it only runs when the
        # bulk proof (the same rules, several times cheaper per item) cannot vouch for them.
        if items and not bulkcheck.all_valid(items, RECIPIENT_FIELDS if strict else None):
            for i, item in enumerate(items):
                path = f"recipient_and_params[{i}]"
                _check_recipient_and_params(item, path, v, strict=strict)
    for key in ("batch_metadata", "message_metadata", "conversation_metadata"):
        if key in body:
            v.obj(body[key], key)
    if (text := v.string(body, "send_after", "", required=False)) is not None:
        moment = scheduling.parse_time(text)
        if moment is None:
            v.add("send_after", "must be an ISO-8601 timestamp")
        elif scheduling.too_far(moment, now):
            v.add("send_after", "must be at most 7 days ahead")
    _check_options(body, v)
    if strict:
        _unknown(body, BATCH_FIELDS, "", v)
    return v.items


def check_recipient(value: Any, path: str, v: Violations) -> None:
    """``contact_id`` or ``identified_by.channel_identities``: exactly one of them."""
    if (obj := v.obj(value, path)) is None:
        return
    if ("contact_id" in obj) == ("identified_by" in obj):
        v.add(path, "exactly one of contact_id or identified_by is required")
    if "contact_id" in obj:
        v.string(obj, "contact_id", path)
    if "identified_by" not in obj:
        return
    where = f"{path}.identified_by"
    if (ident := v.obj(obj["identified_by"], where)) is None:
        return
    for i, item in enumerate(v.array(ident, "channel_identities", where, minimum=1) or ()):
        at = f"{where}.channel_identities[{i}]"
        if (entry := v.obj(item, at)) is None:
            continue
        channel = v.string(entry, "channel", at)
        if channel is not None and channel not in CHANNELS:
            v.add(f"{at}.channel", f"unknown channel {channel!r}")
            channel = None
        identity = v.string(entry, "identity", at)
        if channel and identity and not channels.valid_identity(channel, identity):
            expected = "an E.164 phone number" if channel in channels.PHONE_CHANNELS else "set"
            v.add(f"{at}.identity", f"invalid identity for {channel}: must be {expected}")


def _check_recipient_and_params(item: Any, path: str, v: Violations, *, strict: bool) -> None:
    if (obj := v.obj(item, path)) is None:
        return
    _required(obj, "recipient", v, check_recipient, path)
    v.string_map(obj, "parameters", path)
    for key in ("message_metadata", "conversation_metadata"):
        if key in obj:
            v.obj(obj[key], f"{path}.{key}")
    if strict:
        _unknown(obj, RECIPIENT_FIELDS, path, v)


def _check_options(body: dict[str, Any], v: Violations) -> None:
    """The optional fields shared by ``messages:send`` and the Batch API."""
    url = v.string(body, "callback_url", "", required=False, max_len=MAX_CALLBACK_URL)
    if url is not None and not _URL.fullmatch(url):
        v.add("callback_url", "must be an http(s) URL")
    for i, channel in enumerate(v.array(body, "channel_priority_order", "") or ()):
        if channel not in CHANNELS:
            v.add(f"channel_priority_order[{i}]", f"unknown channel {channel!r}")
    v.string_map(body, "channel_properties", "", max_len=MAX_PROPERTY)
    v.string(body, "correlation_id", "", required=False, max_len=MAX_CORRELATION_ID)
    if "ttl" in body:
        ttl = body["ttl"]
        match = _TTL.fullmatch(ttl) if isinstance(ttl, str) else None
        if match is None:
            v.add("ttl", 'must be a duration string such as "86400s"')
        elif not TTL_RANGE[0] <= int(match[1]) <= TTL_RANGE[1]:
            v.add("ttl", f"must be between {TTL_RANGE[0]}s and {TTL_RANGE[1]}s")
    v.enum(body, "processing_strategy", "", PROCESSING_STRATEGIES)
    v.enum(body, "queue", "", QUEUES)
    v.enum(body, "message_content_type", "", CONTENT_TYPES)


def _required(
    obj: dict[str, Any],
    key: str,
    v: Violations,
    check: Callable[[Any, str, Violations], None],
    path: str = "",
) -> None:
    where = f"{path}.{key}" if path else key
    if key not in obj:
        v.add(where, "is required")
    else:
        check(obj[key], where, v)


def _unknown(obj: dict[str, Any], known: frozenset[str], path: str, v: Violations) -> None:
    for key in obj:
        if key not in known:
            v.add(f"{path}.{key}" if path else key, "unknown field")
