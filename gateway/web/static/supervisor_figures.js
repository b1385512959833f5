// The supervisor board's call-centre figures (issue 14): service level, speed of answer, handling
// time, abandonment in the queue and in the IVR (per menu node), callbacks and drafts waiting,
// agents' states from Asterisk; per line and queue; the trend as an Apache ECharts chart
// (vendor/echarts.min.js, window.echarts) and as a table. GET /api/supervisor/figures[/trend];
// today's figures refresh every 15 s, another period when asked. ES module over common.js.
import {$, arr, duration, el, isObj, makeApi, num, problemsOf, str} from "./common.js";

const LIVE_MS = 15000;
const state = {csrf: "", query: {period: "today"}, timer: null, charts: {}, trend: null, figures: null};
const api = makeApi(state, {onUnauthorized: () => { location.href = "/login?next=/supervisor"; }});
const STATE_ORDER = ["available", "talking", "ringing", "wrapup", "paused", "unavailable"];
const STATE_NAMES = {available: "空闲", talking: "通话中", ringing: "振铃", wrapup: "话后整理", paused: "示忙",
  unavailable: "未登录", unknown: "不在队列"};
const KINDS = {today: "今日", day: "按日", week: "按周", month: "按月", custom: "自定义"};

const pct = (x) => (x === null || x === undefined ? "—" : `${(num(x) * 100).toFixed(1)}%`);
const secs = (x) => (x === null || x === undefined ? "—" : `${num(x).toFixed(1)} 秒`);
// AHT with its parts: mean talk (holds inside it) + mean after-call work (the ticket decided after hang-up)
const ahtParts = (x) => (x.aht_s === null || x.aht_s === undefined ? "—"
  : `${secs(x.aht_s)}（通话 ${secs(x.talk_s)} + 话后 ${secs(x.acw_s)}）`);
const dash = (x) => (x === null || x === undefined || x === "" ? "—" : str(x));

function field(labelText, input, id) {
  const label = el("label", null, {for: id, style: "flex:0 1 11em;display:block"});
  label.append(el("span", labelText, {style: "display:block;font-size:12px;color:#5b6676"}), input);
  return label;
}

// -- the controls, cards and tables (built once) ------------------------------------------------
function build() {
  const root = $("#figures");
  const form = el("form", null, {id: "figures-form", novalidate: true,
    style: "display:flex;flex-wrap:wrap;gap:8px 12px;align-items:flex-end;margin-bottom:10px"});
  const errors = el("div", null, {class: "error-summary", id: "figures-errors", tabindex: "-1", role: "alert",
    style: "flex-basis:100%"});
  const kind = el("select", null, {id: "figures-kind", name: "period"});
  for (const [value, text] of Object.entries(KINDS)) kind.append(el("option", `${text} ${value}`, {value}));
  const date = el("input", null, {id: "figures-date", name: "date", type: "date"});
  const month = el("input", null, {id: "figures-month", name: "month", type: "month"});
  const start = el("input", null, {id: "figures-start", name: "start", type: "date"});
  const end = el("input", null, {id: "figures-end", name: "end", type: "date"});
  const go = el("button", "查询 Show", {type: "submit", id: "figures-go", style: "flex:none"});
  form.append(errors, field("时段 Period", kind, "figures-kind"), field("日期 Date", date, "figures-date"),
    field("月份 Month", month, "figures-month"), field("开始 Start", start, "figures-start"),
    field("结束 End", end, "figures-end"), go);
  kind.addEventListener("change", showFields);
  form.addEventListener("submit", (ev) => { ev.preventDefault(); submit(); });

  const section = (title, small, ...children) => {
    const box = el("div", null, {class: "figures-part"});
    const h = el("h3", title + " ");
    h.append(el("small", small));
    box.append(h, ...children);
    return box;
  };
  const scroll = (table) => {  // a table wider than the screen scrolls, by keyboard too
    const box = el("div", null, {class: "scroll", tabindex: "0", style: "overflow-x:auto",
      "aria-label": table.getAttribute("aria-label")});
    box.append(table);
    return box;
  };
  const table = (id, label) => el("table", null, {id, "aria-label": label});
  const trendChart = el("div", null, {id: "figures-trend-chart", role: "img", style: "width:100%;height:300px",
    "aria-label": "话务趋势图，数据见下方趋势数据表 trend chart; the numbers are in the trend table"});
  const ivrChart = el("div", null, {id: "figures-ivr-chart", role: "img", style: "width:100%;height:100px",
    "aria-label": "语音导航放弃节点图，数据见下表 where callers gave up in the IVR; the numbers are in the table"});
  const details = el("details", null, {id: "figures-trend-details"});  // closed: the board stays short
  details.append(el("summary", "趋势数据表 Trend as a table"), scroll(table("figures-trend", "趋势数据 trend")));
  root.replaceChildren(
    form,
    el("div", null, {class: "cards", id: "figures-cards"}),
    section("趋势", "Trend: calls, answered, abandoned; service level (right axis)", trendChart, details),
    section("按热线", "Per line", scroll(table("figures-lines", "按热线 per line"))),
    section("按队列", "Per queue", scroll(table("figures-queues", "按队列 per queue"))),
    section("语音导航放弃", "Where callers gave up in the IVR (the last menu node reached)", ivrChart,
      scroll(table("figures-ivr", "语音导航放弃节点 IVR abandonment by node"))),
    section("坐席状态", "Agents: state from Asterisk now, load in the period",
      el("p", null, {class: "hint", id: "figures-agents-summary"}), scroll(table("figures-agents", "坐席 agents"))),
    section("待处理", "Waiting now: callbacks and drafts not yet decided",
      scroll(table("figures-pending", "待处理 pending"))),
  );
  showFields();
  window.addEventListener("resize", () => { for (const c of Object.values(state.charts)) c.resize(); });
}

function showFields() {
  const kind = $("#figures-kind").value;
  const show = {date: kind === "day" || kind === "week", month: kind === "month", start: kind === "custom",
    end: kind === "custom"};
  for (const [name, on] of Object.entries(show)) $(`#figures-${name}`).closest("label").hidden = !on;
}

// -- asking -----------------------------------------------------------------------------------
function readForm() {
  const kind = $("#figures-kind").value;
  const q = {period: kind}, problems = [];
  if (kind === "day" || kind === "week") {
    if ($("#figures-date").value) q.date = $("#figures-date").value;
  } else if (kind === "month") {
    if ($("#figures-month").value) q.date = $("#figures-month").value;
  } else if (kind === "custom") {
    for (const name of ["start", "end"]) {
      const v = $(`#figures-${name}`).value;
      if (!v) problems.push({field: name, message: `请填写${name === "start" ? "开始" : "结束"}日期 ${name} is required`});
      else q[name] = v;
    }
    delete q.period;
  }
  return {q, problems};
}

function showErrors(problems) {
  const box = $("#figures-errors");
  for (const input of $("#figures-form").querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  if (!problems.length) { box.replaceChildren(); return; }
  box.replaceChildren(el("p", `未能查询：请修改以下 ${problems.length} 处。Not shown: ${problems.length} problem(s).`));
  const ul = el("ul");
  for (const p of problems) {
    const name = p.field === "period" ? "kind" : (p.field === "date" && $("#figures-kind").value === "month" ? "month"
      : p.field);
    const input = $(`#figures-${name}`);
    const text = p.message_zh && p.message_zh !== p.message ? `${p.message_zh} — ${str(p.message)}` : str(p.message);
    const li = el("li");
    if (input) {
      input.setAttribute("aria-invalid", "true");
      const a = el("a", text, {href: `#figures-${name}`});
      a.addEventListener("click", (ev) => { ev.preventDefault(); input.focus(); });
      li.append(a);
    } else li.textContent = text;
    ul.append(li);
  }
  box.append(ul);
  box.focus();
}

function submit() {
  const {q, problems} = readForm();
  if (problems.length) { showErrors(problems); return; }
  state.query = q;
  load({focus: true});
}

function qs(q) { return new URLSearchParams(Object.entries(q)).toString(); }

async function load({focus = false} = {}) {
  clearTimeout(state.timer);
  const query = state.query;
  try {
    const [figures, trend] = await Promise.all([api("GET", `/api/supervisor/figures?${qs(query)}`),
      api("GET", `/api/supervisor/figures/trend?${qs(query)}`)]);
    if (query !== state.query) return;  // asked again meanwhile
    showErrors([]);
    state.figures = figures;
    state.trend = trend;
    render(figures, trend);
    if (focus) $("#figures-cards").focus();
  } catch (err) {
    if (err.status === 401) return;
    const problems = problemsOf(err.data);
    showErrors(problems.length ? problems : [{message: err.message}]);
  }
  if ((query.period || "today") === "today") state.timer = setTimeout(load, LIVE_MS);
}

// -- showing ----------------------------------------------------------------------------------
function card(key, value, labelText, cls = "") {
  const c = el("div", null, {class: `card ${cls}`.trim(), "data-key": key});
  c.append(el("div", value, {class: "n"}), el("div", labelText, {class: "l"}));
  return c;
}

function fillTable(id, head, rows, emptyText) {
  const table = $(`#${id}`);
  const thead = el("thead"), tr = el("tr");
  for (const [text, numeric] of head) tr.append(el("th", text, {class: numeric ? "num" : null, scope: "col"}));
  thead.append(tr);
  const body = el("tbody");
  for (const row of rows) {
    const r = el("tr", null, row.attrs || {});
    row.cells.forEach((value, i) => {
      const cell = el(i === 0 ? "th" : "td", value instanceof Node ? null : value,
        {class: head[i][1] ? "num" : null, scope: i === 0 ? "row" : null, style: head[i][2] || null});
      if (value instanceof Node) cell.append(value);
      r.append(cell);
    });
    body.append(r);
  }
  if (!rows.length) {
    const r = el("tr");
    r.append(el("td", emptyText, {class: "empty", colspan: head.length}));
    body.append(r);
  }
  table.replaceChildren(thead, body);
}

// queue names never break at their hyphen (q-complaint), only between names
function queueList(names) {
  if (!names.length) return "—";
  const box = document.createDocumentFragment();
  names.forEach((name, i) => {
    if (i) box.append("、");
    box.append(el("span", name, {style: "white-space:nowrap"}));
  });
  return box;
}

function render(f, trend) {
  const t = isObj(f.totals) ? f.totals : {};
  const p = isObj(f.period) ? f.period : {};
  const sl = num(isObj(f.config) ? f.config.service_level_seconds : 20);
  const span = p.first_day === p.last_day ? p.first_day : `${p.first_day} — ${p.last_day}`;
  $("#figures-period").textContent = `${KINDS[p.period] || ""} ${span}（${p.timezone || ""}）`;
  const pending = isObj(f.pending) ? f.pending : {};
  const cb = isObj(pending.callbacks) ? pending.callbacks : {};
  const drafts = isObj(pending.drafts) ? pending.drafts : {};
  const agents = isObj(f.agents) ? f.agents : {};
  const sum = isObj(agents.summary) ? agents.summary : {};
  const cards = $("#figures-cards");
  cards.setAttribute("tabindex", "-1");
  cards.replaceChildren(
    card("service_level", pct(t.service_level), `服务水平 service level（${sl} 秒内接通 ${num(t.answered_in_sl)}）`,
      t.service_level !== null && num(t.service_level) < 0.8 ? "warn" : ""),
    card("asa", secs(t.asa_s), "平均应答速度 ASA"),
    card("aht", secs(t.aht_s), `平均处理时长 AHT = 通话 talk ${secs(t.talk_s)}（含保持 holds included）` +
      ` + 话后整理 after-call work ${secs(t.acw_s)}` +
      (num(t.acw_unknown) ? `（${num(t.acw_unknown)} 通未知 unknown）` : "")),
    card("calls", num(t.calls), `来电 calls（接通 answered ${num(t.answered)}）`),
    card("abandoned_queue", num(t.abandoned_queue), `排队放弃 abandoned in queue（${pct(t.abandon_rate_queue)}）`, "warn"),
    card("abandoned_ivr", num(t.abandoned_ivr), `语音导航放弃 abandoned in IVR（${pct(t.abandon_rate_ivr)}）`, "warn"),
    card("callbacks", num(cb.total), `待回拨 callbacks waiting（本期回拨进队 queued ${num(t.callbacks_queued)}，` +
      `接通 answered ${num(t.callbacks_answered)}）`),
    card("drafts", num(drafts.total), "未处理草稿 drafts undecided"),
    card("agents", `${num(sum.available)} / ${arr(agents.items).filter((a) => a.state !== "unknown").length}`,
      "空闲坐席 agents available"),
  );

  const lineHead = [["热线 Line", false], ["名称 Name", false], ["来电 Calls", true], ["排队 Offered", true],
    ["接通 Answered", true], ["服务水平 SL", true], ["平均应答 ASA", true], ["平均处理 AHT（通话+话后）", true],
    ["排队放弃 Abd. queue", true], ["语音导航放弃 Abd. IVR", true], ["回拨 Callback", true]];
  fillTable("figures-lines", lineHead, arr(f.per_line).filter(isObj).map((x) => ({attrs: {"data-line": x.line},
    cells: [dash(x.line), dash(x.line_name), num(x.calls), num(x.offered), num(x.answered), pct(x.service_level),
      secs(x.asa_s), ahtParts(x), num(x.abandoned_queue), num(x.abandoned_ivr), num(x.callback)]})),
  "无来电 no calls");

  const queueHead = [["队列 Queue", false], ["进入 Offered", true], ["接通 Answered", true], ["服务水平 SL", true],
    ["平均应答 ASA", true], ["平均处理 AHT（通话+话后）", true], ["放弃 Abandoned", true], ["超时转出 Timed out", true],
    ["最长等待 Longest", true], ["回拨 Callbacks（接通/进队）", true]];
  fillTable("figures-queues", queueHead, arr(f.per_queue).filter(isObj).map((x) => ({attrs: {"data-queue": x.queue},
    cells: [dash(x.queue), num(x.offered), num(x.answered), pct(x.service_level), secs(x.asa_s), ahtParts(x),
      num(x.abandoned), num(x.queue_timeout), duration(num(x.longest_wait_s)),
      `${num(x.callbacks_answered)} / ${num(x.callbacks_queued)}`]})), "无排队 none queued");

  const nodes = arr(t.ivr_abandon_nodes).filter(isObj);
  fillTable("figures-ivr", [["节点 Menu node", false], ["放弃 Callers", true]],
    nodes.map((n) => ({attrs: {"data-node": n.node}, cells: [dash(n.node), num(n.calls)]})),
    "无人在语音导航中放弃 nobody gave up in the IVR");

  const rank = (a) => (STATE_ORDER.includes(a.state) ? STATE_ORDER.indexOf(a.state) : STATE_ORDER.length);
  const items = arr(agents.items).filter(isObj).slice()
    .sort((a, b) => rank(a) - rank(b) || str(a.agent).localeCompare(str(b.agent)));
  $("#figures-agents-summary").textContent = STATE_ORDER.map((s) => `${STATE_NAMES[s]} ${num(sum[s])}`).join(" · ") +
    (arr(agents.errors).length ? ` — 部分节点未应答 some nodes did not answer: ${arr(agents.errors).join("; ")}` : "");
  fillTable("figures-agents", [["坐席 Agent", false], ["状态 State", false], ["队列 Queues", false, "min-width:18em"],
    ["接通 Answered", true], ["通话 Talk", true], ["话后整理 ACW", true], ["未处理草稿 Drafts", true],
    ["Asterisk 累计接听 Taken", true], ["距上次通话 Since last call", true]],
  items.map((a) => ({attrs: {"data-agent": a.agent, "data-state": a.state},
    cells: [dash(a.agent), `${STATE_NAMES[a.state] || a.state}${a.paused_reason ? `（${a.paused_reason}）` : ""}`,
      queueList(arr(a.queues)), num(a.answered), duration(num(a.talk_s)), duration(num(a.acw_s)), num(a.drafts_open),
      num(a.calls_taken), a.last_call_s === null || a.last_call_s === undefined ? "—" : duration(num(a.last_call_s))]})),
  "无坐席信息 no agents (Asterisk not answering)");

  const rows = [];
  for (const q of arr(cb.per_queue).filter(isObj)) {
    rows.push({cells: ["待回拨 callback", dash(q.queue), num(q.waiting), q.oldest_s === null ? "—" : duration(num(q.oldest_s))]});
  }
  for (const q of arr(drafts.per_queue).filter(isObj)) rows.push({cells: ["未处理草稿 draft（队列 queue）", dash(q.queue), num(q.drafts), "—"]});
  for (const l of arr(drafts.per_line).filter(isObj)) rows.push({cells: ["未处理草稿 draft（热线 line）", dash(l.line), num(l.drafts), "—"]});
  fillTable("figures-pending", [["类型 Kind", false], ["队列/热线 Queue/line", false], ["数量 Count", true],
    ["最久 Oldest", true]], rows, "无 nothing waiting");

  renderTrend(trend, sl);
  renderIvrChart(nodes);
  document.body.dataset.figuresReady = "true";
}

function renderTrend(trend, sl) {
  const points = arr(isObj(trend) ? trend.points : []).filter(isObj);
  $("#figures-trend-details summary").textContent =
    `趋势数据表 Trend as a table（${trend && trend.bucket === "hour" ? "每小时 per hour" : "每天 per day"}）`;
  fillTable("figures-trend", [["时间 Time", false], ["来电 Calls", true], ["接通 Answered", true],
    ["排队放弃 Abd. queue", true], ["语音导航放弃 Abd. IVR", true], ["服务水平 SL", true], ["平均应答 ASA", true],
    ["平均处理 AHT（通话+话后）", true]],
  points.map((x) => ({cells: [x.label, num(x.calls), num(x.answered), num(x.abandoned_queue), num(x.abandoned_ivr),
    pct(x.service_level), secs(x.asa_s), ahtParts(x)]})), "无数据 no data");
  const chart = chartOf("trend", "#figures-trend-chart");
  if (!chart) return;
  chart.setOption({
    animation: false,
    tooltip: {trigger: "axis"},
    legend: {top: 0, data: ["接通", "排队放弃", "语音导航放弃", "服务水平"]},
    grid: {left: 44, right: 52, top: 34, bottom: 28},
    xAxis: {type: "category", data: points.map((x) => x.label)},
    yAxis: [{type: "value", name: "来电数", minInterval: 1},
      {type: "value", name: `服务水平(${sl}秒)`, min: 0, max: 100, axisLabel: {formatter: "{value}%"}}],
    series: [
      {name: "接通", type: "bar", stack: "calls", data: points.map((x) => num(x.answered)), itemStyle: {color: "#17692f"}},
      {name: "排队放弃", type: "bar", stack: "calls", data: points.map((x) => num(x.abandoned_queue)), itemStyle: {color: "#c77d00"}},
      {name: "语音导航放弃", type: "bar", stack: "calls", data: points.map((x) => num(x.abandoned_ivr)), itemStyle: {color: "#b00020"}},
      {name: "服务水平", type: "line", yAxisIndex: 1, connectNulls: false, itemStyle: {color: "#1d5fbf"},
        data: points.map((x) => (x.service_level === null || x.service_level === undefined ? null
          : Math.round(num(x.service_level) * 1000) / 10))},
    ],
  }, true);
}

function renderIvrChart(nodes) {
  const chart = chartOf("ivr", "#figures-ivr-chart");
  if (!chart) return;
  const shown = nodes.slice(0, 10).reverse();
  $("#figures-ivr-chart").style.height = `${70 + 30 * Math.max(1, shown.length)}px`;
  chart.resize();
  chart.setOption({
    animation: false,
    tooltip: {trigger: "axis", axisPointer: {type: "shadow"}},
    grid: {left: 120, right: 24, top: 10, bottom: 40},
    xAxis: {type: "value", name: "放弃数", nameLocation: "middle", nameGap: 24, minInterval: 1},
    yAxis: {type: "category", data: shown.map((n) => n.node)},
    series: [{name: "语音导航放弃", type: "bar", data: shown.map((n) => num(n.calls)), itemStyle: {color: "#b00020"}}],
  }, true);
}

function chartOf(key, selector) {
  if (!window.echarts) return null;  // the tables carry every number anyway
  if (!state.charts[key]) state.charts[key] = window.echarts.init($(selector), null, {renderer: "svg"});
  return state.charts[key];
}

async function start() {
  try {
    const me = await api("GET", "/api/me");
    state.csrf = me.csrf_token;
  } catch (err) {
    if (err.status === 401) return;
  }
  build();
  load();
}

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && (state.query.period || "today") === "today") load();
});
start();
