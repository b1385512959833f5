"""The hotlines feature's services on the application (typed ``AppKey``s), for its own
handlers (``http``, ``preview``) and the features that read the live configuration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from gateway.hotlines.service import HotlineAdmin


@dataclass(frozen=True)
class PromptDirs:
    rendered: Path  # the prompts the gateway rendered (state dir)
    recorded: Path  # recordings dropped in config/prompts/, which win over the voice
    cache: Path | None = None  # rendered texts by digest (previews land here too: gateway.hotlines.preview)


HOTLINES = web.AppKey("hotlines", HotlineAdmin)
PROMPT_DIRS = web.AppKey("prompt_dirs", PromptDirs)
