"""events: wide text columns, checked_at

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 06:59:37.606900
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:

    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.alter_column(
            "message_id",
            existing_type=sa.VARCHAR(length=64),
            type_=sa.Text(),
            existing_nullable=True,
        )
        batch_op.alter_column(
            "trigger", existing_type=sa.VARCHAR(length=64), type_=sa.Text(), existing_nullable=False
        )
        batch_op.alter_column(
            "status", existing_type=sa.VARCHAR(length=32), type_=sa.Text(), existing_nullable=True
        )
        batch_op.alter_column(
            "nonce", existing_type=sa.VARCHAR(length=128), type_=sa.Text(), existing_nullable=True
        )
        batch_op.alter_column(
            "recipient_key",
            existing_type=sa.VARCHAR(length=128),
            type_=sa.Text(),
            existing_nullable=True,
        )
        batch_op.alter_column(
            "batch_id", existing_type=sa.VARCHAR(length=64), type_=sa.Text(), existing_nullable=True
        )
        batch_op.alter_column(
            "channel", existing_type=sa.VARCHAR(length=32), type_=sa.Text(), existing_nullable=True
        )
        batch_op.alter_column(
            "reason_code",
            existing_type=sa.VARCHAR(length=64),
            type_=sa.Text(),
            existing_nullable=True,
        )
        batch_op.create_index(
            "ix_events_unchecked",
            ["id"],
            unique=False,
            sqlite_where=sa.text("applied_at IS NULL AND checked_at IS NULL"),
            postgresql_where=sa.text("applied_at IS NULL AND checked_at IS NULL"),
        )


def downgrade() -> None:

    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_events_unchecked",
            sqlite_where=sa.text("applied_at IS NULL AND checked_at IS NULL"),
            postgresql_where=sa.text("applied_at IS NULL AND checked_at IS NULL"),
        )
        batch_op.alter_column(
            "reason_code",
            existing_type=sa.Text(),
            type_=sa.VARCHAR(length=64),
            existing_nullable=True,
        )
        batch_op.alter_column(
            "channel", existing_type=sa.Text(), type_=sa.VARCHAR(length=32), existing_nullable=True
        )
        batch_op.alter_column(
            "batch_id", existing_type=sa.Text(), type_=sa.VARCHAR(length=64), existing_nullable=True
        )
        batch_op.alter_column(
            "recipient_key",
            existing_type=sa.Text(),
            type_=sa.VARCHAR(length=128),
            existing_nullable=True,
        )
        batch_op.alter_column(
            "nonce", existing_type=sa.Text(), type_=sa.VARCHAR(length=128), existing_nullable=True
        )
        batch_op.alter_column(
            "status", existing_type=sa.Text(), type_=sa.VARCHAR(length=32), existing_nullable=True
        )
        batch_op.alter_column(
            "trigger", existing_type=sa.Text(), type_=sa.VARCHAR(length=64), existing_nullable=False
        )
        batch_op.alter_column(
            "message_id",
            existing_type=sa.Text(),
            type_=sa.VARCHAR(length=64),
            existing_nullable=True,
        )
        batch_op.drop_column("checked_at")
