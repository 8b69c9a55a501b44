"""The store on real SQLite and real Postgres, with the schema built by the migrations."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import polars as pl
import pytest
from sqlalchemy import inspect, select, text

from campaign.errors import ConfigError
from campaign.models import Status
from campaign.store import engine as store_engine
from campaign.store import repository as repo
from campaign.store.tables import metadata, recipients
from tests.recipients import deduplicated

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


async def new_campaign(store: repo.Store, name: str = "c1") -> repo.CampaignRow:
    return await store.campaigns.create(
        name=name,
        key=f"K{name}",
        mode="individual",
        channel="SMS",
        definition="{}",
        source="r.csv",
        now=NOW,
    )


def frame(rows: list[tuple[int, str | None, str | None, str | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "row": [r[0] for r in rows],
            "identity_raw": [r[1] for r in rows],
            "identity": [r[2] for r in rows],
            "reason": [r[3] for r in rows],
            "parameters": ['{"name":"x"}'] * len(rows),
        },
        schema={
            "row": pl.UInt64,
            "identity_raw": pl.String,
            "identity": pl.String,
            "reason": pl.String,
            "parameters": pl.String,
        },
    )


async def test_migrations_build_exactly_the_models(database_url: str) -> None:
    store_engine.upgrade_sync(database_url)
    engine = store_engine.create_engine_sync(database_url)
    try:
        with engine.connect() as conn:
            from alembic.autogenerate import compare_metadata
            from alembic.runtime.migration import MigrationContext

            diff = compare_metadata(MigrationContext.configure(conn), metadata)
            assert diff == []
            assert store_engine.current_revision(conn) == store_engine.head_revision()
            tables = set(inspect(conn).get_table_names())
        assert {"campaigns", "recipients", "events", "batches"} <= tables
    finally:
        engine.dispose()
    store_engine.downgrade_sync(database_url, "base")
    store_engine.upgrade_sync(database_url)


def test_one_migration_head() -> None:
    from alembic.script import ScriptDirectory

    assert len(ScriptDirectory.from_config(store_engine.alembic_config()).get_heads()) == 1
    # Every command checks the schema against this constant, without importing Alembic.
    assert store_engine.head_revision() == store_engine.HEAD_REVISION


def test_a_command_on_a_schema_at_head_does_not_import_alembic(tmp_path: Path) -> None:
    """Alembic (with Mako and Pygments) is imported only to change the schema."""
    url = f"sqlite:///{tmp_path / 'c.db'}"
    store_engine.upgrade_sync(url)
    script = (
        "import asyncio, sys\n"
        "from campaign import cli\n"
        "from campaign.store.repository import Store\n"
        "async def main():\n"
        f"    store = await Store.open({url!r})\n"
        "    await store.close()\n"
        "asyncio.run(main())\n"
        "assert 'alembic' not in sys.modules, 'alembic was imported'\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


async def test_create_campaign_is_idempotent(store: repo.Store) -> None:
    first = await new_campaign(store)
    again = await store.campaigns.create(
        name="c1", key="other", mode="batch", channel="SMS", definition="{}", source="x", now=NOW
    )
    assert again.id == first.id
    assert again.key == "Kc1"  # the first one stays
    assert first.created_at == NOW


async def test_ingest_stores_rejects_and_the_duplicates_the_load_decided(
    store: repo.Store,
) -> None:
    campaign = await new_campaign(store)
    first, second = deduplicated(
        frame(
            [
                (1, "+1 201", "+12015550001", None),
                (2, "bad", None, "invalid phone number"),
                (3, "2015550001", "+12015550001", None),  # duplicate within the slice
                (4, None, None, "missing identity"),
            ]
        ),
        frame([(5, "+12015550001", "+12015550001", None), (6, "x", "+12015550002", None)]),
    )
    assert await store.ingest.write(campaign.id, "SMS", first, NOW) == repo.IngestCounts(1, 2, 1)
    assert await store.ingest.write(campaign.id, "SMS", second, NOW) == repo.IngestCounts(1, 0, 1)
    # Re-ingesting (a crashed load that is run again) changes nothing.
    await store.ingest.write(campaign.id, "SMS", first, NOW)
    counts = await store.recipients.counts(campaign.id)
    assert counts == {Status.PENDING: 2, Status.REJECTED: 2, Status.DUPLICATE: 2}
    rows = [r async for page in store.export.pages(campaign.id) for r in page.iter_rows()]
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5, 6]
    by_position = {r[0]: r for r in rows}
    assert by_position[2][4:][0] == "REJECTED"
    assert by_position[2][7:9] == ("INVALID_IDENTITY", "invalid phone number")
    assert by_position[4][7] == "MISSING_IDENTITY"
    assert by_position[3][8] == "same identity as row 1"
    assert by_position[5][8] == "same identity as row 1"
    # Only the row that is sent holds the identity; its duplicates keep the raw cell.
    assert [by_position[p][1] for p in (1, 3, 5)] == ["+12015550001", None, None]
    assert [by_position[p][2] for p in (3, 5)] == ["2015550001", "+12015550001"]


async def test_ingest_keeps_every_value_byte_for_byte(store: repo.Store) -> None:
    """The bulk path (JSON on SQLite, COPY on Postgres) must not mangle what the file held:
    quotes, separators, newlines, backslashes, the COPY null marker, empty text, non-ASCII."""
    campaign = await new_campaign(store)
    awkward = ['a,"b"', "line\nbreak", r"\N", "", "tab\there", "ünï 🙂", "back\\slash", "'; --"]
    rows = pl.DataFrame(
        {
            "row": list(range(1, len(awkward) + 1)),
            "identity_raw": awkward,
            "identity": [None] * len(awkward),
            "reason": [f"invalid: {value}" for value in awkward],
            "parameters": [f'{{"v":{value!r}}}' for value in awkward],
        },
        schema=frame([]).schema,
    )
    assert await store.ingest.write(campaign.id, "SMS", rows, NOW) == repo.IngestCounts(0, 8, 0)
    stored = [r async for page in store.export.pages(campaign.id) for r in page.iter_rows()]
    assert [r[2] for r in stored] == awkward  # identity_raw
    assert [r[8] for r in stored] == [f"invalid: {value}" for value in awkward]
    assert all(r[1] is None for r in stored)  # identity


async def test_ingest_keeps_every_valid_row_byte_for_byte(store: repo.Store) -> None:
    """Valid rows take another road into SQLite than the others (campaign.store.ingest.
    json_members): identities and parameters of any text, a raw cell or a zone on some rows
    only, and each row in its chunk."""
    campaign = await new_campaign(store)
    awkward = ['a "b"', "line\nbreak", r"\N", " lead", "tab\there", "ünï 🙂", "back\\slash", "7 x"]
    identities = [f"{value}|{i}" for i, value in enumerate(awkward)]
    raw = [identities[i] if i % 3 else f"raw {value}" for i, value in enumerate(awkward)]
    zones = [None if i % 4 else "America/New_York" for i in range(len(awkward))]
    parameters = [orjson.dumps({"v": value}).decode() for value in awkward]
    rows = pl.DataFrame(
        {
            "row": list(range(1, len(awkward) + 1)),
            "identity_raw": raw,
            "identity": identities,
            "reason": [None] * len(awkward),
            "parameters": parameters,
            "time_zone": zones,
        },
        schema={**frame([]).schema, "time_zone": pl.String},
    )
    counts = await store.ingest.write(campaign.id, "SMS", rows, NOW, repo.Chunking(3, "Kc1"))
    assert counts.stored == len(awkward)
    async with store.engine.connect() as conn:
        stored = (
            await conn.execute(
                select(
                    recipients.c.identity_raw,
                    recipients.c.identity,
                    recipients.c.parameters,
                    recipients.c.time_zone,
                    recipients.c.chunk,
                )
                .where(recipients.c.campaign_id == campaign.id)
                .order_by(recipients.c.position)
            )
        ).all()
    assert [tuple(r) for r in stored] == [
        (None if i % 3 else f"raw {value}", identities[i], parameters[i], zones[i], 1 + i // 3)
        for i, value in enumerate(awkward)
    ]


async def test_claim_moves_pending_to_in_flight_once(store: repo.Store) -> None:
    campaign = await new_campaign(store)
    await store.ingest.write(
        campaign.id, "SMS", frame([(i, "x", f"+1201555{i:04d}", None) for i in range(1, 11)]), NOW
    )
    first = await store.recipients.claim(campaign.id, 4, NOW)
    second = await store.recipients.claim(campaign.id, 100, NOW)
    assert [c.position for c in first] == [1, 2, 3, 4]
    assert [c.position for c in second] == [5, 6, 7, 8, 9, 10]
    assert all(c.attempts == 1 for c in first + second)
    assert await store.recipients.claim(campaign.id, 100, NOW) == []
    assert (await store.recipients.counts(campaign.id)) == {Status.IN_FLIGHT: 10}


async def test_record_outcomes_and_never_move_backwards(store: repo.Store) -> None:
    campaign = await new_campaign(store)
    await store.ingest.write(
        campaign.id, "SMS", frame([(i, "x", f"+1201555{i:04d}", None) for i in range(1, 6)]), NOW
    )
    c = await store.recipients.claim(campaign.id, 5, NOW)
    later = NOW + timedelta(seconds=30)
    await store.recipients.record(
        [
            repo.Sent(c[0].id, "MSG1"),
            repo.Retry(c[1].id, later, "HTTP_503", "unavailable"),
            repo.Failed(c[2].id, "INVALID_ARGUMENT", "bad"),
            repo.InDoubt(c[3].id, "timeout"),
            repo.Release(c[4].id),
        ],
        NOW,
    )
    counts = await store.recipients.counts(campaign.id)
    assert counts == {
        Status.QUEUED: 1,
        Status.PENDING: 2,
        Status.FAILED: 1,
        Status.IN_DOUBT: 1,
    }
    # The retry is not due yet, the released row is (and its attempt was not counted).
    due_now = await store.recipients.claim(campaign.id, 10, NOW)
    assert [(x.position, x.attempts) for x in due_now] == [(5, 1)]
    assert await store.recipients.next_due_at(campaign.id, NOW) == later
    assert [x.position for x in await store.recipients.claim(campaign.id, 10, later)] == [2]
    # A late duplicate outcome for an already-settled row changes nothing.
    await store.recipients.record([repo.Failed(c[0].id, "X", "late")], NOW)
    rows = {
        r[0]: r
        for page in [p async for p in store.export.pages(campaign.id)]
        for r in page.iter_rows()
    }
    assert rows[1][4] == "QUEUED"
    assert rows[1][5] == "MSG1"
    # sent_at, as ISO-8601 UTC text formatted by either database
    assert rows[1][9] == "2026-11-21T12:00:00.000000Z"


async def test_rows_no_live_worker_holds_become_in_doubt(store: repo.Store) -> None:
    campaign = await new_campaign(store)
    await store.ingest.write(campaign.id, "SMS", frame([(1, "x", "+12015550001", None)]), NOW)
    await store.recipients.claim(campaign.id, 1, NOW)
    assert (await store.workers.reap(campaign.id, NOW, lease=10)).in_doubt == 1
    assert await store.recipients.counts(campaign.id) == {Status.IN_DOUBT: 1}
    errors = await store.recipients.error_summary(campaign.id)
    assert errors == [("IN_DOUBT", "IN_DOUBT", 1)]


async def test_campaigns_are_isolated(store: repo.Store) -> None:
    a = await new_campaign(store, "a")
    b = await new_campaign(store, "b")
    same = frame([(1, "x", "+12015550001", None)])
    await store.ingest.write(a.id, "SMS", same, NOW)
    # same identity, other campaign: not a duplicate
    await store.ingest.write(b.id, "SMS", same, NOW)
    assert await store.recipients.counts(b.id) == {Status.PENDING: 1}
    assert [c.name for c in await store.campaigns.all()] == ["a", "b"]


async def test_the_sqlite_page_cache_is_set_by_the_url(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    for query, expected in (("", store_engine.SQLITE_CACHE_MB), ("?cache_mb=256", 256)):
        store = await repo.Store.open(f"sqlite:///{path}{query}")  # the driver never sees it
        try:
            async with store.engine.connect() as conn:
                kib = await conn.scalar(text("PRAGMA cache_size"))
            assert kib == -expected * 1024
            await new_campaign(store, f"c{expected}")  # a write, on a pooled connection
        finally:
            await store.close()
    for bad in ("?cache_mb=lots", "?cache_mb=0"):
        with pytest.raises(ConfigError, match="cache_mb"):
            await repo.Store.open(f"sqlite:///{path}{bad}")


async def test_a_stored_slice_leaves_the_wal_in_the_background(tmp_path: Path) -> None:
    """A load's commit does not copy the WAL into the database (that waits for 10,000 pages):
    a background checkpoint does, beside the next slice (engine.Checkpointer)."""
    path = tmp_path / "c.db"
    store = await repo.Store.open(f"sqlite:///{path}")
    try:
        async with store.engine.connect() as conn:
            pages = await conn.scalar(text("PRAGMA wal_autocheckpoint"))
        assert pages == store_engine.SQLITE_AUTOCHECKPOINT_PAGES
        campaign = await new_campaign(store)
        await store.checkpoints.wait()
        before = path.stat().st_size
        numbers: list[tuple[int, str | None, str | None, str | None]] = [
            (i, f"+1201555{i:04d}", f"+1201555{i:04d}", None) for i in range(1, 3001)
        ]
        (rows,) = deduplicated(frame(numbers))
        await store.ingest.write(campaign.id, "SMS", rows, NOW)
        await store.checkpoints.wait()
        # Only a checkpoint writes pages into the database file: 3,000 rows are some 100 pages.
        assert path.stat().st_size > before + 100 * 4096
    finally:
        await store.close()
    assert await _count_rows(path) == 3000


async def _count_rows(path: Path) -> int:
    store = await repo.Store.open(f"sqlite:///{path}")
    try:
        async with store.engine.connect() as conn:
            return int(await conn.scalar(text("SELECT count(*) FROM recipients")) or 0)
    finally:
        await store.close()
