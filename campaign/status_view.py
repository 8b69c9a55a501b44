"""What ``campaign status`` shows, as plain data (for ``--json``) and as text. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from campaign.models import SCHEDULED, Status
from campaign.store.repository import CampaignRow


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _utc(moment: str | None) -> str | None:
    """An ISO date-time with an offset, as UTC (``2026-12-01T09:00:00Z``)."""
    if not moment:
        return None
    return datetime.fromisoformat(moment).astimezone(UTC).isoformat().replace("+00:00", "Z")


def campaign_view(
    campaign: CampaignRow,
    counts: Mapping[Status, int],
    errors: Sequence[tuple[str, str, int]],
    delivery: Mapping[str, int] | None = None,
    stale: int = 0,
    policy: str = "hold",
    batches: Mapping[str, int] | None = None,
    send_after: str | None = None,
) -> dict[str, Any]:
    total = sum(counts.values())
    done = total - counts.get(Status.PENDING, 0) - counts.get(Status.IN_FLIGHT, 0)
    delivery = delivery or {}
    accepted = delivery.get("accepted", 0)
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
        "in_doubt": counts.get(Status.IN_DOUBT, 0),
        "in_doubt_policy": policy,
        "stale": stale,
        "batches": dict(batches or {}),
        "send_after": _utc(send_after),
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
        if view.get("accepted"):
            rates = f"  accepted by Sinch {view['accepted']:,}"
            if view["delivery_rate"] is not None:
                rates += f" · delivered {view['delivery_rate']:.1%} · read {view['read_rate']:.1%}"
            lines.append(rates)
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
