"""The report archive's table: one row per generated report (日报告、周分析、月通报), and the
indexes the reports' queries range on.

Declared on the ticketing schema's ``Base`` (migrations ``0017_reports`` and ``0019_report_indexes``);
imported at the end of :mod:`gateway.ticketing.models` so the schema is whole wherever the models are.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from gateway.ticketing.models import Base, Followup, RowId, Ticket, UtcDateTime, utcnow

REPORT_KINDS = ("daily", "weekly", "monthly")


class ReportArchive(Base):
    """One archived report: its period, when and by whom it was made, its files and their digests.

    ``files`` lists ``{"format", "name", "bytes", "sha256"}`` (names are relative to the archive
    directory, never a path given by a client); ``sha256`` is the digest of that manifest. One row
    per kind and period: generating it again replaces the files and updates the row.
    """

    __tablename__ = "report_archive"
    __table_args__ = (sa.UniqueConstraint("kind", "period_start", name="uq_report_archive_kind_period"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(16))  # REPORT_KINDS
    period_start: Mapped[date] = mapped_column(sa.Date)  # first day, in the centre's time zone
    period_end: Mapped[date] = mapped_column(sa.Date)  # last day (inclusive)
    timezone: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)
    created_by: Mapped[str] = mapped_column(sa.String(64))  # "schedule" or the supervisor's user name
    files: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    summary: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)  # headline figures for the list


# A period's decided tickets (the report's counts: created_at range, then status) and the follow-up
# answers recorded in a period (status, then answered_at range); dispatches by deadline use
# ix_dispatches_due_at, calls by start ix_calls_started_at.
sa.Index("ix_tickets_report", Ticket.created_at, Ticket.status)
sa.Index("ix_followups_report", Followup.status, Followup.answered_at)
