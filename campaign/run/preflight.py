"""The preflight: what a run would do (``--dry-run``: the whole file read, nothing written
or sent), and the check of the credentials before anything is written."""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from campaign import errors, estimate
from campaign.errors import EXIT_INTERRUPTED
from campaign.resources import Resources, open_resources
from campaign.run import audience
from campaign.run.context import RunContext, iso
from campaign.run.load import FirstPass, open_source, say_assumed, slices, unless_stopped
from campaign.run.smsparts import SmsParts, report_line
from campaign.sinch.auth import check_credentials
from campaign.sinch.client import AppInfo, SinchClient
from campaign.store import staging, suppression
from campaign.store.suppression import Listed

logger = logging.getLogger(__name__)

_QUIET_LINES = 8


async def check(resources: Resources) -> AppInfo | None:
    """Refused credentials, or an app that the project does not have in this region, stop the
    run here (exit 2), before anything is written: sent on, every request would be refused.
    Returns the app as Sinch describes it (None when it could not be read)."""
    client = resources.need_client()
    await check_credentials(client.tokens, resources.config.sinch)
    return await read_app(client)


async def read_app(client: SinchClient) -> AppInfo | None:
    """The configured app. Sinch answers 404 for an app ID that the project does not have in
    this region (a wrong ``SINCH_APP_ID`` or ``SINCH_REGION``): a :class:`ConfigError`. Any
    other failure is only a warning: the app's figures inform the plan, they do not gate it."""
    config = client.config
    try:
        return await client.app()
    except errors.SinchError as exc:
        if exc.status == 404:
            raise errors.ConfigError(
                f"Sinch has no app {config.app_id!r} in project {config.project_id!r} in region "
                f"{config.region!r} ({exc.message}): check SINCH_APP_ID and SINCH_REGION; "
                "nothing was sent"
            ) from None
        logger.warning(
            "could not read the app %s: %s", config.app_id, exc, extra={"action": "app_unread"}
        )
        return None


@dataclass
class _Tally:
    rows: int = 0
    valid: int = 0
    duplicates: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    zones: Counter[str | None] = field(default_factory=Counter)
    sms: SmsParts | None = None  # an SMS text campaign's parts, what its bill counts
    listed: Listed | None = None  # the suppression list, when the database has one
    suppressed: int = 0

    def add(self, frame: pl.DataFrame) -> None:
        self.rows += frame.height
        reasons = frame.filter(pl.col("reason").is_not_null())["reason"].value_counts()
        for reason, count in reasons.iter_rows():
            self.rejected[reason] = self.rejected.get(reason, 0) + count
        sendable = pl.col("reason").is_null()
        self.duplicates += frame.select(pl.col("duplicate_of").is_not_null().sum()).item()
        sent = frame.filter(sendable & pl.col("duplicate_of").is_null())
        if self.listed is not None and len(self.listed):
            on = staging.on_list(sent, self.listed)
            if isinstance(on, pl.Series) and on.any():
                self.suppressed += int(on.sum())
                sent = sent.filter(~on)
        self.valid += sent.height
        self.zones.update(dict(sent.get_column("time_zone").value_counts().iter_rows()))
        if self.sms is not None:
            self.sms.add(sent)


async def dry_run(ctx: RunContext) -> int:
    """The preflight of the campaign: reads the whole file, writes and sends nothing. A signal
    stops it between two slices (or during the first pass), exit 3."""
    spec = ctx.spec
    source = open_source(spec)
    say_assumed(source, ctx.out)
    app = await _app_for_the_plan(ctx)
    audience.check_app(spec, app)  # as the run would: before the file is read through
    listed = await suppression.read_listed(ctx.config.database.url)
    tally = _Tally(sms=SmsParts.of(spec), listed=listed)
    async with FirstPass(source) as first:
        found = await unless_stopped(first.duplicates(), ctx.stop)
        if found is None:
            ctx.out(f"{spec.name}: dry run interrupted")
            return EXIT_INTERRUPTED
        async with contextlib.aclosing(slices(source, found.mark, first.numbers)) as frames:
            async for frame in frames:
                if ctx.stop.is_set():
                    ctx.out(f"{spec.name}: dry run interrupted")
                    return EXIT_INTERRUPTED
                tally.add(frame)
    _report(ctx, tally, app)
    return 0


async def _app_for_the_plan(ctx: RunContext) -> AppInfo | None:
    """The app, for the drain estimate, when the config can reach it (the embedded sandbox, or
    Sinch with credentials); None otherwise. Reading it writes and sends nothing."""
    sinch = ctx.config.sinch
    if not sinch.sandbox and not (sinch.key_id and sinch.key_secret.reveal() and sinch.app_id):
        return None
    async with open_resources(ctx.config, store=False) as resources:
        return await read_app(resources.need_client())


def _report(ctx: RunContext, tally: _Tally, app: AppInfo | None) -> None:
    spec, sending, out = ctx.spec, ctx.config.sending, ctx.out
    plan = estimate.preflight(
        rows=tally.rows,
        valid=tally.valid,
        rejected=tally.rejected,
        duplicates=tally.duplicates,
        mode=spec.mode,
        batch_size=sending.batch_size,
        rate=sending.requests_per_second,
    )
    out(f"campaign      {spec.name} ({spec.mode}, {spec.channel.value})")
    out(f"recipients    {spec.recipients}")
    out(f"rows          {plan.rows:,}")
    out(f"valid         {plan.valid:,}")
    for reason, count in sorted(plan.rejected.items(), key=lambda kv: -kv[1]):
        out(f"rejected      {count:,}  {reason}")
    out(f"duplicates    {plan.duplicates:,}")
    if tally.listed is not None:
        out(f"suppressed    {tally.suppressed:,}  on the suppression list (opted out): not sent")
    out(f"requests      {plan.requests:,}")
    if tally.sms is not None:
        out(report_line(tally.sms))
    rate = sending.requests_per_second
    out(f"submit        {estimate.duration(plan.seconds)} at {rate:,.0f} requests/s")
    drain = _drain(app, plan.valid)
    out(f"drain         {_drain_text(app, drain)}")
    out(
        f"in doubt      policy {spec.in_doubt_policy}, after {spec.in_doubt_grace:g} s "
        "without a callback"
    )
    out(f"window        {window_text(ctx, max(plan.seconds, drain or 0.0))}")
    for line in _drain_warnings(ctx, drain):
        out(line)
    for line in quiet_lines(ctx, tally.zones):
        out(line)
    out("dry run: nothing was written or sent")


def _drain(app: AppInfo | None, messages: int) -> float | None:
    if app is None:
        return None
    return estimate.drain_seconds(messages, app.outbound_rate, app.queue_size or 0)


def _drain_text(app: AppInfo | None, drain: float | None) -> str:
    """How long Sinch takes to pass the campaign on to the channels, and why."""
    if app is None or drain is None or app.outbound_rate is None:
        return "unknown: the app could not be read (the time to submit is not the time to send)"
    queued = f", behind {app.queue_size:,} already queued" if app.queue_size else ""
    return (
        f"{estimate.duration(drain)} at {app.outbound_rate:,} messages/s, the app's outbound "
        f"rate{queued}"
    )


def _drain_warnings(ctx: RunContext, drain: float | None) -> list[str]:
    """Where Sinch's queue cannot pass the campaign on in time: past a message's ttl the last
    ones would expire in it."""
    ttl = ctx.spec.send.get("ttl")
    if drain is None or not isinstance(ttl, str) or not ttl.endswith("s"):
        return []
    seconds = int(ttl[:-1])
    if drain <= seconds:
        return []
    return [
        f"warning       the last messages would wait about {estimate.duration(drain)} in "
        f"Sinch's queue, past their ttl of {estimate.duration(seconds)}: they would expire there"
    ]


def window_text(ctx: RunContext, seconds: float) -> str:
    """When the campaign may send, and whether the deadline leaves it enough time."""
    spec = ctx.spec
    now = ctx.now()
    start = max(now, spec.send_after) if spec.send_after else now
    text = "from " + ("now" if start == now else iso(start))
    if spec.deadline is None:
        return text + ", no deadline"
    text += f" until {iso(spec.deadline)}"
    room = (spec.deadline - start).total_seconds()
    if room <= 0:
        return text + ": the deadline has passed, nothing would be sent"
    if room < seconds:
        return text + f": only about {room / seconds:.0%} of the sends fit before the deadline"
    return text


def quiet_lines(ctx: RunContext, zones: Counter[str | None]) -> list[str]:
    """For the dry run: how many recipients quiet hours hold back, and until when."""
    spec = ctx.spec
    plan = spec.quiet_plan
    if plan is None:
        return []
    now = ctx.now()
    start = max(now, spec.send_after) if spec.send_after else now
    dues: Counter[datetime] = Counter()
    for key, count in zones.items():
        dues[plan.due(key, start)] += count
    free = dues.pop(start, 0)
    lines = [
        f"quiet hours   {spec.quiet_hours} in each recipient's time zone (else {spec.timezone})",
        f"              {free:,} may be sent " + ("now" if start == now else f"from {iso(start)}"),
    ]
    held = sorted(dues.items())
    for due, count in held[:_QUIET_LINES]:
        lines.append(f"              {count:,} held back until {iso(due)}")
    if len(held) > _QUIET_LINES:
        rest = sum(count for _, count in held[_QUIET_LINES:])
        lines.append(
            f"              {rest:,} held back until later times, up to {iso(held[-1][0])}"
        )
    return lines
