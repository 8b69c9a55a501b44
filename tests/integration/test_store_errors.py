"""The store's edge: a database failure leaves every query group as a StoreError that says what
went wrong, names the database without its password, and keeps the driver's error as the cause."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from campaign.errors import (
    CampaignError,
    StoreError,
    StoreRefusedError,
    StoreSchemaError,
    StoreUnavailableError,
)
from campaign.store import engine as store_engine
from campaign.store import repository as repo

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
PASSWORD = "hunter2-s3cret"


async def new_campaign(store: repo.Store) -> repo.CampaignRow:
    return await store.campaigns.create(
        name="c1", key="K1", mode="individual", channel="SMS", definition="{}", source="r.csv",
        now=NOW,
    )  # fmt: skip


def with_password(url: str) -> str:
    return make_url(url).set(password=PASSWORD).render_as_string(hide_password=False)


async def test_a_locked_sqlite_database_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "campaign.db"
    store = await repo.Store.open(f"sqlite:///{path}?timeout=0.1")
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        with pytest.raises(StoreUnavailableError) as caught:
            await new_campaign(store)
    finally:
        holder.close()
        await store.close()
    assert str(caught.value) == f"database sqlite:///{path}?timeout=0.1: database is locked"
    assert caught.value.reason == "database is locked"
    assert isinstance(caught.value.__cause__, SQLAlchemyError)
    assert isinstance(caught.value, CampaignError) and caught.value.exit_code == 2


async def test_a_refused_connection_is_unavailable_and_never_shows_the_password() -> None:
    url = f"postgresql://campaign:{PASSWORD}@127.0.0.1:1/campaign"  # nothing listens on port 1
    with pytest.raises(StoreUnavailableError) as caught:
        await repo.Store.open(url)
    message = str(caught.value)
    assert message.startswith("database postgresql://campaign:***@127.0.0.1:1/campaign: ")
    assert PASSWORD not in message and "\n" not in message
    assert isinstance(caught.value.__cause__, SQLAlchemyError)


async def test_a_table_missing_is_a_schema_error(store: repo.Store, database_url: str) -> None:
    async with store.writes.begin() as conn:
        await conn.execute(text("DROP TABLE events"))
    with pytest.raises(StoreSchemaError, match=r"^database .*events"):
        await store.events.count()


async def test_a_value_the_database_refuses(store: repo.Store) -> None:
    campaign = await new_campaign(store)
    with pytest.raises(StoreRefusedError) as caught:
        await store.campaigns.update(campaign.id, now=NOW, name=None)
    assert "SELECT" not in str(caught.value) and "UPDATE" not in str(caught.value)


async def test_the_report_pages_are_guarded_too(store: repo.Store) -> None:
    campaign = await new_campaign(store)
    async with store.writes.begin() as conn:
        await conn.execute(text("DROP TABLE events"))
        await conn.execute(text("ALTER TABLE recipients RENAME TO recipients_gone"))
    with pytest.raises(StoreSchemaError):
        async for _ in store.export.pages(campaign.id):
            pass


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_a_postgres_schema_not_upgraded_is_a_schema_error(database_url: str) -> None:
    url = with_password(database_url)  # trust authentication: the password is not checked
    with pytest.raises(StoreSchemaError) as caught:
        await repo.Store.open(url)
    message = str(caught.value)
    assert "campaign db upgrade" in message
    assert PASSWORD not in message and "***" in message


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_a_postgres_unknown_database_never_shows_the_password(database_url: str) -> None:
    url = make_url(with_password(database_url)).set(database="campaign_no_such_database")
    with pytest.raises(StoreError) as caught:
        await repo.Store.open(url.render_as_string(hide_password=False))
    assert "campaign_no_such_database" in str(caught.value)
    assert PASSWORD not in str(caught.value)
    with pytest.raises(StoreError) as migrating:
        store_engine.upgrade_sync(url.render_as_string(hide_password=False))
    assert PASSWORD not in str(migrating.value)
    assert isinstance(migrating.value.__cause__, SQLAlchemyError)
