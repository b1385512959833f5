"""The operators' Prometheus metrics (issue 14, section 5): they move when the events happen, on
the real code paths (the call handler on a real store with a scripted channel, AMI events through
the application's own router, the database's figures from real rows), the text exposition parses
with prometheus_client's parser, and no label carries a caller's number or a ticket number."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import create_app
from gateway.callback.store import CallbackStore
from gateway.calls.handler import CallHandler
from gateway.calls.metrics import Metrics
from gateway import deps as deps_module
from gateway.deps import AmiEvents, MetricSources
from gateway.errors import SettingsError
from gateway.hotlines import plugin as hotlines_plugin
from gateway.hotlines.asterisk import AsteriskSync
from gateway.ivr_flows.validate import load_config
from gateway.pbx.ami_events import parse_event
from gateway.sms.outbox import Outbox
from gateway.supervision.labels import LINE, NAME, OTHER, Bounded
from gateway.supervision.ops_metrics import DatabaseFigures, QueueMetrics, StateCollector
from gateway.ticketing.journal import Journal, JournaledStore
from gateway.ticketing.models import SmsOutbox, UnitHookDelivery
from gateway.ticketing.store import TicketStore
from gateway_dev.eventually import aeventually
from tests.unit.ops_scrape import scrape_after_a_call
from tests.unit.scripted import ScriptedChannel
from tests.unit.test_app_plugins import _settings

CONFIG = load_config(Path(__file__).resolve().parents[2] / "config")
CALLER = "13800138000"
T0 = datetime(2027, 3, 1, 8, 30, tzinfo=timezone.utc)


def value(registry: CollectorRegistry, name: str, **labels) -> float:
    """A sample's value from the registry's text exposition, as a scraper reads it (0 if absent)."""
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def label_values(text: str) -> set[str]:
    return {v for family in text_string_to_metric_families(text) for s in family.samples for v in s.labels.values()}


def _session(uniqueid: str, number: str, caller: str = CALLER):
    env = SimpleNamespace(uniqueid=uniqueid, args=[number], extension="s", callerid=caller, channel="Local/x;1")
    return SimpleNamespace(env=env, timings=[("SET VARIABLE", 0.001), ("STREAM FILE", 0.02)])


def _handler(store, channel, metrics: Metrics) -> CallHandler:
    return CallHandler(store=store, config_source=lambda: CONFIG, channel_factory=lambda session: channel,
                       recording_path=lambda rec: f"/var/rec/{Path(rec.path).name}.{rec.fmt}", metrics=metrics)


# -- the call path -----------------------------------------------------------------------------
async def test_given_calls_when_they_leave_the_ivr_then_counted_by_line_and_outcome_and_agi_commands_timed(store):
    registry = CollectorRegistry()
    metrics = Metrics(registry=registry)
    await _handler(store, ScriptedChannel(["4", "1"]), metrics)(_session("u-1", "12315"))
    await _handler(store, ScriptedChannel(["HANGUP"]), metrics)(_session("u-2", "12345"))

    assert value(registry, "gateway_calls_total", line="12315", outcome="queued") == 1
    assert value(registry, "gateway_calls_total", line="12345", outcome="caller_hangup") == 1
    assert value(registry, "gateway_calls_in_ivr", line="12315") == 0
    assert value(registry, "gateway_agi_command_seconds_count", command="SET VARIABLE") == 2
    assert value(registry, "gateway_agi_command_seconds_bucket", command="STREAM FILE", le="0.025") == 2
    assert value(registry, "gateway_ivr_duration_seconds_count", outcome="queued") == 1
    # the JSON view the benchmarks read is unchanged, and its reset leaves the counters alone
    assert metrics.snapshot()["calls_started"] == 2 and metrics.snapshot()["calls_finished"] == 2
    metrics.reset()
    assert metrics.snapshot()["calls_started"] == 0
    assert value(registry, "gateway_calls_total", line="12315", outcome="queued") == 1


async def test_given_a_caller_who_hangs_up_in_a_menu_then_ivr_abandonment_counts_that_node(store):
    registry = CollectorRegistry()
    metrics = Metrics(registry=registry)
    await _handler(store, ScriptedChannel(["HANGUP"]), metrics)(_session("u-3", "12345"))
    call = await store.get_call("u-3")
    node = call["menu_path"][-1]["at"]  # where the interpreter says the caller was
    assert node in CONFIG.flows[CONFIG.lines["12345"].flow].nodes
    assert value(registry, "gateway_ivr_abandoned_total", line="12345", node=node) == 1
    assert CALLER not in label_values(generate_latest(registry).decode())


async def test_given_a_replayed_session_then_the_refusal_is_counted(store):
    registry = CollectorRegistry()
    metrics = Metrics(registry=registry)
    await _handler(store, ScriptedChannel(["4", "1"]), metrics)(_session("u-4", "12315"))
    await _handler(store, ScriptedChannel(["1", "1"]), metrics)(_session("u-4", "12345"))
    assert value(registry, "gateway_fastagi_sessions_refused_total") == 1
    assert value(registry, "gateway_calls_total", line="12345", outcome="queued") == 0


# -- queues (AMI events through the application's router) -------------------------------------
async def test_given_queue_events_when_callers_are_answered_or_give_up_then_waits_by_queue_and_outcome():
    registry, events = CollectorRegistry(), AmiEvents()
    events.add(QueueMetrics(registry, lambda: CONFIG.queues), stage="notify")

    async def send(**fields):
        await events.dispatch(parse_event({k.capitalize() if k != "uniqueid" else "Uniqueid": v
                                           for k, v in fields.items()}))

    await send(event="QueueCallerJoin", uniqueid="a", queue="q-12315", position="1")
    await send(event="QueueCallerJoin", uniqueid="b", queue="q-12315", position="2")
    assert value(registry, "gateway_queue_waiting", queue="q-12315") == 2
    await send(event="AgentConnect", uniqueid="a", queue="q-12315", holdtime="12", interface="Local/8001@gw-agents",
               membername="8001")
    await send(event="QueueCallerLeave", uniqueid="a", queue="q-12315")
    await send(event="QueueCallerAbandon", uniqueid="b", queue="q-12315", holdtime="40")
    await send(event="Hangup", uniqueid="b", cause="16")
    await send(event="QueueCallerJoin", uniqueid="c", queue="13800138000", position="1")  # not a configured queue

    assert value(registry, "gateway_queue_joined_total", queue="q-12315") == 2
    assert value(registry, "gateway_queue_waiting", queue="q-12315") == 0
    assert value(registry, "gateway_queue_left_total", queue="q-12315", outcome="answered") == 1
    assert value(registry, "gateway_queue_left_total", queue="q-12315", outcome="abandoned") == 1
    assert value(registry, "gateway_queue_wait_seconds_bucket", queue="q-12315", outcome="answered", le="20.0") == 1
    assert value(registry, "gateway_queue_wait_seconds_bucket", queue="q-12315", outcome="abandoned", le="30.0") == 0
    assert value(registry, "gateway_queue_wait_seconds_sum", queue="q-12315", outcome="abandoned") == 40
    assert value(registry, "gateway_queue_joined_total", queue=OTHER) == 1
    assert "13800138000" not in label_values(generate_latest(registry).decode())


async def test_given_two_instances_when_the_leadership_moves_then_each_queue_event_is_counted_once():
    """Every instance gets every AMI event; only the leader counts and exports: the sum over
    instances is the site's figure, before and after the leadership moved."""
    leads = {"a": True, "b": False}
    ra, rb = CollectorRegistry(), CollectorRegistry()
    ea, eb = AmiEvents(), AmiEvents()
    ea.add(QueueMetrics(ra, lambda: CONFIG.queues, leader=lambda: leads["a"]), stage="notify")
    eb.add(QueueMetrics(rb, lambda: CONFIG.queues, leader=lambda: leads["b"]), stage="notify")

    async def send(**fields):
        for events in (ea, eb):
            await events.dispatch(parse_event({k.capitalize() if k != "uniqueid" else "Uniqueid": v
                                               for k, v in fields.items()}))

    def total(name: str, **labels) -> float:
        return value(ra, name, **labels) + value(rb, name, **labels)

    await send(event="QueueCallerJoin", uniqueid="x", queue="q-12315", position="1")
    await send(event="AgentConnect", uniqueid="x", queue="q-12315", holdtime="5", interface="Local/8001@gw-agents",
               membername="8001")
    await send(event="QueueCallerLeave", uniqueid="x", queue="q-12315")
    await send(event="QueueCallerJoin", uniqueid="y", queue="q-12315", position="1")
    assert "gateway_queue_" not in generate_latest(rb).decode()  # not the leader: no queue series at all
    assert (value(ra, "gateway_queue_joined_total", queue="q-12315"), value(ra, "gateway_queue_waiting",
                                                                             queue="q-12315")) == (2, 1)
    leads.update(a=False, b=True)  # the leader stopped leading (its bus connection dropped): b takes over
    assert value(rb, "gateway_queue_waiting", queue="q-12315") == 1  # b followed the callers waiting
    await send(event="QueueCallerAbandon", uniqueid="y", queue="q-12315", holdtime="40")
    await send(event="QueueCallerLeave", uniqueid="y", queue="q-12315")
    assert "gateway_queue_" not in generate_latest(ra).decode()
    leads.update(a=True, b=False)  # and back: a goes on from its own values, it counted nothing meanwhile
    assert value(ra, "gateway_queue_left_total", queue="q-12315", outcome="abandoned") == 0
    assert value(ra, "gateway_queue_waiting", queue="q-12315") == 0
    leads.update(b=True)  # (not a real state: both exported at once, to read what each counted while it led)
    assert total("gateway_queue_joined_total", queue="q-12315") == 2
    assert total("gateway_queue_left_total", queue="q-12315", outcome="answered") == 1
    assert total("gateway_queue_left_total", queue="q-12315", outcome="abandoned") == 1
    assert total("gateway_queue_wait_seconds_count", queue="q-12315", outcome="abandoned") == 1


async def test_given_a_call_to_an_unknown_number_then_no_series_names_it(store):
    registry = CollectorRegistry()
    await _handler(store, ScriptedChannel([]), Metrics(registry=registry))(_session("u-9", "13900000000"))
    assert "13900000000" not in label_values(generate_latest(registry).decode())


def test_given_label_values_when_bounded_then_free_text_unknown_and_too_many_are_other():
    assert Bounded(LINE)("12345") == "12345" and Bounded(LINE)("12345; rm") == OTHER  # lines come from the config
    names = Bounded(NAME, limit=2)
    assert names("q-a") == "q-a" and names("q-b") == "q-b" and names("q-c") == OTHER and names("q-a") == "q-a"
    assert names("13800138000") == OTHER and names("张三") == OTHER and names("x\n# TYPE") == OTHER
    assert Bounded(NAME, known=lambda: {"q-a"})("q-z") == OTHER


# -- the features' state and the database's figures ----------------------------------------------
async def test_given_journal_writes_when_scraped_then_pending_and_applied_writes_are_counted(store, tmp_path):
    journal = Journal(store, tmp_path / "journal")
    await journal.start()
    try:
        registry = CollectorRegistry()
        registry.register(StateCollector(journal=journal))
        writes = JournaledStore(journal)
        await writes.start_call(uniqueid="j-1", channel="PJSIP/x", caller_number=CALLER, dialled_number="12345",
                                line_number="12345", line_name="市民服务热线", merge_mode="primary", department=None,
                                flow_version="v1", started_at=T0)
        async def applied():
            return value(registry, "gateway_journal_writes_total", result="applied") >= 1 or None

        await aeventually(applied, timeout=20, what="the journal's write applied")
        assert value(registry, "gateway_journal_writes_total", result="journaled") >= 1
        assert value(registry, "gateway_journal_pending_writes") == 0
        assert value(registry, "gateway_speech_enabled") == 0  # no engine: says so, nothing else
    finally:
        await journal.stop()


async def test_given_open_callbacks_dead_texts_and_failed_hooks_when_scraped_then_the_site_figures_show_them(
        store, database_url):
    now = datetime.now(timezone.utc)
    await CallbackStore(store).request(call_uniqueid="cb-1", queue="q-12315", number=CALLER, number_source="caller_id",
                                       requested_at=now)
    await CallbackStore(store).request(call_uniqueid="cb-2", queue="q-12315", number=CALLER, number_source="keyed",
                                       requested_at=now)

    async def rows(session):
        session.add(SmsOutbox(to_number=CALLER, kind="ticket_no", body="您的工单号", status="dead", attempts=5))
        session.add(SmsOutbox(to_number=CALLER, kind="ticket_no", body="您的工单号", status="pending"))
        session.add(UnitHookDelivery(unit_id="u-haidian", event="dispatched", ticket_id=1, payload={}, attempts=2,
                                     next_at=now + timedelta(minutes=1)))
        session.add(UnitHookDelivery(unit_id="u-haidian", event="dispatched", ticket_id=2, payload={}, attempts=8,
                                     next_at=now, failed_at=now))

    await store.run_write(rows)
    registry, sources = CollectorRegistry(), MetricSources()
    figures = DatabaseFigures(store=store, database_url=database_url, sms_outbox=Outbox(store),
                              queues=lambda: CONFIG.queues)
    registry.register(figures)
    sources.on_scrape(figures.refresh)
    await sources.refresh()

    assert value(registry, "gateway_callbacks_pending", queue="q-12315", status="waiting") == 2
    assert value(registry, "gateway_sms_outbox_dead") == 1 and value(registry, "gateway_sms_outbox_backlog") == 1
    assert value(registry, "gateway_unit_hook_deliveries_failing") == 1
    assert value(registry, "gateway_unit_hook_deliveries_given_up") == 1
    assert value(registry, "gateway_database_up") == 1 and value(registry, "gateway_database_state", state="ok") == 1
    assert value(registry, "gateway_metrics_source_up", source="callbacks") == 1
    assert CALLER not in label_values(generate_latest(registry).decode())


async def test_given_a_database_without_the_tables_when_scraped_then_those_sources_say_down_and_the_scrape_answers(
        empty_database_url):
    store = await TicketStore.open(empty_database_url)  # not migrated: every figure's query fails
    try:
        figures = DatabaseFigures(store=store, database_url=empty_database_url, sms_outbox=Outbox(store))
        registry, sources = CollectorRegistry(), MetricSources()
        registry.register(figures)
        sources.on_scrape(figures.refresh)
        await sources.refresh()
        assert value(registry, "gateway_metrics_source_up", source="callbacks") == 0
        assert value(registry, "gateway_metrics_source_up", source="unit_hooks") == 0
        assert value(registry, "gateway_metrics_source_up", source="sms") == 0
    finally:
        await store.close()


# -- the whole application's scrape ----------------------------------------------------------------
PERSONAL = re.compile(r"[0-9]{7,}")  # a caller's number, a ticket number: any long run of digits


@pytest.fixture
async def gateway_scrape(tmp_path, monkeypatch) -> str:
    return await scrape_after_a_call(tmp_path, monkeypatch)


async def test_given_the_gateway_after_a_call_when_scraped_then_it_parses_and_no_label_is_personal(gateway_scrape):
    families = list(text_string_to_metric_families(gateway_scrape))
    names = [f.name for f in families]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    by_name = {f.name: f for f in families}
    assert by_name["gateway_calls"].type == "counter" and by_name["gateway_queue_wait_seconds"].type == "histogram"
    assert by_name["gateway_agi_command_seconds"].type == "histogram"
    assert by_name["gateway_event_loop_lag_seconds"].type == "histogram"
    assert by_name["gateway_speech_worker_restarts"].type == "counter"
    assert by_name["gateway_journal_pending_writes"].type == "gauge"
    counters = [f for f in families if f.type == "counter"]
    assert all(s.name.endswith(("_total", "_created")) for f in counters for s in f.samples)
    assert not [v for v in label_values(gateway_scrape) if PERSONAL.search(v)]
    assert CALLER not in gateway_scrape
    calls = {(s.labels["line"], s.labels["outcome"]): s.value for s in by_name["gateway_calls"].samples
             if s.name == "gateway_calls_total"}
    assert calls[("12345", "caller_hangup")] == 1 and calls[("12315", "queued")] == 0  # every line from the start
    abandoned = [s for s in by_name["gateway_ivr_abandoned"].samples if s.name == "gateway_ivr_abandoned_total"]
    assert [(s.labels["line"], s.value) for s in abandoned] == [("12345", 1.0)]
    waits = {s.labels["le"]: s.value for s in by_name["gateway_queue_wait_seconds"].samples
             if s.name.endswith("_bucket") and s.labels["queue"] == "q-general"}
    assert waits["20.0"] == 0 and waits["30.0"] == 1
    assert {s.labels["source"]: s.value for s in by_name["gateway_metrics_source_up"].samples} == {
        "database": 1, "callbacks": 1, "sms": 1, "unit_hooks": 1}


# -- Prometheus's scrape token (GATEWAY_METRICS_TOKEN_FILE) ---------------------------------------
TOKEN = "s" * 20 + "-scrape-token-0123456789"


@pytest.fixture
def token_file(tmp_path, request, monkeypatch) -> Path:
    """The token file (written here, off the test's event loop); no Asterisk for the app."""
    monkeypatch.setattr(AsteriskSync, "render", lambda self, config, previous: None)
    monkeypatch.setattr(hotlines_plugin, "AMI_WAIT", 0.0)
    path = tmp_path / "metrics.token"
    path.write_text(getattr(request, "param", TOKEN + "\n"))
    return path


async def test_given_a_scrape_token_file_when_prometheus_sends_it_then_only_get_metrics_opens(tmp_path, token_file):
    app = await create_app(_settings(tmp_path, metrics_token_file=token_file))
    async with TestClient(TestServer(app)) as client:
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        resp = await client.get("/metrics", headers=bearer)
        assert resp.status == 200 and "gateway_calls_total" in await resp.text()
        assert (await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}x"})).status == 401
        assert (await client.post("/metrics?reset=1", headers=bearer)).status == 401  # reading only
        assert (await client.get("/api/tickets", headers=bearer)).status == 401  # and nothing else
        assert (await client.get("/metrics")).status == 401


@pytest.mark.parametrize("token_file", ["short", "x" * 40 + " with spaces", ""], indirect=True)
async def test_given_a_bad_scrape_token_file_when_the_gateway_starts_then_it_stops_naming_the_setting(
        tmp_path, token_file):
    app = await create_app(_settings(tmp_path, metrics_token_file=token_file))
    runner = web.AppRunner(app)
    try:
        with pytest.raises(SettingsError, match="GATEWAY_METRICS_TOKEN_FILE"):
            await runner.setup()
    finally:
        await runner.cleanup()


async def test_given_a_refresher_that_hangs_or_fails_when_scraped_then_the_others_still_run(monkeypatch):
    monkeypatch.setattr(deps_module, "SCRAPE_TIMEOUT", 0.05)
    sources, ran = MetricSources(), []
    never = asyncio.Event()

    async def hangs():
        await never.wait()

    async def fails():
        raise RuntimeError("the database went away")

    async def works():
        ran.append(True)

    for fn in (hangs, fails, works):
        sources.on_scrape(fn)
    await sources.refresh()  # returns: one late and one broken refresher do not stop the scrape
    assert ran == [True]
