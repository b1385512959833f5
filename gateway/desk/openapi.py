"""OpenAPI paths of the desk, supervisor and ticket API (merged into ``/api/openapi.json``).

Request bodies are the models the handlers validate with (:mod:`gateway.desk.schemas`),
their JSON schemas in ``components`` (``gateway.hotlines.openapi.openapi_document``).
"""

from __future__ import annotations

from gateway.desk.schemas import CloseBody, DraftBody, SubmitBody, TransferBody
from gateway.web.schema import body_ref

_ERROR = {"$ref": "#/components/schemas/Error"}
_SECURITY = [{"session": []}, {"bearer": []}]
_TICKET_ID = [{"name": "ticket_id", "in": "path", "required": True, "schema": {"type": "integer"}}]


def _r(description: str, schema: dict | None = None, ctype: str = "application/json") -> dict:
    out: dict = {"description": description}
    if schema is not None:
        out["content"] = {ctype: {"schema": schema}}
    return out


_ERRORS = {"400": _r("malformed request: every problem in details.problems (path, field, English, Chinese)",
                      _ERROR), "401": _r("not logged in", _ERROR),
           "403": _r("role not allowed, CSRF token missing/wrong, or another agent's draft (error: locked)",
                     _ERROR), "404": _r("no such ticket", _ERROR)}
def _op(summary: str, *, ok: str = "200", schema: dict | None = None, body: type | None = None,
        params: list | None = None, extra: dict | None = None, ctype: str = "application/json") -> dict:
    op = {"summary": summary, "security": _SECURITY,
          "responses": {ok: _r("done", schema or {"type": "object"}, ctype), **_ERRORS, **(extra or {})}}
    if body is not None:
        op["requestBody"] = body_ref(body)
    if params:
        op["parameters"] = params
    return op


def desk_paths() -> dict:
    conflict = {"409": _r("decided by someone else, or changed since loaded (message says who and when)", _ERROR)}
    ticket = {"$ref": "#/components/schemas/DeskTicket"}
    return {
        "/api/tickets": {"get": _op("tickets, newest first; agents see callers' numbers masked", params=[
            {"name": n, "in": "query", "schema": {"type": "string"}} for n in ("limit", "offset", "status", "line",
                                                                              "category")])},
        "/api/tickets/{ticket_id}": {"get": _op("one ticket", params=_TICKET_ID)},
        "/api/tickets/{ticket_id}/recording": {"get": _op("the caller's recording", params=_TICKET_ID,
                                                          schema={"type": "string", "format": "binary"},
                                                          ctype="audio/wav")},
        "/api/tickets/{ticket_id}/audit": {"get": _op("the ticket's audit trail (supervisor, admin)",
                                                      params=_TICKET_ID)},
        "/api/calls/{uniqueid}": {"get": _op("one call", params=[
            {"name": "uniqueid", "in": "path", "required": True, "schema": {"type": "string"}}])},
        "/api/desk/inbox": {"get": _op("my open drafts (calls I answered) and the last pop number")},
        "/api/desk/ws": {"get": _op(
            "WebSocket of screen pops: hello, then missed events (since=N), then live ones "
            "({type: screen_pop, seq, uniqueid, queue, at, ticket}); resync means reload the inbox",
            ok="101", params=[{"name": "since", "in": "query", "schema": {"type": "integer"}}])},
        "/api/desk/tickets/{ticket_id}": {"get": _op("the ticket as I may see it, with suggestions and my saved "
                                                     "draft", schema=ticket, params=_TICKET_ID)},
        "/api/desk/tickets/{ticket_id}/draft": {"put": _op(
            "save what I typed so far (kept until the ticket is decided; the version does not change)",
            body=DraftBody, params=_TICKET_ID, extra=conflict)},
        "/api/desk/tickets/{ticket_id}/submit": {"post": _op(
            "submit for dispatch (draft -> submitted) with units and dispatch mode", schema=ticket, body=SubmitBody,
            params=_TICKET_ID, extra=conflict)},
        "/api/desk/tickets/{ticket_id}/close": {"post": _op(
            "close as answered on the call (draft -> answered)", schema=ticket, body=CloseBody, params=_TICKET_ID,
            extra=conflict)},
        "/api/desk/tickets/{ticket_id}/transfer": {"post": _op(
            "the emergency banner's transfer: the caller's live channel to the configured destination of 110 "
            "(police), 119 (fire), 120 (ambulance) or 122 (traffic police); the agent who answered the call, "
            "supervisors, admins; audited (ticket.transferred)",
            schema={"type": "object", "properties": {"service": {"type": "string"}, "name": {"type": "string"},
                                                     "kind": {"enum": ["queue", "dial"]}, "by": {"type": "string"},
                                                     "at": {"type": "string", "format": "date-time"}}},
            body=TransferBody, params=_TICKET_ID, extra={"409": _r("the call has ended, or was transferred already", _ERROR),
                                      "502": _r("Asterisk refused the redirect", _ERROR),
                                      "503": _r("Asterisk is not reachable", _ERROR)})},
        "/api/desk/tickets/{ticket_id}/dispatch": {"get": _op(
            "what the handling unit receives (no number for a confidential caller)", params=_TICKET_ID)},
        "/api/supervisor/overview": {"get": _op(
            "calls in the IVR, waiting per queue, talking to agents; today's counts per line and type, abandoned")},
        "/api/openapi.json": {"get": _op("this document")},
    }


DESK_SCHEMAS = {
    "DeskTicket": {"type": "object", "description": "a ticket as the viewer may see it", "properties": {
        "id": {"type": "integer"}, "version_id": {"type": "integer"},
        "status": {"enum": ["draft", "submitted", "answered"]},
        "caller_number": {"type": "string"}, "caller_number_masked": {"type": "boolean"},
        "line_number": {"type": "string"}, "merge_mode": {"type": "string"}, "menu_path": {"type": "array"},
        "category": {"type": ["string", "null"]}, "confidential": {"type": "boolean"},
        "transcript": {"type": ["string", "null"]},
        "transcript_status": {"enum": ["none", "live", "done", "pending", "failed"]},
        "emergency": {"type": "boolean"}, "emergency_words": {"type": "array", "items": {"type": "string"}},
        "recording_url": {"type": ["string", "null"]}, "suggestions": {"type": "object"},
        "saved_draft": {"type": ["object", "null"]}}},
}

