"""Test-only HTTP routes, present only when the gateway runs with ``GATEWAY_TEST_CLOCK=true``
(:mod:`gateway.app` imports this module in that case only; otherwise the paths are 404):

    PUT /api/test/clock   {"now": "2027-01-01T09:00:00+08:00"} sets the gateway's clock
                          (calendars, scheduled changes); {"now": null} puts it back [admin]
    PUT /api/test/speech  {"suspended": true|false} makes the recogniser unavailable and back [admin]
                          optional "max_streams": n (admission control's limit, 0 = every stream taken)
                          and "open_delay_s": x (each stream request first waits x s, then is
                          answered: the time a loaded gateway spends before it can listen or fall
                          back; 0 = none), so a test can press a key in that gap on purpose
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Optional

from aiohttp import web
from pydantic import Field

from gateway.auth.http import require_role
from gateway.calls.outbound import OutboundCalls
from gateway.calls.plugin import OUTBOUND, OUTBOUND_ROUTES
from gateway.clock import AdjustableClock
from gateway.deps import Deps
from gateway.speech.plugin import SPEECH
from gateway.web.schema import AwareTime, Body, parse

TEST_CLOCK = web.AppKey("test_clock", AdjustableClock)
TEST_KEYS = web.AppKey("test_outbound_keys", dict)
DEPS_STORE = web.AppKey("test_store", object)
TEST_PURPOSE = "test-key"
TEST_PROMPT = "main-greeting"  # a prompt every configuration renders (the main flow's greeting)


class ClockBody(Body):
    """The gateway's clock (null: the real time again)."""

    now: Optional[AwareTime] = None


class SpeechBody(Body):
    """Suspend the recogniser (true) or let it work again (false); optionally set
    admission control's ``max_streams`` and a delay before each stream request is answered."""

    suspended: bool
    max_streams: Optional[int] = Field(default=None, ge=0, le=1000)
    open_delay_s: Optional[float] = Field(default=None, ge=0, le=30)


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
    engine = speech.engine
    engine.suspended = body.suspended
    if body.max_streams is not None:
        engine.config = dataclasses.replace(engine.config, max_streams=body.max_streams)
    if body.open_delay_s is not None:
        engine.__dict__.pop("open_stream", None)  # the class's own again
        if body.open_delay_s > 0:
            engine.open_stream = _delayed(engine.open_stream, body.open_delay_s)
    return web.json_response(speech.stats())


class OutboundBody(Body):
    """A call the gateway places (test-only purposes)."""

    number: str = Field(min_length=3, max_length=21)
    purpose: str = Field(default=TEST_PURPOSE, max_length=32)
    ref: str = Field(default="", max_length=64)
    timeout_s: float = Field(default=20.0, ge=1, le=120)


@require_role("admin")
async def place_outbound(request: web.Request) -> web.Response:
    body = await parse(request, OutboundBody)
    result = await request.app[OUTBOUND].dial(body.number, purpose=body.purpose, ref=body.ref,
                                               timeout_s=body.timeout_s)
    return web.json_response(dataclasses.asdict(result))


@require_role("admin")
async def outbound_of(request: web.Request) -> web.Response:
    ref = request.match_info["ref"]
    rows = await OutboundCalls(request.app[DEPS_STORE]).list(ref=ref)
    return web.json_response({"keys": request.app[TEST_KEYS].get(ref, []), "calls": rows})


def _test_key_route(keys: dict):
    async def run(session, channel, ref: str) -> None:
        """The test-only purpose: the greeting, one key (5 s), kept for GET /api/test/outbound/{ref}."""
        key = await channel.collect_digits(TEST_PROMPT, max_digits=1, timeout=5.0)
        keys.setdefault(ref, []).append({"key": key, "uniqueid": session.env.uniqueid})
        await channel.hangup()

    return run


def _delayed(open_stream, seconds: float):
    async def delayed_open_stream(language, **kwargs):
        await asyncio.sleep(seconds)
        return await open_stream(language, **kwargs)

    return delayed_open_stream


def setup(app: web.Application, deps: Deps) -> None:
    if not isinstance(deps.clock, AdjustableClock):
        raise TypeError("the test routes need the test clock (GATEWAY_TEST_CLOCK=true)")
    app[TEST_CLOCK] = deps.clock
    app.router.add_put("/api/test/clock", set_clock)
    app.router.add_put("/api/test/speech", set_speech)
    app[TEST_KEYS] = {}
    app[DEPS_STORE] = deps.store
    app[OUTBOUND_ROUTES].register(TEST_PURPOSE, _test_key_route(app[TEST_KEYS]))
    app.router.add_post("/api/test/outbound", place_outbound)
    app.router.add_get("/api/test/outbound/{ref}", outbound_of)
