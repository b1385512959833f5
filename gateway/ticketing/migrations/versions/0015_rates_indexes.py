"""The three rates (issue 14): where each ticket is (``ticket_places``) and the indexes the
rates' GROUP BY queries rest on (gateway/supervision/rates.py, rates_places.py).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Kept here, not imported from the models: a migration stays as it was written.
RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ticket_places",
        sa.Column("ticket_id", RowId, sa.ForeignKey("tickets.id", name="fk_ticket_places_ticket_id_tickets"),
                  nullable=False),
        sa.Column("district_id", sa.String(64), nullable=True),
        sa.Column("street_id", sa.String(64), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("ticket_id", name="pk_ticket_places"),
    )
    op.create_index("ix_ticket_places_district_street", "ticket_places", ["district_id", "street_id"])
    # status first: SQLite would otherwise range over every submitted ticket by ix_tickets_status
    op.create_index("ix_tickets_rates", "tickets", ["status", "decided_at", "handling"])
    op.create_index("ix_dispatches_rates", "dispatches",
                    ["ticket_id", "status", "unit_id", "accepted_at", "due_at", "created_at", "unit_name"])
    op.create_index("ix_followups_rates", "followups", ["ticket_id", "status", "solved", "satisfaction"])


def downgrade() -> None:
    op.drop_index("ix_followups_rates", table_name="followups")
    op.drop_index("ix_dispatches_rates", table_name="dispatches")
    op.drop_index("ix_tickets_rates", table_name="tickets")
    op.drop_index("ix_ticket_places_district_street", table_name="ticket_places")
    op.drop_table("ticket_places")
