"""delivery tracking

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 06:43:57.109789
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("nonce", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("recipient_key", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("batch_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("channel", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("event_time", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("reason_code", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("reason_description", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_events_recipient_key", ["recipient_key"], unique=False)
        batch_op.create_index(
            "ix_events_waiting",
            ["id"],
            unique=False,
            sqlite_where=sa.text("applied_at IS NULL"),
            postgresql_where=sa.text("applied_at IS NULL"),
        )
        batch_op.create_index("uq_events_nonce", ["nonce"], unique=True)

    with op.batch_alter_table("recipients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("channel_used", sa.String(length=32), nullable=True))


def downgrade() -> None:

    with op.batch_alter_table("recipients", schema=None) as batch_op:
        batch_op.drop_column("channel_used")
        batch_op.drop_column("status_at")

    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("uq_events_nonce")
        batch_op.drop_index(
            "ix_events_waiting",
            sqlite_where=sa.text("applied_at IS NULL"),
            postgresql_where=sa.text("applied_at IS NULL"),
        )
        batch_op.drop_index("ix_events_recipient_key")
        batch_op.drop_column("applied_at")
        batch_op.drop_column("reason_description")
        batch_op.drop_column("reason_code")
        batch_op.drop_column("event_time")
        batch_op.drop_column("channel")
        batch_op.drop_column("batch_id")
        batch_op.drop_column("recipient_key")
        batch_op.drop_column("nonce")
