"""Admin API under ``/api/admin/`` and the admin page at ``/admin`` (role ``admin``).

Every change carries a required comment, is validated as a whole first and is
audited with who, when, the diff and why. Errors come from the gateway's
exception tree and are turned into JSON by the web edge: 400 for a malformed
request or change, 404 for an unknown line or version, 409 for a conflict, 422
with every problem (file, line, field) for a configuration that would be
invalid, 503 when Asterisk cannot be reloaded. In each case nothing changed.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from aiohttp import web

from gateway.auth.http import USER, require_role
from gateway.errors import BadRequest, NotFound
from gateway.hotlines.keys import HOTLINES, PROMPT_DIRS, PromptDirs
from gateway.hotlines.openapi import openapi_document
from gateway.hotlines.preview import add_preview_routes
from gateway.hotlines.schemas import (BODY_LIMIT, ChangeBody, ChangeRequest, CommentBody, CreateLineBody, DryRunBody,
                                      ImportBody, RetireLineBody, UpdateLineBody, change_dict)
from gateway.hotlines.service import HotlineAdmin
from gateway.web.schema import parse

STATIC = Path(__file__).resolve().parent.parent / "web" / "static"
_DIALLED = re.compile(r"[0-9]{3,20}")  # [0-9], not \d: "١٢٣٤٥" (Arabic-Indic digits) is not a number to dial
_PROMPT_KEY = re.compile(r"[a-z0-9][a-z0-9_-]{0,99}")  # a catalogue key (main-greeting), never a path
# Request bodies: gateway.hotlines.schemas (read with gateway.web.schema.parse).


def _version_id(request: web.Request) -> int:
    raw = request.match_info["version_id"]
    if not re.fullmatch(r"[0-9]{1,9}", raw):
        raise BadRequest("a version id is a number", details={"field": "version_id"})
    return int(raw)


def _line_number(request: web.Request) -> str:
    number = request.match_info["number"]
    if not _DIALLED.fullmatch(number):
        raise BadRequest("a line number is 3-20 digits 0-9 / 线路号码为 3-20 位数字", details={"field": "number"})
    return number


def _user(request: web.Request) -> str:
    return request[USER]["username"]


def _admin(request: web.Request) -> HotlineAdmin:
    return request.app[HOTLINES]


async def _submit(request: web.Request, change: dict, body: ChangeRequest) -> web.Response:
    version = await _admin(request).submit(change, comment=body.comment, user=_user(request),
                                              effective_at=body.effective_at)
    return web.json_response(version, status=201)


@require_role("admin")
async def overview(request: web.Request) -> web.Response:
    return web.json_response(await _admin(request).overview())


@require_role("admin")
async def list_versions(request: web.Request) -> web.Response:
    return web.json_response({"items": await _admin(request).versions.list()})


@require_role("admin")
async def get_version(request: web.Request) -> web.Response:
    return web.json_response(await _admin(request).versions.get(_version_id(request)))


@require_role("admin")
async def export(request: web.Request) -> web.Response:
    admin = _admin(request)
    if "version_id" in request.match_info:
        files = (await admin.versions.get(_version_id(request)))["files"]
    else:
        files = admin.files
    return web.Response(text=files["hotlines.yaml"], content_type="application/yaml", charset="utf-8")


@require_role("admin")
async def post_change(request: web.Request) -> web.Response:
    body = await parse(request, ChangeBody, limit=BODY_LIMIT)
    return await _submit(request, change_dict(body.change), body)


@require_role("admin")
async def create_line(request: web.Request) -> web.Response:
    body = await parse(request, CreateLineBody, limit=BODY_LIMIT)
    return await _submit(request, {"op": "create_line", "line": body.line}, body)


@require_role("admin")
async def update_line(request: web.Request) -> web.Response:
    body = await parse(request, UpdateLineBody, limit=BODY_LIMIT)
    change = {"op": "update_line", "number": _line_number(request), "fields": body.fields}
    return await _submit(request, change, body)


@require_role("admin")
async def retire_line(request: web.Request) -> web.Response:
    body = await parse(request, RetireLineBody, limit=BODY_LIMIT)
    change = {"op": "retire_line", "number": _line_number(request), "announcement": body.announcement}
    return await _submit(request, change, body)


@require_role("admin")
async def import_config(request: web.Request) -> web.Response:
    body = await parse(request, ImportBody, limit=BODY_LIMIT)
    return await _submit(request, {"op": "replace", "hotlines_yaml": body.hotlines_yaml}, body)


@require_role("admin")
async def rollback(request: web.Request) -> web.Response:
    body = await parse(request, CommentBody, limit=BODY_LIMIT)
    version = await _admin(request).rollback(_version_id(request), comment=body.comment,
                                                user=_user(request))
    return web.json_response(version, status=201)


@require_role("admin")
async def cancel(request: web.Request) -> web.Response:
    body = await parse(request, CommentBody, limit=BODY_LIMIT)
    version = await _admin(request).cancel(_version_id(request), comment=body.comment,
                                              user=_user(request))
    return web.json_response(version)


@require_role("admin")
async def dry_run(request: web.Request) -> web.Response:
    body = await parse(request, DryRunBody, limit=BODY_LIMIT)
    change = change_dict(body.change) if body.change is not None else None
    result = await _admin(request).dry_run(number=body.number, at=body.at, digits=body.digits or "",
                                              change=change, version_id=body.version)
    return web.json_response(result)


@require_role("admin")
async def audit(request: web.Request) -> web.Response:
    return web.json_response({"items": await _admin(request).store.list_audit(
        "config_version", request.match_info["version_id"])})


# -- prompts (issue 10): what callers hear, to be played on the admin page -------------------------
def _prompt_rows(config, dirs: PromptDirs) -> list[dict]:
    from gateway.pbx import prompts

    rows = prompts.describe(config)
    for row in rows:
        row["url"] = f"/api/admin/prompts/{row['key']}.wav"
        row["rendered"] = (dirs.rendered / f"{row['key']}.wav").is_file()
        row["recorded"] = (dirs.recorded / f"{row['key']}.wav").is_file()
    return rows


@require_role("admin")
async def list_prompts(request: web.Request) -> web.Response:
    from gateway import tts

    # a stat per prompt: off the event loop
    rows = await asyncio.to_thread(_prompt_rows, _admin(request).config, request.app[PROMPT_DIRS])
    return web.json_response({"items": rows, "voice": tts.status()})


@require_role("admin")
async def prompt_audio(request: web.Request) -> web.Response:
    from gateway.pbx import prompts

    raw = request.match_info["key"]
    if not _PROMPT_KEY.fullmatch(raw):
        raise BadRequest("a prompt key is a catalogue key such as main-greeting", details={"field": "key"})
    known = prompts.catalogue(_admin(request).config)
    key = next((k for k in known if k == raw), None)  # the catalogue's own string names the file
    if key is None:
        raise NotFound(f"no prompt {raw!r} in the live configuration", details={"field": "key"})
    path = request.app[PROMPT_DIRS].rendered / f"{key}.wav"
    if not await asyncio.to_thread(path.is_file):
        raise NotFound(f"prompt {key} is not rendered yet", details={"field": "key"})
    return web.FileResponse(path, headers={"Content-Type": "audio/wav", "Cache-Control": "no-store",
                                           "Content-Disposition": f'inline; filename="{key}.wav"'})


@require_role("agent", "supervisor", "admin")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


@require_role("admin", page=True)
async def admin_page(request: web.Request) -> web.Response:
    return web.FileResponse(STATIC / "admin.html", headers={"Cache-Control": "no-store"})


def add_admin_routes(app: web.Application) -> None:
    """The admin page and API (the feature's setup puts :data:`HOTLINES` and :data:`PROMPT_DIRS`)."""
    r = app.router
    r.add_get("/admin", admin_page)
    r.add_get("/api/openapi.json", openapi)
    r.add_get("/api/admin/overview", overview)
    r.add_get("/api/admin/versions", list_versions)
    r.add_get("/api/admin/versions/{version_id}", get_version)
    r.add_get("/api/admin/versions/{version_id}/export", export)
    r.add_get("/api/admin/versions/{version_id}/audit", audit)
    r.add_post("/api/admin/versions/{version_id}/rollback", rollback)
    r.add_post("/api/admin/versions/{version_id}/cancel", cancel)
    r.add_get("/api/admin/export", export)
    r.add_post("/api/admin/import", import_config)
    r.add_post("/api/admin/changes", post_change)
    r.add_post("/api/admin/lines", create_line)
    r.add_patch("/api/admin/lines/{number}", update_line)
    r.add_post("/api/admin/lines/{number}/retire", retire_line)
    r.add_post("/api/admin/dry-run", dry_run)
    r.add_get("/api/admin/prompts", list_prompts)
    r.add_get("/api/admin/prompts/{key:[^/]+}.wav", prompt_audio)  # any segment: the handler checks the key
    add_preview_routes(r)  # hear a text before it is applied (gateway.hotlines.preview)
