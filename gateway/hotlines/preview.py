"""Hear a prompt text before it is applied: the admin page's "callers will hear" player.

A retired line's announcement (or any text an admin is about to set) is rendered exactly
as :func:`gateway.pbx.prompts.render_all` will render it once applied -- the same engine,
voice and telephone normalisation -- into the same cache, ``<cache>/prompts/<digest>.wav``.
Applying the change afterwards finds the file there and renders nothing twice; previewing
a text that is already rendered renders nothing at all.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from pathlib import Path

from aiohttp import web

from gateway.errors import BadRequest, NotFound
from gateway.auth.http import require_role
from gateway.hotlines.keys import HOTLINES, PROMPT_DIRS
from gateway.hotlines.schemas import PreviewBody
from gateway.web.schema import parse

_DIGEST = re.compile(r"[0-9a-f]{20}")  # gateway.pbx.prompts.PromptText.digest


def render_preview(cache_dir: Path, text: str, language: str) -> dict:
    """Blocking: ``text`` as callers will hear it, as a cached 8 kHz WAV; where it is and who speaks it."""
    from gateway.pbx.prompts import PromptText, synthesize

    prompt = PromptText("preview", text, language)
    cache = cache_dir / "prompts"
    cache.mkdir(parents=True, exist_ok=True)
    engine, voice = prompt.voice()
    digest = prompt.digest_for(engine, voice)
    if not (cache / f"{digest}.wav").is_file():
        with tempfile.TemporaryDirectory(prefix=".gw-preview-", dir=cache) as tmp:
            fresh = Path(tmp) / "new.wav"
            said = synthesize(prompt, fresh)
            engine, voice = said["engine"], said["voice"]  # a fallback is cached as such, as render_all does
            digest = prompt.digest_for(engine, voice)
            os.replace(fresh, cache / f"{digest}.wav")
    return {"url": f"/api/admin/prompts/preview/{digest}.wav", "text": text, "spoken": prompt.spoken,
            "language": language, "engine": engine, "voice": voice}


def _services(request: web.Request):
    """The live configuration's owner and the prompt cache."""
    dirs = request.app[PROMPT_DIRS]
    if dirs.cache is None:
        raise NotFound("previews are off: no prompt cache configured")
    return request.app[HOTLINES], dirs.cache


@require_role("admin")
async def preview(request: web.Request) -> web.Response:
    text = (await parse(request, PreviewBody, limit=4_000)).text
    admin, cache_dir = _services(request)
    config = admin.config
    language = config.flows[config.primary.flow].language
    return web.json_response(await asyncio.to_thread(render_preview, cache_dir, text.strip(), language))


@require_role("admin")
async def preview_audio(request: web.Request) -> web.StreamResponse:
    digest = request.match_info["digest"]
    if not _DIGEST.fullmatch(digest):
        raise BadRequest("a preview is named by its 20 hex digits", details={"field": "digest"})
    path = _services(request)[1] / "prompts" / f"{digest}.wav"
    if not await asyncio.to_thread(path.is_file):
        raise NotFound("no such preview: render it first (POST /api/admin/prompts/preview)")
    return web.FileResponse(path, headers={"Content-Type": "audio/wav", "Cache-Control": "no-store",
                                           "Content-Disposition": f'inline; filename="preview-{digest}.wav"'})


def add_preview_routes(router: web.UrlDispatcher) -> None:
    router.add_post("/api/admin/prompts/preview", preview)
    router.add_get("/api/admin/prompts/preview/{digest:[^/]+}.wav", preview_audio)  # the handler checks it
