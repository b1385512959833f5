"""The webhook outboxes' shared part: one set of columns (``OutboxRow``) in both tables, one life
(queue, attempt, backoff, give up) in :mod:`gateway.units.outbox`, over the real database."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from gateway.supervision.warnings_store import WarningDelivery
from gateway.ticketing.models import OutboxRow, UnitHookDelivery
from gateway.ticketing.store import TicketStore  # noqa: F401 - imported before the event loop runs (blockbuster)
from gateway.units import outbox

NOW = datetime(2026, 12, 2, 8, 0, tzinfo=timezone.utc)
SHARED = ("id", "payload", "attempts", "next_at", "claimed_until", "delivered_at", "failed_at", "last_error",
          "created_at")


def _columns(model) -> dict:
    return {c.name: (type(c.type).__name__, c.nullable) for c in model.__table__.columns}


def test_given_both_outboxes_then_they_share_the_mixins_columns_as_before():
    assert issubclass(UnitHookDelivery, OutboxRow) and issubclass(WarningDelivery, OutboxRow)
    units, warnings = _columns(UnitHookDelivery), _columns(WarningDelivery)
    assert {k: units[k] for k in SHARED} == {k: warnings[k] for k in SHARED}
    assert set(units) - set(SHARED) == {"unit_id", "event", "ticket_id"}  # the tables' own, unchanged
    assert set(warnings) - set(SHARED) == {"unit_id", "event", "alert_id"}


def test_given_a_delivery_failing_every_time_then_it_backs_off_and_is_given_up_after_max_attempts():
    row = outbox.new(UnitHookDelivery, NOW, unit_id="water", event="dispatched", ticket_id=1, payload={})
    waits, at = [], NOW
    for _ in range(outbox.MAX_ATTEMPTS - 1):
        assert outbox.record_attempt(row, "HTTP 503", at) == "retry"
        waits.append((row.next_at - at).total_seconds())
        at = row.next_at
    assert waits == [30, 60, 120, 240, 480, 960, 1920]
    assert outbox.record_attempt(row, "HTTP 503", at) == "given_up" and row.failed_at == at
    assert row.attempts == outbox.MAX_ATTEMPTS and row.last_error == "HTTP 503"
    assert outbox.backoff(20) == timedelta(hours=1)  # never more than an hour


async def test_given_rows_in_both_tables_when_due_and_counted_then_the_same_code_answers_for_each(store):
    async def work(session):
        session.add(outbox.new(UnitHookDelivery, NOW, unit_id="water", event="dispatched", ticket_id=1, payload={}))
        later = outbox.new(UnitHookDelivery, NOW, unit_id="water", event="reminder", ticket_id=1, payload={})
        later.next_at = NOW + timedelta(minutes=5)
        session.add(later)

    await store.run_write(work)
    async with store.read_session() as session:
        due = (await session.execute(sa.select(UnitHookDelivery.event).where(outbox.due(UnitHookDelivery, NOW))
                                     )).scalars().all()
        assert due == ["dispatched"]
        assert await outbox.counts(session, UnitHookDelivery) == {"pending": 2, "failed": 0}
        assert await outbox.counts(session, WarningDelivery) == {"pending": 0, "failed": 0}
        assert await outbox.problems(session, UnitHookDelivery) == []
