"""A callback instead of waiting (issue 13, virtual hold): the callbacks table.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Kept here, not imported from the models: a migration stays as it was written.
RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def UtcDateTime() -> sa.DateTime:  # noqa: N802 - reads like the models' column type
    return sa.DateTime(timezone=True)


revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "callbacks",
        sa.Column("id", RowId, primary_key=True),
        sa.Column("ticket_id", RowId, sa.ForeignKey("tickets.id", name="fk_callbacks_ticket_id_tickets"),
                  nullable=True),
        sa.Column("call_uniqueid", sa.String(64), nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("number", sa.String(32), nullable=False),
        sa.Column("number_source", sa.String(16), nullable=False),
        sa.Column("requested_at", UtcDateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", UtcDateTime(), nullable=True),
        sa.Column("last_result", sa.String(200), nullable=True),
        sa.Column("agent", sa.String(128), nullable=True),
        sa.Column("outbound_uniqueid", sa.String(64), nullable=True),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("claimed_at", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_callbacks"),
        sa.UniqueConstraint("call_uniqueid", name="uq_callbacks_call_uniqueid"),
    )
    op.create_index("ix_callbacks_ticket_id", "callbacks", ["ticket_id"])
    op.create_index("ix_callbacks_outbound_uniqueid", "callbacks", ["outbound_uniqueid"])
    op.create_index("ix_callbacks_status_queue", "callbacks", ["status", "queue"])


def downgrade() -> None:
    op.drop_index("ix_callbacks_status_queue", table_name="callbacks")
    op.drop_index("ix_callbacks_outbound_uniqueid", table_name="callbacks")
    op.drop_index("ix_callbacks_ticket_id", table_name="callbacks")
    op.drop_table("callbacks")
