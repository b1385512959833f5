"""The whole database schema: the ticketing models and the tables feature folders declare on the
same ``Base`` (issue 14: ticket places, queue legs, warnings, the report archive).

Alembic's environment and the schema-vs-migrations test read ``Base.metadata`` from here, so the
tables of every feature are in it without the ticketing models importing the feature folders
(which import the models: a circle).
"""

from __future__ import annotations

from gateway.supervision import places, queue_legs, report_tables, warnings_store
from gateway.ticketing.models import Base

FEATURE_TABLES = (places, queue_legs, report_tables, warnings_store)

__all__ = ["Base", "FEATURE_TABLES"]
