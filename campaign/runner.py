"""``campaign run``: load -> plan -> store -> dispatch -> summary. Safe to repeat.

A new campaign name starts the campaign; an interrupted one resumes where it stopped; a finished
one does nothing. The recipients file is read once, into the store; later runs use the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import threading
import time
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import orjson
import polars as pl
import ulid

from campaign import campaignfile, loading, planning, rendering, windows
from campaign.config import Config
from campaign.errors import EXIT_INTERRUPTED, CampaignError, ConfigError, StoreError
from campaign.loading import Duplicates
from campaign.membership import Membership, MembershipSettings, share, worker_name
from campaign.models import DispatchStats, Status
from campaign.progress import ProgressDisplay, RateMeter, Snapshot, snapshot
from campaign.reporting import exit_code_for, summary_lines
from campaign.retry import RetryPolicy
from campaign.runtime import Runtime, open_runtime
from campaign.sending import LoadFeed, SendLoop, SendSettings
from campaign.sinch.auth import check_credentials
from campaign.store.ingest import Staged
from campaign.store.repository import CampaignRow, Chunking, Store

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RunOptions:
    campaign_file: Path
    recipients: Path | None = None
    mode: str | None = None
    dry_run: bool = False
    wait_for_delivery: float | None = None  # seconds to wait for callbacks after sending
    force_mode: bool = False  # switch a started campaign to the mode asked for
    wait: bool = False  # before send_after: wait for it instead of exiting


def _now() -> datetime:
    return datetime.now(UTC)


def prepare_spec(options: RunOptions) -> campaignfile.CampaignSpec:
    spec = campaignfile.load(options.campaign_file)
    if options.recipients is not None:
        spec = dataclasses.replace(spec, recipients=options.recipients)
    if options.mode is not None:
        spec = dataclasses.replace(spec, mode=options.mode)  # type: ignore[arg-type]
    return spec


def open_source(spec: campaignfile.CampaignSpec) -> loading.RecipientSource:
    return loading.open_recipients(
        loading.LoadSpec(
            path=spec.recipients,
            channel=spec.channel,
            identity_column=spec.identity_column,
            default_country=spec.default_country,
            parameters=spec.parameters,
            defaults=spec.defaults,
            text_limit=planning.text_limit(spec.channel.value, spec.message),
            zones=spec.quiet_hours is not None,
            zone_column=spec.timezone_column,
        )
    )


# Rows loaded, validated and stored at a time: each slice is one transaction. Memory while
# loading is a few slices (being prepared, and being stored), whatever the file's size.
INGEST_SLICE_ROWS = 50_000


async def _slices(
    source: loading.RecipientSource,
    prepare: Callable[[pl.DataFrame], T],
    numbers: loading.NormalisedNumbers | None = None,
) -> AsyncGenerator[T, None]:
    """The slices, each read and ``prepare``-d in a worker thread, one ahead: the next slice is
    made ready while the caller stores this one, and the loop stays responsive. ``numbers``:
    the phone numbers that the first pass normalised."""
    iterator = source.slices(INGEST_SLICE_ROWS, numbers)

    def step() -> T | None:
        frame = next(iterator, None)
        return None if frame is None else prepare(frame)

    ahead = asyncio.ensure_future(asyncio.to_thread(step))
    try:
        while (item := await ahead) is not None:
            ahead = asyncio.ensure_future(asyncio.to_thread(step))
            yield item
    finally:
        # A thread cannot be stopped: the step under way ends before the caller goes on, and
        # its own error (the caller's, if any, is the one raised) is not left unretrieved.
        await asyncio.wait([ahead])
        if not ahead.cancelled():
            ahead.exception()


def _window_text(spec: campaignfile.CampaignSpec, seconds: float) -> str:
    """When the campaign may send, and whether the deadline leaves it enough time."""
    now = _now()
    start = max(now, spec.send_after) if spec.send_after else now
    text = "from " + ("now" if start == now else _iso(start))
    if spec.deadline is None:
        return text + ", no deadline"
    text += f" until {_iso(spec.deadline)}"
    room = (spec.deadline - start).total_seconds()
    if room <= 0:
        return text + ": the deadline has passed, nothing would be sent"
    if room < seconds:
        return text + f": only about {room / seconds:.0%} of the sends fit before the deadline"
    return text


def _quiet_lines(spec: campaignfile.CampaignSpec, zones: Counter[str | None]) -> list[str]:
    """For the dry run: how many recipients quiet hours hold back, and until when."""
    plan = spec.quiet_plan
    if plan is None:
        return []
    now = _now()
    start = max(now, spec.send_after) if spec.send_after else now
    dues: Counter[datetime] = Counter()
    for key, count in zones.items():
        dues[plan.due(key, start)] += count
    free = dues.pop(start, 0)
    lines = [
        f"quiet hours   {spec.quiet_hours} in each recipient's time zone (else {spec.timezone})",
        f"              {free:,} may be sent " + ("now" if start == now else f"from {_iso(start)}"),
    ]
    held = sorted(dues.items())
    for due, count in held[:_QUIET_LINES]:
        lines.append(f"              {count:,} held back until {_iso(due)}")
    if len(held) > _QUIET_LINES:
        rest = sum(count for _, count in held[_QUIET_LINES:])
        lines.append(
            f"              {rest:,} held back until later times, up to {_iso(held[-1][0])}"
        )
    return lines


_QUIET_LINES = 8


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def dry_run(
    spec: campaignfile.CampaignSpec,
    config: Config,
    out: Callable[[str], None],
    stop: asyncio.Event | None = None,
) -> int:
    """The preflight of ``spec``: reads the whole file, writes and sends nothing. A signal
    stops it between two slices (or during the first pass), exit 3."""
    stop = stop or asyncio.Event()
    source = open_source(spec)
    rows = valid = duplicates = 0
    rejected: dict[str, int] = {}
    zones: Counter[str | None] = Counter()
    async with FirstPass(source) as first:
        found = await _unless_stopped(first.duplicates(), stop)
        if found is None:
            out(f"{spec.name}: dry run interrupted")
            return EXIT_INTERRUPTED
        frames = _slices(source, found.mark, first.numbers)
        async with contextlib.aclosing(frames) as slices:
            async for frame in slices:
                if stop.is_set():
                    out(f"{spec.name}: dry run interrupted")
                    return EXIT_INTERRUPTED
                rows += frame.height
                for reason, count in (
                    frame.filter(pl.col("reason").is_not_null())["reason"]
                    .value_counts()
                    .iter_rows()
                ):
                    rejected[reason] = rejected.get(reason, 0) + count
                sendable = pl.col("reason").is_null()
                duplicates += frame.select(pl.col("duplicate_of").is_not_null().sum()).item()
                sent = frame.filter(sendable & pl.col("duplicate_of").is_null())
                valid += sent.height
                zones.update(dict(sent.get_column("time_zone").value_counts().iter_rows()))
    plan = planning.preflight(
        rows=rows,
        valid=valid,
        rejected=rejected,
        duplicates=duplicates,
        mode=spec.mode,
        batch_size=config.sending.batch_size,
        rate=config.sending.requests_per_second,
    )
    out(f"campaign      {spec.name} ({spec.mode}, {spec.channel.value})")
    out(f"recipients    {spec.recipients}")
    out(f"rows          {plan.rows:,}")
    out(f"valid         {plan.valid:,}")
    for reason, count in sorted(plan.rejected.items(), key=lambda kv: -kv[1]):
        out(f"rejected      {count:,}  {reason}")
    out(f"duplicates    {plan.duplicates:,}")
    out(f"requests      {plan.requests:,}")
    out(
        f"time          {plan.seconds:,.1f} s at {config.sending.requests_per_second:,.0f} "
        "requests/s"
    )
    out(
        f"in doubt      policy {spec.in_doubt_policy}, after {spec.in_doubt_grace:g} s "
        "without a callback"
    )
    out(f"window        {_window_text(spec, plan.seconds)}")
    for line in _quiet_lines(spec, zones):
        out(line)
    out("dry run: nothing was written or sent")
    return 0


def chunking(spec: campaignfile.CampaignSpec, config: Config, key: str) -> Chunking | None:
    """Batch mode forms its chunks as it stores the rows, unless quiet hours decide who may
    be sent when (then chunks are formed of the rows due at each claim)."""
    if spec.mode != "batch" or spec.quiet_plan is not None:
        return None
    return Chunking(config.sending.batch_size, key, channel=spec.channel.value)


@dataclass
class Loaded:
    """What this run's load stored so far (the progress total grows with it)."""

    sendable: int = 0


async def _unless_stopped(work: Awaitable[T], stop: asyncio.Event) -> T | None:
    """``work``'s result, or None when ``stop`` is set first (``work`` is then cancelled)."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait([task, stopped], return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if task.done():
        return task.result()
    task.cancel()
    return None


class FirstPass:
    """The first pass over the file (:meth:`~campaign.loading.RecipientSource.duplicates`, which
    keeps the numbers it normalised), begun in a worker thread as soon as the file is open, so
    that it runs while the store opens and the credentials are checked. A run that turns out not
    to load stops it (between two slices); it is the owner of the kept numbers."""

    def __init__(self, source: loading.RecipientSource) -> None:
        self.source = source
        self.numbers = loading.NormalisedNumbers()
        self._stop = threading.Event()
        self._task: asyncio.Future[Duplicates] | None = None

    async def __aenter__(self) -> FirstPass:
        self._task = asyncio.ensure_future(
            asyncio.to_thread(self.source.duplicates, keep=self.numbers, stop=self._stop)
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def duplicates(self) -> Duplicates:
        assert self._task is not None, "the first pass was not begun"
        return await asyncio.shield(self._task)  # a stopped load leaves it to close()

    async def close(self) -> None:
        """Stop the pass if it still runs, wait for its thread, let the numbers go."""
        self._stop.set()
        if self._task is not None:
            await asyncio.wait([self._task])
            if not self._task.cancelled():
                self._task.exception()  # retrieved: a load that needed it raised it already
        self.numbers.close()


async def _ingest(
    store: Store,
    campaign: CampaignRow,
    first_pass: FirstPass,
    chunks: Chunking | None,
    stop: asyncio.Event,
    loaded: Loaded | None = None,
    feed: LoadFeed | None = None,
) -> bool:
    """Load the file into the campaign: a first pass decides duplicates, the second stores the
    rows, a slice per transaction, and tells ``feed`` of each. False when a stop came first:
    the campaign stays LOADING, and the next run resumes the load."""
    rows = 0
    started = time.monotonic()
    try:
        found = await first_pass.duplicates()

        def stage(frame: pl.DataFrame) -> Staged:
            # The chunks' entries only for a sending beside the load, and only while there
            # is room to keep them (else they are read back when claimed).
            room = feed.room() if feed is not None else 0
            return store.ingest.stage(found.mark(frame), chunks, entries_room=room)

        numbers = first_pass.numbers
        async with contextlib.aclosing(_slices(first_pass.source, stage, numbers)) as slices:
            async for staged in slices:
                counts = await store.ingest.write(
                    campaign.id, campaign.channel, staged, _now(), chunks
                )
                rows += staged.height
                if loaded is not None:
                    loaded.sendable += counts.stored
                if feed is not None:
                    first = counts.first_chunk
                    feed.stored(
                        {}
                        if first is None
                        else {first + n: entries for n, entries in staged.entries.items()}
                    )
                if stop.is_set():
                    return False
        await store.campaigns.update(campaign.id, now=_now(), state="READY", total_rows=rows)
    finally:
        await first_pass.close()  # the kept numbers are let go with the load
        if feed is not None:
            feed.end()
    logger.info(
        "loaded recipients",
        extra={"action": "ingested", "rows": rows, "seconds": time.monotonic() - started},
    )
    return True


def _stop_on_failure(stop: asyncio.Event, loader: asyncio.Task[bool]) -> None:
    """A load that fails stops the sending; its error is the run's."""
    if not loader.cancelled() and loader.exception() is not None:
        stop.set()


def _check_same_file(campaign: CampaignRow, source: loading.RecipientSource) -> None:
    """A load resumes only over the file it began with: duplicates are decided over the whole
    file, and rows are known by their position in it."""
    if campaign.source_digest is not None and campaign.source_digest != source.digest:
        raise ConfigError(
            f"{campaign.name}: {source.path} is not the file this campaign began loading"
            f" ({campaign.source}): it changed since. Put the original back to finish loading,"
            " or load the new file as a campaign of another name"
        )


def send_settings(config: Config) -> SendSettings:
    rate = config.sending.requests_per_second
    return SendSettings(
        rate=rate,
        max_in_flight=config.sending.max_in_flight or planning.default_max_in_flight(rate),
        retry=RetryPolicy(max_attempts=config.sending.max_attempts),
        batch_size=config.sending.batch_size,
    )


# A campaign's state (beside the store's LOADING, READY, DONE, CANCELLED) while it is not due
# yet: recorded by a run before its send_after, so that `campaign status` can say when it is
# due. Nothing of it is loaded: the run that finds it due takes the campaign file and the
# recipients file as they are then, and the campaign begins LOADING.
SCHEDULED = "SCHEDULED"


def _as_now(
    spec: campaignfile.CampaignSpec, source: loading.RecipientSource, state: str
) -> dict[str, Any]:
    """The campaign's row as the files are now (a SCHEDULED campaign follows them)."""
    return {
        "state": state,
        "mode": spec.mode,
        "channel": spec.channel.value,
        "definition": orjson.dumps(spec.definition()).decode(),
        "source": str(spec.recipients),
        "source_digest": source.digest,
    }


async def _create(
    store: Store,
    spec: campaignfile.CampaignSpec,
    source: loading.RecipientSource,
    key: str,
) -> CampaignRow:
    """The campaign's row, created with ``key`` (or the row another run created first)."""
    return await store.campaigns.create(
        name=spec.name,
        key=key,
        mode=spec.mode,
        channel=spec.channel.value,
        definition=orjson.dumps(spec.definition()).decode(),
        source=str(spec.recipients),
        source_digest=source.digest,
        now=_now(),
    )


async def _schedule(
    config: Config, spec: campaignfile.CampaignSpec, source: loading.RecipientSource
) -> None:
    """Record the campaign, not due yet, as SCHEDULED (or bring a SCHEDULED one up to date
    with its files). A campaign that has begun is left as it is."""
    async with open_runtime(config, sinch=False) as runtime:
        store = runtime.need_store()
        campaign = await store.campaigns.find(spec.name)
        if campaign is None:
            key = str(ulid.ULID())
            campaign = await _create(store, spec, source, key)
            if campaign.key != key:  # another run created it first: that one decides
                return
        elif campaign.state != SCHEDULED:
            return
        await store.campaigns.update(campaign.id, now=_now(), **_as_now(spec, source, SCHEDULED))


async def run(
    config: Config,
    options: RunOptions,
    *,
    stop: asyncio.Event,
    display: ProgressDisplay,
    out: Callable[[str], None] = print,
) -> int:
    spec = prepare_spec(options)
    if options.dry_run:
        return await dry_run(spec, config, out, stop)
    source = open_source(spec)  # file-level problems stop us before anything is written
    template = rendering.MessageTemplate.compile(spec.message)
    window = windows.Window(spec.send_after, spec.deadline)
    if window.phase(_now()) is windows.Phase.EARLY:
        assert spec.send_after is not None
        due = spec.send_after.isoformat().replace("+00:00", "Z")
        await _schedule(config, spec, source)
        if not options.wait:
            out(f"{spec.name}: not due yet; it may send from {due} (run again then, or --wait)")
            return 0
        out(f"{spec.name}: waiting until {due}")
        with contextlib.suppress(TimeoutError):
            left = (spec.send_after - _now()).total_seconds()
            await asyncio.wait_for(stop.wait(), timeout=max(0.0, left))
        if stop.is_set():
            return EXIT_INTERRUPTED
    waits = options.wait_for_delivery is not None
    async with (
        FirstPass(source) as first,
        open_runtime(config, receiver=waits and not config.receiver.external) as runtime,
    ):
        store = runtime.need_store()
        if runtime.receiver is not None:
            out(f"receiving delivery callbacks on {runtime.receiver.url}")
        campaign = await store.campaigns.find(spec.name)
        if campaign is not None and campaign.state not in ("LOADING", SCHEDULED):
            await first.close()  # loaded already: the pass begun on the way is not needed
        if campaign is None or campaign.state not in ("DONE", "CANCELLED"):
            # Refused credentials stop the run here (exit 2), before anything is written:
            # sent on, they would fail every recipient.
            await check_credentials(runtime.need_client().tokens, runtime.config.sinch)
        if campaign is None:
            campaign = await _create(store, spec, source, str(ulid.ULID()))
        elif campaign.state == SCHEDULED:  # due now: it begins as a new campaign would
            await store.campaigns.update(
                campaign.id, now=_now(), **_as_now(spec, source, "LOADING")
            )
            campaign = await store.campaigns.find(spec.name)
            assert campaign is not None
        elif campaign.mode != spec.mode:
            if not options.force_mode:
                raise ConfigError(
                    f"{spec.name}: the campaign was started in {campaign.mode} mode and stays "
                    f"in it (pass --force-mode to switch it to {spec.mode})"
                )
            await store.campaigns.update(campaign.id, now=_now(), mode=spec.mode)
            out(f"{spec.name}: switched from {campaign.mode} to {spec.mode} mode")
            campaign = dataclasses.replace(campaign, mode=spec.mode)
        load: Callable[[Loaded, LoadFeed], Coroutine[Any, Any, bool]] | None = None
        if campaign.state == "LOADING":
            _check_same_file(campaign, source)
            chunks = chunking(spec, runtime.config, campaign.key)
            if chunks is not None:
                # Batch mode: each stored slice's chunks are sent while the next one loads.
                load = functools.partial(_ingest, store, campaign, first, chunks, stop)
            else:
                with display.console.status("loading recipients…"):
                    if not await _ingest(store, campaign, first, chunks, stop):
                        out(f"{spec.name}: interrupted; run the same command again to resume")
                        return EXIT_INTERRUPTED
        elif campaign.state in ("DONE", "CANCELLED"):
            done = "finished" if campaign.state == "DONE" else "cancelled"
            out(f"{spec.name}: already {done}; nothing to do")
            return 0
        sending = runtime.config.sending
        lease = sending.worker_lease
        member = await Membership.join(
            store,
            campaign.id,
            name=worker_name(),
            exclusive=spec.exclusive,
            settings=MembershipSettings(interval=sending.heartbeat_interval, lease=lease),
            clock=_now,
        )
        try:
            return await _work(
                spec, runtime, store, campaign, member, template, options, stop, display, out, load
            )
        finally:
            await member.leave(
                "LOST" if member.lost else "STOPPED" if stop.is_set() else "FINISHED"
            )


async def _work(
    spec: campaignfile.CampaignSpec,
    runtime: Runtime,
    store: Store,
    campaign: CampaignRow,
    member: Membership,
    template: rendering.MessageTemplate,
    options: RunOptions,
    stop: asyncio.Event,
    display: ProgressDisplay,
    out: Callable[[str], None],
    load: Callable[[Loaded, LoadFeed], Coroutine[Any, Any, bool]] | None = None,
) -> int:
    """Send the campaign as the worker ``member``, then wait for delivery and summarise. With
    ``load``, the campaign is loaded meanwhile, and its chunks sent as they are stored."""
    lease = member.settings.lease
    settings = send_settings(runtime.config)
    stats = DispatchStats()
    feed = LoadFeed() if load is not None else None
    sending = SendLoop(
        mode=spec.mode,
        store=store,
        client=runtime.need_client(),
        campaign=campaign,
        channel=spec.channel.value,
        template=template,
        send_fields=spec.send,
        settings=settings,
        stop=stop,
        stats=stats,
        worker_id=member.worker_id,
        window=windows.Window(spec.send_after, spec.deadline),
        quiet_hours=spec.quiet_plan,
        feed=feed,
    )
    sending.set_rate(share(settings.rate, member.live))
    # Chunks formed at ingest for another way of sending (a switched mode, quiet hours, a
    # smaller batch size) are broken up into ordinary rows first.
    formed_for = chunking(spec, runtime.config, campaign.key)
    await store.chunks.dissolve(
        campaign.id, _now(), larger_than=formed_for.size if formed_for else None
    )
    queued, released = await sending.settle(lease)
    if queued or released:
        out(
            f"{spec.name}: batches a stopped run left unanswered: {queued:,} recipients "
            f"found accepted by Sinch, {released:,} not (to be sent)"
        )

    async def settle() -> None:
        await sending.settle(lease)

    reaped = await store.workers.reap(campaign.id, _now(), lease)
    if reaped.in_doubt or reaped.released:
        out(
            f"{spec.name}: {reaped.in_doubt:,} recipients were in flight when a run stopped:"
            f" IN_DOUBT; {reaped.released:,} claimed but not sent: to be sent"
        )
    if spec.in_doubt_policy == "resend":
        older = _now() - timedelta(seconds=spec.in_doubt_grace)
        again = await store.recipients.resend_in_doubt(campaign.id, older, _now())
        if again:
            out(f"{spec.name}: {again:,} IN_DOUBT recipients had no callback: sending again")
    counts = await store.recipients.counts(campaign.id)
    total = sum(v for k, v in counts.items() if k not in (Status.REJECTED, Status.DUPLICATE))
    already = total - counts.get(Status.PENDING, 0)
    meter = RateMeter(start=time.monotonic())
    loaded = Loaded()  # counted from here on: the counts above hold what was stored before
    loader: asyncio.Task[bool] | None = None
    if load is not None and feed is not None:
        loader = asyncio.create_task(load(loaded, feed), name="load")
        loader.add_done_callback(functools.partial(_stop_on_failure, stop))

    def read() -> Snapshot:
        rate = meter.rate(time.monotonic(), stats.requests)
        return snapshot(stats, total + loaded.sendable, already, settings.rate, rate)

    beats = asyncio.create_task(
        member.run(
            on_share=lambda live: sending.set_rate(share(settings.rate, live)),
            on_lost=stop.set,
            settle=settle,
        ),
        name="heartbeat",
    )
    try:
        async with display.track(spec.name, read):
            finished = await sending.run()
    except BaseException:
        if loader is not None:  # the sending failed: so does the run, loaded or not
            loader.cancel()
        raise
    finally:
        beats.cancel()
        # After a stop, the load ends at the end of its slice.
        await asyncio.gather(beats, *([loader] if loader else []), return_exceptions=True)
    if loader is not None and not await loader:  # its error, if it failed, is the run's
        finished = False  # stopped while loading: the next run resumes the load
    deferred = sending.deferred_until
    if spec.deadline is not None and (deferred or _now()) >= spec.deadline:
        # Past the deadline, or what is left is held by quiet hours until after it.
        closed = await store.recipients.cancel_pending(
            campaign.id, _now(), windows.DEADLINE_CODE, windows.DEADLINE_REASON
        )
        if closed:
            why = (
                "the deadline passed" if deferred is None else "quiet hours last past the deadline"
            )
            out(f"{spec.name}: {why}: {closed:,} recipients not sent, CANCELLED")
        deferred = None
    if member.lost:
        out(
            f"{spec.name}: another worker declared this one dead (no heartbeat for"
            f" {lease:g} s); its recipients were settled; stopped"
        )
        return EXIT_INTERRUPTED
    if finished and deferred is None:
        await store.campaigns.update(campaign.id, now=_now(), state="DONE")
        if options.wait_for_delivery is not None:
            await wait_for_delivery(
                store, campaign.id, options.wait_for_delivery, stop, display, out
            )
    counts = await store.recipients.counts(campaign.id)
    errors = await store.recipients.error_summary(campaign.id)
    lines = summary_lines(spec.name, counts, errors)
    delivery = await store.recipients.delivery_summary(campaign.id)
    if delivery["accepted"]:
        accepted = delivery["accepted"]
        lines.append(("delivered (of accepted)", f"{delivery['delivered'] / accepted:.1%}"))
        lines.append(("read (of accepted)", f"{delivery['read'] / accepted:.1%}"))
    lines.append(("in-doubt policy", f"{spec.in_doubt_policy} after {spec.in_doubt_grace:g} s"))
    display.table(f"summary: {spec.name}", lines)
    if finished and deferred is not None:
        out(
            f"{spec.name}: {counts.get(Status.PENDING, 0):,} recipients wait for their sending"
            f" hours ({spec.quiet_hours} is quiet); the next window opens at {_iso(deferred)}:"
            " run again then"
        )
        return 0
    if not finished:
        out(f"{spec.name}: interrupted; run the same command again to resume")
        return EXIT_INTERRUPTED
    return exit_code_for(counts)


# Statuses after which a callback is still expected.
AWAITING = (Status.QUEUED, Status.QUEUED_ON_CHANNEL, Status.SWITCHING_CHANNEL)


async def wait_for_delivery(
    store: Store,
    campaign_id: int,
    seconds: float,
    stop: asyncio.Event,
    display: ProgressDisplay,
    out: Callable[[str], None],
) -> bool:
    """Wait until no sent recipient still expects a callback (True), or time runs out."""
    deadline = time.monotonic() + seconds
    counts = await store.recipients.counts(campaign_id)
    received = await store.events.count(campaign_id)
    meter = RateMeter(start=time.monotonic())

    def read() -> Snapshot:
        waiting = sum(counts.get(s, 0) for s in AWAITING)
        settled = sum(counts.get(s, 0) for s in (Status.DELIVERED, Status.READ, Status.FAILED))
        detail = (
            f"delivered {counts.get(Status.DELIVERED, 0):,} · read {counts.get(Status.READ, 0):,}"
            f" · failed {counts.get(Status.FAILED, 0):,} · waiting {waiting:,}"
        )
        rate = meter.rate(time.monotonic(), received - first)
        return Snapshot(settled, settled + waiting, rate, None, detail, "callbacks/s")

    first = received
    async with display.track("delivery", read):
        while True:
            with contextlib.suppress(StoreError):  # another applier got there first
                await store.events.apply(_now())
            counts = await store.recipients.counts(campaign_id)
            received = await store.events.count(campaign_id)
            if not any(counts.get(s, 0) for s in AWAITING):
                return True
            if stop.is_set() or time.monotonic() >= deadline:
                waiting = sum(counts.get(s, 0) for s in AWAITING)
                out(
                    f"stopped waiting for delivery: {waiting:,} recipients have no final status yet"
                )
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.5)


__all__ = ["CampaignError", "RunOptions", "run", "wait_for_delivery"]
