"""Progress by phone (issue 13): the node's walk with a scripted caller and a fake desk, the
privacy rules and wording (pure), the database reads (SQLite and PostgreSQL) and the live
voice's cache."""

from __future__ import annotations

import asyncio
import os
import time
import wave
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway.errors import ConfigError
from gateway.ivr_flows.engine import CallState, Interpreter
from gateway.ivr_flows.progress import (
    ProgressUnavailable, SpeechFailed, TicketView, details_text, listable, offer_text, stage,
)
from gateway.ivr_flows.validate import config_from_files, load_config, read_files
from gateway.progress.lookup import ProgressLookup
from gateway.progress.service import ProgressService
from gateway.progress.voice import LiveVoice, prune
from gateway.ticketing.store import TicketStore
from gateway.ticketing.ticket_no import new_ticket_no
from gateway_dev.tickets import advance_ticket
from tests.unit.scripted import RecordingObserver, ScriptedChannel

ROOT = Path(__file__).resolve().parents[2]
CONFIG = load_config(ROOT / "config")
NOW = datetime(2027, 3, 3, 2, 0, tzinfo=timezone.utc)  # Wed 10:00 in Beijing: open
CALLER = "13800138000"
GOOD = new_ticket_no(date(2027, 3, 1))
TZ = ZoneInfo("Asia/Shanghai")


def view(id_=7, **kw) -> TicketView:
    fields = dict(id=id_, filed_at=NOW - timedelta(days=2), caller_number=CALLER, status="submitted",
                  handling="accepted", category="投诉", units=("市住建委",), reply="已安排人员现场核查。")
    fields.update(kw)
    return TicketView(**fields)


class FakeDesk:
    speech_timeout = 0.5

    def __init__(self, listed=(), tickets=None, *, fail_say=False, limited_after=None, slow=()) -> None:
        self.slow = slow  # texts (starting so) the voice takes too long for
        self.listed, self.tickets = list(listed), dict(tickets or {})
        self.fail_say, self.limited_after = fail_say, limited_after
        self.said: list[str] = []
        self.asked: list[str] = []

    def prepare(self):
        self.prepared = True

    async def open_tickets(self, caller):
        return self.listed if caller == CALLER else []

    async def find(self, ticket_no):
        self.asked.append(ticket_no)
        return self.tickets.get(ticket_no)

    async def too_many_guesses(self, caller, uniqueid, wrong_now):
        return self.limited_after is not None and wrong_now >= self.limited_after

    async def say(self, text):
        if self.fail_say:
            raise SpeechFailed("the voice failed")
        if text.startswith(self.slow or "\0"):
            await asyncio.sleep(5)
        self.said.append(text)
        return f"live/{len(self.said)}"


async def walk(keys, desk, *, caller=CALLER):
    channel = ScriptedChannel(["7", *keys])
    observer = RecordingObserver()
    state = CallState(uniqueid="u1", line=CONFIG.lines["12345"], caller=caller, dialled="12345")
    await Interpreter(CONFIG, clock=lambda: NOW, progress=desk).run(state, channel, observer)
    steps = [s for s in observer.steps if s["node"] == "progress"]
    return state, channel, observer, steps


# -- the walk ----------------------------------------------------------------------------------

async def test_given_a_caller_with_open_tickets_when_they_pick_one_then_status_unit_and_reply_and_no_ticket():
    desk = FakeDesk(listed=[view(7), view(8, category=None, filed_at=NOW - timedelta(days=5))])
    state, channel, observer, steps = await walk(["1", ""], desk)

    assert desk.said[0].startswith("您有2件诉求正在办理。查询3月1日的投诉请按1，查询2月26日的诉求请按2")
    assert desk.said[1:] == ["承办单位：市住建委。", "最新答复：已安排人员现场核查。"]  # the unit first, apart
    assert channel.played[-7:] == ["main-progress_searching", "live/1", "main-progress_status_in_progress", "live/2",
                                   "live/3", "main-progress_after", "main-progress_goodbye"]
    assert channel.hung_up and state.outcome == "hangup"
    assert steps[0] == {"node": "progress", "result": "found", "ticket_id": 7, "via": "list", "status": "in_progress"}
    assert observer.ticket_points == []  # a pure query creates no ticket
    assert desk.asked == []  # nothing keyed


async def test_given_no_open_tickets_when_a_wrong_number_is_keyed_three_times_then_an_agent_with_the_attempts():
    slip = GOOD[:-1] + str((int(GOOD[-1]) + 1) % 10)  # the check digit catches it: no query
    unknown = new_ticket_no(date(2027, 2, 2))
    desk = FakeDesk()
    state, channel, observer, steps = await walk([slip + "#", unknown + "#", "123#"], desk, caller="13900000000")

    assert desk.asked == [unknown]  # only the well-formed number reached the database
    assert [s.get("reason") for s in steps if s.get("result") == "wrong_number"] == ["check_digit", "unknown", "length"]
    assert channel.played.count("main-progress_wrong_number") == 2
    assert steps[-1]["result"] == "to_agent" and steps[-1]["wrong_numbers"] == 3
    assert state.outcome == "queued" and channel.transferred == "q-general"
    assert not any(GOOD[:6] in str(s) or unknown in str(s) for s in observer.steps)  # no digits in the path


async def test_given_a_confidential_ticket_then_it_is_not_offered_but_found_by_its_number():
    secret = view(9, confidential=True, handling="dispatched", reply=None)
    assert not listable(secret, CALLER, NOW, 90)
    desk = FakeDesk(tickets={GOOD: secret})
    _state, channel, _obs, steps = await walk([GOOD + "#", "0"], desk, caller="")  # no caller ID at all

    assert steps[0]["via"] == "keyed" and steps[0]["status"] == "dispatched"
    assert "main-progress_status_dispatched" in channel.played
    assert channel.transferred == "q-general"  # 0 after the details: a person


async def test_given_the_offer_when_0_then_the_number_is_asked_and_2_asks_about_another():
    other = view(11, handling="handled", reply="已修复路灯。")
    desk = FakeDesk(listed=[view(7)], tickets={GOOD: other})
    _state, channel, _obs, steps = await walk(["0", GOOD, "2", "1", ""], desk)
    found = [s for s in steps if s.get("result") == "found"]
    assert [(s["ticket_id"], s["via"]) for s in found] == [(11, "keyed"), (7, "list")]
    assert "main-progress_ask_number" in channel.played


async def test_given_the_voice_fails_then_the_notice_and_an_agent_never_silence():
    desk = FakeDesk(listed=[view(7)], fail_say=True)
    state, channel, observer, steps = await walk([], desk)
    assert steps[-1] == {"node": "progress", "result": "to_agent", "reason": "speech", "wrong_numbers": 0}
    assert "main-progress_unavailable" in channel.played and channel.transferred == "q-general"
    assert observer.ticket_points  # the agent gets a draft, as every caller an agent takes


async def test_given_a_reply_too_slow_to_synthesise_then_the_unit_is_heard_then_the_notice_and_an_agent():
    desk = FakeDesk(listed=[view(7)], slow="最新答复")
    _state, channel, _obs, steps = await walk(["1"], desk)
    assert channel.played[-4:] == ["main-progress_status_in_progress", "live/2", "main-progress_unavailable",
                                   "main-to_agent"]
    assert steps[-1]["reason"] == "speech" and channel.transferred == "q-general"


async def test_given_the_number_guessed_too_often_lately_then_an_agent_before_any_entry():
    desk = FakeDesk(limited_after=0)
    _state, channel, _obs, steps = await walk([], desk)
    assert steps[-1]["reason"] == "number_limit" and "main-progress_ask_number" not in channel.played
    assert channel.transferred == "q-general"


async def test_given_no_desk_then_the_notice_and_an_agent():
    _state, channel, _obs, steps = await walk([], None)
    assert steps[-1]["reason"] == "no_desk" and channel.transferred == "q-general"


# -- the rules (pure) ----------------------------------------------------------------------------

@pytest.mark.parametrize("changes,allowed", [
    ({}, True),
    ({"caller_number": "13900000000"}, False),  # another number filed it
    ({"confidential": True}, False),
    ({"handling": "closed"}, False),
    ({"status": "draft"}, False),
    ({"status": "answered", "handling": None}, False),
    ({"filed_at": NOW - timedelta(days=91)}, False),
])
def test_given_a_ticket_then_it_is_offered_by_caller_id_only_to_its_filer_while_open(changes, allowed):
    assert listable(view(**changes), CALLER, NOW, 90) is allowed
    assert listable(view(), "", NOW, 90) is False  # no caller ID: nothing offered


@pytest.mark.parametrize("status,handling,followed,role", [
    ("draft", None, False, "status_draft"), ("answered", None, False, "status_answered"),
    ("submitted", None, False, "status_received"), ("submitted", "dispatched", False, "status_dispatched"),
    ("submitted", "accepted", False, "status_in_progress"), ("submitted", "review", False, "status_in_progress"),
    ("submitted", "handled", False, "status_handled"), ("submitted", "closed", True, "status_followed_up"),
    ("submitted", "closed", False, "status_handled"),
])
def test_given_a_stage_then_the_status_words(status, handling, followed, role):
    assert stage(view(status=status, handling=handling, followed_up=followed)) == role
    assert role.removeprefix("status_") in {p.removeprefix("status_") for p in CONFIG.flows["main"].nodes[
        "progress"].prompts}


def test_given_two_tickets_the_same_day_then_the_time_tells_them_apart():
    text = offer_text([view(1, filed_at=datetime(2027, 3, 1, 1, 5, tzinfo=timezone.utc)),
                       view(2, filed_at=datetime(2027, 3, 1, 6, 30, tzinfo=timezone.utc))], TZ)
    assert "查询3月1日9:05的投诉请按1" in text and "3月1日14:30" in text and text.endswith("输入工单号请按0。")


def test_given_a_draft_or_a_long_reply_then_the_details_say_sensibly():
    assert details_text(view(status="draft", handling=None)) == ""  # nothing the caller may not hear yet
    long = "经核查，" + "已协调物业处理。" * 40
    said = details_text(view(reply=long, units=("甲单位", "乙单位", "甲单位")))
    assert said.startswith("承办单位：甲单位、乙单位。最新答复：经核查") and len(said) < 200 and said.endswith("。")


def test_given_progress_nodes_wrongly_configured_then_clear_problems():
    files = read_files(ROOT / "config")
    bad = files["flows/ko.yaml"].replace("  greeting:\n    type: play", "  greeting:\n    type: progress\n"
                                         "    agent: type_menu\n    prompts: {ask_number: greeting}\n    x: 1\n"
                                         "  unused:\n    type: play", 1)
    with pytest.raises(ConfigError) as err:
        config_from_files({**files, "flows/ko.yaml": bad})
    text = "\n".join(f"{p.line} {p.field} {p.message}" for p in err.value.problems)
    assert "must be cmn" in text and "'type_menu' is not a transfer node" in text
    assert "missing required key 'wrong_number'" in text and "nodes.greeting.x" in text


# -- the database ----------------------------------------------------------------------------------

T0 = datetime.now(timezone.utc)


async def _call(store, uid, caller, path=()):
    await store.start_call(uniqueid=uid, channel=f"PJSIP/x-{uid}", caller_number=caller, dialled_number="12345",
                           line_number="12345", line_name="热线", merge_mode="primary", department=None,
                           flow_version="v", started_at=T0)
    for step in path:
        await store.record_step(uid, step)


async def _ticket(store, uid, caller, **advance) -> int:
    await _call(store, uid, caller)
    tid = await store.ensure_ticket(uid, category="投诉", channel_kind=None, confidential=None, handled_by=None,
                                    queue="q-complaint", department=None)
    await advance_ticket(store, tid, **advance)
    return tid


async def test_given_tickets_in_the_database_then_the_lookup_offers_finds_and_counts(database_url, caplog):
    store = await TicketStore.open(database_url)
    try:
        mine = await _ticket(store, "a1", CALLER, ticket_no=GOOD, handling="accepted", units=("朝阳区住建委",),
                             reply="已安排人员现场核查。")
        await _ticket(store, "a2", CALLER, handling="closed")
        await _ticket(store, "a3", CALLER, confidential=True, handling="dispatched")
        await _ticket(store, "a4", "13900000000", handling="dispatched")
        await _ticket(store, "a5", CALLER, handling="dispatched", created_at=T0 - timedelta(days=120))
        await _call(store, "g1", CALLER, [{"node": "progress", "result": "wrong_number", "reason": "unknown"}] * 2)
        await _call(store, "g2", "13900000000", [{"node": "progress", "result": "wrong_number"}])
        service = ProgressService(ProgressLookup(store), voice=None, clock=lambda: datetime.now(timezone.utc),
                                  wrong_per_hour=3)

        listed = await service.open_tickets(CALLER)
        assert [v.id for v in listed] == [mine]
        assert listed[0].units == ("朝阳区住建委",) and listed[0].reply == "已安排人员现场核查。"  # not the internal note
        found = await service.find(GOOD)
        assert found.id == mine and await service.find(new_ticket_no(date(2027, 1, 1))) is None
        assert await service.too_many_guesses(CALLER, "now", 0) is False  # 2 before
        assert await service.too_many_guesses(CALLER, "now", 1) is True  # 2 + 1 = the limit
        assert "138****8000" in caplog.text and CALLER not in caplog.text  # logged, masked
        assert await service.too_many_guesses(CALLER, "g1", 1) is False  # a call does not count itself twice
    finally:
        await store.close()


async def test_given_the_database_away_then_progress_is_unavailable():
    class Broken:
        async def open_tickets(self, *a):
            raise OSError("gone")

    service = ProgressService(Broken(), voice=None, clock=lambda: NOW)
    with pytest.raises(ProgressUnavailable):
        await service.open_tickets(CALLER)


# -- the live voice's cache ---------------------------------------------------------------------------

def _fake_render(calls: list, delay: float = 0.0):
    def render(text: str, path: Path) -> dict:
        time.sleep(delay)
        calls.append(text)
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
            w.writeframes(b"\0\0" * 800)
        return {"engine": "fake", "voice": "x", "seconds": 0.1}
    return render


async def test_given_a_text_then_it_is_rendered_once_and_cached_by_its_spoken_hash(tmp_path):
    calls: list = []
    voice = LiveVoice(tmp_path / "live", render=_fake_render(calls))
    try:
        first = await voice.say("承办单位：市住建委。热线12345。")
        again = await voice.say("承办单位：市住建委。热线12345。")
        assert first == again and first.startswith("live/") and calls == ["承办单位：市住建委。热线12345。"]
        assert voice.stats["hits"] == 1 and voice.stats["rendered"] == 1
        assert await asyncio.to_thread(voice.path_of(first).is_file)
        other = await voice.say("另一句话。")
        assert other != first
    finally:
        voice.close()


async def test_given_a_slow_voice_then_speech_failed_in_time_and_the_audio_cached_for_later(tmp_path):
    calls: list = []
    voice = LiveVoice(tmp_path / "live", timeout=0.2, render=_fake_render(calls, delay=1.0))
    try:
        with pytest.raises(SpeechFailed):
            await voice.say("慢慢说。")
        key, _ = voice.key_of("慢慢说。")
        for _ in range(100):  # the render goes on in the background
            if await asyncio.to_thread(voice.path_of(key).is_file):
                break
            await asyncio.sleep(0.05)
        assert await voice.say("慢慢说。") == key and calls == ["慢慢说。"]
    finally:
        voice.close()


async def test_given_a_caller_entering_the_node_then_the_voice_loads_once_in_the_background(tmp_path):
    calls: list = []
    voice = LiveVoice(tmp_path / "live", render=_fake_render(calls, delay=0.2))
    try:
        voice.prepare()
        voice.prepare()  # a second caller: no second load
        await voice.warm_up()
        assert calls == ["您好。"] and not await asyncio.to_thread(lambda: list((tmp_path / "live").glob("*.wav")))
    finally:
        voice.close()


def test_given_a_full_or_old_cache_then_the_oldest_and_least_recently_used_go(tmp_path):
    now = time.time()
    for n, age in enumerate([10, 20, 30, 9 * 86400]):
        path = tmp_path / f"f{n}.wav"
        path.write_bytes(b"x" * 1000)
        os.utime(path, (now - age, now - age))
    removed = prune(tmp_path, max_bytes=2000, max_age=7 * 86400, now=now)
    assert sorted(p.name for p in removed) == ["f2.wav", "f3.wav"]  # too old, then the least recently used
    assert sorted(p.name for p in tmp_path.glob("*.wav")) == ["f0.wav", "f1.wav"]


# -- settings -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,value", [
    ("GATEWAY_PROGRESS_WRONG_PER_HOUR", "2.5"), ("GATEWAY_PROGRESS_WRONG_PER_HOUR", "0"),
    ("GATEWAY_PROGRESS_WRONG_PER_HOUR", "inf"), ("GATEWAY_PROGRESS_WRONG_PER_HOUR", "nan"),
    ("GATEWAY_PROGRESS_LOOKBACK_DAYS", "-1"), ("GATEWAY_PROGRESS_SPEECH_TIMEOUT", "soon"),
    ("GATEWAY_PROGRESS_CACHE_MB", "0"),
])
def test_given_a_bad_progress_setting_then_start_is_refused_naming_it(tmp_path, name, value):
    from gateway.errors import SettingsError
    from gateway.settings import load_settings

    env = {"GATEWAY_STATE_DIR": str(tmp_path), "GATEWAY_AMI_SECRET": "x", name: value}
    with pytest.raises(SettingsError, match=name):
        load_settings(env)
    good = load_settings({"GATEWAY_STATE_DIR": str(tmp_path), "GATEWAY_AMI_SECRET": "x",
                          "GATEWAY_PROGRESS_WRONG_PER_HOUR": "4", "GATEWAY_PROGRESS_SPEECH_TIMEOUT": "12"})
    assert good.progress_wrong_per_hour == 4 and good.progress_speech_timeout == 12.0
