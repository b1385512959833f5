"""The agent desk: decisions on tickets, agents' unsaved drafts, users tied to queue members.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TICKET_COLUMNS = (
    ("urgency", sa.String(16)),
    ("place", sa.String(200)),
    ("summary", sa.Text),
    ("dispatch_mode", sa.String(16)),
    ("units", sa.JSON),
    ("answer", sa.Text),
    ("linked_ticket_id", sa.Integer),
    ("decided_by", sa.String(64)),
    ("decided_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        for name, type_ in _TICKET_COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("agent_id", sa.String(32), nullable=True))
    op.create_table(
        "ticket_drafts",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("ticket_id", sa.Integer, nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ticket_drafts"),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], name="fk_ticket_drafts_ticket_id_tickets"),
        sa.UniqueConstraint("ticket_id", "username", name="uq_ticket_drafts_ticket_user"),
    )
    op.create_index("ix_ticket_drafts_ticket_id", "ticket_drafts", ["ticket_id"])
    op.create_index("ix_tickets_caller_number", "tickets", ["caller_number"])


def downgrade() -> None:
    op.drop_index("ix_tickets_caller_number", "tickets")
    op.drop_index("ix_ticket_drafts_ticket_id", "ticket_drafts")
    op.drop_table("ticket_drafts")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("agent_id")
    with op.batch_alter_table("tickets") as batch:
        for name, _type in reversed(_TICKET_COLUMNS):
            batch.drop_column(name)
