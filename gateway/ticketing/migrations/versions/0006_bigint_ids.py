"""64-bit ids on PostgreSQL for the tables that grow with every call.

calls, tickets, audit_events and ticket_drafts (and the columns that point at them) become
BIGINT, with their id sequences; on SQLite an INTEGER PRIMARY KEY is already the 64-bit
rowid, so nothing changes there. A downgrade narrows them back (it fails, as it should,
once an id no longer fits in 32 bits).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# (table, column, has its own id sequence)
COLUMNS = (
    ("calls", "id", True),
    ("tickets", "id", True),
    ("tickets", "call_id", False),
    ("tickets", "linked_ticket_id", False),
    ("audit_events", "id", True),
    ("ticket_drafts", "id", True),
    ("ticket_drafts", "ticket_id", False),
)


def _retype(sql_type: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column, sequence in COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE {sql_type}")
        if sequence:
            op.execute(f"ALTER SEQUENCE {table}_{column}_seq AS {sql_type}")


def upgrade() -> None:
    _retype("BIGINT")


def downgrade() -> None:
    _retype("INTEGER")
