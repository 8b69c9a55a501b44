"""the unique sendable identity is decided by the identity alone, not by the status

Rejected and duplicate rows no longer keep a normalised identity (their raw cell stays), so the
unique index on (campaign_id, channel, identity) needs no predicate on ``status``: a status
change (two per sent recipient) no longer rewrites an entry of this index.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21 09:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_NAME = "uq_recipients_sendable_identity"
_COLUMNS = ["campaign_id", "channel", "identity"]


def _create(where: str) -> None:
    op.create_index(
        _NAME,
        "recipients",
        _COLUMNS,
        unique=True,
        sqlite_where=sa.text(where),
        postgresql_where=sa.text(where),
    )


def upgrade() -> None:
    op.drop_index(_NAME, table_name="recipients")
    op.execute("UPDATE recipients SET identity = NULL WHERE status IN ('REJECTED', 'DUPLICATE')")
    _create("identity IS NOT NULL")


def downgrade() -> None:
    op.drop_index(_NAME, table_name="recipients")
    _create("status NOT IN ('REJECTED', 'DUPLICATE')")
