"""OpenAPI paths of the units API and the supervisor's review and 督办 lists (merged into
``/api/openapi.json`` by ``gateway.hotlines.openapi``)."""

from __future__ import annotations

from gateway.units.schemas import AcceptBody, NoteBody, ObjectBody, RedispatchBody, ReplyBody, ReviewBody
from gateway.web.schema import body_ref

_ERROR = {"$ref": "#/components/schemas/Error"}
_SECURITY = [{"session": []}, {"bearer": []}]
_DISPATCH = [{"name": "dispatch_id", "in": "path", "required": True, "schema": {"type": "integer"}}]
_TICKET = [{"name": "ticket_id", "in": "path", "required": True, "schema": {"type": "integer"}}]


def _r(description: str, schema: dict | None = None) -> dict:
    out: dict = {"description": description}
    if schema is not None:
        out["content"] = {"application/json": {"schema": schema}}
    return out


_ERRORS = {"400": _r("malformed request: every problem in details.problems", _ERROR),
           "401": _r("not logged in (a session cookie, or a unit's API token as Bearer)", _ERROR),
           "403": _r("role not allowed, or CSRF token missing (cookie sessions)", _ERROR),
           "404": _r("no such dispatch or ticket (another unit's is not found either)", _ERROR),
           "409": _r("not allowed in its current state (already accepted / handled, under review, "
                     "changed since loaded); the message says why", _ERROR)}


def _op(summary: str, body: type | None = None, params: list | None = None) -> dict:
    op = {"summary": summary, "security": _SECURITY,
          "responses": {"200": _r("done", {"type": "object"}), **_ERRORS}}
    if body is not None:
        op["requestBody"] = body_ref(body)
    if params:
        op["parameters"] = params
    return op


def unit_paths() -> dict:
    state = [{"name": "state", "in": "query", "schema": {
        "enum": ["new", "accepted", "overdue", "handled", "objected", "all"]}}]
    return {
        "/api/unit/dispatches": {"get": _op(
            "my unit's dispatches (role unit): new, accepted, overdue, handled, objected or all; each with "
            "its due time and seconds_left; no caller's number", params=state)},
        "/api/unit/dispatches/{dispatch_id}": {"get": _op(
            "one of my dispatches: the ticket (summary, category, place, transcript with personal numbers "
            "masked; no confidential caller's number, no recording), its public events and my unit's notes",
            params=_DISPATCH)},
        "/api/unit/dispatches/{dispatch_id}/accept": {"post": _op("签收 (sent -> accepted)", AcceptBody, _DISPATCH)},
        "/api/unit/dispatches/{dispatch_id}/object": {"post": _op(
            "派单异议 with the reason: the ticket goes to the hotline's review list", ObjectBody, _DISPATCH)},
        "/api/unit/dispatches/{dispatch_id}/notes": {"post": _op(
            "a progress note, public (the caller may hear it) or internal", NoteBody, _DISPATCH)},
        "/api/unit/dispatches/{dispatch_id}/reply": {"post": _op(
            "办结 with the result (accepted -> handled); when every unit has replied the ticket is handled "
            "(a public 'handled' event); a second reply is a 409", ReplyBody, _DISPATCH)},
        "/api/supervisor/review": {"get": _op(
            "tickets under review (objection, no_unit, unsolved, unsatisfied) with their dispatches")},
        "/api/supervisor/review/{ticket_id}/redispatch": {"post": _op(
            "dispatch to other unit(s): objected dispatches withdrawn, new ones with new due times",
            RedispatchBody, _TICKET)},
        "/api/supervisor/review/{ticket_id}/reject": {"post": _op(
            "reject the objection: back to the same unit, with a new due time", ReviewBody, _TICKET)},
        "/api/supervisor/review/{ticket_id}/close": {"post": _op(
            "close the ticket with the reason (open dispatches withdrawn)", ReviewBody, _TICKET)},
        "/api/supervisor/overdue": {"get": _op("督办: dispatches past their deadline, with how late (late_seconds)")},
        "/api/supervisor/unit-hooks": {"get": _op("units' webhook deliveries that failed (retrying or given up)")},
        "/api/tickets/{ticket_id}/events": {"get": _op(
            "what happened to a ticket after intake, with its dispatches (supervisor, admin)", params=_TICKET)},
    }
