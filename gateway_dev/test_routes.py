"""Test-only HTTP routes, present only when the gateway runs with ``GATEWAY_TEST_CLOCK=true``
(:mod:`gateway.app` imports this module in that case only; otherwise the paths are 404):

    PUT /api/test/clock   {"now": "2027-01-01T09:00:00+08:00"} sets the gateway's clock
                          (calendars, scheduled changes); {"now": null} puts it back [admin]
    PUT /api/test/speech  {"suspended": true|false} makes the recogniser unavailable and back [admin]
"""

from __future__ import annotations

from typing import Optional

from aiohttp import web

from gateway.auth.http import require_role
from gateway.clock import AdjustableClock
from gateway.deps import Deps
from gateway.speech.plugin import SPEECH
from gateway.web.schema import AwareTime, Body, parse

TEST_CLOCK = web.AppKey("test_clock", AdjustableClock)


class ClockBody(Body):
    """The gateway's clock (null: the real time again)."""

    now: Optional[AwareTime] = None


class SpeechBody(Body):
    """Suspend the recogniser (true) or let it work again (false)."""

    suspended: bool


@require_role("admin")
async def set_clock(request: web.Request) -> web.Response:
    clock = request.app[TEST_CLOCK]
    body = await parse(request, ClockBody)
    if body.now is None:
        clock.reset()
    else:
        clock.set(body.now)
    return web.json_response({"now": clock.now().isoformat()})


@require_role("admin")
async def set_speech(request: web.Request) -> web.Response:
    """Force the recogniser unavailable (``{"suspended": true}``) and back."""
    speech = request.app[SPEECH]
    if speech.engine is None:
        raise web.HTTPConflict(text="speech is off")
    body = await parse(request, SpeechBody)
    speech.engine.suspended = body.suspended
    return web.json_response(speech.stats())


def setup(app: web.Application, deps: Deps) -> None:
    if not isinstance(deps.clock, AdjustableClock):
        raise TypeError("the test routes need the test clock (GATEWAY_TEST_CLOCK=true)")
    app[TEST_CLOCK] = deps.clock
    app.router.add_put("/api/test/clock", set_clock)
    app.router.add_put("/api/test/speech", set_speech)
