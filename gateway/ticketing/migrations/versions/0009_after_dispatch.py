"""After intake (issue 13): ticket numbers, dispatches to units, the ticket's events, unit accounts.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Kept here, not imported from the models: a migration stays as it was written.
RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def UtcDateTime() -> sa.DateTime:  # noqa: N802 - reads like the models' column type
    return sa.DateTime(timezone=True)

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("ticket_no", sa.String(16), nullable=True))
        batch.add_column(sa.Column("handling", sa.String(16), nullable=True))
        batch.add_column(sa.Column("due_at", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("review_reason", sa.String(32), nullable=True))
        batch.add_column(sa.Column("handled_at", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("followup_opt_out", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.create_unique_constraint("uq_tickets_ticket_no", ["ticket_no"])
        batch.create_index("ix_tickets_handling", ["handling"])
        batch.create_index("ix_tickets_due_at", ["due_at"])
        batch.create_index("ix_tickets_handled_at", ["handled_at"])
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("unit_id", sa.String(64), nullable=True))
    op.create_table(
        "dispatches",
        sa.Column("id", RowId, primary_key=True),
        sa.Column("ticket_id", RowId, sa.ForeignKey("tickets.id", name="fk_dispatches_ticket_id_tickets"),
                  nullable=False),
        sa.Column("unit_id", sa.String(64), nullable=False),
        sa.Column("unit_name", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("due_at", UtcDateTime(), nullable=True),
        sa.Column("accepted_at", UtcDateTime(), nullable=True),
        sa.Column("handled_at", UtcDateTime(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("objection", sa.Text(), nullable=True),
        sa.Column("reminded_at", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dispatches"),
    )
    op.create_index("ix_dispatches_ticket_id", "dispatches", ["ticket_id"])
    op.create_index("ix_dispatches_due_at", "dispatches", ["due_at"])
    op.create_index("ix_dispatches_unit_status", "dispatches", ["unit_id", "status"])
    op.create_table(
        "ticket_events",
        sa.Column("id", RowId, primary_key=True),
        sa.Column("ticket_id", RowId, sa.ForeignKey("tickets.id", name="fk_ticket_events_ticket_id_tickets"),
                  nullable=False),
        sa.Column("dispatch_id", RowId,
                  sa.ForeignKey("dispatches.id", name="fk_ticket_events_dispatch_id_dispatches"), nullable=True),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("unit_id", sa.String(64), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ticket_events"),
    )
    op.create_index("ix_ticket_events_ticket_id", "ticket_events", ["ticket_id"])


def downgrade() -> None:
    op.drop_index("ix_ticket_events_ticket_id", table_name="ticket_events")
    op.drop_table("ticket_events")
    op.drop_index("ix_dispatches_unit_status", table_name="dispatches")
    op.drop_index("ix_dispatches_due_at", table_name="dispatches")
    op.drop_index("ix_dispatches_ticket_id", table_name="dispatches")
    op.drop_table("dispatches")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("unit_id")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_index("ix_tickets_handled_at")
        batch.drop_index("ix_tickets_due_at")
        batch.drop_index("ix_tickets_handling")
        batch.drop_constraint("uq_tickets_ticket_no", type_="unique")
        batch.drop_column("followup_opt_out")
        batch.drop_column("handled_at")
        batch.drop_column("review_reason")
        batch.drop_column("due_at")
        batch.drop_column("handling")
        batch.drop_column("ticket_no")
