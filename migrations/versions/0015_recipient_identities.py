"""a recipient may carry several identities: recipients.identities

``channel`` and ``identity`` stay the recipient's first identity (the one duplicates are decided
on); ``identities`` holds every identity of a recipient that has several, as the JSON array a
request's ``identified_by.channel_identities`` takes (``[{"channel": ..., "identity": ...}]``),
in the campaign's order, or NULL when the recipient has one (most campaigns).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("recipients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("identities", sa.Text(), nullable=True))


def downgrade() -> None:
    # Not a batch (a copy of the table on SQLite): the events reference recipients.
    op.drop_column("recipients", "identities")
