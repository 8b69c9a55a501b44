"""a campaign can be paused: campaigns.paused_at

``campaign pause`` sets it; every `campaign run` of the campaign reads it with its heartbeat,
stops claiming and drains; ``campaign resume`` clears it. NULL: not paused.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 23:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # Not a batch (a copy of the table on SQLite): dropping the old campaigns table would
    # delete every row that references it. SQLite drops a column itself since 3.35.
    op.drop_column("campaigns", "paused_at")
