"""Batch chunks formed at ingest: batches.sent_at and .followers, an index of those not sent

A batch-mode campaign's recipients are put in chunks when they are stored, and a recipient that
follows its chunk (status ``CHUNKED``) takes its status from the chunk's row until something
happens to it alone (see campaign.store.chunks).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-21 11:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("followers", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
    op.create_index(
        "ix_batches_pending",
        "batches",
        ["campaign_id", "chunk"],
        sqlite_where=sa.text("status = 'PENDING'"),
        postgresql_where=sa.text("status = 'PENDING'"),
    )


def downgrade() -> None:
    op.drop_index("ix_batches_pending", table_name="batches")
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_column("followers")
        batch_op.drop_column("sent_at")
