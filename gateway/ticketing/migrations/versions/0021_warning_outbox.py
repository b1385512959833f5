"""Early warnings (issue 14): an alert that grows is notified again — what was last notified and
the last growth, on warning_alerts. (The webhook outboxes share their columns through a mixin,
gateway.ticketing.models.OutboxRow: unchanged columns, nothing to migrate for them.)

Revision ID: 0021_warning_outbox
Revises: 0020_one_place
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021_warning_outbox"
down_revision = "0020_one_place"
branch_labels = None
depends_on = None


def UtcDateTime() -> sa.DateTime:  # noqa: N802 - reads like the models' column type
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("warning_alerts") as batch:
        batch.add_column(sa.Column("notified_count", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("notified_ratio", sa.Float(), nullable=True))
        batch.add_column(sa.Column("grown_at", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("grown_from", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("grown_from_ratio", sa.Float(), nullable=True))
    # the alerts already there were notified (when created) at the count they have now
    op.execute("UPDATE warning_alerts SET notified_count = count, "
               "notified_ratio = CASE WHEN expected > 0 THEN CAST(count AS FLOAT) / expected END")


def downgrade() -> None:
    with op.batch_alter_table("warning_alerts") as batch:
        for name in ("grown_from_ratio", "grown_from", "grown_at", "notified_ratio", "notified_count"):
            batch.drop_column(name)
