"""The handling units' side (issue 13, units part): the overdue notice's claim on a dispatch,
and the outbox of events for units' own systems (webhooks).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def UtcDateTime() -> sa.DateTime:  # noqa: N802 - reads like the models' column type
    return sa.DateTime(timezone=True)


revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dispatches") as batch:
        batch.add_column(sa.Column("overdue_at", UtcDateTime(), nullable=True))
    op.create_table(
        "unit_hook_deliveries",
        sa.Column("id", RowId, primary_key=True),
        sa.Column("unit_id", sa.String(64), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("ticket_id", RowId, nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", UtcDateTime(), nullable=False),
        sa.Column("claimed_until", UtcDateTime(), nullable=True),
        sa.Column("delivered_at", UtcDateTime(), nullable=True),
        sa.Column("failed_at", UtcDateTime(), nullable=True),
        sa.Column("last_error", sa.String(255), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_unit_hook_deliveries"),
    )
    op.create_index("ix_unit_hook_deliveries_unit_id", "unit_hook_deliveries", ["unit_id"])
    op.create_index("ix_unit_hook_deliveries_pending", "unit_hook_deliveries", ["delivered_at", "next_at"])


def downgrade() -> None:
    op.drop_index("ix_unit_hook_deliveries_pending", table_name="unit_hook_deliveries")
    op.drop_index("ix_unit_hook_deliveries_unit_id", table_name="unit_hook_deliveries")
    op.drop_table("unit_hook_deliveries")
    with op.batch_alter_table("dispatches") as batch:
        batch.drop_column("overdue_at")
