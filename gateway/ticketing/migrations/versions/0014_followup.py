"""The follow-up call (回访, issue 13): one row per handled ticket, its attempts and answers.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Kept here, not imported from the models: a migration stays as it was written.
RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def UtcDateTime() -> sa.DateTime:  # noqa: N802 - reads like the models' column type
    return sa.DateTime(timezone=True)


revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "followups",
        sa.Column("id", RowId, primary_key=True),
        sa.Column("ticket_id", RowId, sa.ForeignKey("tickets.id", name="fk_followups_ticket_id_tickets"),
                  nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("next_at", UtcDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_outcome", sa.String(32), nullable=True),
        sa.Column("via", sa.String(8), nullable=True),
        sa.Column("solved", sa.String(8), nullable=True),
        sa.Column("satisfaction", sa.String(16), nullable=True),
        sa.Column("comment_path", sa.String(512), nullable=True),
        sa.Column("comment_transcript", sa.Text(), nullable=True),
        sa.Column("comment_status", sa.String(16), nullable=True),
        sa.Column("answered_at", UtcDateTime(), nullable=True),
        sa.Column("agent", sa.String(64), nullable=True),
        sa.Column("uniqueid", sa.String(64), nullable=True),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("claimed_at", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_followups"),
        sa.UniqueConstraint("ticket_id", name="uq_followups_ticket_id"),
    )
    op.create_index("ix_followups_status", "followups", ["status"])
    op.create_index("ix_followups_next_at", "followups", ["next_at"])


def downgrade() -> None:
    op.drop_index("ix_followups_next_at", table_name="followups")
    op.drop_index("ix_followups_status", table_name="followups")
    op.drop_table("followups")
