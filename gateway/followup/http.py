"""The desk's manual follow-up (回访 by an agent on the phone) and the follow-up lists.

Routes (all behind a login; roles in brackets)::

    GET  /api/followups?status=open|done|all     follow-ups with their ticket [agent|supervisor|admin]
                                                 open: due, being called, unreachable, and handled tickets
                                                 the scheduler has not reached; agents see numbers masked
    GET  /followups                              the follow-up page [agent|supervisor|admin]
    GET  /api/followups/review                   tickets put on review by a follow-up [supervisor|admin]
    GET  /api/followups/{ticket_id}              one ticket's follow-up, the number whole (the agent is
                                                 about to phone the citizen; audited: followup.opened)
    POST /api/followups/{ticket_id}/answers      {"solved", "satisfaction", "comment"}: recorded as via=desk
                                                 by this agent; 409 followup-done for a second follow-up,
                                                 409 followup-calling while the IVR calls, 409 not-handled

Why the agent phones from their own desk phone and records the answers here, rather than the
gateway originating a "followup-agent" call that rings the agent and then the citizen: the
agent's phone is already in front of them, an agent follow-up is the exception (unreachable
by the IVR, or a supervisor wants a person to call), and the record is the same either way
(the same store method as the IVR: answers on the follow-up and the ticket, stage closed or
review, audited). Placing such calls through the gateway can be added on the outbound
routes (purpose ``followup-agent``) without changing this API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from aiohttp import web

from gateway.auth.http import USER, require_role
from gateway.errors import BadRequest
from gateway.followup.service import FollowupService
from gateway.followup.store import Answers
from gateway.masking import mask_number
from gateway.ticketing.models import FOLLOWUP_SATISFACTION, FOLLOWUP_SOLVED
from gateway.web.params import int_param, ticket_id
from gateway.web.schema import Body, parse, text

FOLLOWUP = web.AppKey("followup", FollowupService)
STATIC = Path(__file__).resolve().parent.parent / "web" / "static"
DESK_ROLES = ("agent", "supervisor", "admin")
OPEN = ("scheduled", "calling", "unreachable")
STATUS_SETS = {"open": OPEN, "done": ("done", "refused"), "all": ("scheduled", "calling", "unreachable", "done",
                                                                   "refused", "cancelled")}


class FollowupAnswersBody(Body):
    """The answers an agent got by phone: the same as the IVR's (1 已解决 / 2 未解决; 满意 / 基本满意 / 不满意)."""

    solved: Literal[FOLLOWUP_SOLVED]  # type: ignore[valid-type]
    satisfaction: Literal[FOLLOWUP_SATISFACTION]  # type: ignore[valid-type]
    comment: Optional[text(2000, strip=True, no_control=True)] = None


BODIES = {("POST", "/api/followups/{ticket_id}/answers"): FollowupAnswersBody}


def _shown(item: dict, user: dict) -> dict:
    if user.get("role") == "agent" and item.get("ticket"):
        item = {**item, "ticket": {**item["ticket"], "caller_number": mask_number(item["ticket"]["caller_number"])}}
    return item


@require_role(*DESK_ROLES)
async def list_followups(request: web.Request) -> web.Response:
    status = request.query.get("status", "open")
    if status not in STATUS_SETS:
        raise BadRequest(f"status must be one of {', '.join(STATUS_SETS)}", details={"parameter": "status"})
    limit = int_param(request, "limit", 100, 1, 200)
    service = request.app[FOLLOWUP]
    items = await service.store.listing(STATUS_SETS[status], limit=limit)
    if status in ("open", "all"):
        items = (await service.store.handled_without_followup(limit=limit)) + items
    user = request[USER]
    return web.json_response({"items": [_shown(i, user) for i in items[:limit]],
                              "counts": await service.store.counts()})


@require_role("supervisor", "admin")
async def review_list(request: web.Request) -> web.Response:
    """The review list's follow-up part: tickets whose citizen said 未解决 or 不满意."""
    items = await request.app[FOLLOWUP].store.review_list(limit=int_param(request, "limit", 100, 1, 200))
    return web.json_response({"items": items})


@require_role(*DESK_ROLES, page=True)
async def followups_page(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "followups.html")


@require_role(*DESK_ROLES)
async def get_followup(request: web.Request) -> web.Response:
    tid = ticket_id(request)
    service = request.app[FOLLOWUP]
    row = await service.store.of_ticket(tid)
    if row is None:
        pending = [i for i in await service.store.handled_without_followup(limit=200) if i["ticket_id"] == tid]
        if not pending:
            ticket = await service.store.store.get_ticket(tid)  # 404 for an unknown ticket
            return web.json_response({"ticket_id": tid, "status": None, "handling": ticket["handling"]})
        row = pending[0]
    await service.store.audit(request[USER]["username"], "followup.opened", tid)
    return web.json_response(row)


@require_role(*DESK_ROLES)
async def post_answers(request: web.Request) -> web.Response:
    body = await parse(request, FollowupAnswersBody, limit=8_000)
    service = request.app[FOLLOWUP]
    user = request[USER]
    answers = Answers(body.solved, body.satisfaction, comment_transcript=body.comment or None,
                      comment_status="done" if body.comment else "none")
    row = await service.store.answered(ticket_id(request), answers, via="desk", now=service.clock(),
                                       actor=user["username"], agent=user["username"])
    return web.json_response(row)


def add_followup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/followups", followups_page)
    r.add_get("/api/followups", list_followups)
    r.add_get("/api/followups/review", review_list)
    r.add_get("/api/followups/{ticket_id}", get_followup)
    r.add_post("/api/followups/{ticket_id}/answers", post_answers)


def followup_paths(op, ticket_param: list) -> dict:
    """OpenAPI paths of this API (merged into ``/api/openapi.json``); ``op`` builds one operation."""
    from gateway.web.schema import body_ref  # noqa: F401 - the body is referenced by op()

    return {
        "/api/followups": {"get": op("follow-ups with their ticket: status=open (due, calling, unreachable, "
                                     "handled and not yet scheduled), done (done, refused) or all; agents see "
                                     "numbers masked", params=[{"name": n, "in": "query", "schema": {"type": "string"}}
                                                               for n in ("status", "limit")])},
        "/api/followups/review": {"get": op("the review list's follow-up part: tickets whose citizen answered "
                                            "未解决 (unsolved) or 不满意 (unsatisfied), with the answers (supervisor, admin)",
                                            params=[{"name": "limit", "in": "query", "schema": {"type": "string"}}])},
        "/api/followups/{ticket_id}": {"get": op("one ticket's follow-up with the citizen's number (audited)",
                                                 params=ticket_param)},
        "/api/followups/{ticket_id}/answers": {"post": op(
            "record the answers of a follow-up done by phone at the desk (via=desk); 409 followup-done for a "
            "second follow-up of the ticket, followup-calling while the IVR calls, not-handled before 办结",
            body=FollowupAnswersBody, params=ticket_param)},
    }
