"""What every step of ``campaign run`` shares: the options, the campaign file, the clock and
where it speaks."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from campaign import campaignfile
from campaign.config import Config
from campaign.models import DispatchStats
from campaign.progress import ProgressDisplay


@dataclass(frozen=True)
class RunOptions:
    campaign_file: Path
    recipients: Path | None = None
    mode: str | None = None
    dry_run: bool = False
    wait_for_delivery: float | None = None  # seconds to wait for callbacks after sending
    force_mode: bool = False  # switch a started campaign to the mode asked for
    force_target: bool = False  # carry a started campaign on where this run sends
    wait: bool = False  # before send_after: wait for it instead of exiting
    # The send loop's counters, given by the caller that reports them when the run ends
    # (--metrics-file); a run makes its own otherwise.
    stats: DispatchStats | None = field(default=None, compare=False)


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def prepare_spec(options: RunOptions) -> campaignfile.CampaignSpec:
    spec = campaignfile.load(options.campaign_file)
    if options.recipients is not None:
        spec = dataclasses.replace(spec, recipients=options.recipients)
    if options.mode is not None:
        spec = dataclasses.replace(spec, mode=options.mode)  # type: ignore[arg-type]
    return spec


@dataclass
class RunContext:
    config: Config
    spec: campaignfile.CampaignSpec
    options: RunOptions
    stop: asyncio.Event
    display: ProgressDisplay
    out: Callable[[str], None] = print
    clock: Callable[[], datetime] = utc_now

    def now(self) -> datetime:
        return self.clock()
