"""The reports' section 三率及排名: the rates feature's own figures (:mod:`gateway.supervision.rates`)
for the report's period, plugged into :func:`gateway.supervision.reports.report_sections`.

Overall rates with the bases they rest on, then a ranking per handling unit, district and request
type (the first ``top`` rows each; the rest is one click away on the supervisor page). The same
configuration (``config/supervision.yaml`` → ``rates:``) and the same place resolution as the
page, so a report and the page agree on a closed period. Aggregates only: no caller, no ticket.
"""

from __future__ import annotations

from gateway.supervision.rates import LEVEL_ZH, RateRow, compute_rates, total_rates
from gateway.supervision.reports import Chart, ReportInput, Section, SectionBuilder, Table

LEVELS = ("unit", "district", "type")  # the rankings a report carries
COLUMNS = ["排名", "名称", "响应率", "解决率", "满意率", "应响应派单", "回访"]


def percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f}%"


def _row(r: RateRow) -> list:
    return [r.rank if r.rank is not None else "—", r.label or "未识别", percent(r.response_rate),
            percent(r.resolution_rate), percent(r.satisfaction_rate), r.due, r.surveyed]


def rates_section(service) -> SectionBuilder:
    """A section builder over a :class:`gateway.supervision.rates_http.RatesService` (its store is the
    report's; its configuration, catalogue names and place resolution are the page's)."""

    async def build(inp: ReportInput) -> Section:
        start, end = inp.period.start_utc, inp.period.end_utc
        config = service.config
        await service.place("district", start, end)
        total = await total_rates(inp.store, start, end, config, now=inp.now)
        inp.headline.update(response_rate=total.response_rate, resolution_rate=total.resolution_rate,
                            satisfaction_rate=total.satisfaction_rate)
        lines = [f"本期派单工单 {total.tickets} 件：响应率 {percent(total.response_rate)}（应响应 {total.due} 件），"
                 f"解决率 {percent(total.resolution_rate)}，满意率 {percent(total.satisfaction_rate)}"
                 f"（回访 {total.surveyed} 件）。",
                 "计算口径：" + "；".join(v for k, v in config.describe().items() if k != "rank_by") + "。"]
        tables, charts = [], []
        top = inp.config.top
        for level in LEVELS:
            rows = await compute_rates(inp.store, level, start, end, config, now=inp.now, labels=service.labels(level))
            tables.append(Table(f"rates_{level}", f"{LEVEL_ZH[level]}三率排名（前 {top} 名）", COLUMNS,
                                [_row(r) for r in rows[:top]], (0, 2, 3, 4, 5, 6)))
            if level == "unit":
                ranked = [r for r in rows if r.satisfaction_rate is not None][:top]
                if ranked:
                    charts.append(Chart("承办单位满意率", [r.label for r in ranked],
                                        [round(r.satisfaction_rate * 100, 1) for r in ranked], unit="%"))
        return Section("rates", "三、三率（响应率、解决率、满意率）及排名", lines, tables, charts)

    return build
