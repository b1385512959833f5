"""Issue 11 item 4: a line retired through the mode list or the Retire button announces "已并入12345"
unless the admin switches it off, and the admin hears the announcement before applying it
(``POST /api/admin/prompts/preview``, rendered into the prompt cache as render_all would)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.hotlines.keys import PromptDirs
from gateway.hotlines.service import HotlineAdmin
from gateway.ivr_flows.validate import read_files
from gateway.pbx.prompts import PromptText
from gateway.ticketing.store import TicketStore
from gateway.auth.users import UserStore
from tests.unit.test_config_validation import CONFIG
from tests.unit.webapp import build_app, with_admin

NOW = datetime(2027, 2, 20, 10, 0, tzinfo=timezone.utc)
DEFAULT_12315 = "您拨打的1 2 3 1 5已并入12345市民服务热线，现在为您转接。"


@pytest.fixture()
async def world(tmp_path, database_url):
    url = database_url  # migrated: SQLite and PostgreSQL (tests/dbfixtures.py)
    store = await TicketStore.open(url)

    async def applier(config, old):
        return None

    admin = HotlineAdmin(store=store, clock=lambda: NOW, applier=applier, initial_files=lambda: read_files(CONFIG))
    await admin.bootstrap()
    users = UserStore(store)
    token, _ = await users.create_session(await users.create_user("adm", "admin-pw-12345", "admin"))
    agent, _ = await users.create_session(await users.create_user("ag", "agent-pw-12345", "agent", agent_id="8001"))

    async def health():
        return {"status": "ok"}

    app = with_admin(build_app(store=store, health=health, users=users), admin,
                     PromptDirs(rendered=tmp_path / "prompts", recorded=tmp_path / "override",
                                cache=tmp_path / "cache"))
    async with TestClient(TestServer(app), headers={"Authorization": f"Bearer {token}"}) as c:
        yield SimpleNamespace(client=c, admin=admin, cache=tmp_path / "cache" / "prompts", agent=agent)
    await store.close()


async def _patch(client, number: str, fields: dict) -> dict:
    csrf = (await (await client.get("/api/me")).json()).get("csrf_token", "")
    resp = await client.patch(f"/api/admin/lines/{number}", json={"fields": fields, "comment": "test"},
                              headers={"X-CSRF-Token": csrf})
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def test_given_a_dual_number_line_when_its_mode_becomes_retired_then_it_announces_like_the_retire_button(world):
    await _patch(world.client, "12315", {"mode": "retired"})
    line = world.admin.config.lines["12315"]
    assert line.mode == "retired" and line.announce is True and line.announcement == DEFAULT_12315
    assert line.queue is None  # the dual-number queue went with the mode

    csrf = (await (await world.client.get("/api/me")).json()).get("csrf_token", "")
    resp = await world.client.post("/api/admin/lines/12369/retire", json={"comment": "test"},
                                   headers={"X-CSRF-Token": csrf})
    assert resp.status == 201, await resp.text()
    assert world.admin.config.lines["12369"].announce is True


async def test_given_a_retired_line_when_the_admin_switches_the_notice_off_and_on_then_only_that_changes(world):
    await _patch(world.client, "12319", {"announce": False})
    assert world.admin.config.lines["12319"].announce is False
    assert "announcement" not in world.admin.config.lines["12319"].prompt_overrides()
    await _patch(world.client, "12319", {"announce": True})
    assert world.admin.config.lines["12319"].announce is True


async def test_given_a_text_already_in_the_prompt_cache_when_previewed_then_its_wav_is_served_without_rendering(world):
    prompt = PromptText("preview", DEFAULT_12315, "zh")
    wav = b"RIFF" + b"\1" * 40

    def seed() -> None:  # what render_all cached for this text and voice (file I/O off the loop)
        world.cache.mkdir(parents=True)
        (world.cache / f"{prompt.digest}.wav").write_bytes(wav)

    await asyncio.to_thread(seed)
    resp = await world.client.post("/api/admin/prompts/preview", json={"text": DEFAULT_12315})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["url"] == f"/api/admin/prompts/preview/{prompt.digest}.wav"
    assert body["spoken"] == prompt.spoken and "幺二三幺五" in body["spoken"]
    audio = await world.client.get(body["url"])
    assert audio.status == 200 and audio.content_type == "audio/wav" and await audio.read() == wav
    names = await asyncio.to_thread(lambda: sorted(p.name for p in world.cache.iterdir()))
    assert names == [f"{prompt.digest}.wav"]  # nothing else rendered


async def test_given_a_tone_when_previewed_then_it_is_rendered_into_the_prompt_cache(world):
    resp = await world.client.post("/api/admin/prompts/preview", json={"text": "tone:1000Hz:300ms"})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["engine"] == "sox"
    digest = body["url"].rsplit("/", 1)[1].removesuffix(".wav")
    head = await asyncio.to_thread(lambda: (world.cache / f"{digest}.wav").read_bytes()[:4])
    assert head == b"RIFF"


@pytest.mark.parametrize("body", [{}, {"text": ""}, {"text": "   "}, {"text": 5}, {"text": "x" * 501},
                                  {"text": "第一行\n第二行"}])
async def test_given_a_bad_preview_text_when_posted_then_400_naming_the_field(world, body):
    resp = await world.client.post("/api/admin/prompts/preview", json=body)
    assert resp.status == 400
    assert (await resp.json())["details"]["field"] == "text"


@pytest.mark.parametrize("path,status", [("/api/admin/prompts/preview/0123456789abcdef0123.wav", 404),
                                         ("/api/admin/prompts/preview/..%2Fsecret.wav", 400),
                                         ("/api/admin/prompts/preview/ABCDEF0123456789ABCD.wav", 400)])
async def test_given_a_preview_name_that_is_not_one_when_fetched_then_refused(world, path, status):
    assert (await world.client.get(path)).status == status


async def test_given_an_agent_when_previewing_then_refused(world):
    resp = await world.client.post("/api/admin/prompts/preview", json={"text": "你好"},
                                   headers={"Authorization": f"Bearer {world.agent}"})
    assert resp.status == 403
