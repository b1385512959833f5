"""/admin plays any prompt as callers hear it: the catalogue, and a key never taken as a path."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.hotlines.keys import PromptDirs
from gateway.hotlines.service import HotlineAdmin
from gateway.ivr_flows.validate import read_files
from gateway.ticketing.store import TicketStore
from gateway.auth.users import UserStore
from tests.unit.webapp import build_app, with_admin
from tests.unit.test_config_validation import CONFIG

NOW = datetime(2027, 2, 20, 10, 0, tzinfo=timezone.utc)
WAV = b"RIFF" + b"\0" * 40


@pytest.fixture()
def prompt_files(tmp_path):
    """One rendered prompt, and a WAV outside the prompts directory (made before the event loop runs)."""
    prompts_dir = tmp_path / "prompts"
    prompts_dir.mkdir()
    (prompts_dir / "main-greeting.wav").write_bytes(WAV)
    (tmp_path / "secret.wav").write_bytes(b"not a prompt")
    return prompts_dir


@pytest.fixture()
async def client(tmp_path, prompt_files, sqlite_database_url):
    url = sqlite_database_url  # SQLite only: nothing here depends on the database's SQL
    store = await TicketStore.open(url)

    async def applier(config, old):
        return None

    admin = HotlineAdmin(store=store, clock=lambda: NOW, applier=applier, initial_files=lambda: read_files(CONFIG))
    await admin.bootstrap()
    prompts_dir, override_dir = prompt_files, tmp_path / "override"

    async def health():
        return {"status": "ok"}

    users = UserStore(store)
    token, _ = await users.create_session(await users.create_user("adm", "admin-pw-12345", "admin"))
    agent, _ = await users.create_session(await users.create_user("ag", "agent-pw-12345", "agent", agent_id="8001"))
    app = build_app(store=store, health=health, users=users)
    with_admin(app, admin, PromptDirs(rendered=prompts_dir, recorded=override_dir))
    async with TestClient(TestServer(app), headers={"Authorization": f"Bearer {token}"}) as c:
        c.agent = agent
        yield c
    await store.close()


async def test_given_the_catalogue_when_listed_then_every_prompt_has_its_text_spoken_form_engine_and_url(client):
    resp = await client.get("/api/admin/prompts")
    assert resp.status == 200
    body = await resp.json()
    rows = {r["key"]: r for r in body["items"]}
    greeting = rows["main-greeting"]
    assert greeting["text"].startswith("您好") and "幺二三四五" in greeting["spoken"]
    assert greeting["engine"] in ("kokoro", "espeak") and greeting["url"] == "/api/admin/prompts/main-greeting.wav"
    assert greeting["rendered"] is True and rows["main-type_menu"]["rendered"] is False
    assert rows["ko-greeting"]["engine"] == "espeak" and rows["ko-greeting"]["voice"] == "ko"
    assert body["voice"]["engine"] in ("kokoro", "espeak")


async def test_given_a_rendered_prompt_when_fetched_then_its_wav_is_served(client):
    resp = await client.get("/api/admin/prompts/main-greeting.wav")
    assert resp.status == 200 and resp.content_type == "audio/wav"
    assert await resp.read() == WAV


@pytest.mark.parametrize("path,status", [
    ("/api/admin/prompts/main-type_menu.wav", 404),        # in the catalogue, not rendered here
    ("/api/admin/prompts/nosuch.wav", 404),                # not in the catalogue
    ("/api/admin/prompts/..%2Fsecret.wav", 400),           # a path, not a key
    ("/api/admin/prompts/%2E%2E.wav", 400),
    ("/api/admin/prompts/MAIN-GREETING.wav", 400),
])
async def test_given_a_key_outside_the_catalogue_when_fetched_then_4xx_and_no_file_is_read(client, path, status):
    resp = await client.get(path)
    assert resp.status == status
    assert b"not a prompt" not in await resp.read()


async def test_given_an_agent_when_prompts_are_asked_then_forbidden(client):
    resp = await client.get("/api/admin/prompts", headers={"Authorization": f"Bearer {client.agent}"})
    assert resp.status == 403
    resp = await client.get("/api/admin/prompts/main-greeting.wav", headers={"Authorization": f"Bearer {client.agent}"})
    assert resp.status == 403
