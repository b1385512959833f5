"""The SMS outbox (issue 13): texts with the ticket number to callers on a mobile.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Kept here, not imported from the models: a migration stays as it was written.
RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def UtcDateTime() -> sa.DateTime:  # noqa: N802 - reads like the models' column type
    return sa.DateTime(timezone=True)


revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sms_outbox",
        sa.Column("id", RowId, primary_key=True),
        sa.Column("ticket_id", RowId, sa.ForeignKey("tickets.id", name="fk_sms_outbox_ticket_id_tickets"),
                  nullable=True),
        sa.Column("to_number", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", UtcDateTime(), nullable=False),
        sa.Column("last_error", sa.String(255), nullable=True),
        sa.Column("sender", sa.String(64), nullable=True),
        sa.Column("provider_ref", sa.String(128), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("sent_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_sms_outbox"),
    )
    op.create_index("ix_sms_outbox_ticket_id", "sms_outbox", ["ticket_id"])
    op.create_index("ix_sms_outbox_status_next_at", "sms_outbox", ["status", "next_at"])


def downgrade() -> None:
    op.drop_index("ix_sms_outbox_status_next_at", table_name="sms_outbox")
    op.drop_index("ix_sms_outbox_ticket_id", table_name="sms_outbox")
    op.drop_table("sms_outbox")
