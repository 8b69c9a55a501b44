"""the suppression list: suppressions (one row per opted-out identity) and suppression_changes
(every ADD and REMOVE, who or what made it)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "suppressions",
        sa.Column("id", _ID, nullable=False),
        sa.Column("identity", sa.String(256), nullable=False),
        sa.Column("channel", sa.String(32), nullable=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("campaign_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_suppressions"),
        sa.UniqueConstraint("identity", name="uq_suppressions_identity"),
    )
    op.create_table(
        "suppression_changes",
        sa.Column("id", _ID, nullable=False),
        sa.Column("identity", sa.String(256), nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("channel", sa.String(32), nullable=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("campaign_id", sa.BigInteger(), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_suppression_changes"),
    )
    op.create_index("ix_suppression_changes_identity", "suppression_changes", ["identity"])


def downgrade() -> None:
    op.drop_index("ix_suppression_changes_identity", table_name="suppression_changes")
    op.drop_table("suppression_changes")
    op.drop_table("suppressions")
