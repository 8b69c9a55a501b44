"""a campaign records where its messages go: campaigns.target

The built-in sandbox, or a Sinch project's app in a region. A run that would send elsewhere is
refused (``--force-target`` moves the campaign). NULL: a campaign begun before it was kept;
its next run records it.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 23:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("target", sa.Text(), nullable=True))


def downgrade() -> None:
    # Not a batch (a copy of the table on SQLite): dropping the old campaigns table would
    # delete every row that references it. SQLite drops a column itself since 3.35.
    op.drop_column("campaigns", "target")
