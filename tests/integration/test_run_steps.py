"""The steps of `campaign run`, each alone, with the clock injected (campaign.run)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from campaign import config as config_mod
from campaign.errors import EXIT_INTERRUPTED, ConfigError
from campaign.models import SCHEDULED, Status
from campaign.progress import ProgressDisplay
from campaign.run import finish, preflight, state
from campaign.run.context import RunContext, RunOptions, prepare_spec
from campaign.run.load import open_source
from campaign.store import engine as store_engine
from campaign.store import repository as repo
from tests.recipients import loaded

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def context(
    tmp_path: Path,
    database_url: str,
    *,
    clock: Callable[[], datetime] = lambda: NOW,
    extra: str = "",
    **options: object,
) -> tuple[RunContext, list[str]]:
    recipients = tmp_path / "recipients.csv"
    recipients.write_text("phone,name\n+12015550001,A\n+12015550002,B\n")
    campaign_file = tmp_path / "campaign.toml"
    campaign_file.write_text(
        'name = "steps"\n'
        f'recipients = "{recipients}"\n'
        'mode = "individual"\n'
        'channel = "SMS"\n'
        'identity_column = "phone"\n' + extra + "[message]\n"
        'text_message = { text = "Hi ${name}" }\n'
    )
    (tmp_path / "config.toml").write_text("[sinch]\nsandbox = true\n")
    config = config_mod.load_config(tmp_path / "config.toml", env={}, database_url=database_url)
    run_options = RunOptions(campaign_file=campaign_file, **options)  # type: ignore[arg-type]
    said: list[str] = []
    ctx = RunContext(
        config,
        prepare_spec(run_options),
        run_options,
        asyncio.Event(),
        ProgressDisplay(),
        said.append,
        clock,
    )
    return ctx, said


def test_the_dry_runs_window_and_quiet_hours_are_read_at_the_clocks_time(tmp_path: Path) -> None:
    extra = (
        'send_after = "2026-11-21T13:00:00Z"\ndeadline = "2026-11-21T13:00:10Z"\n'
        'quiet_hours = "21:00-08:00"\ntimezone = "UTC"\n'
    )
    ctx, _ = context(tmp_path, "sqlite://", extra=extra)
    assert preflight.window_text(ctx, 5.0) == "from 2026-11-21T13:00:00Z until 2026-11-21T13:00:10Z"
    assert preflight.window_text(ctx, 20.0).endswith(
        "only about 50% of the sends fit before the deadline"
    )
    late = dataclasses.replace(ctx, clock=lambda: NOW + timedelta(hours=2))
    assert preflight.window_text(late, 1.0).endswith(
        "the deadline has passed, nothing would be sent"
    )
    lines = preflight.quiet_lines(ctx, Counter({"UTC": 2}))
    assert "2 may be sent from 2026-11-21T13:00:00Z" in lines[1]


@pytest.fixture
async def store(database_url: str) -> repo.Store:  # type: ignore[misc]
    if database_url.startswith("postgresql"):
        store_engine.upgrade_sync(database_url)
    opened = await repo.Store.open(database_url)
    yield opened
    await opened.close()


async def test_before_send_after_the_window_step_schedules_and_exits_0(
    tmp_path: Path, database_url: str, store: repo.Store
) -> None:
    extra = 'send_after = "2026-11-21T13:00:00Z"\n'
    ctx, said = context(tmp_path, database_url, extra=extra)
    assert await state.wait_until_due(ctx, open_source(ctx.spec)) == 0
    assert said == [
        "steps: not due yet; it may send from 2026-11-21T13:00:00Z (run again then, or --wait)"
    ]
    found = await store.campaigns.find("steps")
    assert found is not None and found.state == SCHEDULED
    # At its time, the same step lets the run go on; a stop while waiting exits 3.
    due, _ = context(tmp_path, database_url, extra=extra, clock=lambda: NOW + timedelta(hours=1))
    assert await state.wait_until_due(due, open_source(due.spec)) is None
    waiting, _ = context(tmp_path, database_url, extra=extra, wait=True)
    waiting.stop.set()
    assert await state.wait_until_due(waiting, open_source(waiting.spec)) == EXIT_INTERRUPTED


async def test_the_campaign_state_step_creates_and_keeps_its_mode(
    tmp_path: Path, database_url: str, store: repo.Store
) -> None:
    ctx, said = context(tmp_path, database_url)
    source = open_source(ctx.spec)
    created = await state.current(ctx, store, None, source)
    assert (created.state, created.mode, created.created_at) == ("LOADING", "individual", NOW)
    assert await state.current(ctx, store, created, source) == created
    batch = dataclasses.replace(ctx, spec=dataclasses.replace(ctx.spec, mode="batch"))
    with pytest.raises(ConfigError, match="stays in it"):
        await state.current(batch, store, created, source)
    forced = dataclasses.replace(
        batch, options=RunOptions(ctx.options.campaign_file, force_mode=True)
    )
    switched = await state.current(forced, store, created, source)
    assert switched.mode == "batch" and said == ["steps: switched from individual to batch mode"]


async def test_past_the_deadline_what_is_left_is_cancelled_and_the_summary_says_how_it_went(
    tmp_path: Path, database_url: str, store: repo.Store
) -> None:
    extra = 'deadline = "2026-11-21T11:00:00Z"\n'
    ctx, said = context(tmp_path, database_url, extra=extra)
    campaign = await state.current(ctx, store, None, open_source(ctx.spec))
    await store.ingest.write(
        campaign.id, "SMS", loaded(["+12015550001", "+12015550002"], ["{}", "{}"]), NOW
    )
    assert await finish.close_deadline(ctx, store, campaign, None) is None
    assert said == ["steps: the deadline passed: 2 recipients not sent, CANCELLED"]
    assert await store.recipients.counts(campaign.id) == {Status.CANCELLED: 2}
    assert await finish.summary(ctx, store, campaign, finished=False, deferred=None) == (
        EXIT_INTERRUPTED
    )
    assert said[-1] == "steps: interrupted; run the same command again to resume"
