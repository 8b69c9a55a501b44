"""``campaign report NAME --output report.html``: one self-contained HTML page of a campaign's
figures, for an operator's browser, with no network at all (plotly.js is inlined).

Everything on it is aggregated in SQL by the store (counts per status, error codes, delivering
channels, deliveries per minute): a page of a million recipients reads a few hundred rows.
Plotly draws the charts (the funnel, deliveries over time, failures, channels) and jinja2 lays
out the page; the figures themselves come from :func:`page_figures`, a plain function.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
import markupsafe

from campaign.models import Status

_ACCEPTED = (
    Status.QUEUED,
    Status.QUEUED_ON_CHANNEL,
    Status.SWITCHING_CHANNEL,
    Status.DELIVERED,
    Status.READ,
)
_ON_CHANNEL = (Status.QUEUED_ON_CHANNEL, Status.DELIVERED, Status.READ)
_DELIVERED = (Status.DELIVERED, Status.READ)


@dataclass(frozen=True)
class ReportData:
    """What the page shows, as the store counted it."""

    name: str
    state: str
    mode: str
    counts: Mapping[Status, int]
    failures: Sequence[tuple[str, str, int]]  # (status, error code, count), most first
    channels: Mapping[str, int]  # delivered (or read) per delivering channel
    over_time: Sequence[tuple[str, int]]  # (UTC minute, delivered)
    generated: datetime


def funnel(counts: Mapping[Status, int]) -> list[tuple[str, int]]:
    """accepted -> on channel -> delivered -> read: each stage counts those that reached it."""

    def total(statuses: Sequence[Status]) -> int:
        return sum(counts.get(s, 0) for s in statuses)

    return [
        ("accepted", total(_ACCEPTED)),
        ("on channel", total(_ON_CHANNEL)),
        ("delivered", total(_DELIVERED)),
        ("read", counts.get(Status.READ, 0)),
    ]


def render(data: ReportData) -> str:
    """The page, as HTML text."""
    import plotly.graph_objects as go  # imported here: only the HTML report needs it
    from plotly.offline import get_plotlyjs

    total = sum(data.counts.values())
    stages = funnel(data.counts)
    failed = data.counts.get(Status.FAILED, 0)
    headline = [("recipients", total), *stages[:3], ("failed", failed)]
    statuses = [
        (status.value, data.counts[status], data.counts[status] / total * 100)
        for status in Status
        if data.counts.get(status)
    ]
    charts: list[tuple[str, Any]] = [
        (
            "funnel",
            go.Figure(
                go.Funnel(y=[s for s, _ in stages], x=[n for _, n in stages]),
                layout={"title": "Delivery funnel"},
            ),
        ),
        (
            "status",
            go.Figure(
                go.Bar(x=[s for s, _, _ in statuses], y=[n for _, n, _ in statuses]),
                layout={"title": "Recipients by status"},
            ),
        ),
        (
            "over-time",
            go.Figure(
                go.Scatter(
                    x=[at for at, _ in data.over_time],
                    y=[n for _, n in data.over_time],
                    mode="lines+markers",
                ),
                layout={"title": "Delivered per minute (UTC)"},
            ),
        ),
        (
            "failures",
            go.Figure(
                go.Bar(
                    x=[n for _, _, n in data.failures][:15],
                    y=[f"{s}: {c}" for s, c, _ in data.failures][:15],
                    orientation="h",
                ),
                layout={"title": "Failure reasons"},
            ),
        ),
        (
            "channels",
            go.Figure(
                go.Pie(labels=list(data.channels), values=list(data.channels.values())),
                layout={"title": "Delivering channels"},
            ),
        ),
    ]
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("campaign", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    page = environment.get_template("report.html.j2")
    return page.render(
        name=data.name,
        state=data.state,
        mode=data.mode,
        generated=data.generated.isoformat(timespec="seconds"),
        headline=headline,
        statuses=statuses,
        failures=data.failures,
        plotly_js=markupsafe.Markup(f'<script type="text/javascript">{get_plotlyjs()}</script>'),
        charts=[
            {
                "id": chart_id,
                "html": markupsafe.Markup(
                    figure.to_html(
                        full_html=False, include_plotlyjs=False, div_id=chart_id + "-plot"
                    )
                ),
            }
            for chart_id, figure in charts
        ],
    )


def write(path: Path, data: ReportData) -> None:
    """Write the page to ``path``."""
    path.write_text(render(data), encoding="utf-8")
