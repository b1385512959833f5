"""Test-only HTTP routes, present only when the gateway runs with ``GATEWAY_TEST_CLOCK=true``
(:mod:`gateway.app` imports this module in that case only; otherwise the paths are 404):

    PUT /api/test/clock   {"now": "2027-01-01T09:00:00+08:00"} sets the gateway's clock
                          (calendars, scheduled changes); {"now": null} puts it back [admin]
    PUT /api/test/speech  {"suspended": true|false} makes the recogniser unavailable and back [admin]
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from gateway.auth.http import require_role
from gateway.clock import AdjustableClock
from gateway.deps import Deps
from gateway.errors import BadRequest
from gateway.speech.plugin import SPEECH
from gateway.web.bodies import read_json

TEST_CLOCK = web.AppKey("test_clock", AdjustableClock)


def _when(value) -> datetime:
    if not isinstance(value, str) or len(value) > 64:
        raise BadRequest("now is a date and time like 2027-01-01T00:00:00+08:00 (text)", details={"field": "now"})
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"now: {value!r} is not a date and time like 2027-01-01T00:00:00+08:00",
                         details={"field": "now"}) from None
    if parsed.tzinfo is None:
        raise BadRequest("now needs a UTC offset (e.g. +08:00)", details={"field": "now"})
    return parsed


@require_role("admin")
async def set_clock(request: web.Request) -> web.Response:
    clock = request.app[TEST_CLOCK]
    body = await read_json(request)
    if body.get("now") in (None, ""):
        clock.reset()
    else:
        clock.set(_when(body["now"]))
    return web.json_response({"now": clock.now().isoformat()})


@require_role("admin")
async def set_speech(request: web.Request) -> web.Response:
    """Force the recogniser unavailable (``{"suspended": true}``) and back."""
    speech = request.app[SPEECH]
    if speech.engine is None:
        raise web.HTTPConflict(text="speech is off")
    body = await read_json(request)
    if not isinstance(body.get("suspended"), bool):
        raise BadRequest("'suspended' must be true or false")
    speech.engine.suspended = body["suspended"]
    return web.json_response(speech.stats())


def setup(app: web.Application, deps: Deps) -> None:
    if not isinstance(deps.clock, AdjustableClock):
        raise TypeError("the test routes need the test clock (GATEWAY_TEST_CLOCK=true)")
    app[TEST_CLOCK] = deps.clock
    app.router.add_put("/api/test/clock", set_clock)
    app.router.add_put("/api/test/speech", set_speech)
