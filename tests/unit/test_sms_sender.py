"""The SMS senders and worker against a real HTTP sink (a small aiohttp server started here)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import date, datetime, timedelta, timezone

import pytest
from aiohttp import web

from gateway.errors import SettingsError
from gateway.settings import load_settings
from gateway.sms.outbox import Outbox
from gateway.sms.senders import SmppNotImplemented, SmppSender, SmsMessage, SmsSenderError, WebhookSender
from gateway.sms.texts import mobile_number, renumbered_body, ticket_no_body
from gateway.sms.worker import SmsWorker
from gateway.ticketing.ticket_no import new_ticket_no
from tests.unit.test_ticket_numbers_store import ensure, start


class Sink:
    """An SMS provider's webhook: records what it got, answers with the statuses it is given."""

    def __init__(self, statuses=(200,)) -> None:
        self.statuses = list(statuses)
        self.got: list[dict] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.got.append({"raw": raw, "json": json.loads(raw), "headers": dict(request.headers)})
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return web.json_response({"message_id": f"m{len(self.got)}"}, status=status)


@pytest.fixture
async def sink():
    sink = Sink()
    app = web.Application()
    app.router.add_post("/sms", sink.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    sink.url = f"http://127.0.0.1:{port}/sms"
    try:
        yield sink
    finally:
        await runner.cleanup()


async def test_given_a_secret_when_sent_then_the_sink_gets_json_signed_with_hmac(sink):
    sender = WebhookSender(sink.url, secret="s3cret", timeout=5)
    try:
        result = await sender.send(SmsMessage(id=7, to="13800138000", body="【12345】工单号", kind="ticket_no",
                                              ticket_id=3))
    finally:
        await sender.close()
    assert result.ok and result.provider_ref == "m1"
    (got,) = sink.got
    assert got["json"] == {"id": 7, "to": "13800138000", "body": "【12345】工单号", "kind": "ticket_no", "ticket_id": 3}
    expected = "sha256=" + hmac.new(b"s3cret", got["raw"], hashlib.sha256).hexdigest()
    assert got["headers"]["X-Gateway-Signature"] == expected
    assert got["headers"]["Idempotency-Key"] == "sms-7"


async def test_given_a_sink_answering_500_then_a_failed_attempt_not_a_success(sink):
    sink.statuses = [500]
    sender = WebhookSender(sink.url, timeout=5)
    try:
        result = await sender.send(SmsMessage(id=1, to="13800138000", body="x", kind="ticket_no"))
    finally:
        await sender.close()
    assert not result.ok and result.error == "webhook answered HTTP 500" and "X-Gateway-Signature" not in sink.got[0]["headers"]


async def test_given_nobody_listening_then_unreachable_is_a_failed_attempt():
    sender = WebhookSender("http://127.0.0.1:9/sms", timeout=2)
    try:
        result = await sender.send(SmsMessage(id=1, to="13800138000", body="x", kind="ticket_no"))
    finally:
        await sender.close()
    assert not result.ok and "unreachable" in result.error


async def test_given_the_worker_when_the_sink_fails_once_then_retried_and_sent_once(store, sink):
    sink.statuses = [503, 200]
    await start(store, "c1")
    await ensure(store, "c1", new_ticket_no(date(2026, 12, 2)))
    await store.record_ticket_told("c1")
    now = [datetime.now(timezone.utc)]
    outbox = Outbox(store, retry_seconds=30, clock=lambda: now[0])
    worker = SmsWorker(outbox, WebhookSender(sink.url, timeout=5), instance="gw-a")
    try:
        assert await worker.run_once() == 1
        (row,) = await outbox.listing(statuses=("failed",))
        assert row["attempts"] == 1 and row["last_error"] == "webhook answered HTTP 503"
        assert await worker.run_once() == 0  # not due before the backoff
        now[0] += timedelta(seconds=31)
        assert await worker.run_once() == 1
    finally:
        await worker.stop()
    (sent,) = await outbox.listing(statuses=("sent",))
    assert sent["provider_ref"] == "m2" and sent["attempts"] == 2
    assert len(sink.got) == 2 and sink.got[0]["json"]["body"] == sink.got[1]["json"]["body"]
    assert "拨打12345按7查询" in sink.got[1]["json"]["body"]


async def test_given_no_sender_then_the_outbox_keeps_texts_pending(store):
    await start(store, "c1")
    await ensure(store, "c1", new_ticket_no(date(2026, 12, 2)))
    await store.record_ticket_told("c1")
    worker = SmsWorker(Outbox(store), None, instance="gw-a")
    await worker.start()
    assert await worker.run_once() == 0
    await worker.stop()
    (row,) = await Outbox(store).listing()
    assert row["status"] == "pending"


def test_given_the_smpp_stub_then_it_refuses_clearly_and_the_interface_is_abstract():
    with pytest.raises(SmsSenderError, match="implement bind/submit_sm/unbind"):
        SmppNotImplemented()
    with pytest.raises(TypeError):
        SmppSender()  # abstract: bind, unbind, submit_sm


@pytest.mark.parametrize("number,mobile", [
    ("13800138000", "13800138000"), ("+8619912345678", "19912345678"), ("008613800138000", "13800138000"),
    ("12800138000", None), ("1380013800", None), ("02588886666", None), ("", None), (None, None),
    ("138001380001", None),
])
def test_given_numbers_then_only_mainland_mobiles_are_texted(number, mobile):
    assert mobile_number(number) == mobile


def test_given_a_number_then_the_text_has_it_grouped_and_how_to_check_progress():
    body = ticket_no_body("12021234567")
    assert "1202 123 4567" in body and "拨打12345按7查询" in body
    assert "0101 000 0000" in renumbered_body("01010000000", "12021234567")


@pytest.mark.parametrize("env,message", [
    ({"GATEWAY_SMS_WEBHOOK_URL": "ftp://x/y"}, "GATEWAY_SMS_WEBHOOK_URL"),
    ({"GATEWAY_SMS_MAX_ATTEMPTS": "0"}, "GATEWAY_SMS_MAX_ATTEMPTS"),
    ({"GATEWAY_SMS_MAX_ATTEMPTS": "many"}, "GATEWAY_SMS_MAX_ATTEMPTS"),
    ({"GATEWAY_SMS_WEBHOOK_TIMEOUT": "-1"}, "GATEWAY_SMS_WEBHOOK_TIMEOUT"),
])
def test_given_bad_sms_settings_then_an_error_names_the_variable(env, message, tmp_path):
    with pytest.raises(SettingsError, match=message):
        load_settings({"GATEWAY_STATE_DIR": str(tmp_path), **env})
