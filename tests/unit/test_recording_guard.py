"""Recording problems: free space before, the file after; the ticket flagged, /healthz told."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from gateway.calls.handler import CallHandler
from gateway.calls.recordings import RecordingGuard, file_problem
from gateway.ivr_flows.validate import load_config
from gateway.ticketing import migrate
from gateway.ticketing.store import TicketStore
from tests.unit.scripted import ScriptedChannel

CONFIG = load_config(Path(__file__).resolve().parents[2] / "config")


@pytest.fixture()
async def store(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path}/t.db"
    await asyncio.to_thread(migrate.upgrade, url)
    store = await TicketStore.open(url)
    yield store
    await store.close()


def _session(uniqueid: str):
    env = SimpleNamespace(uniqueid=uniqueid, args=["12345"], extension="s", callerid="13800138000", channel="L/x;1")
    return SimpleNamespace(env=env, timings=[])


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_given_recording_sizes_then_empty_missing_and_truncated_files_are_problems():
    assert file_problem(None, 3000) == "missing: no file"
    assert file_problem(4, 3000) == "empty: 4 bytes"
    assert file_problem(44, 0) == "empty: 44 bytes"
    assert file_problem(44 + 16 * 1000, 3000).startswith("truncated: 1.0 s of 3.0 s")
    assert file_problem(44 + 16 * 2900, 3000) is None
    assert file_problem(44 + 16 * 300, 600) is None  # too short to judge by its reported length


async def test_given_less_free_space_than_the_minimum_when_checked_then_disk_low_and_health_degraded(tmp_path):
    clock = _Clock()
    guard = RecordingGuard(tmp_path, min_free_mb=10 ** 12, clock=clock)
    problem = await guard.space_problem()
    assert problem and problem.startswith("disk_low: ")
    health = await guard.health()
    assert health["free_mb"] > 0 and health["problems_recent"] == 1 and not guard.healthy(health)
    clock.now += 901  # the problem has aged out, but the disk is still short
    health = await guard.health()
    assert health["problems_recent"] == 0 and not guard.healthy(health)


async def test_given_enough_space_and_a_whole_file_then_no_problem_and_healthy(tmp_path):
    guard = RecordingGuard(tmp_path, min_free_mb=0)
    await asyncio.to_thread((tmp_path / "r.wav").write_bytes, b"\0" * (44 + 16 * 2000))
    assert await guard.space_problem() is None
    assert await guard.file_problem(tmp_path / "r.wav", 2000) is None
    assert guard.healthy(await guard.health())


async def test_given_a_four_byte_recording_when_recorded_then_ticket_flagged_logged_and_health_degraded(
        store, tmp_path, caplog):
    rec_dir = tmp_path / "rec"
    await asyncio.to_thread(rec_dir.mkdir)
    await asyncio.to_thread((rec_dir / "u-1.wav").write_bytes, b"RIFF")  # what a full disk left behind
    guard = RecordingGuard(rec_dir, min_free_mb=0)
    handler = CallHandler(store=store, config_source=lambda: CONFIG,
                          channel_factory=lambda session: ScriptedChannel(["4", "1"]),
                          recording_path=lambda rec: str(rec_dir / f"{Path(rec.path).name}.{rec.fmt}"),
                          recordings=guard)
    with caplog.at_level(logging.WARNING, logger="gateway.calls.handler"):
        await handler(_session("u-1"))
    ticket = await store.get_ticket((await store.get_call("u-1"))["ticket_id"])
    assert ticket["recording_problem"] == "empty: 4 bytes"
    assert ticket["recording_path"].endswith("u-1.wav")  # still named: the agent sees both
    assert any("u-1: recording problem: empty" in r.getMessage() for r in caplog.records)
    assert not guard.healthy(await guard.health())


async def test_given_a_full_disk_when_the_caller_reaches_the_description_then_not_recorded_but_queued(
        store, tmp_path):
    guard = RecordingGuard(tmp_path, min_free_mb=10 ** 12)
    channel = ScriptedChannel(["2", "2"])
    handler = CallHandler(store=store, config_source=lambda: CONFIG, channel_factory=lambda session: channel,
                          recording_path=lambda rec: str(tmp_path / f"{Path(rec.path).name}.{rec.fmt}"),
                          recordings=guard)
    await handler(_session("u-2"))
    assert channel.recordings == [] and channel.transferred == "q-suggest"
    call = await store.get_call("u-2")
    ticket = await store.get_ticket(call["ticket_id"])
    assert ticket["recording_problem"].startswith("disk_low: ") and ticket["recording_path"] is None
    assert {"node": "describe", "result": "skipped", "reason": "recording_unavailable"} in call["menu_path"]


async def test_given_asterisk_cannot_write_the_file_when_recording_then_write_failed_not_an_exception():
    from gateway.pbx.agi import parse_reply
    from gateway.pbx.fastagi import AgiChannel

    class Session:
        id, read_timeout, hung_up = "agi-1", 1.0, False

        async def command(self, cmd, *, timeout=None):
            return parse_reply(b"200 result=-1 (writefile)")

    recording = await AgiChannel(Session(), lambda key: key, "/srv/gw/recordings").record(
        "u-9", max_seconds=10, silence_seconds=3, beep_prompt_id=None)
    assert recording.ended_by == "write_failed" and recording.duration_ms == 0
    assert recording.path == "/srv/gw/recordings/u-9"
