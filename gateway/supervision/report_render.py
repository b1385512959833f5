"""A :class:`gateway.supervision.reports.Report` as files: HTML, PDF, CSV and XLSX (pure, blocking).

* HTML: one self-contained page (inline CSS, charts as inline SVG drawn here): an archived
  report reads the same in ten years, with no script and no network.
* PDF: reportlab with the CJK TrueType font embedded (WenQuanYi Micro Hei, Debian's
  ``fonts-wqy-microhei``); charts are vector drawings. Without the font a PDF would show boxes,
  so :func:`find_font` is a checked requirement: :class:`FontMissing` (503) and ``/healthz``
  → ``reports.font`` say so, and no PDF is made.
* CSV: every table one after the other (a title row, the header, the rows, a blank row), UTF-8
  with a byte-order mark so spreadsheet programs read the Chinese.
* XLSX (openpyxl): one sheet per table, numbers as numbers.

Everything here is blocking (file and font work): callers run it in a worker thread.
"""

from __future__ import annotations

import csv
import html
import io
import threading
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gateway.errors import GatewayError
from gateway.supervision.reports import Chart, Report, Table

FORMATS = ("html", "pdf", "csv", "xlsx")
CONTENT_TYPES = {
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",  # Debian/Ubuntu: fonts-wqy-microhei
    "/usr/share/fonts/wqy-microhei/wqy-microhei.ttc",  # Fedora, Arch
)
FONT_PACKAGE = "fonts-wqy-microhei"
FONT_NAME = "ReportCJK"
BAR = "#2f6db5"


class FontMissing(GatewayError):
    status_code = 503
    error_id = "report-font-missing"


def find_font() -> Path | None:
    """The CJK font the PDF embeds: the first of :data:`FONT_CANDIDATES` found."""
    for candidate in FONT_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    return None


def font_state() -> str:
    font = find_font()
    return "ok" if font else f"missing: install {FONT_PACKAGE} ({FONT_CANDIDATES[0]}); PDF reports cannot be made"


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _local(report: Report, when: datetime) -> str:
    return when.astimezone(ZoneInfo(report.period.tz)).strftime("%Y-%m-%d %H:%M")


# -- charts: one geometry for SVG and PDF ---------------------------------------------------------

def bar_geometry(chart: Chart, width: float = 640, row: float = 22) -> dict:
    """Horizontal bars: label column, bar from ``x0`` to ``x0 + length``, the value after it."""
    label_w = min(220.0, max(60.0, 13.0 * max((len(lbl) for lbl in chart.labels), default=4)))
    x0, value_w = label_w + 8, 56.0
    span = max(10.0, width - x0 - value_w)
    top = max((float(v) for v in chart.values), default=0.0) or 1.0
    bars = [{"label": lbl, "value": v, "y": 24 + i * row, "length": span * float(v) / top}
            for i, (lbl, v) in enumerate(zip(chart.labels, chart.values))]
    return {"width": width, "height": 24 + row * len(bars) + 6, "x0": x0, "row": row, "bars": bars}


def _num(v: float) -> str:
    return f"{v:g}"


def chart_svg(chart: Chart) -> str:
    g = bar_geometry(chart)
    esc = html.escape
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {g["width"]:.0f} {g["height"]:.0f}" '
             f'width="100%" style="max-width:{g["width"]:.0f}px" aria-label="{esc(chart.title)}">',
             f'<title>{esc(chart.title)}</title>',
             f'<text x="0" y="14" font-size="13" font-weight="bold">{esc(chart.title)}</text>']
    for b in g["bars"]:
        y = b["y"]
        parts.append(f'<text x="{g["x0"] - 6:.0f}" y="{y + 14:.0f}" font-size="12" text-anchor="end">{esc(b["label"])}</text>'
                     f'<rect x="{g["x0"]:.0f}" y="{y + 3:.0f}" width="{max(b["length"], 1):.1f}" height="{g["row"] - 8:.0f}" '
                     f'fill="{BAR}"/><text x="{g["x0"] + b["length"] + 5:.1f}" y="{y + 14:.0f}" font-size="12">'
                     f'{esc(_num(b["value"]))} {esc(chart.unit)}</text>')
    parts.append("</svg>")
    return "".join(parts)


# -- HTML ---------------------------------------------------------------------------------------

CSS = """
body{font-family:"WenQuanYi Micro Hei","Noto Sans CJK SC","Microsoft YaHei",sans-serif;margin:2rem auto;max-width:60rem;
padding:0 1rem;color:#1b1b1b;line-height:1.6}
h1{font-size:1.6rem;border-bottom:3px solid #b22222;padding-bottom:.4rem}h2{font-size:1.25rem;margin-top:2rem}
h3{font-size:1rem}table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem}
th,td{border:1px solid #bbb;padding:.25rem .5rem;text-align:left;vertical-align:top}th{background:#eef2f7}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}.meta{color:#555}figure{margin:1rem 0}
@media print{body{margin:0}h2{break-after:avoid}}
"""


def _table_html(t: Table) -> str:
    esc = html.escape
    head = "".join(f'<th scope="col"{" class=num" if i in t.numeric else ""}>{esc(c)}</th>'
                   for i, c in enumerate(t.columns))
    body = "".join("<tr>" + "".join(f'<td{" class=num" if i in t.numeric else ""}>{esc(_cell(v))}</td>'
                                     for i, v in enumerate(r)) + "</tr>" for r in t.rows)
    if not t.rows:
        body = f'<tr><td colspan="{len(t.columns)}">（无）</td></tr>'
    return f'<h3>{esc(t.title)}</h3><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def render_html(report: Report) -> bytes:
    esc = html.escape
    out = ['<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{esc(report.title)}</title><style>{CSS}</style></head><body>",
           f"<h1>{esc(report.title)}</h1>",
           f'<p class="meta">统计期间：{report.period.start.isoformat()} 至 {report.period.end.isoformat()}'
           f'（{esc(report.period.tz)}）· 生成时间：{_local(report, report.generated_at)}'
           f'{" · " + esc(report.city) if report.city else ""}</p>']
    for s in report.sections:
        out.append(f'<section id="{esc(s.key)}"><h2>{esc(s.title)}</h2>')
        out += [f"<p>{esc(line)}</p>" for line in s.lines]
        out += [f"<figure>{chart_svg(c)}</figure>" for c in s.charts if c.values]
        out += [_table_html(t) for t in s.tables]
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out).encode("utf-8")


# -- CSV and XLSX -------------------------------------------------------------------------------

def render_csv(report: Report) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([report.title])
    w.writerow(["统计期间", report.period.start.isoformat(), report.period.end.isoformat(), report.period.tz])
    w.writerow([])
    for s in report.sections:
        for t in s.tables:
            w.writerow([f"{s.title} / {t.title}"])
            w.writerow(t.columns)
            for r in t.rows:
                w.writerow([_cell(v) for v in r])
            w.writerow([])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def _sheet_name(title: str, used: set) -> str:
    base = "".join(ch for ch in title if ch not in '[]:*?/\\')[:28] or "表"
    name, i = base, 2
    while name in used:
        name, i = f"{base[:26]}{i}", i + 1
    used.add(name)
    return name


def render_xlsx(report: Report) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    first = wb.active
    first.title = "说明"
    first.append([report.title])
    first["A1"].font = Font(bold=True, size=14)
    first.append(["统计期间", report.period.start.isoformat(), report.period.end.isoformat(), report.period.tz])
    first.append(["生成时间", _local(report, report.generated_at)])
    for s in report.sections:
        first.append([])
        first.append([s.title])
        for line in s.lines:
            first.append([line])
    first.column_dimensions["A"].width = 100
    used = {"说明"}
    for s in report.sections:
        for t in s.tables:
            ws = wb.create_sheet(_sheet_name(t.title, used))
            ws.append(t.columns)
            for cell in ws[1]:
                cell.font = Font(bold=True)
            for r in t.rows:
                ws.append([v if isinstance(v, (int, float)) else _cell(v) for v in r])
            for i, c in enumerate(t.columns):
                ws.column_dimensions[chr(ord("A") + i)].width = max(10, min(60, 2.2 * max(
                    [len(c)] + [len(_cell(r[i])) for r in t.rows if i < len(r)])))
            ws.freeze_panes = "A2"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


# -- PDF ----------------------------------------------------------------------------------------

def _register_font(path: Path) -> str:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if FONT_NAME not in pdfmetrics.getRegisteredFontNames():
        kwargs = {"subfontIndex": 0} if str(path).lower().endswith(".ttc") else {}
        pdfmetrics.registerFont(TTFont(FONT_NAME, str(path), **kwargs))
    return FONT_NAME


def _chart_drawing(chart: Chart, font: str, width: float):
    from reportlab.graphics.shapes import Drawing, Rect, String
    from reportlab.lib import colors

    g = bar_geometry(chart, width=width, row=16)
    h = g["height"]
    d = Drawing(width, h)
    d.add(String(0, h - 12, chart.title, fontName=font, fontSize=10))
    for b in g["bars"]:
        y = h - b["y"] - 12  # PDF's y grows upwards
        d.add(String(g["x0"] - 5, y, b["label"], fontName=font, fontSize=8, textAnchor="end"))
        d.add(Rect(g["x0"], y - 2, max(b["length"], 0.5), g["row"] - 6, fillColor=colors.HexColor(BAR),
                   strokeColor=None))
        d.add(String(g["x0"] + b["length"] + 4, y, f"{_num(b['value'])} {chart.unit}", fontName=font, fontSize=8))
    return d


def _render_pdf(report: Report) -> bytes:
    path = find_font()
    if path is None:
        raise FontMissing(f"no CJK font for the PDF: install {FONT_PACKAGE} ({FONT_CANDIDATES[0]})",
                          details={"package": FONT_PACKAGE, "looked_in": list(FONT_CANDIDATES)})
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import KeepTogether, Paragraph, SimpleDocTemplate, Spacer
    from reportlab.platypus import Table as PdfTable
    from reportlab.platypus import TableStyle

    font = _register_font(path)
    base = ParagraphStyle("body", fontName=font, fontSize=10, leading=15, wordWrap="CJK")
    h1 = ParagraphStyle("h1", parent=base, fontSize=17, leading=24, spaceAfter=6, textColor=colors.HexColor("#b22222"))
    h2 = ParagraphStyle("h2", parent=base, fontSize=13, leading=19, spaceBefore=10, spaceAfter=4)
    h3 = ParagraphStyle("h3", parent=base, fontSize=10.5, leading=15, spaceBefore=6, spaceAfter=2)
    small = ParagraphStyle("cell", parent=base, fontSize=8.5, leading=11)
    small_r = ParagraphStyle("cell-num", parent=small, alignment=2)  # numbers right-aligned
    meta = ParagraphStyle("meta", parent=base, fontSize=9, textColor=colors.HexColor("#555555"))
    esc = html.escape
    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm, topMargin=16 * mm,
                            bottomMargin=16 * mm, title=report.title, author="12345", subject=report.period.title)
    story: list = [Paragraph(esc(report.title), h1),
                   Paragraph(f"统计期间：{report.period.start.isoformat()} 至 {report.period.end.isoformat()}"
                             f"（{esc(report.period.tz)}）　生成时间：{_local(report, report.generated_at)}", meta),
                   Spacer(1, 4 * mm)]
    for s in report.sections:
        story.append(Paragraph(esc(s.title), h2))
        story += [Paragraph(esc(line), base) for line in s.lines]
        story += [Spacer(1, 2 * mm)] + [_chart_drawing(c, font, doc.width) for c in s.charts if c.values]
        for t in s.tables:
            data = [[Paragraph(f"<b>{esc(c)}</b>", small) for c in t.columns]]
            data += [[Paragraph(esc(_cell(v)), small_r if i in t.numeric else small) for i, v in enumerate(r)]
                     for r in t.rows] or [
                [Paragraph("（无）", small)] + [""] * (len(t.columns) - 1)]
            table = PdfTable(data, repeatRows=1, hAlign="LEFT", colWidths=_widths(t, doc.width))
            table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#bbbbbb")),
                                       ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eef2f7")),
                                       ("VALIGN", (0, 0), (-1, -1), "TOP")]))
            title = Paragraph(esc(t.title), h3)
            story += [KeepTogether([title, table])] if len(t.rows) <= 15 else [title, table]

    def footer(canvas, doc_) -> None:
        canvas.saveState()
        canvas.setFont(font, 8)
        canvas.drawRightString(A4[0] - 18 * mm, 9 * mm, f"{report.period.title}　第 {doc_.page} 页")
        canvas.restoreState()

    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buf.getvalue()


def _widths(t: Table, total: float) -> list[float]:
    """Column widths by the longest text in each column (numbers narrow, texts wide)."""
    longest = [max([_wide(c)] + [_wide(_cell(r[i])) for r in t.rows if i < len(r)]) for i, c in enumerate(t.columns)]
    weights = [min(max(n + 3, 7), 60) for n in longest]  # + padding
    return [total * w / sum(weights) for w in weights]


def _wide(text: str) -> int:
    """Display width: a CJK character is two Latin ones."""
    return sum(2 if ord(ch) >= 0x2E80 else 1 for ch in text)


# reportlab keeps a registered font's glyph tables and subsets in shared objects: two PDFs built at
# once in two threads (a scheduled report and one asked for, or two instances in one process) broke
# a subset (IndexError in TTFontFace.makeSubset, seen in CI). One PDF at a time per process.
_PDF_LOCK = threading.Lock()


def render_pdf(report: Report) -> bytes:
    """The report as a PDF (A4, the CJK font, charts and tables); one at a time in this process."""
    with _PDF_LOCK:
        return _render_pdf(report)


RENDERERS = {"html": render_html, "pdf": render_pdf, "csv": render_csv, "xlsx": render_xlsx}


def render_all(report: Report) -> dict[str, bytes]:
    """Every format's bytes (the PDF first: a missing font stops before anything is written)."""
    pdf = render_pdf(report)
    return {"html": render_html(report), "pdf": pdf, "csv": render_csv(report), "xlsx": render_xlsx(report)}
