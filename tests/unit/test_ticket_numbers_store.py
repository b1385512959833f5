"""Ticket numbers and the SMS outbox in the database (SQLite and PostgreSQL, no mocks)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from gateway.sms.outbox import Outbox, backoff_seconds
from gateway.ticketing.ticket_no import is_ticket_no, new_ticket_no

T0 = datetime(2026, 12, 1, 17, 30, tzinfo=timezone.utc)  # 2 December 01:30 in Beijing


async def start(store, uid: str, caller: str = "13800138000") -> None:
    await store.start_call(uniqueid=uid, channel=f"PJSIP/t-{uid}", caller_number=caller, dialled_number="12345",
                           line_number="12345", line_name="市民服务热线", merge_mode="primary", department=None,
                           flow_version="v1", started_at=T0)


async def ensure(store, uid: str, ticket_no: str | None, **fields) -> int:
    base = dict(category="投诉", channel_kind=None, confidential=None, handled_by=None, queue=None, department=None)
    base.update(fields)
    return await store.ensure_ticket(uid, ticket_no=ticket_no, **base)


async def sms_rows(store) -> list[dict]:
    outbox = Outbox(store)
    return await outbox.listing(statuses=("pending", "sending", "sent", "failed", "dead"), limit=200)


async def test_given_a_drawn_number_when_the_ticket_is_created_then_it_is_stored_and_audited(store):
    number = new_ticket_no(date(2026, 12, 2))
    await start(store, "c1")
    ticket_id = await ensure(store, "c1", number)
    ticket = await store.get_ticket(ticket_id)
    assert ticket["ticket_no"] == number
    created = [a for a in await store.list_audit("ticket", str(ticket_id)) if a["action"] == "ticket.draft_created"]
    assert created[0]["details"]["ticket_no"] == number
    # replayed (the journal after a crash) or updated later: the number stays
    await ensure(store, "c1", new_ticket_no(date(2026, 12, 2)), queue="q-complaint")
    assert (await store.get_ticket(ticket_id))["ticket_no"] == number
    assert await store.ticket_no_taken(number) is True


async def test_given_a_number_taken_meanwhile_when_replayed_then_a_new_one_audited_and_texted(store):
    number = new_ticket_no(date(2026, 12, 2))
    await start(store, "first")
    await ensure(store, "first", number)
    await start(store, "second", caller="+8613900000001")
    second = await ensure(store, "second", number)  # drawn while the database was down
    ticket = await store.get_ticket(second)
    assert ticket["ticket_no"] != number and is_ticket_no(ticket["ticket_no"])
    assert ticket["ticket_no"].startswith("1202")  # the centre's date, not UTC's 1 December
    audit = {a["action"]: a["details"] for a in await store.list_audit("ticket", str(second))}
    assert audit["ticket.renumbered"] == {"heard": number, "ticket_no": ticket["ticket_no"]}
    (sms,) = await sms_rows(store)
    assert sms["kind"] == "renumbered" and sms["ticket_id"] == second and sms["to_number"] == "139****0001"
    # told afterwards: no second text
    await store.record_ticket_told("second", sms=None)
    assert len(await sms_rows(store)) == 1


@pytest.mark.parametrize("caller,confidential,consent,texted", [
    ("13800138000", None, None, True),
    ("+8615912345678", None, None, True),
    ("02512345678", None, None, False),  # a landline
    ("12345", None, None, False),  # not a mobile
    ("", None, None, False),  # no caller ID
    ("13800138000", True, None, False),  # confidential: only if asked for
    ("13800138000", True, False, False),
    ("13800138000", True, True, True),
])
async def test_given_a_caller_when_told_the_number_then_a_text_only_to_mobiles_that_may_get_one(
        store, caller, confidential, consent, texted):
    await start(store, "c", caller=caller)
    ticket_id = await ensure(store, "c", new_ticket_no(date(2026, 12, 2)), confidential=confidential)
    await store.record_ticket_told("c", sms=consent)
    await store.record_ticket_told("c", sms=consent)  # replayed twice: one text at most
    rows = await sms_rows(store)
    assert len(rows) == (1 if texted else 0)
    ticket = await store.get_ticket(ticket_id)
    if texted:
        outbox = Outbox(store)
        (claimed,) = await outbox.claim("gw-a")
        assert claimed["to_number"].endswith(caller[-11:]) and ticket["ticket_no"][:4] in claimed["body"]
        assert "拨打12345按7查询" in claimed["body"]
    told = [a for a in await store.list_audit("ticket", str(ticket_id)) if a["action"] == "ticket.number_told"]
    assert told and told[0]["details"]["ticket_no"] == ticket["ticket_no"]
    assert all(caller not in str(a["details"]) or not caller for a in told)  # no phone number in the audit


async def test_given_a_reconciled_call_then_its_ticket_has_a_number(store):
    ticket_id = await store.create_reconciled_call(
        uniqueid="r1", channel="PJSIP/x", caller_number="13800138000", caller_id_raw=None, dialled_number="12345",
        line_number="12345", line_name="市民服务热线", merge_mode="primary", department=None, started_at=T0,
        ended_at=T0 + timedelta(minutes=2), hangup_cause_txt=None, queue="q-general", agent=None, menu_path=[],
        note={"source": "cdr"})
    ticket = await store.get_ticket(ticket_id)
    assert is_ticket_no(ticket["ticket_no"]) and ticket["ticket_no"].startswith("1202")


async def test_given_two_senders_when_they_claim_then_each_text_goes_to_one(store):
    for n in range(4):
        await start(store, f"c{n}", caller=f"1380013800{n}")
        await ensure(store, f"c{n}", new_ticket_no(date(2026, 12, 2)))
        await store.record_ticket_told(f"c{n}")
    outbox = Outbox(store)
    a = await outbox.claim("gw-a", limit=3)
    b = await outbox.claim("gw-b", limit=3)
    assert len(a) == 3 and len(b) == 1 and not {r["id"] for r in a} & {r["id"] for r in b}
    assert await outbox.claim("gw-b") == []
    assert await outbox.sent(b[0]["id"], "gw-b", "ref-1") is True
    assert await outbox.sent(a[0]["id"], "gw-b", "ref-x") is False  # not its claim
    stats = await outbox.stats()
    assert stats["backlog"] == 3 and stats["dead"] == 0 and stats["sent"] == 1


async def test_given_failed_sends_then_backoff_then_dead_after_the_last_attempt_and_a_retry_revives(store):
    await start(store, "c")
    await ensure(store, "c", new_ticket_no(date(2026, 12, 2)))
    await store.record_ticket_told("c")
    now = [datetime.now(timezone.utc)]
    outbox = Outbox(store, max_attempts=3, clock=lambda: now[0])
    statuses = []
    for _ in range(3):
        (row,) = await outbox.claim("gw-a")
        statuses.append(await outbox.failed(row["id"], "gw-a", "webhook answered HTTP 500"))
        assert await outbox.claim("gw-a") == []  # not due before the backoff
        now[0] += timedelta(hours=1)
    assert statuses == ["failed", "failed", "dead"]
    assert await outbox.claim("gw-a") == []
    stats = await outbox.stats()
    assert stats["dead"] == 1 and stats["backlog"] == 0
    (dead,) = await outbox.listing()
    assert dead["status"] == "dead" and dead["last_error"] == "webhook answered HTTP 500"
    assert dead["to_number"] == "138****8000"
    await outbox.retry(dead["id"], actor="sup1")
    (again,) = await outbox.claim("gw-a")
    assert again["id"] == dead["id"] and again["attempts"] == 0


async def test_given_a_sender_that_died_mid_send_when_its_lease_ends_then_another_takes_the_text(store):
    await start(store, "c")
    await ensure(store, "c", new_ticket_no(date(2026, 12, 2)))
    await store.record_ticket_told("c")
    now = [datetime.now(timezone.utc)]
    outbox = Outbox(store, lease_seconds=60, clock=lambda: now[0])
    (row,) = await outbox.claim("gw-a")
    assert await outbox.claim("gw-b") == []
    now[0] += timedelta(seconds=61)
    (taken,) = await outbox.claim("gw-b")
    assert taken["id"] == row["id"] and taken["sender"] == "gw-b"
    assert await outbox.sent(row["id"], "gw-a", None) is False  # the old claim no longer counts


def test_given_attempts_then_backoff_doubles_to_a_cap():
    assert [backoff_seconds(n) for n in (1, 2, 3)] == [30, 60, 120]
    assert backoff_seconds(20) == 1800
