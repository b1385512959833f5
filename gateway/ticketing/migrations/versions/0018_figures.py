"""Call-centre figures (issue 14): each call's time in each queue, from AMI (queue_legs).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Kept here, not imported from the models: a migration stays as it was written.
RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def UtcDateTime() -> sa.DateTime:  # noqa: N802 - reads like the models' column type
    return sa.DateTime(timezone=True)


revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "queue_legs",
        sa.Column("id", RowId, primary_key=True),
        sa.Column("uniqueid", sa.String(64), nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("joined_at", UtcDateTime(), nullable=False),
        sa.Column("answered_at", UtcDateTime(), nullable=True),
        sa.Column("agent", sa.String(128), nullable=True),
        sa.Column("hold_s", sa.Integer(), nullable=True),
        sa.Column("talk_s", sa.Integer(), nullable=True),
        sa.Column("abandoned", sa.Boolean(), nullable=False),
        sa.Column("left_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_queue_legs"),
        sa.UniqueConstraint("uniqueid", "queue", name="uq_queue_legs_uniqueid_queue"),
    )
    op.create_index("ix_queue_legs_joined_at", "queue_legs", ["joined_at"])


def downgrade() -> None:
    op.drop_index("ix_queue_legs_joined_at", table_name="queue_legs")
    op.drop_table("queue_legs")
