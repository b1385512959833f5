"""A caller ID that is not a valid number is kept as received, beside an empty number.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("calls", "tickets"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("caller_id_raw", sa.String(80), nullable=True))


def downgrade() -> None:
    for table in ("tickets", "calls"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("caller_id_raw")
