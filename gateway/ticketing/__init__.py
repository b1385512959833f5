"""Call and draft-ticket storage (SQLAlchemy 2, async).

``models`` holds the tables, ``store.TicketStore`` the async operations the IVR,
the AMI listener and the web API use, and ``migrate`` runs the hand-written
Alembic migrations under ``migrations/``. Phone numbers are stored whole;
masking happens at the edges (logs, limited views), see ``gateway.masking``.
"""
