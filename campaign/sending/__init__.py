"""Sending a campaign: one loop (claim, pace, write ahead, send, record, stop) and a sender
per mode (individual ``messages:send``, the Batch API) that turns claims into requests and
Sinch's answers into outcomes, classified once for every mode (:mod:`.outcomes`)."""

from campaign.sending.context import SendSettings
from campaign.sending.feed import FORMED_ENTRIES_BYTES, LoadFeed
from campaign.sending.loop import SendLoop, quiet_gc
from campaign.sending.pacer import make_limiter

__all__ = [
    "FORMED_ENTRIES_BYTES",
    "LoadFeed",
    "SendLoop",
    "SendSettings",
    "make_limiter",
    "quiet_gc",
]
