"""The reports' content and files (issue 14): periods, the data assembled over generated tickets
(real database, both kinds), HTML/CSV/XLSX contents, the PDF's pages rendered as images with
their Chinese text layer, and that no caller's number nor a confidential caller's texts appear."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import date, datetime, time, timezone

import pytest

from gateway.desk.catalogue_load import load_catalogue
from gateway.errors import ConfigError
from gateway.supervision import report_render
from gateway.supervision.rates_http import RatesService
from gateway.supervision.report_config import DEFAULTS, load_reports_config, parse_reports_config
from gateway.supervision.report_rates import percent, rates_section
from gateway.supervision.reports import (Section, assemble, due_periods, period_containing, report_sections)
from gateway_dev.rates_data import expected, generate, insert_async
from tests.unit.report_world import CALLER_NUMBER, SECRET_NUMBER, SECRET_PLACE, make_world
from tests.unit.test_config_validation import CONFIG

CATALOGUE = load_catalogue(CONFIG / "catalogue.yaml")
WEEK = period_containing("weekly", date(2027, 3, 3))  # Monday 1 to Sunday 7 March 2027
START = datetime(2027, 3, 1, 1, 0, tzinfo=timezone.utc)  # 09:00 in Beijing
AFTER = datetime(2027, 3, 9, 2, 0, tzinfo=timezone.utc)


# -- periods (pure) ----------------------------------------------------------------------------

def test_given_a_day_when_periods_are_taken_then_day_monday_week_and_calendar_month():
    assert period_containing("weekly", date(2027, 3, 3)).start == date(2027, 3, 1)
    assert period_containing("weekly", date(2027, 3, 3)).end == date(2027, 3, 7)
    month = period_containing("monthly", date(2028, 2, 10))
    assert (month.start, month.end) == (date(2028, 2, 1), date(2028, 2, 29))
    day = period_containing("daily", date(2027, 3, 3))
    assert day.start_utc == datetime(2027, 3, 2, 16, 0, tzinfo=timezone.utc)  # 00:00 Beijing
    assert day.end_utc == datetime(2027, 3, 3, 16, 0, tzinfo=timezone.utc)
    assert day.title == "2027年3月3日日报告" and month.title == "2028年2月月通报"
    assert WEEK.title == "2027年第9周（3月1日—3月7日）周分析"


def test_given_the_schedule_time_when_due_periods_asked_then_before_it_the_day_before_yesterday():
    at = time(1, 0)
    before = datetime(2027, 3, 3, 16, 30, tzinfo=timezone.utc)  # 00:30 on the 4th in Beijing
    after = datetime(2027, 3, 3, 17, 30, tzinfo=timezone.utc)  # 01:30 on the 4th
    assert [p.start for p in due_periods("daily", before, "Asia/Shanghai", at, catch_up=2)] == [
        date(2027, 3, 2), date(2027, 3, 1)]
    assert [p.start for p in due_periods("daily", after, "Asia/Shanghai", at, catch_up=2)] == [
        date(2027, 3, 3), date(2027, 3, 2)]
    monday = datetime(2027, 3, 8, 2, 0, tzinfo=timezone.utc)  # Monday 10:00
    assert [p.start for p in due_periods("weekly", monday, "Asia/Shanghai", time(2, 0), catch_up=1)] == [
        date(2027, 3, 1)]
    first = datetime(2027, 4, 1, 0, 0, tzinfo=timezone.utc)  # 1 April 08:00
    assert [p.start for p in due_periods("monthly", first, "Asia/Shanghai", time(3, 0), catch_up=3)] == [
        date(2027, 3, 1), date(2027, 2, 1), date(2027, 1, 1)]
    assert due_periods("monthly", first, "Asia/Shanghai", time(9, 0), catch_up=1)[0].start == date(2027, 2, 1)


# -- the config --------------------------------------------------------------------------------

def test_given_the_shipped_reports_yaml_then_it_is_the_documented_defaults():
    assert load_reports_config(CONFIG / "reports.yaml") == DEFAULTS


def test_given_a_misspelt_key_and_bad_values_when_loaded_then_every_problem_with_line_and_field():
    text = 'schedul: {}\nschedule: {daily: "25:00", weekly: 0100}\narchive_dir: ../etc\ntop: 0\nenabled: "yes"\n'
    with pytest.raises(ConfigError) as err:
        parse_reports_config(text)
    found = {(p.line, p.field) for p in err.value.problems}
    assert found == {(1, "schedul"), (2, "schedule.daily"), (2, "schedule.weekly"), (3, "archive_dir"),
                     (4, "top"), (5, "enabled")}
    assert all(p.message_zh and "暂无中文" not in p.message_zh for p in err.value.problems)


# -- the data ----------------------------------------------------------------------------------

async def _week(store):
    world = await make_world(store, START, days=7, per_day=12)
    report = await assemble(store, WEEK, now=AFTER, catalogue=CATALOGUE)
    return world, report


def _table(report, key):
    return next(t for s in report.sections for t in s.tables if t.key == key)


async def test_given_a_generated_week_when_assembled_then_volumes_match_the_tickets_made(store):
    world, report = await _week(store)
    assert [s.key for s in report.sections] == ["overview", "volumes", "rates", "hot_spots", "overdue", "satisfaction"]
    assert report.headline["tickets"] == world.tickets == 84  # the drafts are not counted
    assert report.headline["calls"] == 91 and report.headline["answered"] == world.answered
    by_type = {row[1]: row[2] for row in _table(report, "by_type").rows}
    assert by_type == world.by_category
    assert {row[1]: row[2] for row in _table(report, "by_district").rows} == world.by_district
    assert {row[1]: row[2] for row in _table(report, "by_matter").rows} == world.by_matter
    lines = {row[0]: (row[1], row[2]) for row in _table(report, "by_line").rows}
    assert lines == {"市民服务热线": (45, 42), "市场监管热线": (46, 42)}


async def test_given_a_generated_week_when_assembled_then_overdue_followups_and_hot_spots(store):
    world, report = await _week(store)
    assert report.headline["overdue"] == world.overdue == 21
    assert sum(row[2] for row in _table(report, "overdue_units").rows) == world.overdue
    assert report.headline["followups"] == world.followups and report.headline["satisfied"] == world.satisfied
    comments = _table(report, "comments").rows
    assert len(comments) == min(world.comments, DEFAULTS.comments_max)  # at most comments_max quoted ...
    section = next(s for s in report.sections if s.key == "satisfaction")
    assert f"另有 {world.followups - world.comments} 条意见来自要求保密的来电人，不予引用。" in section.lines  # ... never theirs
    assert all(c[3] == "处理及时，感谢，我的电话是137****1111" for c in comments)
    spots = _table(report, "hot_spots").rows
    assert spots[0][1:] == ["夜间施工扰民", "朝阳区三里屯街道", 28]
    assert all(row[3] >= DEFAULTS.hot_spot_min for row in spots)
    rates = next(s for s in report.sections if s.key == "rates")
    assert "尚未接入" in rates.lines[0]  # the hook's placeholder when no rates builder is given


async def test_given_no_ticket_in_the_period_when_assembled_then_zeros_and_no_charts(store):
    report = await assemble(store, WEEK, now=AFTER, catalogue=None)
    assert report.headline["tickets"] == 0 and report.headline["overdue"] == 0
    assert "没有受理工单" in next(s for s in report.sections if s.key == "volumes").lines[0]
    html = report_render.render_html(report).decode()
    assert "一、总体情况" in html


async def test_given_a_rates_builder_when_plugged_into_the_hook_then_its_section_replaces_the_placeholder(store):
    async def rates(inp):
        return Section("rates", "三、三率", ["响应率 99.0%"])

    report = await assemble(store, WEEK, now=AFTER, sections=report_sections(rates=rates))
    section = next(s for s in report.sections if s.key == "rates")
    assert section.lines == ["响应率 99.0%"]


async def test_given_the_rates_feature_when_its_section_is_plugged_in_then_the_report_shows_its_figures(store):
    batches = list(generate(300, WEEK.start_utc, WEEK.end_utc, now=AFTER))  # dispatched tickets, answered 回访
    await insert_async(store, batches)
    service = RatesService(store=store, clock=lambda: AFTER, catalogue=CATALOGUE)
    report = await assemble(store, WEEK, now=AFTER, catalogue=CATALOGUE,
                            sections=report_sections(rates=rates_section(service)))
    section = next(s for s in report.sections if s.key == "rates")
    total = expected(batches, "all", WEEK.start_utc, WEEK.end_utc, now=AFTER)["all"]  # counted in plain Python
    assert total["surveyed"] > 0 and total["due"] > 0
    assert section.lines[0] == (f"本期派单工单 {total['tickets']} 件：响应率 {percent(total['response_rate'])}"
                                f"（应响应 {total['due']} 件），解决率 {percent(total['resolution_rate'])}，满意率 "
                                f"{percent(total['satisfaction_rate'])}（回访 {total['surveyed']} 件）。")
    assert report.headline["satisfaction_rate"] == total["satisfaction_rate"]
    assert [t.key for t in section.tables] == ["rates_unit", "rates_district", "rates_type"]
    by_type = expected(batches, "type", WEEK.start_utc, WEEK.end_utc, now=AFTER)
    types = {row[1]: row for row in section.tables[2].rows}
    assert set(types) == set(by_type)
    for name, row in types.items():
        assert row[2:] == [percent(by_type[name]["response_rate"]), percent(by_type[name]["resolution_rate"]),
                           percent(by_type[name]["satisfaction_rate"]), by_type[name]["due"],
                           by_type[name]["surveyed"]], name
    assert "尚未接入" not in " ".join(section.lines)
    files = await asyncio.to_thread(report_render.render_all, report)  # the section renders in every format
    assert "三率排名" in files["html"].decode() and "三率排名" in files["csv"].decode("utf-8-sig")
    assert files["pdf"].startswith(b"%PDF") and files["xlsx"].startswith(b"PK")


# -- the files ---------------------------------------------------------------------------------

FORBIDDEN = (CALLER_NUMBER, SECRET_NUMBER, "13700001111", SECRET_PLACE, "幸福村中纺里")


async def test_given_confidential_callers_when_every_format_rendered_then_no_number_and_no_secret_text(store):
    _world, report = await _week(store)
    blobs = await asyncio.to_thread(report_render.render_all, report)
    texts = {"html": blobs["html"].decode(), "csv": blobs["csv"].decode("utf-8-sig"),
             "xlsx": await asyncio.to_thread(_xlsx_text, blobs["xlsx"]),
             "pdf": "\n".join(await asyncio.to_thread(_pdf_pages_text, blobs["pdf"]))}
    for fmt, text in texts.items():
        for secret in FORBIDDEN:
            assert secret not in text, (fmt, secret)
        assert "（保密）" in text, fmt  # a confidential overdue ticket is listed without its place


def _xlsx_text(data: bytes) -> str:
    from openpyxl import load_workbook

    wb = load_workbook(io.BytesIO(data))
    return "\n".join(str(v) for ws in wb for row in ws.iter_rows(values_only=True) for v in row if v is not None)


def _pdf_pages_text(data: bytes) -> list[str]:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(data)
    try:
        return [pdf[i].get_textpage().get_text_range() for i in range(len(pdf))]
    finally:
        pdf.close()


def _pdf_pages_ink(data: bytes) -> list[float]:
    """The share of non-white pixels of each page rendered at 72 dpi."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(data)
    out = []
    try:
        for i in range(len(pdf)):
            image = pdf[i].render(scale=1).to_pil().convert("L")
            hist = image.histogram()
            out.append(1 - sum(hist[250:]) / sum(hist))
    finally:
        pdf.close()
    return out


async def test_given_a_week_when_the_pdf_is_rendered_then_pages_show_ink_and_chinese_headings_and_numbers(store):
    world, report = await _week(store)
    data = await asyncio.to_thread(report_render.render_pdf, report)
    assert data.startswith(b"%PDF-")
    ink = await asyncio.to_thread(_pdf_pages_ink, data)
    assert len(ink) >= 2 and all(share > 0.01 for share in ink), ink  # no blank page
    text = "\n".join(await asyncio.to_thread(_pdf_pages_text, data)).replace("\r", "")
    for heading in ("12345 市民服务热线 2027年第9周（3月1日—3月7日）周分析", "一、总体情况", "二、诉求量分布",
                    "三、三率", "四、热点诉求", "五、超期督办", "六、回访与满意度", "夜间施工扰民", "朝阳区"):
        assert heading in text, heading
    assert f"受理工单 {world.tickets} 件" in text and f"本期到期未按时办结的派单 {world.overdue} 件" in text
    assert "\ufffd" not in text  # every glyph has its character: the CJK font is embedded


async def test_given_a_week_when_exported_then_xlsx_sheets_and_csv_blocks_hold_the_tables(store):
    world, report = await _week(store)
    xlsx = await asyncio.to_thread(report_render.render_xlsx, report)
    from openpyxl import load_workbook

    wb = await asyncio.to_thread(load_workbook, io.BytesIO(xlsx))
    assert wb.sheetnames[0] == "说明" and {"按诉求类型", "按区域", "超期工单", "热点（事项 × 地点）"} <= set(wb.sheetnames)
    ws = wb["按诉求类型"]
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0] == ("排名", "类型", "工单", "占比")
    assert {r[1]: r[2] for r in rows[1:]} == world.by_category  # numbers stay numbers
    assert wb["超期工单"].max_row == world.overdue + 1
    raw = report_render.render_csv(report)
    assert raw.startswith("\ufeff".encode())  # spreadsheet programs read it as UTF-8
    table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    at = table.index(["二、诉求量分布 / 按区域"])
    assert table[at + 1] == ["排名", "区域", "工单", "占比"]
    assert {r[1]: int(r[2]) for r in table[at + 2:at + 2 + len(world.by_district)]} == world.by_district


async def test_given_a_week_when_the_html_is_rendered_then_self_contained_with_inline_svg_charts(store):
    _world, report = await _week(store)
    html = report_render.render_html(report).decode()
    assert html.count("<svg") >= 4 and "<script" not in html and "src=" not in html and "<link" not in html
    assert "http" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing fetched from anywhere
    assert "<title>各类诉求工单量</title>" in html


def test_given_no_cjk_font_when_a_pdf_is_asked_then_a_clear_error_and_the_flag(monkeypatch, tmp_path):
    monkeypatch.setattr(report_render, "FONT_CANDIDATES", (str(tmp_path / "none.ttc"),))
    assert report_render.font_state().startswith("missing: install fonts-wqy-microhei")
    report = asyncio.run(_empty_report())
    with pytest.raises(report_render.FontMissing) as err:
        report_render.render_pdf(report)
    assert err.value.status_code == 503 and err.value.error_id == "report-font-missing"


async def _empty_report():
    from gateway.supervision.reports import Report

    return Report(period=WEEK, generated_at=AFTER, city="", sections=[], headline={})


def test_given_random_catalogue_words_when_looked_up_fast_then_the_same_as_the_catalogues_own_lookups():
    import random

    from gateway.supervision.places import Lookups

    words = ([w for u in CATALOGUE.units.values() for w in u.place_words]
             + [w for m in CATALOGUE.matters for w in m.keywords + m.with_any])
    rnd = random.Random(14)
    fast = Lookups(CATALOGUE)
    for i in range(1500):
        place = "地点 " + " ".join(rnd.sample(words, rnd.randint(0, 2)))
        said = "，".join(rnd.sample(words, rnd.randint(0, 4))) + f" ２０号 {i}"  # full-width digits: NFKC
        for text in (place, said, f"{place} {said}"):
            assert fast.find_place(text) == CATALOGUE.find_place(text), text
            assert fast.find_matters(text) == CATALOGUE.find_matters(text), text
