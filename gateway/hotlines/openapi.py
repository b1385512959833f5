"""The OpenAPI 3.1 document served at ``/api/openapi.json``."""

from __future__ import annotations

from gateway import __version__
from gateway.desk.openapi import DESK_SCHEMAS, desk_paths
from gateway.hotlines.changes import OPS

_ERROR = {"$ref": "#/components/schemas/Error"}


def _resp(description: str, schema: dict | None = None, ctype: str = "application/json") -> dict:
    out: dict = {"description": description}
    if schema is not None:
        out["content"] = {ctype: {"schema": schema}}
    return out


_ERRORS = {
    "400": _resp("malformed request or change; nothing changed", _ERROR),
    "401": _resp("not logged in", _ERROR),
    "403": _resp("not an admin, or the CSRF token is missing or wrong", _ERROR),
    "404": _resp("unknown line or version", _ERROR),
    "409": _resp("conflicts with the live configuration", _ERROR),
    "422": _resp("the configuration would be invalid: every problem with file, line and field", _ERROR),
    "503": _resp("Asterisk could not be reloaded; nothing changed", _ERROR),
}


def _change_body(extra: dict, required: list[str]) -> dict:
    return {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["comment", *required],
        "properties": {
            "comment": {"type": "string", "maxLength": 500, "description": "why (required, audited)"},
            "effective_at": {"type": "string", "format": "date-time",
                             "description": "apply later, at this time (with UTC offset); omitted: now"},
            **extra,
        }}}}}


def _op(summary: str, *, body: dict | None = None, ok: str = "201", ok_schema: dict | None = None,
        params: list | None = None) -> dict:
    op = {"summary": summary, "responses": {ok: _resp("done", ok_schema or {"$ref": "#/components/schemas/Version"}),
                                            **_ERRORS}, "security": [{"session": []}, {"bearer": []}]}
    if body:
        op["requestBody"] = body
    if params:
        op["parameters"] = params
    return op


def _preview_audio_op() -> dict:
    op = _op("a rendered preview (8 kHz mono WAV)", ok="200", params=[{"name": "digest", "in": "path",
             "required": True, "schema": {"type": "string", "pattern": "^[0-9a-f]{20}$"}}])
    op["responses"]["200"] = _resp("the WAV file", {"type": "string", "format": "binary"}, "audio/wav")
    return op


_VERSION_ID = [{"name": "version_id", "in": "path", "required": True, "schema": {"type": "integer"}}]
_NUMBER = [{"name": "number", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[0-9]{3,20}$"}}]


def _prompt_audio_op() -> dict:
    op = _op("a prompt's audio as callers hear it (8 kHz mono WAV); 404 for a key not in the catalogue",
             ok="200", params=[{"name": "key", "in": "path", "required": True, "schema": {
                 "type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,99}$"}}])
    op["responses"]["200"] = _resp("the WAV file", {"type": "string", "format": "binary"}, "audio/wav")
    return op


def openapi_document() -> dict:
    line = {"type": "object", "description": "a line as in hotlines.yaml (number, name, mode, department, "
            "greeting, announcement, announce, queue, handled_by, hours, after_hours, overflow_seconds)"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "12345 intake gateway", "version": __version__,
                 "description": "Health, tickets, the agent desk and supervisor API, and the hotline "
                                "administration API. Every /api/ route but login needs a session or Bearer token."},
        "components": {
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "gw_session",
                            "description": "from POST /api/login; unsafe methods also need X-CSRF-Token"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
            "schemas": {
                "Error": {"type": "object", "required": ["error", "message"], "properties": {
                    "error": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "object"}}},
                "Version": {"type": "object", "properties": {
                    "id": {"type": "integer"}, "status": {"enum": ["applied", "scheduled", "cancelled", "failed"]},
                    "content_hash": {"type": "string"}, "parent_id": {"type": ["integer", "null"]},
                    "comment": {"type": "string"}, "created_by": {"type": "string"},
                    "created_at": {"type": "string", "format": "date-time"},
                    "effective_at": {"type": ["string", "null"], "format": "date-time"},
                    "applied_at": {"type": ["string", "null"], "format": "date-time"},
                    "diff": {"type": "string"}, "change": {"type": ["object", "null"]},
                    "error": {"type": ["string", "null"]}}},
                "Change": {"type": "object", "required": ["op"], "properties": {"op": {"enum": list(OPS)}}},
                **DESK_SCHEMAS,
            },
        },
        "paths": {
            "/healthz": {"get": {"summary": "database and AMI state", "responses": {
                "200": _resp("healthy"), "503": _resp("degraded")}}},
            **desk_paths(),
            "/api/admin/overview": {"get": _op("lines, modes, today's calls per line, broadcasts", ok="200",
                                               ok_schema={"type": "object"})},
            "/api/admin/versions": {"get": _op("the version history, newest first", ok="200",
                                               ok_schema={"type": "object"})},
            "/api/admin/versions/{version_id}": {"get": _op("one version with its files and diff", ok="200",
                                                            params=_VERSION_ID)},
            "/api/admin/versions/{version_id}/export": {"get": _op(
                "a version's hotlines.yaml", ok="200", ok_schema={"type": "string"}, params=_VERSION_ID)},
            "/api/admin/versions/{version_id}/audit": {"get": _op(
                "the audit trail of a version (who, when, what, why)", ok="200", ok_schema={"type": "object"},
                params=_VERSION_ID)},
            "/api/admin/versions/{version_id}/rollback": {"post": _op(
                "apply an earlier version again (a new version)", body=_change_body({}, []), params=_VERSION_ID)},
            "/api/admin/versions/{version_id}/cancel": {"post": _op(
                "cancel a scheduled change", ok="200", body=_change_body({}, []), params=_VERSION_ID)},
            "/api/admin/export": {"get": _op("the live hotlines.yaml", ok="200", ok_schema={"type": "string"})},
            "/api/admin/import": {"post": _op("a whole hotlines.yaml as a new version", body=_change_body(
                {"hotlines_yaml": {"type": "string"}}, ["hotlines_yaml"]))},
            "/api/admin/changes": {"post": _op("any change operation", body=_change_body(
                {"change": {"$ref": "#/components/schemas/Change"}}, ["change"]))},
            "/api/admin/lines": {"post": _op("create a line", body=_change_body({"line": line}, ["line"]))},
            "/api/admin/lines/{number}": {"patch": _op(
                "change a line's fields (mode, greeting, queue, hours, overflow...; null removes a field)",
                body=_change_body({"fields": {"type": "object"}}, ["fields"]), params=_NUMBER)},
            "/api/admin/lines/{number}/retire": {"post": _op(
                "retire a line (整体并入): its calls go to 12345 with the department preset",
                body=_change_body({"announcement": {"type": "string"}}, []), params=_NUMBER)},
            "/api/admin/dry-run": {"post": _op(
                "what would a call do (live, a version, or a proposed change)", ok="200",
                ok_schema={"type": "object"}, body={"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["number"], "additionalProperties": False, "properties": {
                        "number": {"type": "string", "pattern": "^[0-9]{3,20}$"},
                        "at": {"type": "string", "format": "date-time", "maxLength": 64},
                        "digits": {"type": "string", "pattern": "^[0-9*#]{0,20}$"},
                        "version": {"type": "integer", "minimum": 1, "maximum": 2147483647},
                        "change": {"$ref": "#/components/schemas/Change"}}}}}})},
            "/api/admin/prompts": {"get": _op(
                "every prompt callers can hear: key, text, the text as spoken, engine and voice "
                "(Kokoro for Mandarin, espeak-ng for Korean or as the reported fallback)", ok="200",
                ok_schema={"type": "object"})},
            "/api/admin/prompts/{key}.wav": {"get": _prompt_audio_op()},
            "/api/admin/prompts/preview": {"post": _op(
                "render a text as callers will hear it, before it is applied (cached like the prompts): "
                "the URL of its WAV", ok="200", ok_schema={"type": "object"},
                body={"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["text"], "properties": {
                        "text": {"type": "string", "minLength": 1, "maxLength": 500}}}}}})},
            "/api/admin/prompts/preview/{digest}.wav": {"get": _preview_audio_op()},
            "/api/login": {"post": {"summary": "log in; sets the session cookie, returns the CSRF token",
                                    "responses": {"200": _resp("logged in"), "401": _resp("refused", _ERROR),
                                                  "429": _resp("too many attempts", _ERROR)}}},
            "/api/logout": {"post": {"summary": "log out", "responses": {"200": _resp("logged out")}}},
            "/api/me": {"get": {"summary": "who is logged in", "responses": {"200": _resp("the user"),
                                                                              "401": _resp("nobody", _ERROR)}}},
        },
    }
