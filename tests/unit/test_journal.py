"""The call path's journal (gateway.ticketing.journal) on real files and a real, migrated SQLite
database; the database's faults are real too (a second connection holding the write lock) or
a store that answers as a locked database does."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import exc as sa_exc

from gateway.errors import CallExists
from gateway.ticketing import migrate
from gateway.ticketing.dbcheck import database_state
from gateway.ticketing.journal import Journal, JournaledStore, OrphanJournals, Record, unavailable
from gateway.ticketing.journal_files import JournalError
from gateway.ticketing.store import TicketStore

T0 = datetime(2025, 3, 1, 8, 30, tzinfo=timezone.utc)


@pytest.fixture
def db_path(tmp_path) -> Path:
    path = tmp_path / "db" / "gateway.db"
    migrate.upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture
async def store(db_path):
    store = await TicketStore.open(f"sqlite+aiosqlite:///{db_path}")
    try:
        yield store
    finally:
        await store.close()


class Flaky:
    """The real store, or a database that says it is locked (``down = True``)."""

    def __init__(self, store: TicketStore) -> None:
        self.store = store
        self.down = False
        self.attempts = 0

    def __getattr__(self, name):
        attr = getattr(self.store, name)
        if not callable(attr):
            return attr

        @functools.wraps(attr)  # the journal reads the store method's signature through it
        async def call(*args, **kwargs):
            self.attempts += 1
            if self.down:
                raise sa_exc.OperationalError("UPDATE calls", {}, sqlite3.OperationalError("database is locked"))
            return await attr(*args, **kwargs)

        return call


async def until(predicate, timeout: float = 20.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def call_fields(uniqueid: str) -> dict:
    return dict(uniqueid=uniqueid, channel=f"PJSIP/trunk-{uniqueid}", caller_number="13800138000",
                dialled_number="12345", line_number="12345", line_name="市民服务热线", merge_mode="primary",
                department=None, flow_version="v1", started_at=T0)


async def a_call(writes: JournaledStore, uniqueid: str, steps: int = 3) -> None:
    await writes.start_call(**call_fields(uniqueid))
    for i in range(steps):
        await writes.record_step(uniqueid, {"node": "type_menu", "key": str(i)})
    await writes.ensure_ticket(uniqueid, category="投诉", channel_kind=None, confidential=True, handled_by=None,
                               queue="q-complaint", department=None)
    await writes.mark_queued(uniqueid, "q-complaint")
    await writes.mark_agent(uniqueid, "8001")
    await writes.finish_call(uniqueid, hangup_cause=16, hangup_cause_txt="Normal Clearing", ended_at=T0)


async def started(store, directory: Path, **options) -> Journal:
    journal = Journal(store, directory, **options)
    await journal.start()
    return journal


async def test_given_writes_when_the_database_takes_them_then_they_are_applied_in_order(store, tmp_path):
    journal = await started(store, tmp_path / "journal")
    try:
        await a_call(JournaledStore(journal), "1700000000.1")
        await until(lambda: journal.stats()["backlog"] == 0)
    finally:
        await journal.stop()

    call = await store.get_call("1700000000.1")
    assert [step["key"] for step in call["menu_path"]] == ["0", "1", "2"]
    assert call["status"] == "ended" and call["queue"] == "q-complaint" and call["agent"] == "8001"
    ticket = await store.get_ticket(call["ticket_id"])
    assert ticket["category"] == "投诉" and ticket["confidential"] is True and ticket["queue"] == "q-complaint"
    assert journal.counters["applied"] == 8 and journal.counters["refused"] == 0


async def test_given_the_database_locked_by_another_connection_when_calls_write_then_they_return_and_drain_after(
        store, db_path, tmp_path):
    locked, release, released = threading.Event(), threading.Event(), threading.Event()

    def hold_lock() -> None:
        connection = sqlite3.connect(db_path, isolation_level=None)
        connection.execute("BEGIN EXCLUSIVE")
        locked.set()
        release.wait(60)
        connection.execute("ROLLBACK")
        connection.close()
        released.set()

    holder = threading.Thread(target=hold_lock, daemon=True)
    holder.start()
    await asyncio.to_thread(locked.wait, 10)
    journal = await started(store, tmp_path / "journal")
    try:
        writes = JournaledStore(journal)
        await asyncio.wait_for(a_call(writes, "1700000000.2"), 5)  # not waiting for the lock
        assert await database_state(f"sqlite+aiosqlite:///{db_path}", store.engine) == "locked"
        await until(lambda: journal.stats()["waiting_for_database"] == "locked")
        assert journal.stats()["backlog"] == 8
        with pytest.raises(CallExists):  # a replayed session is refused from memory, the lock held
            await asyncio.wait_for(writes.start_call(**call_fields("1700000000.2")), 5)

        release.set()
        await asyncio.to_thread(released.wait, 10)
        await until(lambda: journal.stats()["backlog"] == 0)
    finally:
        release.set()
        await journal.stop()
    call = await store.get_call("1700000000.2")
    assert len(call["menu_path"]) == 3 and call["ticket_id"] is not None and call["status"] == "ended"
    assert journal.stats()["waiting_for_database"] is None
    assert await database_state(f"sqlite+aiosqlite:///{db_path}", store.engine) == "ok"


async def test_given_a_checkpoint_lost_in_a_crash_when_replayed_again_then_nothing_is_doubled(store, tmp_path):
    directory = tmp_path / "journal"
    journal = await started(store, directory)
    await a_call(JournaledStore(journal), "1700000000.3")
    await until(lambda: journal.stats()["backlog"] == 0)
    await journal.stop()
    await asyncio.to_thread((directory / "applied").write_text, "0\n")  # applied, checkpoint not written

    again = await started(store, directory)
    try:
        assert again.counters["recovered"] == 8
        await until(lambda: again.stats()["backlog"] == 0)
    finally:
        await again.stop()
    call = await store.get_call("1700000000.3")
    assert [step["key"] for step in call["menu_path"]] == ["0", "1", "2"]
    assert await store.count_calls() == 1
    assert (await store.list_tickets())["total"] == 1
    ticket = await store.get_ticket(call["ticket_id"])
    assert len(ticket["menu_path"]) == 3


async def test_given_writes_left_when_the_gateway_stopped_then_the_next_start_replays_them(store, tmp_path):
    directory = tmp_path / "journal"
    flaky = Flaky(store)
    flaky.down = True
    journal = await started(flaky, directory)
    await a_call(JournaledStore(journal), "1700000000.4")
    await until(lambda: flaky.attempts >= 2)
    assert journal.stats()["backlog"] == 8
    await journal.stop()
    assert await store.get_call("1700000000.4") is None

    again = await started(store, directory)
    try:
        await until(lambda: again.stats()["backlog"] == 0)
        with pytest.raises(CallExists):  # the journal still knows the call: a replayed session is refused
            await JournaledStore(again).start_call(**call_fields("1700000000.4"))
    finally:
        await again.stop()
    call = await store.get_call("1700000000.4")
    assert len(call["menu_path"]) == 3 and call["status"] == "ended"


async def test_given_a_torn_last_record_when_started_then_it_is_skipped_and_the_rest_replayed(store, tmp_path):
    directory = tmp_path / "journal"
    await asyncio.to_thread(directory.mkdir)
    good = Record(seq=1, op="start_call", call="1700000000.5", args={k: v for k, v in call_fields("x").items()
                                                                      if k != "uniqueid"}, at=0.0).encode()
    step = Record(seq=2, op="record_step", call="1700000000.5", args={"step": {"node": "greeting"}}, at=0.0,
                  n=0).encode()
    corrupt = step.replace(b"greeting", b"greetinG")
    torn = Record(seq=4, op="record_step", call="1700000000.5", args={"step": {"node": "x"}}, at=0.0, n=2).encode()
    await asyncio.to_thread((directory / "seg-0000000000000001.log").write_bytes,
                            good + step + corrupt.replace(b'"seq":2', b'"seq":3') + torn[:25])

    journal = await started(store, directory)
    try:
        assert journal.counters["skipped_at_start"] == 2  # the corrupt line and the torn tail
        await until(lambda: journal.stats()["backlog"] == 0)
        await JournaledStore(journal).record_step("1700000000.5", {"node": "after"})
        await until(lambda: journal.stats()["backlog"] == 0)
    finally:
        await journal.stop()
    call = await store.get_call("1700000000.5")
    assert [step["node"] for step in call["menu_path"]] == ["greeting", "after"]
    segments = await asyncio.to_thread(lambda: sorted(p.name for p in directory.glob("seg-*.log")))
    assert segments[-1] != "seg-0000000000000001.log"  # new writes never follow a torn line


async def test_given_a_journal_over_its_bound_when_calls_write_then_steps_are_dropped_and_calls_kept(store, tmp_path):
    flaky = Flaky(store)
    flaky.down = True
    journal = await started(flaky, tmp_path / "journal", max_bytes=600)
    writes = JournaledStore(journal)
    try:
        await a_call(writes, "1700000000.6", steps=6)
        stats = journal.stats()
        assert stats["over_bound"] and stats["dropped"] >= 1 and not journal.healthy(stats)
        flaky.down = False
        await until(lambda: journal.stats()["backlog"] == 0)
    finally:
        await journal.stop()
    call = await store.get_call("1700000000.6")
    assert call["ticket_id"] is not None and call["status"] == "ended" and call["agent"] == "8001"
    assert len(call["menu_path"]) == 6 - journal.counters["dropped"]


async def test_given_small_segments_when_applied_then_old_segments_are_deleted(store, tmp_path):
    directory = tmp_path / "journal"
    journal = await started(store, directory, segment_bytes=400)
    try:
        for i in range(4):
            await a_call(JournaledStore(journal), f"1700000001.{i}", steps=2)
        await until(lambda: journal.stats()["backlog"] == 0)
    finally:
        await journal.stop()
    assert await store.count_calls() == 4
    remaining = await asyncio.to_thread(lambda: list(directory.glob("seg-*.log")))
    assert len(remaining) == 1  # only the last (open) segment is kept
    checkpoint = await asyncio.to_thread((directory / "applied").read_text)
    assert checkpoint.strip() == str(journal.counters["applied"]) == "28"


async def test_given_a_pending_agent_when_the_desk_waits_then_it_runs_once_the_write_is_applied(store, tmp_path):
    flaky = Flaky(store)
    flaky.down = True
    journal = await started(flaky, tmp_path / "journal")
    seen: list = []

    async def pop() -> None:
        seen.append(await store.get_call("1700000000.7"))

    try:
        await a_call(JournaledStore(journal), "1700000000.7", steps=1)
        assert journal.pending_for("1700000000.7")
        journal.when_applied("1700000000.7", pop)
        await asyncio.sleep(0.3)
        assert seen == []
        flaky.down = False
        await until(lambda: seen)
    finally:
        await journal.stop()
    assert seen[0]["agent"] == "8001" and seen[0]["ticket_id"] is not None
    assert not journal.pending_for("1700000000.7")


async def test_given_a_missing_database_file_then_the_check_says_down(tmp_path, store):
    assert await database_state(f"sqlite+aiosqlite:///{tmp_path / 'nothing.db'}", store.engine) == "down"


def test_given_database_errors_then_the_unavailable_ones_are_told_apart():
    assert unavailable(sa_exc.OperationalError("x", {}, Exception("database is locked")))
    assert unavailable(sa_exc.OperationalError("x", {}, Exception("attempt to write a readonly database")))
    assert unavailable(ConnectionRefusedError()) and unavailable(TimeoutError())
    assert unavailable(sa_exc.DBAPIError("x", {}, Exception("gone"), connection_invalidated=True))
    assert not unavailable(sa_exc.IntegrityError("x", {}, Exception("UNIQUE constraint failed")))
    assert not unavailable(ValueError("bad"))


async def test_given_a_running_journal_when_a_second_process_opens_its_directory_then_it_is_refused(store, tmp_path):
    from gateway.ticketing.journal import JournalError

    journal = await started(store, tmp_path / "journal")
    try:
        with pytest.raises(JournalError, match="another gateway process"):
            await Journal(store, tmp_path / "journal").start()
    finally:
        await journal.stop()
    again = await started(store, tmp_path / "journal")  # free again once stopped
    await again.stop()


async def test_given_a_journal_disk_that_refuses_when_a_call_writes_then_it_goes_to_the_database_directly(
        store, tmp_path, caplog):
    journal = await started(store, tmp_path / "journal")

    def refuse(lines, first_seq):
        raise OSError(28, "No space left on device")

    journal._files.append = refuse
    try:
        writes = JournaledStore(journal)
        await writes.start_call(**call_fields("1700000000.8"))
        await writes.record_step("1700000000.8", {"node": "greeting"})
        assert journal.stats()["append_error"] and not journal.healthy(journal.stats())
    finally:
        await journal.stop()
    call = await store.get_call("1700000000.8")
    assert [step["node"] for step in call["menu_path"]] == ["greeting"]
    assert "written to the database directly" in caplog.text


# -- orphans: a stopped sibling instance's journal ---------------------------------------------
async def test_given_a_stopped_siblings_journal_with_writes_when_swept_then_they_reach_the_database(
        store, tmp_path):
    flaky = Flaky(store)
    flaky.down = True
    dead = await started(flaky, tmp_path / "var" / "journal-gw-a")
    await a_call(JournaledStore(dead), "1700000000.31")
    await dead.stop()  # gw-a is gone for good; its writes wait in var/journal-gw-a
    assert await store.get_call("1700000000.31") is None

    orphans = OrphanJournals(store, tmp_path / "var" / "journal-gw-b", interval=60)
    assert await orphans.sweep() == 8  # the call, 3 steps, ticket, queue, agent, end
    call = await store.get_call("1700000000.31")
    assert call["status"] == "ended" and len(call["menu_path"]) == 3 and call["ticket_id"] is not None
    assert orphans.counters["adopted"] == 1
    assert await orphans.sweep() == 0  # drained: nothing twice

    # the owner comes back: it starts (its lock is free again) and finds nothing left to replay
    back = await started(store, tmp_path / "var" / "journal-gw-a")
    try:
        assert back.stats()["backlog"] == 0
        assert back.counters["recovered"] == 0
    finally:
        await back.stop()


async def test_given_a_running_siblings_journal_when_swept_then_it_is_left_to_its_owner(store, tmp_path):
    flaky = Flaky(store)
    flaky.down = True
    alive = await started(flaky, tmp_path / "var" / "journal-gw-a")
    try:
        await a_call(JournaledStore(alive), "1700000000.32")
        orphans = OrphanJournals(store, tmp_path / "var" / "journal-gw-b", interval=60)
        assert await orphans.sweep() == 0
        assert orphans.counters["adopted"] == 0
        assert await store.get_call("1700000000.32") is None
    finally:
        flaky.down = False
        await until(lambda: alive.stats()["backlog"] == 0)
        await alive.stop()


async def test_given_an_orphan_being_replayed_when_its_owner_starts_then_it_waits_for_the_lock(store, tmp_path):
    directory = tmp_path / "var" / "journal-gw-a"
    adopter = await started(store, directory)  # as OrphanJournals holds it while replaying
    with pytest.raises(JournalError, match="another gateway process"):
        await started(store, directory)  # without lock_wait: refused at once
    owner = Journal(store, directory, lock_wait=5.0)
    starting = asyncio.ensure_future(owner.start())
    await asyncio.sleep(0.3)  # pacing only: whether it waited is what the next line checks
    assert not starting.done()
    await adopter.stop()
    await asyncio.wait_for(starting, 5.0)  # the lock is free: the owner runs
    await owner.stop()
