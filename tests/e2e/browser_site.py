"""The supervisor page for browser tests without Asterisk: the page, its static files and the APIs a
test adds, in-process on a migrated SQLite database, served by an event loop in a thread of its own.

Each test file keeps only what differs: its data and routes (an async ``seed(store, app)`` that
returns what the tests read besides the port) and its users (one supervisor, "boss", unless told)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway.auth.users import UserStore
from gateway.desk.catalogue_load import load_catalogue
from gateway.desk.http import static_file, supervisor_page
from gateway.ticketing import migrate
from gateway.ticketing.store import TicketStore
from tests.unit.webapp import build_app

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"  # screenshots
CATALOGUE = load_catalogue(ROOT / "config" / "catalogue.yaml")  # the shipped catalogue
UNITS = {u.id: u.name for u in CATALOGUE.units.values()}  # its units' names by id

Seed = Callable[[TicketStore, web.Application], Awaitable[dict[str, Any]]]
BOSS = (("boss", "supervisor", None),)


@contextlib.contextmanager
def serve(tmp_path_factory, name: str, seed: Seed, *, users=BOSS, timeout: float = 120) -> Iterator[dict]:
    """Serve the supervisor page; yield ``port``, ``tokens`` (a session token per user name),
    ``token`` (the first user's), ``store`` and what ``seed`` returned. ``users``: (name, role,
    unit_id) each, password ``<name>-password-1``."""
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp(name) / 'gw.db'}"
    migrate.upgrade(url)
    loop = asyncio.new_event_loop()
    ready: dict = {}

    async def start() -> None:
        store = await TicketStore.open(url)
        ready["store"] = store
        accounts = UserStore(store)
        tokens = {}
        for user, role, unit in users:
            uid = await accounts.create_user(user, f"{user}-password-1", role, unit_id=unit)
            tokens[user] = (await accounts.create_session(uid))[0]

        async def health():
            return {}

        app = build_app(store=store, health=health, users=accounts)
        app.router.add_get("/supervisor", supervisor_page)
        app.router.add_get("/static/{name:.+}", static_file)
        ready.update(await seed(store, app))
        runner = web.AppRunner(app)
        await runner.setup()
        ready["runner"] = runner
        tcp = web.TCPSite(runner, "127.0.0.1", 0)
        await tcp.start()
        ready.update(port=tcp._server.sockets[0].getsockname()[1], tokens=tokens, token=tokens[users[0][0]])

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(start(), loop).result(timeout)
        yield ready
    finally:
        if "runner" in ready:
            asyncio.run_coroutine_threadsafe(ready["runner"].cleanup(), loop).result(30)
        if "store" in ready:
            asyncio.run_coroutine_threadsafe(ready["store"].close(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@contextlib.contextmanager
def supervisor_tab(chromium, site: dict, width: int, height: int, *, ready: str, who: str = "boss",
                   ) -> Iterator[tuple[Any, Any, list[str]]]:
    """A browser context signed in as ``who`` (zh-CN, Beijing time) on /supervisor, once the body's
    ``data-<ready>-ready`` is "true"; yield (context, page, page errors). The context closes after."""
    from playwright.sync_api import expect

    ctx = chromium.new_context(viewport={"width": width, "height": height}, locale="zh-CN",
                               timezone_id="Asia/Shanghai",
                               extra_http_headers={"Authorization": f"Bearer {site['tokens'][who]}"})
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"http://127.0.0.1:{site['port']}/supervisor")
        expect(page.locator("body")).to_have_attribute(f"data-{ready}-ready", "true")
        yield ctx, page, errors
    finally:
        ctx.close()
