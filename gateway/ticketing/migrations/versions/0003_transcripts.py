"""Transcripts and the emergency flag on tickets (offline speech, issue 4).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("language", sa.String(8), None),
    ("transcript_status", sa.String(16), "none"),
    ("transcript", sa.Text, None),
    ("transcript_words", sa.JSON, None),
    ("transcript_confidence", sa.Float, None),
    ("transcript_model", sa.String(128), None),
    ("transcript_rtf", sa.Float, None),
    ("transcript_attempts", sa.Integer, "0"),
    ("transcript_error", sa.String(255), None),
    ("emergency", sa.Boolean, sa.false()),
    ("emergency_words", sa.JSON, None),
)


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        for name, type_, default in _COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=default is None, server_default=default))
    op.create_index("ix_tickets_transcript_status", "tickets", ["transcript_status"])


def downgrade() -> None:
    op.drop_index("ix_tickets_transcript_status", "tickets")
    with op.batch_alter_table("tickets") as batch:
        for name, _type, _default in reversed(_COLUMNS):
            batch.drop_column(name)
