"""Reports (issue 14): the indexes the monthly bulletin's queries range on
(gateway/supervision/reports.py): a period's decided tickets by creation time, and the
follow-up answers recorded in a period.

Revision ID: 0019_report_indexes
Revises: 0018
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0019_report_indexes"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tickets_report", "tickets", ["created_at", "status"])
    op.create_index("ix_followups_report", "followups", ["status", "answered_at"])


def downgrade() -> None:
    op.drop_index("ix_followups_report", table_name="followups")
    op.drop_index("ix_tickets_report", table_name="tickets")
