"""The three rates on the supervisor's API.

Routes (roles in brackets)::

    GET /api/supervisor/rates?level=unit&period=month&date=2026-11-01     [supervisor|admin]
        (or &period=custom&start=2026-11-01&end=2026-11-15; &rank_by=response|resolution|satisfaction)
        -> {"rows": [RateRow...], "total": RateRow, "level", "period", "start", "end", "timezone",
            "formulas", "rank_by"}
    GET /api/supervisor/rates/tickets?level=..&key=..&rate=response|resolution|satisfaction
        &outcome=..&period=..&date=..&page=1&per_page=50                  [supervisor|admin]
        -> the tickets behind one figure (no caller's number; confidential places masked)

Bad parameters are a 400 ``bad-rates-query`` naming the parameter (``details.parameter``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

from aiohttp import web

from gateway.auth.http import require_role
from gateway.supervision.rates import (
    LEVEL_ZH,
    LEVELS,
    OUTCOMES,
    PERIODS,
    BadRatesQuery,
    compute_rates,
    period_bounds,
    total_rates,
)
from gateway.supervision.rates_config import DEFAULTS, RATES, RatesConfig
from gateway.supervision.places import resolve_places
from gateway.supervision.rates_tickets import MAX_PER_PAGE, rate_tickets
from gateway.web.params import int_param

SUPERVISORS = ("supervisor", "admin")
KNOWN_PARAMS = {"level", "period", "date", "start", "end", "rank_by", "key", "rate", "outcome", "page", "per_page"}


class RatesService:
    """What the rates' API needs: the store, the configuration, the centre's time zone, names
    of catalogue ids (districts, streets, units) and the catalogue (to place tickets)."""

    def __init__(self, *, store, clock: Callable[[], datetime], config: RatesConfig = DEFAULTS,
                 timezone: Callable[[], str] = lambda: "Asia/Shanghai", catalogue=None) -> None:
        self.store = store
        self.clock = clock
        self.config = config
        self._timezone = timezone
        self.catalogue = catalogue  # gateway.desk.catalogue.Catalogue, or None (places stay unknown)

    @property
    def timezone(self) -> str:
        return self.config.timezone or self._timezone() or "Asia/Shanghai"

    def labels(self, level: str) -> dict[str, str]:
        """Catalogue id -> what to show: the place as said (朝阳区) for districts and streets, the
        unit's name (朝阳区政府) for handling units."""
        if self.catalogue is None:
            return {}
        place = level in ("district", "street")
        return {uid: (u.place_name or u.name) if place else u.name for uid, u in self.catalogue.units.items()}

    def bounds(self, query) -> tuple[str, datetime, datetime]:
        period = query.get("period") or ("custom" if query.get("start") or query.get("end") else "month")
        start, end = period_bounds(period, self.timezone, day=query.get("date"), start=query.get("start"),
                                   end=query.get("end"), today=self.clock().astimezone(_zone(self.timezone)).date())
        return period, start, end

    async def place(self, level: str, start: datetime, end: datetime) -> None:
        if level in ("district", "street") and self.catalogue is not None:
            await resolve_places(self.store, self.catalogue, self.clock(), since=start, until=end)


def _zone(name: str):
    from zoneinfo import ZoneInfo  # noqa: PLC0415

    return ZoneInfo(name)


RATES_SERVICE = web.AppKey("rates", RatesService)


def _check_params(query) -> None:
    unknown = sorted(set(query) - KNOWN_PARAMS)
    if unknown:
        raise BadRatesQuery(f"unknown query parameter {unknown[0]!r} / 未知的查询参数 {unknown[0]}",
                            details={"parameter": unknown[0]})


def _level(query) -> str:
    level = query.get("level", "unit")
    if level not in LEVELS:
        raise BadRatesQuery(f"level must be one of {', '.join(LEVELS)} / 统计层级有误", details={"parameter": "level"})
    return level


@require_role(*SUPERVISORS)
async def rates(request: web.Request) -> web.Response:
    svc = request.app[RATES_SERVICE]
    q = request.query
    _check_params(q)
    level = _level(q)
    rank_by = q.get("rank_by", svc.config.rank_by)
    if rank_by not in RATES:
        raise BadRatesQuery(f"rank_by must be one of {', '.join(RATES)} / 排名依据有误", details={"parameter": "rank_by"})
    period, start, end = svc.bounds(q)
    config = svc.config if rank_by == svc.config.rank_by else _with_rank(svc.config, rank_by)
    await svc.place(level, start, end)
    now = svc.clock()
    rows = await compute_rates(svc.store, level, start, end, config, now=now, labels=svc.labels(level))
    total = await total_rates(svc.store, start, end, config, now=now, level=level)
    return web.json_response({"level": level, "level_zh": LEVEL_ZH[level], "period": period,
                              "start": start.isoformat(), "end": end.isoformat(), "timezone": svc.timezone,
                              "rank_by": rank_by, "formulas": config.describe(), "now": now.isoformat(),
                              "rows": [r.as_dict() for r in rows], "total": total.as_dict()})


@require_role(*SUPERVISORS)
async def tickets(request: web.Request) -> web.Response:
    svc = request.app[RATES_SERVICE]
    q = request.query
    _check_params(q)
    level = _level(q)
    if "key" not in q:
        raise BadRatesQuery("key is required (the row's key; empty for 未识别) / 缺少 key 参数",
                            details={"parameter": "key"})
    rate = q.get("rate", "")
    if rate not in OUTCOMES:
        raise BadRatesQuery(f"rate must be one of {', '.join(OUTCOMES)} / 指标有误", details={"parameter": "rate"})
    _period, start, end = svc.bounds(q)
    page = int_param(request, "page", 1, 1, 100_000)
    per_page = int_param(request, "per_page", 50, 1, MAX_PER_PAGE)
    await svc.place(level, start, end)
    out = await rate_tickets(svc.store, level, q["key"][:64], rate, q.get("outcome") or None, start, end,
                             svc.config, now=svc.clock(), page=page, per_page=per_page)
    out.update(start=start.isoformat(), end=end.isoformat())
    return web.json_response(out)


def _with_rank(config: RatesConfig, rank_by: str) -> RatesConfig:
    from dataclasses import replace  # noqa: PLC0415

    return replace(config, rank_by=rank_by)


def add_rates_routes(app: web.Application) -> None:
    app.router.add_get("/api/supervisor/rates", rates)
    app.router.add_get("/api/supervisor/rates/tickets", tickets)


# -- OpenAPI ---------------------------------------------------------------------------------------
_SECURITY = [{"session": []}, {"bearer": []}]


def _param(name: str, description: str, schema: dict, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


_PERIOD_PARAMS = [
    _param("level", "统计层级", {"enum": list(LEVELS), "default": "unit"}),
    _param("period", "day | week (Monday first) | month | custom (start, end)", {"enum": list(PERIODS)}),
    _param("date", "a day in the period (local), YYYY-MM-DD; default today", {"type": "string", "format": "date"}),
    _param("start", "custom: first day", {"type": "string", "format": "date"}),
    _param("end", "custom: last day (included)", {"type": "string", "format": "date"}),
]


def rates_paths() -> dict:
    err = {"$ref": "#/components/schemas/Error"}
    responses = {"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}},
                 "400": {"description": "bad parameter (details.parameter)",
                         "content": {"application/json": {"schema": err}}},
                 "401": {"description": "not logged in"}, "403": {"description": "not a supervisor"}}
    return {
        "/api/supervisor/rates": {"get": {
            "summary": "三率排名: response, resolution and satisfaction rates per level and period, with their bases",
            "security": _SECURITY, "responses": responses,
            "parameters": [*_PERIOD_PARAMS, _param("rank_by", "rate the ranking is ordered by", {"enum": list(RATES)})]}},
        "/api/supervisor/rates/tickets": {"get": {
            "summary": "the tickets behind one figure of the rates (paginated; no caller numbers)",
            "security": _SECURITY, "responses": responses,
            "parameters": [*_PERIOD_PARAMS, _param("key", "the row's key ('' = 未识别)", {"type": "string"}, True),
                           _param("rate", "response | resolution | satisfaction", {"enum": list(OUTCOMES)}, True),
                           _param("outcome", "response: due in_time late not_due; resolution: surveyed solved "
                                  "unsolved; satisfaction: surveyed satisfied basic unsatisfied", {"type": "string"}),
                           _param("page", "1..", {"type": "integer"}),
                           _param("per_page", f"1..{MAX_PER_PAGE}", {"type": "integer"})]}},
    }
