"""What ``campaign status`` shows, as plain data (for ``--json``) and as text. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from campaign.models import Status
from campaign.store.repository import CampaignRow


def campaign_view(
    campaign: CampaignRow, counts: Mapping[Status, int], errors: Sequence[tuple[str, str, int]]
) -> dict[str, Any]:
    total = sum(counts.values())
    done = total - counts.get(Status.PENDING, 0) - counts.get(Status.IN_FLIGHT, 0)
    return {
        "name": campaign.name,
        "mode": campaign.mode,
        "channel": campaign.channel,
        "state": campaign.state,
        "rows": total,
        "settled": done,
        "counts": {status.value: counts.get(status, 0) for status in Status},
        "errors": [
            {"status": status, "code": code, "count": count} for status, code, count in errors
        ],
        "created_at": campaign.created_at.isoformat(),
        "updated_at": campaign.updated_at.isoformat(),
    }


def render_text(views: Sequence[Mapping[str, Any]]) -> list[str]:
    lines: list[str] = []
    for view in views:
        counts = {k: v for k, v in view["counts"].items() if v}
        lines.append(
            f"{view['name']}  [{view['state']}, {view['mode']}, {view['channel']}]  "
            f"{view['settled']:,}/{view['rows']:,} settled"
        )
        lines.append("  " + "  ".join(f"{k} {v:,}" for k, v in counts.items()))
        for error in view["errors"][:10]:
            lines.append(f"    {error['status']:<10} {error['code']:<28} {error['count']:,}")
    return lines
