"""duplicates decided by the load over the whole file: no unique index on the identity; the
campaign keeps a digest of its recipients file

The unique index on (campaign_id, channel, identity) decided duplicates row by row as they were
inserted. A real list is in random order, and every insert then landed anywhere in that index:
once it outgrew SQLite's page cache, its pages were read and written again many times per
transaction (the 1M-row load took 7.8 s instead of 3.4 s). Duplicates are now decided by the
load, in Polars, over the whole file (``campaign.loading.duplicates``), which depends on nothing
but the file: ``campaigns.source_digest`` lets a resumed load refuse a file that changed.

The downgrade puts the index back; the load never stores two sendable rows of one identity.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-21 17:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_INDEX = "uq_recipients_sendable_identity"


def upgrade() -> None:
    op.drop_index(_INDEX, table_name="recipients")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_digest", sa.String(64), nullable=True))


def downgrade() -> None:
    # Not a batch (a copy of the table on SQLite): dropping the old campaigns table would
    # delete every row that references it. SQLite drops a column itself since 3.35.
    op.drop_column("campaigns", "source_digest")
    op.create_index(
        _INDEX,
        "recipients",
        ["campaign_id", "channel", "identity"],
        unique=True,
        sqlite_where=sa.text("identity IS NOT NULL"),
        postgresql_where=sa.text("identity IS NOT NULL"),
    )
