"""Alembic environment: runs on the connection handed in by campaign.store.engine, or on
``$CAMPAIGN_DATABASE_URL`` when Alembic's own CLI is used."""

from __future__ import annotations

import os

from alembic import context

from campaign.store.engine import create_engine_sync
from campaign.store.tables import metadata

config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = os.environ.get("CAMPAIGN_DATABASE_URL", "sqlite:///campaign.db")
    engine = create_engine_sync(url)
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
