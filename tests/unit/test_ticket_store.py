"""TicketStore against a real, migrated SQLite file (no mocks)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from datetime import datetime, timedelta, timezone

import pytest

from gateway.errors import CallExists, NotFound, TicketDecided
from gateway.ticketing.desk_store import DeskStore
from gateway.ticketing import migrate
from gateway.ticketing.store import TicketStore

def _head_revision() -> str:
    """The one head of the migration chain (revision ids may be descriptive: ``0007_recording_problem``)."""
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory(str(Path(migrate.__file__).parent / "migrations")).get_heads()
    assert len(heads) == 1, f"the migrations have several heads: {heads}"
    return heads[0]


HEAD_REVISION = _head_revision()
T0 = datetime(2025, 3, 1, 8, 30, tzinfo=timezone.utc)


async def start(store: TicketStore, uniqueid: str, **overrides) -> None:
    fields = dict(
        uniqueid=uniqueid,
        channel=f"PJSIP/trunk-{uniqueid}",
        caller_number="13800138000",
        dialled_number="12345",
        line_number="12345",
        line_name="市民服务热线",
        merge_mode="primary",
        department=None,
        flow_version="v1",
        started_at=T0,
    )
    fields.update(overrides)
    await store.start_call(**fields)


async def ensure(store: TicketStore, uniqueid: str, **overrides) -> int:
    fields = dict(
        category=None, channel_kind=None, confidential=None, handled_by=None, queue=None, department=None
    )
    fields.update(overrides)
    return await store.ensure_ticket(uniqueid, **fields)


def test_given_fresh_path_when_upgrade_then_directory_file_and_head_revision_exist(tmp_path):
    path = tmp_path / "new" / "dir" / "gateway.db"
    url = f"sqlite+aiosqlite:///{path}"
    assert migrate.current(url) is None
    assert not path.exists()

    migrate.upgrade(url)
    migrate.upgrade(url)  # a second upgrade is a no-op

    assert path.exists()
    assert migrate.current(url) == HEAD_REVISION
    with sqlite3.connect(path) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"calls", "tickets", "audit_events", "config_versions", "users", "user_sessions",
            "alembic_version"} <= tables


def test_given_async_urls_when_sync_url_then_sync_drivers_are_used():
    assert migrate.sync_url("sqlite+aiosqlite:////x/y.db").drivername == "sqlite"
    assert migrate.sync_url("postgresql+asyncpg://u@h/db").drivername == "postgresql+psycopg2"
    assert migrate.sync_url("sqlite:////x/y.db").drivername == "sqlite"


async def test_given_open_store_when_ping_then_true_and_sqlite_pragmas_apply(store):
    assert await store.ping() is True
    if store.engine.dialect.name != "sqlite":
        return  # PostgreSQL: nothing to set per connection
    async with store._engine.connect() as conn:  # noqa: SLF001 - checking connection setup
        journal = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
        fks = (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar()
        busy = (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar()
    assert (journal, fks, busy) == ("wal", 1, 5000)


async def test_given_unreachable_database_when_ping_then_false_not_raise(tmp_path):
    await asyncio.to_thread((tmp_path / "dir.db").mkdir)  # a directory where the file should be: every connect fails
    broken = await TicketStore.open(f"sqlite+aiosqlite:///{tmp_path / 'dir.db'}")
    try:
        assert await broken.ping() is False
    finally:
        await broken.close()


def test_given_migrated_database_when_compared_with_models_then_no_difference(database_url):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from gateway.schema import Base

    diff = migrate.run_sync(database_url, lambda conn: compare_metadata(MigrationContext.configure(conn), Base.metadata))
    assert diff == []


def _tables(conn) -> set[str]:
    import sqlalchemy as sa

    return set(sa.inspect(conn).get_table_names())


def test_given_an_empty_database_when_upgraded_downgraded_and_upgraded_again_then_head_each_time(
        empty_database_url):
    url = empty_database_url
    assert migrate.current(url) is None
    migrate.upgrade(url)
    assert migrate.current(url) == HEAD_REVISION
    assert {"calls", "tickets", "audit_events", "config_versions", "users", "user_sessions"} <= migrate.run_sync(
        url, _tables)
    migrate.downgrade(url, "base")
    assert migrate.current(url) is None
    assert migrate.run_sync(url, _tables) <= {"alembic_version"}
    migrate.upgrade(url)
    assert migrate.current(url) == HEAD_REVISION


async def test_given_call_steps_and_ticket_when_read_back_then_round_trip_is_json_ready(store):
    await start(store, "1700000000.1", merge_mode="dual_number", line_number="96310", dialled_number="96310")
    await store.record_step("1700000000.1", {"node": "welcome", "digits": ""})
    ticket_id = await ensure(store, "1700000000.1", category="投诉", confidential=True, queue="q-96310")
    await store.record_step("1700000000.1", {"node": "record", "digits": "#"})
    await store.set_recording("1700000000.1", path="/srv/gw/recordings/1700000000.1", duration_ms=8200)
    await store.mark_queued("1700000000.1", "q-96310")
    await store.mark_agent("1700000000.1", "PJSIP/agent-7")
    ended = T0 + timedelta(minutes=3)
    assert await store.finish_call("1700000000.1", hangup_cause=16, hangup_cause_txt="Normal Clearing", ended_at=ended)

    call = await store.get_call("1700000000.1")
    assert call["ticket_id"] == ticket_id
    assert call["status"] == "ended"
    assert call["caller_number"] == "13800138000"
    assert call["queue"] == "q-96310" and call["agent"] == "PJSIP/agent-7"
    assert call["hangup_cause"] == 16 and call["hangup_cause_txt"] == "Normal Clearing"
    assert call["started_at"] == "2025-03-01T08:30:00+00:00"
    assert call["ended_at"] == "2025-03-01T08:33:00+00:00"
    assert [s["node"] for s in call["menu_path"]] == ["welcome", "record"]

    ticket = await store.get_ticket(ticket_id)
    assert ticket["uniqueid"] == "1700000000.1"
    assert ticket["status"] == "draft"
    assert ticket["category"] == "投诉" and ticket["confidential"] is True
    assert ticket["merge_mode"] == "dual_number" and ticket["line_number"] == "96310"
    assert ticket["caller_number"] == "13800138000"
    assert [s["node"] for s in ticket["menu_path"]] == ["welcome", "record"]
    assert ticket["recording_path"] == "/srv/gw/recordings/1700000000.1"
    assert ticket["recording_duration_ms"] == 8200
    assert ticket["queue"] == "q-96310"
    assert datetime.fromisoformat(ticket["created_at"]).tzinfo is not None

    audit = await store.list_audit("ticket", str(ticket_id))
    assert audit[0]["actor"] == "ivr" and audit[0]["action"] == "ticket.draft_created"
    assert "13800138000" not in repr(audit)
    assert [a["action"] for a in await store.list_audit("call", "1700000000.1")] == ["call.ended"]


async def test_given_same_uniqueid_when_start_call_twice_then_refused_and_first_values_kept(store):
    await start(store, "u-1", caller_number="13900000001")
    with pytest.raises(CallExists):
        await start(store, "u-1", caller_number="13900000002", started_at=T0 + timedelta(hours=1))

    call = await store.get_call("u-1")
    assert await store.count_calls() == 1
    assert call["caller_number"] == "13900000001"
    assert call["started_at"] == T0.isoformat()


async def test_given_existing_ticket_when_ensure_again_then_same_id_and_only_given_fields_change(store):
    await start(store, "u-2")
    first = await ensure(store, "u-2", category="咨询", handled_by="sub-centre-A")
    second = await ensure(store, "u-2", category="举报", channel_kind="enterprise")
    third = await ensure(store, "u-2")

    ticket = await store.get_ticket(first)
    assert first == second == third
    assert ticket["category"] == "举报"
    assert ticket["handled_by"] == "sub-centre-A"
    assert ticket["channel_kind"] == "enterprise"
    assert ticket["confidential"] is False
    actions = [a["action"] for a in await store.list_audit("ticket", str(first))]
    assert actions == ["ticket.draft_created", "ticket.updated"]


async def test_given_30_calls_when_ensure_ticket_concurrently_and_repeated_then_exactly_30_tickets(store):
    uids = [f"c-{i}" for i in range(30)]
    await asyncio.gather(*(start(store, uid) for uid in uids))

    ids = await asyncio.gather(*(ensure(store, uid, category="求助") for uid in uids * 2))
    ids_again = await asyncio.gather(*(ensure(store, "c-0", queue="q1") for _ in range(10)))

    page = await store.list_tickets(limit=200)
    assert page["total"] == 30
    assert len(set(ids)) == 30
    assert ids[:30] == ids[30:]
    assert set(ids_again) == {ids[0]}
    for uid, ticket_id in zip(uids, ids[:30]):
        assert (await store.get_call(uid))["ticket_id"] == ticket_id
    created = await store.list_audit("ticket", str(ids[0]))
    assert [a["action"] for a in created].count("ticket.draft_created") == 1


async def _waiting_on_a_lock(store: TicketStore) -> bool:
    import sqlalchemy as sa

    async with store.read_session() as session:
        return bool(await session.scalar(sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()")))


async def _first_writer_paused(store: TicketStore, monkeypatch, first, second):
    """Run ``first`` until it holds its call (find_call returned), then ``second`` until it waits
    for that call's lock in PostgreSQL, then let ``first`` commit: the moment is deterministic."""
    from gateway.ticketing import call_records, store as store_module
    from gateway_dev.eventually import aeventually

    holding, go_on = asyncio.Event(), asyncio.Event()
    real_find_call = store_module.find_call

    async def find_call(session, uniqueid, **kw):
        call = await real_find_call(session, uniqueid, **kw)
        if not holding.is_set():
            holding.set()
            await go_on.wait()
        return call

    monkeypatch.setattr(store_module, "find_call", find_call)
    monkeypatch.setattr(call_records, "find_call", find_call)
    one = asyncio.ensure_future(first())
    await holding.wait()
    two = asyncio.ensure_future(second())
    await aeventually(lambda: _waiting_on_a_lock(store), timeout=10, interval=0.02, what="the second writer waiting")
    go_on.set()
    return await one, await two


async def test_given_a_hang_up_and_a_late_queue_event_racing_on_postgresql_then_the_call_stays_ended(
        store, monkeypatch):
    """Without the call's row lock, READ COMMITTED let the queue event (read before the hang-up
    committed) write ``queued`` over ``ended``: a call open for ever."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's writers take turns on the whole database")
    await start(store, "race-q")
    await _first_writer_paused(
        store, monkeypatch,
        lambda: store.finish_call("race-q", hangup_cause=16, hangup_cause_txt="Normal Clearing", ended_at=T0),
        lambda: store.mark_queued("race-q", "q-general"))
    call = await store.get_call("race-q")
    assert (call["status"], call["queue"], call["hangup_cause"]) == ("ended", "q-general", 16)


async def test_given_two_drafts_racing_on_postgresql_then_the_second_waits_and_finds_the_first(store, monkeypatch):
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's writers take turns on the whole database")
    await start(store, "race-1")
    ids = await _first_writer_paused(store, monkeypatch, lambda: ensure(store, "race-1", category="求助"),
                                     lambda: ensure(store, "race-1", queue="q-x"))
    assert ids[0] == ids[1]
    assert (await store.list_tickets(limit=200))["total"] == 1
    audit = [a["action"] for a in await store.list_audit("ticket", str(ids[0]))]
    assert audit.count("ticket.draft_created") == 1
    ticket = await store.get_ticket(ids[0])
    assert ticket["category"] == "求助" and ticket["queue"] == "q-x"  # the second writer's fields applied


async def test_given_a_call_with_a_ticket_when_a_second_ticket_is_inserted_then_the_unique_call_id_refuses_it(store):
    from sqlalchemy.exc import IntegrityError

    from gateway.ticketing.models import Ticket
    from gateway.ticketing.rows import find_call

    await start(store, "dup-1")
    ticket_id = await ensure(store, "dup-1", category="求助")
    existing = await store.get_ticket(ticket_id)

    async def second_draft(session):
        call = await find_call(session, "dup-1")
        session.add(Ticket(call_id=call.id, status="draft",
                           caller_number=existing["caller_number"], dialled_number=existing["dialled_number"],
                           line_number=existing["line_number"], line_name=existing["line_name"],
                           merge_mode=existing["merge_mode"], confidential=False, menu_path=[]))
        await session.flush()

    with pytest.raises(IntegrityError):
        await store.run_write(second_draft)
    assert (await store.list_tickets(limit=200))["total"] == 1


async def test_given_unknown_uniqueid_when_finish_call_then_false_and_nothing_stored(store):
    assert await store.finish_call("never-seen", hangup_cause=16, hangup_cause_txt="x", ended_at=T0) is False
    assert await store.mark_queued("never-seen", "q") is False
    assert await store.mark_agent("never-seen", "a") is False
    assert await store.get_call("never-seen") is None
    assert await store.count_calls() == 0


async def test_given_ended_call_when_finish_again_then_first_values_kept(store):
    await start(store, "u-3")
    await store.finish_call("u-3", hangup_cause=16, hangup_cause_txt="Normal Clearing", ended_at=T0)
    again = await store.finish_call("u-3", hangup_cause=19, hangup_cause_txt="No answer", ended_at=T0 + timedelta(1))
    await store.mark_queued("u-3", "late-queue")

    call = await store.get_call("u-3")
    assert again is True
    assert (call["hangup_cause"], call["hangup_cause_txt"]) == (16, "Normal Clearing")
    assert call["ended_at"] == T0.isoformat()
    assert call["status"] == "ended"


async def test_given_call_without_ensure_ticket_when_read_then_no_ticket(store):
    await start(store, "u-4")
    await store.record_step("u-4", {"node": "welcome"})

    call = await store.get_call("u-4")
    assert call["ticket_id"] is None
    assert (await store.list_tickets())["total"] == 0
    with pytest.raises(NotFound):
        await store.set_recording("u-4", path="/srv/gw/recordings/u-4", duration_ms=1)


async def test_given_unknown_ids_when_read_or_step_then_not_found(store):
    with pytest.raises(NotFound):
        await store.get_ticket(999)
    with pytest.raises(NotFound):
        await store.record_step("nope", {"node": "x"})
    with pytest.raises(NotFound):
        await ensure(store, "nope", category="咨询")


async def test_given_tickets_on_lines_when_list_with_filters_and_paging_then_matching_pages(store):
    for i in range(7):
        uid = f"p-{i}"
        line = "12345" if i % 2 == 0 else "12315"
        await start(store, uid, line_number=line, dialled_number=line)
        await ensure(store, uid, category="投诉" if i < 3 else "咨询")

    everything = await store.list_tickets()
    first = await store.list_tickets(limit=3, offset=0)
    last = await store.list_tickets(limit=3, offset=6)
    by_line = await store.list_tickets(line_number="12315")
    by_both = await store.list_tickets(line_number="12345", category="投诉")
    drafts = await store.list_tickets(status="draft", limit=0)
    huge = await store.list_tickets(limit=10_000, offset=-5)
    none = await store.list_tickets(status="closed")

    assert everything["total"] == 7 and len(everything["items"]) == 7
    assert [t["uniqueid"] for t in first["items"]] == ["p-6", "p-5", "p-4"]
    assert (first["limit"], first["offset"], first["total"]) == (3, 0, 7)
    assert [t["uniqueid"] for t in last["items"]] == ["p-0"]
    assert by_line["total"] == 3 and {t["line_number"] for t in by_line["items"]} == {"12315"}
    assert sorted(t["uniqueid"] for t in by_both["items"]) == ["p-0", "p-2"]
    assert drafts["limit"] == 1 and drafts["total"] == 7 and len(drafts["items"]) == 1
    assert (huge["limit"], huge["offset"]) == (200, 0)
    assert none == {"items": [], "total": 0, "limit": 50, "offset": 0}


async def test_given_pending_transcripts_in_several_languages_when_listed_then_only_those_the_engine_can_do(store):
    for uid, language in (("z1", "zh"), ("z2", "zh"), ("k1", "ko")):
        await start(store, uid)
        await store.ensure_ticket(uid, category=None, channel_kind=None, confidential=None, handled_by=None,
                                  queue=None, department=None, language=language)
        await store.set_recording(uid, path=f"/r/{uid}.wav", duration_ms=1000)
        await store.set_transcript_pending(uid, language=language, reason="no live recogniser")
    assert [t["uniqueid"] for t in await store.pending_transcripts(languages=["ko"], limit=1)] == ["k1"]
    assert await store.pending_transcripts(languages=[]) == []
    ticket_id = (await store.pending_transcripts(languages=["ko"]))[0]["id"]
    for attempt in range(3):
        status = await store.transcript_attempt_failed(ticket_id, "bad file", give_up_after=3)
    assert status == "failed" and await store.pending_transcripts(languages=["ko"]) == []
    await store.set_transcript("z1", {"text": "你好", "words": [], "confidence": 0.9, "model": "m", "rtf": 0.2,
                                      "language": "zh"})
    ticket = await store.get_ticket((await store.get_call("z1"))["ticket_id"])
    assert ticket["transcript_status"] == "done" and ticket["transcript"] == "你好"


async def test_given_a_decided_ticket_when_the_ivr_writes_to_it_then_refused_and_nothing_changes(store):
    """Probe: a replayed FastAGI session rewrote a submitted ticket's category and queue (issue 9, item 2)."""
    await start(store, "u-9")
    ticket_id = await ensure(store, "u-9", category="投诉", queue="q-complaint", confidential=True)
    version = (await store.get_ticket(ticket_id))["version_id"]
    desk = DeskStore(store)
    await desk.decide(ticket_id, outcome="submitted", version_id=version, actor="desk-a", now=T0,
                      fields={"category": "投诉", "summary": "噪音", "dispatch_mode": "direct",
                              "units": [{"id": "x", "name": "某街道"}]})
    before = await store.get_ticket(ticket_id)

    for write in (lambda: ensure(store, "u-9", category="咨询", queue="q-general", confidential=False),
                  lambda: store.set_recording("u-9", path="/tmp/x.wav", duration_ms=10),
                  lambda: store.set_emergency("u-9", ["着火"]),
                  lambda: store.set_transcript("u-9", {"text": "假的", "words": []}),
                  lambda: store.set_transcript_pending("u-9", language="zh", reason="x")):
        with pytest.raises(TicketDecided):
            await write()
    await store.record_step("u-9", {"node": "forged", "choice": "1"})

    after = await store.get_ticket(ticket_id)
    assert after == before  # category, queue, confidentiality, menu path, recording: all as decided


async def test_given_a_confidential_draft_when_the_ivr_says_not_confidential_then_it_stays_confidential(store):
    await start(store, "u-10")
    ticket_id = await ensure(store, "u-10", confidential=True)
    await ensure(store, "u-10", confidential=False, category="咨询")
    ticket = await store.get_ticket(ticket_id)
    assert ticket["confidential"] is True and ticket["category"] == "咨询"


async def test_given_a_pending_transcript_of_a_decided_ticket_when_recovered_then_it_is_stored(store):
    await start(store, "u-11")
    ticket_id = await ensure(store, "u-11", category="投诉")
    await store.set_transcript_pending("u-11", language="zh", reason="no model")
    version = (await store.get_ticket(ticket_id))["version_id"]
    await DeskStore(store).decide(ticket_id, outcome="answered", version_id=version, actor="desk-a", now=T0,
                                  fields={"category": "咨询", "answer": "已答复"})
    await store.set_transcript("u-11", {"text": "你好", "words": []}, recovered=True)
    ticket = await store.get_ticket(ticket_id)
    assert ticket["transcript_status"] == "done" and ticket["transcript"] == "你好"


async def test_given_an_id_beyond_32_bits_when_read_then_not_found_on_both_databases(store):
    with pytest.raises(NotFound):
        await store.get_ticket(10**12 - 1)  # the largest id a path may carry (gateway.web.params)
