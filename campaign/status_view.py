"""What ``campaign status`` shows, as plain data (for ``--json``) and as text. Pure."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from campaign import estimate
from campaign.models import SCHEDULED, Status
from campaign.store.repository import CampaignRow


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _utc(moment: str | None) -> str | None:
    """An ISO date-time with an offset, as UTC (``2026-12-01T09:00:00Z``)."""
    if not moment:
        return None
    return datetime.fromisoformat(moment).astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Pace:
    """How the campaign is sent: requests per second and recipients per request (a batch)."""

    rate: float | None
    per_request: int = 1


def queue_now(campaign: CampaignRow, now: datetime) -> int | None:
    """The app's MT queue now, from its last reading: what it held, less what drained since
    at its outbound rate (the last reading, for a run sending now, is seconds old)."""
    size, outbound, at = campaign.app_queue_size, campaign.app_outbound, campaign.app_read_at
    if size is None or outbound is None or at is None:
        return None
    return max(0, size - math.floor(outbound * max(0.0, (now - at).total_seconds())))


def clocks(
    campaign: CampaignRow, pending: int, pace: Pace, now: datetime
) -> estimate.Clocks | None:
    """The two clocks of what is left: to submit the ``pending`` recipients, and for the
    app's queue to pass them on behind what it holds. None when nothing is left anywhere."""
    queued = queue_now(campaign, now)
    if not pending and not queued:
        return None
    return estimate.clocks(
        messages=pending,
        requests=math.ceil(pending / pace.per_request),
        rate=pace.rate,
        queued=queued,
        outbound=campaign.app_outbound,
    )


def _queue_view(campaign: CampaignRow, now: datetime) -> dict[str, Any] | None:
    if campaign.app_read_at is None:
        return None
    return {
        "size": campaign.app_queue_size,
        "limit": campaign.app_queue_limit,
        "outbound": campaign.app_outbound,
        "read_at": campaign.app_read_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "now": queue_now(campaign, now),
    }


def campaign_view(
    campaign: CampaignRow,
    counts: Mapping[Status, int],
    errors: Sequence[tuple[str, str, int]],
    delivery: Mapping[str, int] | None = None,
    stale: int = 0,
    policy: str = "hold",
    batches: Mapping[str, int] | None = None,
    send_after: str | None = None,
    pace: Pace | None = None,
    now: datetime | None = None,
    channels: Mapping[str, int] | None = None,
    fell_back: int = 0,
) -> dict[str, Any]:
    """What ``status`` shows of ``campaign``. ``channels``: delivered recipients per channel
    that delivered them; ``fell_back``: how many of them after another channel failed."""
    total = sum(counts.values())
    done = total - counts.get(Status.PENDING, 0) - counts.get(Status.IN_FLIGHT, 0)
    delivery = delivery or {}
    accepted = delivery.get("accepted", 0)
    now = now or datetime.now(UTC)
    pending = counts.get(Status.PENDING, 0) + counts.get(Status.IN_FLIGHT, 0)
    left = clocks(campaign, pending, pace or Pace(None), now)
    return {
        "name": campaign.name,
        "mode": campaign.mode,
        "channel": campaign.channel,
        "state": campaign.state,
        "target": campaign.target,
        "rows": total,
        "settled": done,
        "counts": {status.value: counts.get(status, 0) for status in Status},
        "errors": [
            {"status": status, "code": code, "count": count} for status, code, count in errors
        ],
        "accepted": accepted,
        "delivery_rate": _share(delivery.get("delivered", 0), accepted),
        "read_rate": _share(delivery.get("read", 0), accepted),
        "failed_after_acceptance": delivery.get("failed", 0),
        "delivered_by_channel": dict(channels or {}),
        "fell_back": fell_back,
        "in_doubt": counts.get(Status.IN_DOUBT, 0),
        "in_doubt_policy": policy,
        "stale": stale,
        "batches": dict(batches or {}),
        "send_after": _utc(send_after),
        "submit_seconds": None if left is None else left.submit,
        "drain_seconds": None if left is None else left.drain,
        "queue": _queue_view(campaign, now),
        "created_at": campaign.created_at.isoformat(),
        "updated_at": campaign.updated_at.isoformat(),
    }


def render_text(views: Sequence[Mapping[str, Any]]) -> list[str]:
    lines: list[str] = []
    for view in views:
        if view["state"] == SCHEDULED:  # nothing loaded yet: when it is due is all there is
            lines.append(
                f"{view['name']}  [{view['state']}, {view['mode']}, {view['channel']}]  "
                f"scheduled to send from {view['send_after']}; nothing loaded or sent yet"
            )
            continue
        counts = {k: v for k, v in view["counts"].items() if v}
        lines.append(
            f"{view['name']}  [{view['state']}, {view['mode']}, {view['channel']}]  "
            f"{view['settled']:,}/{view['rows']:,} settled"
        )
        lines.append("  " + "  ".join(f"{k} {v:,}" for k, v in counts.items()))
        if view.get("target"):
            lines.append(f"  sends to {view['target']}")
        if view.get("submit_seconds") is not None or view.get("drain_seconds") is not None:
            lines.append("  " + _clocks_text(view))
        if view.get("accepted"):
            rates = f"  accepted by Sinch {view['accepted']:,}"
            if view["delivery_rate"] is not None:
                rates += f" · delivered {view['delivery_rate']:.1%} · read {view['read_rate']:.1%}"
            lines.append(rates)
        if view.get("delivered_by_channel"):
            by_channel = "  ".join(
                f"{channel} {count:,}"
                for channel, count in sorted(view["delivered_by_channel"].items())
            )
            fallback = f" · fell back {view['fell_back']:,}" if view.get("fell_back") else ""
            lines.append(f"  delivered on  {by_channel}{fallback}")
        if view.get("batches"):
            lines.append(
                "  batches  " + "  ".join(f"{k} {v:,}" for k, v in sorted(view["batches"].items()))
            )
        if view.get("in_doubt"):
            lines.append(
                f"  in doubt {view['in_doubt']:,} (policy: {view['in_doubt_policy']}; "
                "sent, but Sinch's answer was lost)"
            )
        if view.get("stale"):
            lines.append(f"  stale {view['stale']:,} (queued, no callback yet: a stuck channel?)")
        for error in view["errors"][:10]:
            lines.append(f"    {error['status']:<10} {error['code']:<28} {error['count']:,}")
    return lines


def _clocks_text(view: Mapping[str, Any]) -> str:
    """``to submit 2 min 5 s · to leave Sinch's queue 13 h 53 min at 20 messages/s (queue
    4,000/5,000 as read at ...)``: what is known of the two clocks."""
    parts = []
    if view.get("submit_seconds") is not None:
        parts.append(f"to submit {estimate.duration(view['submit_seconds'])}")
    queue = view.get("queue")
    if view.get("drain_seconds") is not None and queue is not None:
        parts.append(
            f"to leave Sinch's queue {estimate.duration(view['drain_seconds'])} at "
            f"{queue['outbound']:,} messages/s (queue {queue['size']:,}/{queue['limit']:,} "
            f"as read at {queue['read_at']})"
        )
    else:
        parts.append("to leave Sinch's queue: not known (the app's queue was not read)")
    return " · ".join(parts)
