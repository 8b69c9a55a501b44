"""partial indexes on recipients.message_id and recipients.chunk

Most recipients have neither (batch messages get no message id at send; individual ones no
chunk), so a full index paid for an entry on every insert and every status change.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 08:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_INDEXES = (
    ("ix_recipients_message_id", ["message_id"], "message_id IS NOT NULL"),
    ("ix_recipients_campaign_id_chunk", ["campaign_id", "chunk"], "chunk IS NOT NULL"),
)


def upgrade() -> None:
    for name, columns, where in _INDEXES:
        op.drop_index(name, table_name="recipients")
        op.create_index(
            name,
            "recipients",
            columns,
            sqlite_where=sa.text(where),
            postgresql_where=sa.text(where),
        )


def downgrade() -> None:
    for name, columns, _ in _INDEXES:
        op.drop_index(name, table_name="recipients")
        op.create_index(name, "recipients", columns)
