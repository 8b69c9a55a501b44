"""a campaign keeps the last reading of its app's MT queue: campaigns.app_*, queue_wait

The run reads the app (``GET apps/{app_id}``) before it sends and while it sends; the last
reading (messages queued, the limit, the outbound rate, when) lets ``campaign status`` show the
time for Sinch to pass the rest on, and ``queue_wait`` (the longest a message of the last run
was expected to wait in the queue, in seconds) keeps a queued message from being called stale
while it is still in the queue. NULL: not read (an older campaign, or the app could not be).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 02:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

COLUMNS = ("app_queue_size", "app_queue_limit", "app_outbound", "app_read_at", "queue_wait")


def upgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("app_queue_size", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("app_queue_limit", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("app_outbound", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("app_read_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("queue_wait", sa.Float(), nullable=True))


def downgrade() -> None:
    # Not a batch (a copy of the table on SQLite): dropping the old campaigns table would
    # delete every row that references it. SQLite drops a column itself since 3.35.
    for column in reversed(COLUMNS):
        op.drop_column("campaigns", column)
