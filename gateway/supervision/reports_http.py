"""The reports' API (日报告、周分析、月通报) for the supervisor page's 报告 panel.

Routes (roles in brackets)::

    GET  /api/supervisor/reports?kind=daily|weekly|monthly     archived reports, newest first  [supervisor|admin]
    POST /api/supervisor/reports  {"kind": ..., "date": "YYYY-MM-DD"?}
                                  make (or make again) the report of the period containing date
                                  (default: the last complete period)                         [supervisor|admin]
    GET  /api/supervisor/reports/{id}/{format}                 one file: html, pdf, csv, xlsx   [supervisor|admin]
                                  (?inline=1 shows HTML or PDF in the browser)

A download names a row and a format, never a file name: nothing a client sends becomes a path.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Literal
from urllib.parse import quote

from aiohttp import web

from gateway.auth.http import USER, require_role
from gateway.errors import BadRequest, NotFound
from gateway.supervision.report_render import CONTENT_TYPES, FORMATS
from gateway.supervision.report_service import ReportService
from gateway.supervision.report_tables import REPORT_KINDS
from gateway.web.schema import Body, parse, pattern_text

REPORTS = web.AppKey("reports", ReportService)
SUPERVISORS = ("supervisor", "admin")
# The report HTML has no script; this keeps it so even if a text slipped through unescaped.
HTML_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"

IsoDate = pattern_text(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", "a date like 2027-03-01", "日期，如 2027-03-01", max_length=10)


class GenerateBody(Body):
    """Make a report now: its kind, and a day inside the period (default: the last complete one)."""

    kind: Literal["daily", "weekly", "monthly"]
    date: IsoDate | None = None


@require_role(*SUPERVISORS)
async def list_reports(request: web.Request) -> web.Response:
    kind = request.query.get("kind") or None
    if kind is not None and kind not in REPORT_KINDS:
        raise BadRequest(f"kind must be one of {', '.join(REPORT_KINDS)}", details={"parameter": "kind"})
    service = request.app[REPORTS]
    cfg = service.config
    return web.json_response({
        "items": await service.listing(kind=kind), "font": service.font, "timezone": service.timezone(),
        "enabled": cfg.enabled, "schedule": {k: v.strftime("%H:%M") for k, v in cfg.schedule.items()},
        "last_error": service.last_error})


@require_role(*SUPERVISORS)
async def generate(request: web.Request) -> web.Response:
    body = await parse(request, GenerateBody, limit=4_000)
    day = None
    if body.date:
        try:
            day = date.fromisoformat(body.date)
        except ValueError:
            raise BadRequest(f"not a date: {body.date}", details={"field": "date"}) from None
    service = request.app[REPORTS]
    period = service.period_for(body.kind, day)
    row = await service.generate(period, actor=request[USER]["username"])
    return web.json_response(row, status=201)


@require_role(*SUPERVISORS)
async def download(request: web.Request) -> web.StreamResponse:
    raw_id, fmt = request.match_info["report_id"], request.match_info["fmt"]
    if not re.fullmatch(r"[0-9]{1,12}", raw_id):
        raise BadRequest("report id must be a number (0-9)")
    if fmt not in FORMATS:
        raise NotFound(f"no such report format (one of {', '.join(FORMATS)})")
    path, name, _row = await request.app[REPORTS].file(int(raw_id), fmt)
    inline = request.query.get("inline") == "1" and fmt in ("html", "pdf")
    headers = {"Content-Type": CONTENT_TYPES[fmt], "X-Content-Type-Options": "nosniff",
               "Content-Disposition": f"{'inline' if inline else 'attachment'}; filename=\"{name}\"; "
                                      f"filename*=UTF-8''{quote(name)}",
               "Cache-Control": "private, max-age=0"}
    if fmt == "html":
        headers["Content-Security-Policy"] = HTML_CSP
    return web.FileResponse(path, headers=headers)


def add_report_routes(app: web.Application) -> None:
    app.router.add_get("/api/supervisor/reports", list_reports)
    app.router.add_post("/api/supervisor/reports", generate)
    app.router.add_get("/api/supervisor/reports/{report_id}/{fmt}", download)
