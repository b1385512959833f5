"""Early warnings (issue 14, 苗头性、风险性诉求预警): tickets' facts, alerts, their tickets, webhook outbox.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Kept here, not imported from the models: a migration stays as it was written.
RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def UtcDateTime() -> sa.DateTime:  # noqa: N802 - reads like the models' column type
    return sa.DateTime(timezone=True)


revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
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
    op.create_table(
        "warning_alerts",
        sa.Column("id", RowId, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("active_subject", sa.String(300), nullable=True),
        sa.Column("matter", sa.String(64), nullable=False),
        sa.Column("matter_name", sa.String(128), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("place_id", sa.String(64), nullable=True),
        sa.Column("place_name", sa.String(200), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("baseline", sa.Float(), nullable=True),
        sa.Column("expected", sa.Float(), nullable=True),
        sa.Column("p_value", sa.Float(), nullable=True),
        sa.Column("window_start", UtcDateTime(), nullable=False),
        sa.Column("window_end", UtcDateTime(), nullable=False),
        sa.Column("units", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("first_seen_at", UtcDateTime(), nullable=False),
        sa.Column("last_seen_at", UtcDateTime(), nullable=False),
        sa.Column("ended_at", UtcDateTime(), nullable=True),
        sa.Column("acknowledged_by", sa.String(64), nullable=True),
        sa.Column("acknowledged_at", UtcDateTime(), nullable=True),
        sa.Column("forwarded_by", sa.String(64), nullable=True),
        sa.Column("forwarded_at", UtcDateTime(), nullable=True),
        sa.Column("forwarded_unit_id", sa.String(64), nullable=True),
        sa.Column("forwarded_unit_name", sa.String(128), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_warning_alerts"),
        sa.UniqueConstraint("active_subject", name="uq_warning_alerts_active_subject"),
    )
    op.create_index("ix_warning_alerts_subject", "warning_alerts", ["subject"])
    op.create_index("ix_warning_alerts_status", "warning_alerts", ["status"])
    op.create_index("ix_warning_alerts_forwarded_unit_id", "warning_alerts", ["forwarded_unit_id"])
    op.create_table(
        "warning_alert_tickets",
        sa.Column("alert_id", RowId, sa.ForeignKey("warning_alerts.id",
                                                   name="fk_warning_alert_tickets_alert_id_warning_alerts"),
                  nullable=False),
        sa.Column("ticket_id", RowId, sa.ForeignKey("tickets.id", name="fk_warning_alert_tickets_ticket_id_tickets"),
                  nullable=False),
        sa.PrimaryKeyConstraint("alert_id", "ticket_id", name="pk_warning_alert_tickets"),
    )
    op.create_index("ix_warning_alert_tickets_ticket_id", "warning_alert_tickets", ["ticket_id"])
    op.create_table(
        "warning_deliveries",
        sa.Column("id", RowId, nullable=False),
        sa.Column("unit_id", sa.String(64), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("alert_id", RowId, sa.ForeignKey("warning_alerts.id",
                                                   name="fk_warning_deliveries_alert_id_warning_alerts"),
                  nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", UtcDateTime(), nullable=False),
        sa.Column("claimed_until", UtcDateTime(), nullable=True),
        sa.Column("delivered_at", UtcDateTime(), nullable=True),
        sa.Column("failed_at", UtcDateTime(), nullable=True),
        sa.Column("last_error", sa.String(255), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_warning_deliveries"),
    )
    op.create_index("ix_warning_deliveries_alert_id", "warning_deliveries", ["alert_id"])
    op.create_index("ix_warning_deliveries_pending", "warning_deliveries", ["delivered_at", "next_at"])


def downgrade() -> None:
    op.drop_index("ix_warning_deliveries_pending", table_name="warning_deliveries")
    op.drop_index("ix_warning_deliveries_alert_id", table_name="warning_deliveries")
    op.drop_table("warning_deliveries")
    op.drop_index("ix_warning_alert_tickets_ticket_id", table_name="warning_alert_tickets")
    op.drop_table("warning_alert_tickets")
    op.drop_index("ix_warning_alerts_forwarded_unit_id", table_name="warning_alerts")
    op.drop_index("ix_warning_alerts_status", table_name="warning_alerts")
    op.drop_index("ix_warning_alerts_subject", table_name="warning_alerts")
    op.drop_table("warning_alerts")
    op.drop_index("ix_warning_ticket_facts_hour", table_name="warning_ticket_facts")
    op.drop_table("warning_ticket_facts")
