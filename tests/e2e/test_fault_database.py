"""End to end, the database faulted by the test while callers are in the menu: real sandbox
Asterisk, real gateway, real SQLite file.

(a) another connection holds the database's write lock (``BEGIN EXCLUSIVE``) for the whole of
three calls; (b) the database file and its WAL are made immutable (``chattr +i``: not
writable even by root, the gateway's open connections included). Either way every caller
gets the IVR and the queue they chose, ``/healthz`` says what is wrong and how many writes
wait in the journal, and once the test lifts the fault every call has its row, steps, queue,
agent, ticket and end. A System of its own that reads the ticket number (as shipped): the
number told (its audit, the SMS outbox) is one more write that waits in the journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import threading
from pathlib import Path

import pytest

from gateway.settings import sqlite_path
from gateway_dev.eventually import eventually
from gateway_dev.simcall import CallScript, place_calls
from gateway_dev.system import System
from tests.e2e.conftest import running

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

CHOICES = {"1": ("咨询", "q-consult"), "2": ("建议", "q-suggest"), "4": ("投诉", "q-complaint")}


@pytest.fixture(scope="module")
def system():
    sysm = System(prefix="gw-e2e-faultdb-", log_level="INFO")
    with running(sysm, logs=lambda s: [(s.log_path, "e2e-faultdb-gateway.log")]):
        yield sysm


def _db(system) -> Path:
    return sqlite_path(system.settings.database_url)


@contextlib.contextmanager
def write_lock(path: Path):
    """A second connection holding the database's write lock until the block ends."""
    locked, release = threading.Event(), threading.Event()
    failure: list = []

    def hold() -> None:
        connection = sqlite3.connect(path, isolation_level=None, timeout=30)
        try:
            connection.execute("BEGIN EXCLUSIVE")
            locked.set()
            release.wait(600)
            connection.execute("ROLLBACK")
        except sqlite3.Error as exc:
            failure.append(exc)
            locked.set()
        finally:
            connection.close()

    holder = threading.Thread(target=hold, name="db-lock", daemon=True)
    holder.start()
    assert locked.wait(30) and not failure, failure
    try:
        yield
    finally:
        release.set()
        holder.join(30)


@contextlib.contextmanager
def immutable(path: Path):
    """The database file and its WAL not writable by anyone (root included) until the block ends."""
    files = [str(p) for p in (path, path.with_name(path.name + "-wal")) if p.exists()]
    if os.geteuid() != 0:  # a mode would not stop the gateway's open connections; only root may chattr
        pytest.skip("the read-only fault needs root (chattr +i, e2fsprogs)")
    made = subprocess.run(["chattr", "+i", *files], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"this filesystem has no immutable flag: {made.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *files], check=True)


def _health(system) -> dict:
    _status, body = system.http("/healthz", token=system.token())
    return body


def _calls_under_fault(system, fault: str) -> tuple[list[dict], dict]:
    """Three callers choosing a type each while the fault is on; their results and the /healthz
    seen during the calls (the database not ok, writes waiting)."""
    scripts = [CallScript(number="12345", caller=f"1390000000{i}", digits=f"{key}2")
               for i, key in enumerate(CHOICES)]

    async def run() -> tuple[list[dict], dict]:
        calls = asyncio.ensure_future(place_calls(system.settings, scripts))

        def faulted() -> dict | None:
            body = _health(system)
            journal = body.get("journal") or {}
            return body if body.get("database") == fault and journal.get("backlog", 0) >= 3 else None

        health = await asyncio.to_thread(eventually, faulted, timeout=120, interval=0.5,
                                         what=f"/healthz: database {fault}, writes in the journal")
        return await calls, health

    return asyncio.run(run())


def _check_callers(results: list[dict]) -> None:
    """Each caller heard the IVR, reached the queue of the type chosen and an agent."""
    for key, result in zip(CHOICES, results):
        assert result["queue"] == CHOICES[key][1], result
        assert result["agent"], result
        assert len(result["heard"]) >= 4, result  # greeting, notices, the menus: not silence
        assert result["hangup_cause"] is not None, result


def _check_records(system, results: list[dict]) -> None:
    """After the fault: every call's row, steps, ticket, queue, agent and end are in the database."""
    token = system.token()

    def recorded(uid: str):
        status, call = system.http(f"/api/calls/{uid}", token=token)
        return call if status == 200 and call["status"] == "ended" and call["ticket_id"] else None

    for key, result in zip(CHOICES, results):
        call = eventually(lambda: recorded(result["uniqueid"]), timeout=90, interval=0.5,
                          what=f"call {result['uniqueid']} replayed")
        nodes = [step["node"] for step in call["menu_path"]]
        assert nodes[:6] == ["hours", "greeting", "emergency_notice", "korean_hint", "hot_topics", "type_menu"]
        assert {"node": "type_menu", "key": key}.items() <= next(
            s for s in call["menu_path"] if s["node"] == "type_menu").items()
        assert call["queue"] == CHOICES[key][1] and call["agent"]
        assert call["hangup_cause"] == result["hangup_cause"]
        status, ticket = system.http(f"/api/tickets/{call['ticket_id']}", token=token)
        assert status == 200 and ticket["category"] == CHOICES[key][0] and ticket["queue"] == CHOICES[key][1]
        assert [s["node"] for s in ticket["menu_path"]][:6] == nodes[:6]
    health = eventually(lambda: (lambda b: b if b["journal"]["backlog"] == 0 else None)(_health(system)),
                        timeout=60, interval=0.5, what="journal drained")
    assert health["database"] == "ok" and health["journal"]["waiting_for_database"] is None


def test_given_the_database_locked_when_three_callers_choose_then_each_reaches_their_queue_and_every_record_follows(
        system):
    system.token()  # logged in before the lock (a login writes its session)
    with write_lock(_db(system)):
        results, health = _calls_under_fault(system, "locked")
        assert health["status"] == "degraded"
        _check_callers(results)
        assert _health(system)["journal"]["backlog"] > 0  # nothing reached the database yet
    _check_records(system, results)


def test_given_the_database_read_only_when_three_callers_choose_then_each_reaches_their_queue_and_every_record_follows(
        system):
    system.token()
    with immutable(_db(system)):
        results, health = _calls_under_fault(system, "read-only")
        assert health["status"] == "degraded"
        _check_callers(results)
        assert _health(system)["journal"]["backlog"] > 0
    _check_records(system, results)
