"""The live configuration version is the one applied last, even when the clock went back between
two applies (a test clock, an NTP step): otherwise the gateway's next start would bring back an
older configuration (seen in the end-to-end suite: a scheduled change applied at a test clock's
2027-01-01, rolled back at today's date, came back live after a restart)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from gateway.hotlines.versions import VersionStore

LATER = datetime(2027, 1, 1, 0, 0, 1, tzinfo=timezone.utc)
EARLIER = datetime(2026, 12, 2, 17, 0, tzinfo=timezone.utc)


async def _add(versions: VersionStore, name: str, **kw) -> int:
    return await versions.add(files={"hotlines.yaml": name}, content_hash=name, parent_id=None, diff="",
                              comment=name, created_by="test", created_at=EARLIER, audit_action="config.test", **kw)


async def test_given_a_version_applied_at_a_later_clock_when_the_next_is_applied_at_an_earlier_one_then_it_is_live(
        store):
    versions = VersionStore(store)
    scheduled = await _add(versions, "scheduled", status="scheduled", effective_at=LATER)
    await versions.mark(scheduled, status="applied", at=LATER, actor="scheduler")
    rollback = await _add(versions, "rollback", status="applied", applied_at=EARLIER)  # the clock went back
    live = await versions.current()
    assert live["id"] == rollback
    assert datetime.fromisoformat(live["applied_at"]) >= LATER  # stamped in the order of application
    third = await _add(versions, "third", status="pending")
    await versions.mark(third, status="applied", at=EARLIER + timedelta(minutes=1), actor="admin")
    assert (await versions.current())["id"] == third


async def test_given_ordinary_applies_when_the_clock_moves_forward_then_applied_at_is_the_clock(store):
    versions = VersionStore(store)
    first = await _add(versions, "first", status="applied", applied_at=EARLIER)
    second = await _add(versions, "second", status="applied", applied_at=EARLIER + timedelta(seconds=5))
    live = await versions.current()
    assert live["id"] == second and datetime.fromisoformat(live["applied_at"]) == EARLIER + timedelta(seconds=5)
    assert first != second
