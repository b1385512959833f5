"""Calls, draft tickets and audit events.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("uniqueid", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(128), nullable=False),
        sa.Column("caller_number", sa.String(32), nullable=False),
        sa.Column("dialled_number", sa.String(32), nullable=False),
        sa.Column("line_number", sa.String(32), nullable=False),
        sa.Column("line_name", sa.String(128), nullable=False),
        sa.Column("merge_mode", sa.String(16), nullable=False),
        sa.Column("department", sa.String(128), nullable=True),
        sa.Column("flow_version", sa.String(64), nullable=True),
        sa.Column("menu_path", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("queue", sa.String(64), nullable=True),
        sa.Column("agent", sa.String(128), nullable=True),
        sa.Column("hangup_cause", sa.Integer, nullable=True),
        sa.Column("hangup_cause_txt", sa.String(128), nullable=True),
        _ts("started_at"),
        _ts("ended_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_calls"),
    )
    op.create_index("ix_calls_uniqueid", "calls", ["uniqueid"], unique=True)

    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("call_id", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("caller_number", sa.String(32), nullable=False),
        sa.Column("dialled_number", sa.String(32), nullable=False),
        sa.Column("line_number", sa.String(32), nullable=False),
        sa.Column("line_name", sa.String(128), nullable=False),
        sa.Column("merge_mode", sa.String(16), nullable=False),
        sa.Column("department", sa.String(128), nullable=True),
        sa.Column("handled_by", sa.String(128), nullable=True),
        sa.Column("category", sa.String(16), nullable=True),
        sa.Column("channel_kind", sa.String(32), nullable=True),
        sa.Column("confidential", sa.Boolean, nullable=False),
        sa.Column("menu_path", sa.JSON, nullable=False),
        sa.Column("recording_path", sa.String(512), nullable=True),
        sa.Column("recording_duration_ms", sa.Integer, nullable=True),
        sa.Column("queue", sa.String(64), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tickets"),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"], name="fk_tickets_call_id_calls"),
        sa.UniqueConstraint("call_id", name="uq_tickets_call_id"),
    )
    op.create_index("ix_tickets_status", "tickets", ["status"])
    op.create_index("ix_tickets_line_number", "tickets", ["line_number"])
    op.create_index("ix_tickets_category", "tickets", ["category"])

    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer, nullable=False),
        _ts("at"),
        sa.Column("actor", sa.String(32), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("object_type", sa.String(32), nullable=False),
        sa.Column("object_id", sa.String(64), nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
    )
    op.create_index("ix_audit_events_object", "audit_events", ["object_type", "object_id"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_object", table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_index("ix_tickets_category", table_name="tickets")
    op.drop_index("ix_tickets_line_number", table_name="tickets")
    op.drop_index("ix_tickets_status", table_name="tickets")
    op.drop_table("tickets")
    op.drop_index("ix_calls_uniqueid", table_name="calls")
    op.drop_table("calls")
