"""Temporary: re-exports for modules being rewritten; to be deleted.

What was here now lives where it belongs: the wire format in :mod:`campaign.sinch.wire`, text
limits in :mod:`campaign.messages.limits`, the dry run's estimate in :mod:`campaign.estimate`.
Only the modules being rewritten still import this (``campaign/store/``, ``campaign/sending/``,
``campaign/run/``); nothing new may.
"""

from __future__ import annotations

from campaign.estimate import default_max_in_flight, preflight
from campaign.messages.limits import text_limit
from campaign.sinch.wire import (
    ChunkEntries,
    batch_body,
    batch_entries,
    batch_entries_by_chunk,
    entry_pieces,
    individual_body,
    json_string,
    parse_recipient_key,
    recipient_key,
    recipient_key_prefix,
)

__all__ = [
    "ChunkEntries",
    "batch_body",
    "batch_entries",
    "batch_entries_by_chunk",
    "default_max_in_flight",
    "entry_pieces",
    "individual_body",
    "json_string",
    "parse_recipient_key",
    "preflight",
    "recipient_key",
    "recipient_key_prefix",
    "text_limit",
]
