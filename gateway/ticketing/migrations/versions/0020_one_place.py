"""One place per ticket (issue 14): ``ticket_places`` holds what the early warnings kept in
``warning_ticket_facts`` (matter, address, hour) and the ticket version it was resolved from;
the warnings' table goes (gateway/supervision/places.py).

Data moved:

* a ticket in both tables keeps its place row (district, street, source) and takes the
  warnings' matter (NULL for a request-type matter ``type:…``), address and hour;
* a ticket only in ``warning_ticket_facts`` gets a place row from it (source ``moved``);
* a ticket only in ``ticket_places`` lacks a matter and an hour: its row is marked to be
  resolved again (``ticket_version = -1``) the next time its period is resolved.

Downgrade writes ``warning_ticket_facts`` back from the rows that have an hour (a matter of
NULL becomes ``type:<request type>`` again) and drops the new columns.

Revision ID: 0020_one_place
Revises: 0019_report_indexes
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Kept here, not imported from the models: a migration stays as it was written.
RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0020_one_place"
down_revision = "0019_report_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ticket_places") as batch:
        batch.add_column(sa.Column("matter_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("address", sa.String(200), nullable=True))
        batch.add_column(sa.Column("hour", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("ticket_version", sa.Integer(), nullable=True))
        batch.create_index("ix_ticket_places_hour", ["hour"])
    facts = "SELECT 1 FROM warning_ticket_facts f WHERE f.ticket_id = ticket_places.ticket_id"
    op.execute(f"""
        UPDATE ticket_places SET
          matter_id = (SELECT CASE WHEN f.matter LIKE 'type:%' THEN NULL ELSE f.matter END
                       FROM warning_ticket_facts f WHERE f.ticket_id = ticket_places.ticket_id),
          address = (SELECT f.address FROM warning_ticket_facts f WHERE f.ticket_id = ticket_places.ticket_id),
          hour = (SELECT f.hour FROM warning_ticket_facts f WHERE f.ticket_id = ticket_places.ticket_id)
        WHERE EXISTS ({facts})""")
    op.execute(f"UPDATE ticket_places SET ticket_version = -1 WHERE NOT EXISTS ({facts})")
    op.execute("""
        INSERT INTO ticket_places (ticket_id, district_id, street_id, source, resolved_at, matter_id, address, hour)
        SELECT f.ticket_id, f.district, f.street, 'moved', CURRENT_TIMESTAMP,
               CASE WHEN f.matter LIKE 'type:%' THEN NULL ELSE f.matter END, f.address, f.hour
        FROM warning_ticket_facts f
        WHERE NOT EXISTS (SELECT 1 FROM ticket_places p WHERE p.ticket_id = f.ticket_id)""")
    op.drop_index("ix_warning_ticket_facts_hour", table_name="warning_ticket_facts")
    op.drop_table("warning_ticket_facts")


def downgrade() -> None:
    op.create_table(
        "warning_ticket_facts",
        sa.Column("ticket_id", RowId, sa.ForeignKey("tickets.id", name="fk_warning_ticket_facts_ticket_id_tickets"),
                  nullable=False),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("matter", sa.String(64), nullable=False),
        sa.Column("street", sa.String(64), nullable=True),
        sa.Column("district", sa.String(64), nullable=True),
        sa.Column("address", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("ticket_id", name="pk_warning_ticket_facts"),
    )
    op.create_index("ix_warning_ticket_facts_hour", "warning_ticket_facts", ["hour"])
    op.execute("""
        INSERT INTO warning_ticket_facts (ticket_id, hour, matter, street, district, address)
        SELECT p.ticket_id, p.hour, COALESCE(p.matter_id, 'type:' || COALESCE(t.category, '未分类')),
               p.street_id, p.district_id, p.address
        FROM ticket_places p JOIN tickets t ON t.id = p.ticket_id
        WHERE p.hour IS NOT NULL""")
    op.execute("DELETE FROM ticket_places WHERE source = 'moved'")
    with op.batch_alter_table("ticket_places") as batch:
        batch.drop_index("ix_ticket_places_hour")
        batch.drop_column("ticket_version")
        batch.drop_column("hour")
        batch.drop_column("address")
        batch.drop_column("matter_id")
