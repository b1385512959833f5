"""Calls the gateway places to citizens (issue 13): one row per attempt.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Kept here, not imported from the models: a migration stays as it was written.
RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def UtcDateTime() -> sa.DateTime:  # noqa: N802 - reads like the models' column type
    return sa.DateTime(timezone=True)


revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbound_calls",
        sa.Column("id", RowId, primary_key=True),
        sa.Column("uniqueid", sa.String(80), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("ref", sa.String(64), nullable=False),
        sa.Column("number", sa.String(32), nullable=False),
        sa.Column("node", sa.String(64), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("reason", sa.String(200), nullable=True),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("answered_at", UtcDateTime(), nullable=True),
        sa.Column("ended_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbound_calls"),
    )
    op.create_index("ix_outbound_calls_uniqueid", "outbound_calls", ["uniqueid"], unique=True)
    op.create_index("ix_outbound_calls_ref", "outbound_calls", ["ref"])
    op.create_index("ix_outbound_calls_started_at", "outbound_calls", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_outbound_calls_started_at", table_name="outbound_calls")
    op.drop_index("ix_outbound_calls_ref", table_name="outbound_calls")
    op.drop_index("ix_outbound_calls_uniqueid", table_name="outbound_calls")
    op.drop_table("outbound_calls")
