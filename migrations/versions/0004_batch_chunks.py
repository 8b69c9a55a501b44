"""batch chunks

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 07:10:01.715084
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:

    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("tag", sa.String(length=128), nullable=False, server_default="")
        )

    with op.batch_alter_table("recipients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("chunk", sa.BigInteger(), nullable=True))
        batch_op.create_index(
            "ix_recipients_campaign_id_chunk", ["campaign_id", "chunk"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("recipients", schema=None) as batch_op:
        batch_op.drop_index("ix_recipients_campaign_id_chunk")
        batch_op.drop_column("chunk")

    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_column("tag")
