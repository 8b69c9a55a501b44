"""Cancelling scheduled batches at Sinch, and confirming it (Sinch answers 200 either way)."""

from __future__ import annotations

from collections.abc import Sequence

from campaign import errors, retry
from campaign.sinch.client import SinchClient


async def cancel_scheduled(client: SinchClient, batch_ids: Sequence[str]) -> list[str]:
    """Ask Sinch to cancel those of ``batch_ids`` that are still SCHEDULED; return the ones it
    confirms CANCELLED. A batch that already went out cannot be cancelled and is left alone.

    A batch that Sinch already holds CANCELLED is returned too: an earlier cancel had it
    cancelled and then failed to record it (the database was unavailable), and the caller's
    record repairs that. Sinch, not our database, says what was cancelled."""
    policy = retry.RetryPolicy(max_attempts=5)
    scheduled = []
    confirmed = []
    for batch_id in batch_ids:
        info = await retry.call(lambda b=batch_id: client.batch_status(b), policy)  # type: ignore[misc]
        if info.status == "SCHEDULED":
            scheduled.append(batch_id)
        elif info.status == "CANCELLED":
            confirmed.append(batch_id)
    if not scheduled:
        return confirmed
    await retry.call(lambda: client.cancel_batches(batch_ids=scheduled), policy)
    for batch_id in scheduled:
        try:
            info = await retry.call(lambda b=batch_id: client.batch_status(b), policy)  # type: ignore[misc]
        except errors.SinchError:
            continue
        if info.status == "CANCELLED":
            confirmed.append(batch_id)
    return confirmed
