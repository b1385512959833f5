// The supervisor board's 报告 panel (issue 14): the archived daily reports, weekly analyses and
// monthly bulletins with their files (HTML to read in the browser, PDF, CSV, XLSX to download),
// and "generate now" for a kind and a day inside the period (default: the last complete one).
// GET /api/supervisor/reports every 60 s; POST /api/supervisor/reports. Its own module beside
// supervisor.js; plain links and a form, so everything works by keyboard.
import {$, arr, el, fmtTime, isObj, latestWins, makeApi, num, problemsOf, redrawKeepingFocus, showErrorSummary, showStatus,
  str} from "./common.js";

const POLL_MS = 60000;
const FORMATS = [["html", "HTML 查看 view", true], ["pdf", "PDF", false], ["csv", "CSV", false], ["xlsx", "XLSX", false]];
const KIND_NAMES = {daily: "日报告", weekly: "周分析", monthly: "月通报"};
const session = {csrf: "", tz: "Asia/Shanghai"};
const api = makeApi(session, {onUnauthorized: () => { location.href = "/login?next=/supervisor"; }, refresh: loadMe});
let timer = null;
const loads = latestWins();  // an older poll answering late must not redraw over a newer load

async function loadMe() {
  const me = await api("GET", "/api/me");
  session.csrf = me.csrf_token;
}

function links(item) {
  const cell = el("td", null, {class: "report-files"});
  const have = new Set(arr(item.files).filter(isObj).map((f) => f.format));
  for (const [fmt, text, inline] of FORMATS) {
    if (!have.has(fmt)) continue;
    const f = arr(item.files).find((x) => isObj(x) && x.format === fmt);
    const a = el("a", text, {href: `${str(f.url)}${inline ? "?inline=1" : ""}`, class: `report-${fmt}`,
      "aria-label": `${str(item.label)} ${fmt.toUpperCase()}`, title: `sha256 ${str(f.sha256)} · ${num(f.bytes)} B`,
      ...(inline ? {target: "_blank", rel: "noopener"} : {download: ""})});
    cell.append(a, document.createTextNode(" "));
  }
  return cell;
}

function row(item) {
  const tr = el("tr", null, {"data-report-id": str(item.id), "data-kind": str(item.kind)});
  const summary = isObj(item.summary) ? item.summary : {};
  tr.append(el("td", str(item.label) || `${KIND_NAMES[item.kind] || item.kind} ${str(item.period_start)}`),
    el("td", fmtTime(item.created_at, session.tz), {class: "number"}),
    el("td", item.created_by === "schedule" ? "定时 schedule" : str(item.created_by)),
    el("td", num(summary.tickets), {class: "num"}), links(item));
  return tr;
}

function render(data) {
  session.tz = str(data.timezone) || session.tz;
  const items = arr(data.items).filter(isObj);
  const body = $("#reports tbody");
  redrawKeepingFocus(body, "data-report-id", () => body.replaceChildren(...items.map(row)));
  if (!items.length) {
    const tr = el("tr");
    tr.append(el("td", "暂无报告 no report yet", {class: "empty", colspan: 5}));
    body.append(tr);
  }
  const sched = isObj(data.schedule) ? data.schedule : {};
  let note = `定时生成（${session.tz}）：日报告每天 ${str(sched.daily)}，周分析每周一 ${str(sched.weekly)}，` +
    `月通报每月 1 日 ${str(sched.monthly)}。`;
  if (data.enabled === false) note = "定时生成已关闭 (config/reports.yaml enabled: false)。";
  if (str(data.font) !== "ok") note += ` ⚠ 缺少中文字体，无法生成 PDF：${str(data.font)}`;
  if (data.last_error) note += ` ⚠ 上次定时生成失败 last run failed: ${str(data.last_error)}`;
  $("#reports-note").textContent = note;
}

async function load() {
  clearTimeout(timer);
  const mine = loads.next();
  try {
    const data = await api("GET", "/api/supervisor/reports");
    if (!loads.isLatest(mine)) return;  // a newer load is under way, or done
    render(data);
  } catch (err) {
    if (err.status === 401 || !loads.isLatest(mine)) return;
    $("#reports-note").textContent = `无法加载报告列表 cannot load the reports: ${err.message}`;
  }
  timer = setTimeout(load, POLL_MS);
}

function showErrors(form, problems) {
  showErrorSummary(form, problems, `未生成：请修改以下 ${problems.length} 处。Not made: ${problems.length} problem(s).`);
}

async function generate(ev) {
  ev.preventDefault();
  const form = ev.target;
  const button = $("#report-generate");
  $(".error-summary", form).replaceChildren();
  for (const f of form.querySelectorAll("[aria-invalid]")) f.removeAttribute("aria-invalid");
  const kind = $("#report-kind").value, date = $("#report-date").value;
  if (date && !/^\d{4}-\d{2}-\d{2}$/.test(date)) {
    showErrors(form, [{field: "date", message: "日期格式应为 2027-03-01 — a date like 2027-03-01"}]);
    return;
  }
  button.disabled = true;
  button.textContent = "生成中… Generating…";
  try {
    const made = await api("POST", "/api/supervisor/reports", {kind, ...(date ? {date} : {})});
    showStatus("ok", `已生成 made: ${str(made.label)}`);
    await load();
    const link = $(`#reports tr[data-report-id="${str(made.id)}"] a`);
    (link || $("#reports-title")).focus();
  } catch (err) {
    const problems = problemsOf(err.data);
    if (problems.length) {
      showErrors(form, problems.map((p) => ({field: p.field, message: `${str(p.message_zh)} ${str(p.message)}`})));
    } else {
      const field = isObj(err.data) && isObj(err.data.details) ? str(err.data.details.field) : "";
      showErrors(form, [{field: field || null, message: err.message}]);
    }
  } finally {
    button.disabled = false;
    button.textContent = "立即生成 Generate now";
  }
}

async function start() {
  try {
    await loadMe();
  } catch (err) {
    return;
  }
  $("#reports-form").addEventListener("submit", generate);
  load();
}
start();
