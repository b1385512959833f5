// The supervisor board's 预警 section (issue 14): early warnings — surges of one matter in one
// street/district and repeated demands about one address — with the tickets behind each, 签收
// (acknowledge) and 转交 (forward to the responsible unit). GET /api/supervisor/warnings every 30 s;
// a list being worked on (focus inside) is not redrawn under the supervisor's hands.
// ES module over common.js; its own file beside supervisor.js.
import {$, arr, el, fmtTime, isObj, latestWins, makeApi, num, problemsOf, showErrorSummary, showStatus,
  str} from "./common.js";

const POLL_MS = 30000;
const KIND = {surge: "激增 Surge", repeat: "重复诉求 Repeated demand"};
const STATUS = {open: "待处理 open", acknowledged: "已签收 acknowledged", forwarded: "已转交 forwarded"};
const state = {csrf: "", units: [], timer: null, open: new Set()};
const api = makeApi(state, {onUnauthorized: () => { location.href = "/login?next=/supervisor"; }, refresh: loadMe});
const loads = latestWins();  // an action's reload and a poll may overlap: the latest answer is drawn

async function loadMe() {
  const me = await api("GET", "/api/me");
  state.csrf = me.csrf_token;
}

function figure(a) {
  if (a.kind === "surge") {
    return `${num(a.count)} 件 tickets，基线 baseline ${num(a.baseline).toFixed(1)}/窗口 window` +
      (a.ratio ? `（×${num(a.ratio).toFixed(1)}）` : "") + `，p = ${num(a.p_value).toExponential(1)}`;
  }
  return `${num(a.count)} 件同一地址 tickets about one address`;
}

function showErrors(form, problems) {
  showErrorSummary(form, problems, `未提交：请修改以下 ${problems.length} 处。Not sent: ${problems.length} problem(s).`);
}

function ticketsTable(detail) {
  const table = el("table", null, {class: "warning-tickets"});
  table.append(el("caption", `${arr(detail.ticket_list).length} 张工单 tickets behind this warning`,
    {class: "visually-hidden"}));
  const head = el("tr");
  for (const h of ["工单号 Ticket", "来电时间 When", "类型 Type", "地点 Place", "摘要 Summary"]) head.append(el("th", h));
  const thead = el("thead");
  thead.append(head);
  table.append(thead);
  const body = el("tbody");
  for (const t of arr(detail.ticket_list).filter(isObj)) {
    const tr = el("tr", null, {"data-ticket": t.id});
    const secret = t.confidential ? "（来电人要求保密 confidential）" : "";
    tr.append(el("td", str(t.ticket_no) || `#${t.id}`, {class: "number"}), el("td", fmtTime(t.created_at)),
      el("td", str(t.category)), el("td", str(t.place) || secret || "—"), el("td", str(t.summary) || secret || "—"));
    body.append(tr);
  }
  table.append(body);
  return table;
}

async function toggleTickets(a, button, holder) {
  const expanded = button.getAttribute("aria-expanded") === "true";
  if (expanded) {
    state.open.delete(a.id);
    button.setAttribute("aria-expanded", "false");
    holder.replaceChildren();
    return;
  }
  try {
    const detail = await api("GET", `/api/supervisor/warnings/${a.id}`);
    holder.replaceChildren(ticketsTable(detail));
    state.open.add(a.id);
    button.setAttribute("aria-expanded", "true");
  } catch (err) {
    showStatus("error", `无法加载工单 cannot load the tickets: ${err.message}`);
  }
}

function item(a) {
  const box = el("article", null, {class: "review-item warning-item", "data-warning": a.id, "data-status": a.status,
    "aria-labelledby": `warning-h-${a.id}`});
  box.append(el("h3", `${KIND[a.kind] || a.kind} · ${str(a.matter_name)} · ${str(a.place_name)}`, {id: `warning-h-${a.id}`}));
  box.append(el("p", `${figure(a)} · ${fmtTime(a.window_start)} – ${fmtTime(a.window_end)} · ` +
    `${STATUS[a.status] || a.status}` + (a.forwarded_unit_name ? ` → ${a.forwarded_unit_name}` : "") +
    (a.active ? "" : " · 已结束 ended"), {class: "hint"}));
  if (isObj(a.grown)) box.append(grownLine(a.grown));
  const holder = el("div", null, {id: `warning-t-${a.id}`, style: "overflow-x:auto"});
  const show = el("button", `查看工单 Tickets (${num(a.tickets)})`, {type: "button", class: "secondary",
    "aria-expanded": "false", "aria-controls": holder.id});
  show.addEventListener("click", () => toggleTickets(a, show, holder));
  const bar = el("div", null, {class: "buttons warning-bar"});
  bar.append(show);
  box.append(bar);
  box.append(holder);
  if (state.open.has(a.id)) toggleTickets(a, show, holder);
  box.append(actions(a));  // a forwarded alert may be forwarded again (the same or another unit)
  return box;
}

// An open episode that grew since the supervisors were last told: the old and new counts (and ratios).
function grownLine(g) {
  const ratio = g.from_ratio && g.to_ratio ? `（×${num(g.from_ratio).toFixed(1)} → ×${num(g.to_ratio).toFixed(1)}）` : "";
  return el("p", `增长 Grown ${fmtTime(g.at)}：${num(g.from_count)} → ${num(g.to_count)} 件 tickets${ratio}`,
    {class: "warning-grown", "data-grown": `${num(g.from_count)}-${num(g.to_count)}`,
     style: "color:var(--bad);font-weight:600;margin:2px 0"});
}

function actions(a) {
  const form = el("form", null, {novalidate: true});
  const uid = `warning-unit-${a.id}`, nid = `warning-note-${a.id}`;
  const select = el("select", null, {id: uid, name: "unit_id"});
  select.append(el("option", "请选择 choose…", {value: ""}));
  const suggested = arr(a.units).filter(isObj);
  for (const u of suggested) select.append(el("option", `${u.name}（建议 suggested）`, {value: u.id}));
  for (const u of state.units) {
    if (!suggested.some((s) => s.id === u.id)) select.append(el("option", `${u.name}（${u.id}）`, {value: u.id}));
  }
  if (suggested.length) select.value = suggested[0].id;
  if (a.status === "forwarded" && a.forwarded_unit_id) select.value = a.forwarded_unit_id;
  const note = el("textarea", null, {id: nid, name: "note", rows: 2, maxlength: 2000});
  const left = el("div"), right = el("div");
  left.append(el("label", "转交单位 Forward to", {for: uid}), select);
  right.append(el("label", "备注 Note (optional)", {for: nid}), note);
  const buttons = el("div", null, {class: "buttons"});
  if (a.status === "open") {
    const ack = el("button", "签收 Acknowledge", {type: "button", class: "secondary", "data-action": "acknowledge"});
    ack.addEventListener("click", () => act(form, a, "acknowledge"));
    buttons.append(ack);
  }
  const fwd = el("button", a.status === "forwarded" ? "再次转交 Forward again" : "转交 Forward",
    {type: "button", "data-action": "forward"});
  fwd.addEventListener("click", () => act(form, a, "forward"));
  buttons.append(fwd);
  form.append(el("div", null, {class: "error-summary", role: "alert", tabindex: "-1"}), left, right, buttons);
  return form;
}

async function act(form, a, action) {
  for (const f of form.querySelectorAll("[aria-invalid]")) f.removeAttribute("aria-invalid");
  const unit = $("select", form).value, note = $("textarea", form).value.trim();
  if (action === "forward" && !unit) {
    showErrors(form, [{field: "unit_id", message: "请选择转交单位 — choose the unit to forward to"}]);
    return;
  }
  try {
    await api("POST", `/api/supervisor/warnings/${a.id}/${action}`, action === "forward" ? {unit_id: unit, note} : {note});
    showStatus("ok", `预警 ${a.id}：${action === "forward" ? "已转交 forwarded" : "已签收 acknowledged"}`);
    await poll({force: true});
    focusSection();
  } catch (err) {
    const problems = problemsOf(err.data);
    if (err.status === 400 && problems.length) {
      showErrors(form, problems.map((p) => ({field: p.field, message: `${str(p.message_zh)} ${str(p.message)}`})));
    } else {
      showErrors(form, [{message: err.message}]);
      if (err.status === 409) poll({force: true});
    }
  }
}

// The section gets the focus back after 签收/转交 (its item is redrawn); scrolled so that its title is
// not hidden under the page's sticky header.
function focusSection() {
  const section = $("#warnings-section"), header = document.querySelector("body > header");
  section.focus({preventScroll: true});
  const covered = header ? header.getBoundingClientRect().height : 0;
  window.scrollTo(0, section.getBoundingClientRect().top + window.scrollY - covered - 8);
}

function render(data, force) {
  state.units = arr(data.units).filter(isObj);
  const box = $("#warnings");
  const focused = document.activeElement && box.contains(document.activeElement);
  if (focused && !force) return;
  const items = arr(data.items).filter(isObj);
  box.replaceChildren(...items.map(item));
  $("#warnings-empty").hidden = items.length > 0;
  const run = isObj(data.last_run) ? data.last_run : null;
  $("#warnings-run-info").textContent = run ? `上次检测 last run ${fmtTime(run.at)}` : "";
}

async function poll({force = false} = {}) {
  clearTimeout(state.timer);
  const mine = loads.next();
  try {
    const status = $("#warnings-status").value;
    const [data, hooks] = await Promise.all([api("GET", `/api/supervisor/warnings?status=${encodeURIComponent(status)}`),
      api("GET", "/api/supervisor/warnings/deliveries")]);
    if (!loads.isLatest(mine)) return;  // another status chosen, or an action's reload: that one draws
    render(data, force);
    const failed = num(hooks.failed) + arr(hooks.items).filter((d) => isObj(d) && !d.failed_at).length;
    $("#warnings-hooks").textContent = failed ? `通知发送失败 ${failed} 条 webhook notices failing` : "";
    document.body.dataset.warningsReady = "true";
  } catch (err) {
    if (err.status === 401 || !loads.isLatest(mine)) return;
    showStatus("error", `无法加载预警 cannot load the warnings: ${err.message}`);
  }
  state.timer = setTimeout(poll, POLL_MS);
}

async function runNow(button) {
  button.disabled = true;
  try {
    const run = await api("POST", "/api/supervisor/warnings/run");
    showStatus("ok", `检测完成 run done：新预警 new ${arr(run.created).length}，更新 updated ${num(run.updated)}`);
    await poll({force: true});
  } catch (err) {
    showStatus("error", `检测失败 run failed: ${err.message}`);
  }
  button.disabled = false;
  button.focus();
}

function start() {
  $("#warnings-status").addEventListener("change", () => poll({force: true}));
  const run = $("#warnings-run");
  run.addEventListener("click", () => runNow(run));
  loadMe().then(() => poll(), () => {});
}
start();
