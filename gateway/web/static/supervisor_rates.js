// The supervisor board's 三率排名 panel (/supervisor): response, resolution and satisfaction rates
// per level (unit, district, street/township, line, sub-centre, request type) and period, with the
// counts each rate rests on; a figure is a button: click or Enter lists the tickets behind it
// (GET /api/supervisor/rates, /api/supervisor/rates/tickets). Its own module over common.js.
import {$, arr, el, fmtTime, isObj, makeApi, num, problemMessage, str} from "./common.js";
import {SATISFACTION_NAMES, SOLVED_NAMES} from "./labels.js";

const state = {csrf: "", query: null, drill: null};
const api = makeApi(state, {onUnauthorized: () => { location.href = "/login?next=/supervisor"; }});
const LEVELS = [["unit", "承办单位 Unit"], ["district", "区 District"], ["street", "街道乡镇 Street/township"],
  ["line", "热线 Line"], ["sub_centre", "分中心 Sub-centre"], ["type", "诉求类型 Type"]];
const PERIODS = [["day", "日 Day"], ["week", "周 Week"], ["month", "月 Month"], ["custom", "自定义 Custom"]];
const RANK_BY = [["satisfaction", "满意率 Satisfaction"], ["resolution", "解决率 Resolution"], ["response", "响应率 Response"]];
// column: [field, header, rate, outcome] — rate/outcome make the figure a button listing its tickets
const COLUMNS = [
  ["tickets", "工单 Tickets"],
  ["due", "应响应 Due", "response", "due"], ["responded", "按时响应 In time", "response", "in_time"],
  ["response_rate", "响应率 Response", "response", "due", true],
  ["surveyed", "有效回访 Surveyed", "resolution", "surveyed"], ["solved", "已解决 Solved", "resolution", "solved"],
  ["resolution_rate", "解决率 Resolution", "resolution", "surveyed", true],
  ["satisfied", "满意", "satisfaction", "satisfied"], ["basic", "基本满意", "satisfaction", "basic"],
  ["unsatisfied", "不满意", "satisfaction", "unsatisfied"],
  ["satisfaction_rate", "满意率 Satisfaction", "satisfaction", "surveyed", true],
];
const OUTCOME_ZH = {due: "应响应", in_time: "按时响应", late: "未按时响应", not_due: "未到期", surveyed: "有效回访",
  solved: "已解决", unsolved: "未解决", satisfied: "满意", basic: "基本满意", unsatisfied: "不满意"};
const HANDLING_ZH = {dispatched: "已派单", accepted: "已签收", review: "审核中", handled: "已办结", closed: "已关闭"};
const CSS = `
#rates-form{display:flex;flex-wrap:wrap;gap:8px 14px;align-items:flex-end;margin:6px 0}
#rates-form label{display:flex;flex-direction:column;font-size:12px;gap:2px}
#rates-form [hidden]{display:none}
.rates-scroll{overflow-x:auto;max-width:100%}
#rates td.num,#rates th.num,#rates-drill td.num{text-align:right;white-space:nowrap}
#rates button.fig{background:none;border:0;padding:0 2px;color:#1d4f91;text-decoration:underline;cursor:pointer;font:inherit}
#rates button.fig:focus-visible{outline:2px solid #1d4f91;outline-offset:1px}
#rates th[scope=row],#rates thead th:nth-child(2){position:sticky;left:0;background:#fff;z-index:1}
#rates thead th:nth-child(2){background:#eef2f8}
#rates tr.total td{font-weight:600;border-top:2px solid #999}
#rates-drill{margin-top:10px;border:1px solid #ccd;padding:8px;border-radius:4px}
#rates-drill .pager{display:flex;gap:8px;align-items:center;margin-top:6px}
@media (max-width:900px){#rates th,#rates td{padding:3px 4px;font-size:12px}}`;

function pct(x) { return x === null || x === undefined ? "—" : `${(num(x) * 100).toFixed(1)}%`; }

function options(select, pairs, value) {
  select.replaceChildren(...pairs.map(([v, t]) => el("option", t, {value: v, selected: v === value})));
}

function localToday() {
  return new Intl.DateTimeFormat("sv-SE", {timeZone: "Asia/Shanghai"}).format(new Date());
}

function readForm() {
  const f = $("#rates-form");
  const q = {level: f.level.value, period: f.period.value, rank_by: f.rank_by.value};
  if (q.period === "custom") { q.start = f.start.value; q.end = f.end.value; } else q.date = f.date.value;
  return q;
}

// "key" stays even when empty: the row of tickets without one (未识别)
function qs(q) {
  return new URLSearchParams(Object.entries(q).filter(([k, v]) => v !== undefined && (v !== "" || k === "key"))).toString();
}

function figureCell(row, col, q) {
  const [field, header, rate, outcome, isRate] = col;
  const value = row[field];
  const text = isRate ? pct(value) : String(num(value));
  const td = el("td", null, {class: "num", "data-field": field});
  const empty = isRate ? value === null || value === undefined : !num(value);
  if (!rate || row.key === "all" || empty) { td.textContent = text; return td; }
  const b = el("button", text, {type: "button", class: "fig",
    "aria-label": `${row.label} ${header} ${text}：查看${OUTCOME_ZH[outcome]}工单 list the tickets`});
  b.addEventListener("click", () => drill({...q, key: row.key, rate, outcome, page: 1}, `${row.label} · ${OUTCOME_ZH[outcome]}`));
  td.append(b);
  return td;
}

function render(data) {
  const q = state.query;
  const body = $("#rates tbody");
  const rows = arr(data.rows).filter(isObj);
  const tr = (row, extra) => {
    const r = el("tr", null, {"data-key": row.key, ...extra});
    r.append(el("td", row.rank === null || row.rank === undefined ? "" : String(row.rank), {class: "num"}),
      el("th", row.label || "未识别 unknown", {scope: "row"}), ...COLUMNS.map((c) => figureCell(row, c, q)));
    return r;
  };
  body.replaceChildren(...rows.map((row) => tr(row)));
  if (!rows.length) {
    const r = el("tr");
    r.append(el("td", "该周期没有派单工单 no dispatched tickets in this period", {colspan: COLUMNS.length + 2, class: "empty"}));
    body.append(r);
  }
  if (isObj(data.total)) body.append(tr({...data.total, rank: null, key: "all"}, {class: "total"}));
  const f = isObj(data.formulas) ? data.formulas : {};
  const tz = str(data.timezone) || undefined;
  const last = new Date(Date.parse(data.end) - 1000).toISOString();
  $("#rates-formulas").textContent = `${fmtTime(data.start, tz).slice(0, 10)} 至 ${fmtTime(last, tz).slice(0, 10)}` +
    `（${str(data.timezone)}）· ` +
    [f.response, f.resolution, f.satisfaction].filter(Boolean).join("；");
}

async function load() {
  state.query = readForm();
  const status = $("#rates-status");
  status.textContent = "加载中 loading…";
  try {
    const data = await api("GET", `/api/supervisor/rates?${qs(state.query)}`);
    render(data);
    status.textContent = `${str(data.level_zh)}：${arr(data.rows).length} 行 rows`;
  } catch (err) {
    if (err.status === 401) return;
    status.textContent = problemMessage(err.data) || err.message;
  }
}

async function drill(q, title) {
  state.drill = {q, title};
  const box = $("#rates-drill");
  box.hidden = false;
  const h = $("#rates-drill-title");
  h.textContent = `${title} — 加载中 loading…`;
  try {
    const data = await api("GET", `/api/supervisor/rates/tickets?${qs(q)}`);
    const items = arr(data.items).filter(isObj);
    const body = $("#rates-drill tbody");
    body.replaceChildren(...items.map((t) => {
      const r = el("tr", null, {"data-ticket-id": str(t.id)});
      r.append(el("td", t.ticket_no || `#${str(t.id)}`), el("td", str(t.category)), el("td", arr(t.units).join("、")),
        el("td", HANDLING_ZH[t.handling] || str(t.handling)), el("td", fmtTime(t.decided_at)),
        el("td", q.rate === "response" ? fmtTime(t.accepted_at) || "未签收" : [SOLVED_NAMES[t.solved] || t.solved, SATISFACTION_NAMES[t.satisfaction] || t.satisfaction].filter(Boolean).join(" · ")),
        el("td", t.confidential ? `保密 ${str(t.place)}` : str(t.place)));
      return r;
    }));
    const pages = Math.max(1, Math.ceil(num(data.total) / num(data.per_page || 50)));
    h.textContent = `${title}：${num(data.total)} 张工单 tickets`;
    $("#rates-page").textContent = `第 ${data.page} / ${pages} 页 page`;
    $("#rates-prev").disabled = data.page <= 1;
    $("#rates-next").disabled = data.page >= pages;
  } catch (err) {
    if (err.status === 401) return;
    h.textContent = `${title}：${problemMessage(err.data) || err.message}`;
  }
  h.focus();
}

function page(delta) {
  if (!state.drill) return;
  const {q, title} = state.drill;
  drill({...q, page: Math.max(1, num(q.page) + delta)}, title);
}

function build() {
  document.head.append(el("style", CSS));
  const f = $("#rates-form");
  options(f.level, LEVELS, "unit");
  options(f.period, PERIODS, "month");
  options(f.rank_by, RANK_BY, "satisfaction");
  f.date.value = localToday();
  const custom = () => {
    const c = f.period.value === "custom";
    $("#rates-date-label").hidden = c;
    $("#rates-start-label").hidden = !c;
    $("#rates-end-label").hidden = !c;
  };
  f.period.addEventListener("change", custom);
  custom();
  f.addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
  const head = $("#rates thead tr");
  head.replaceChildren(el("th", "名次 Rank", {class: "num", scope: "col"}), el("th", "名称 Name", {scope: "col"}),
    ...COLUMNS.map(([, h]) => el("th", h, {class: "num", scope: "col"})));
  $("#rates-prev").addEventListener("click", () => page(-1));
  $("#rates-next").addEventListener("click", () => page(1));
  $("#rates-close").addEventListener("click", () => { $("#rates-drill").hidden = true; state.drill = null; $("#rates-title").focus(); });
  load();
}

build();
