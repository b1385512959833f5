// The supervisor board (/supervisor): GET /api/supervisor/overview every 2 s, shown as cards and
// tables; waiting and talking times count up between polls. An ES module over common.js,
// served as /static/supervisor.js (CSP script-src 'self').
import {$, $$, arr, clockText, duration, el, isObj, makeApi, num, showStatus, str, trackStickyHeader} from "./common.js";
import {CALLBACK_STATUS_NAMES, label} from "./labels.js";

const POLL_MS = 2000;
const MAX_BACKOFF_MS = 10000;
const state = {csrf: "", user: null, fetchedAt: 0, failures: 0, timer: null, leaving: false};

function now() { return performance.now(); }
function setConn(kind, text) {
  const c = $("#conn");
  c.dataset.state = kind;
  c.textContent = text;
}
const api = makeApi(state, {onUnauthorized: () => { state.leaving = true; location.href = "/login?next=/supervisor"; }});

// A cell whose seconds keep counting up until the next poll replaces it.
function timer(seconds) {
  const td = el("td", duration(num(seconds)), {class: "num ticking", "data-seconds": num(seconds)});
  return td;
}
function tick() {
  if (!state.fetchedAt) return;
  const since = (now() - state.fetchedAt) / 1000;
  for (const td of $$("td.ticking, .ticking-text")) td.textContent = duration(num(td.dataset.seconds) + since);
}
function emptyRow(cols, text) {
  const tr = el("tr");
  tr.append(el("td", text, {class: "empty", colspan: cols}));
  return tr;
}
function callCell(uid) { return el("td", str(uid), {class: "code"}); }

function renderToday(data) {
  const today = isObj(data.today) ? data.today : {};
  $("#today-calls").textContent = str(num(today.calls));
  $("#today-abandoned").textContent = str(num(today.abandoned));
  $("#today-abandoned-split").textContent =  // issue 14: callers who hung up in the IVR count too, shown apart
    `（排队 queue ${num(today.abandoned_queue)} · 语音导航 IVR ${num(today.abandoned_ivr)}）`;
  $("#today-emergencies").textContent = str(num(today.emergencies));
  $("#abandoned-since-start").textContent = str(num(data.abandoned_since_start));
  $("#desks-connected").textContent = str(num(data.desks_connected));
  const waiting = Object.values(isObj(data.queues) ? data.queues : {}).reduce((n, q) => n + num(isObj(q) ? q.waiting : 0), 0);
  $("#live-total").textContent = str(arr(data.in_ivr).length + waiting + arr(data.talking).length);

  const perLine = Object.entries(isObj(today.per_line) ? today.per_line : {}).sort((a, b) => num(b[1]) - num(a[1]));
  const lines = $("#per-line tbody");
  lines.replaceChildren(...perLine.map(([line, n]) => {
    const tr = el("tr", null, {"data-line": line});
    tr.append(el("td", line === "null" || !line ? "（未知 unknown）" : line), el("td", num(n), {class: "num"}));
    return tr;
  }));
  if (!perLine.length) lines.append(emptyRow(2, "今日暂无来电 no calls yet"));

  const perType = Object.entries(isObj(today.per_type) ? today.per_type : {}).sort((a, b) => num(b[1]) - num(a[1]));
  const types = $("#per-type tbody");
  types.replaceChildren(...perType.map(([type, n]) => {
    const tr = el("tr", null, {"data-type": type});
    tr.append(el("td", type), el("td", num(n), {class: "num"}));
    return tr;
  }));
  if (!perType.length) types.append(emptyRow(2, "今日暂无工单 no tickets yet"));
}

function renderLive(data) {
  const ivr = $("#in-ivr tbody");
  ivr.replaceChildren(...arr(data.in_ivr).filter(isObj).map((c) => {
    const tr = el("tr", null, {"data-uniqueid": str(c.uniqueid)});
    tr.append(el("td", str(c.line) || "—"), el("td", str(c.caller) || "—"), timer(c.seconds), callCell(c.uniqueid));
    return tr;
  }));
  if (!ivr.children.length) ivr.append(emptyRow(4, "无 none"));

  const talking = $("#talking tbody");
  talking.replaceChildren(...arr(data.talking).filter(isObj).map((c) => {
    const tr = el("tr", null, {"data-uniqueid": str(c.uniqueid), "data-agent": str(c.agent)});
    tr.append(el("td", str(c.agent) || "—"), el("td", str(c.queue) || "—"), timer(c.seconds), callCell(c.uniqueid));
    return tr;
  }));
  if (!talking.children.length) talking.append(emptyRow(4, "无 none"));

  const queues = Object.entries(isObj(data.queues) ? data.queues : {});
  const box = $("#queues");
  box.replaceChildren(...queues.map(([name, q]) => {
    q = isObj(q) ? q : {};
    const card = el("div", null, {class: "queue-card" + (num(q.waiting) ? " busy" : ""), "data-queue": name});
    const h = el("h3");
    h.append(el("span", name), el("span", `${num(q.waiting)} 人等待 waiting`));
    card.append(h);
    const longest = el("p", null, {class: "hint"});
    longest.append(document.createTextNode("最长等待 longest wait "));
    longest.append(el("b", duration(num(q.longest_wait_s)), {class: "ticking-text", "data-seconds": num(q.longest_wait_s)}));
    card.append(longest);
    const table = el("table");
    table.append(el("thead"));
    table.tHead.append(el("tr"));
    table.tHead.rows[0].append(el("th", "热线 Line"), el("th", "来电 Caller"), el("th", "等待 Wait", {class: "num"}));
    const body = el("tbody");
    for (const c of arr(q.calls).filter(isObj)) {
      const tr = el("tr", null, {"data-uniqueid": str(c.uniqueid)});
      tr.append(el("td", str(c.line) || "—"), el("td", str(c.caller) || "—"), timer(c.seconds));
      body.append(tr);
    }
    table.append(body);
    card.append(table);
    return card;
  }));
  $("#queues-empty").hidden = queues.some(([, q]) => isObj(q) && num(q.waiting) > 0);
}

// Callbacks: callers who chose to be called back keep their place; a supervisor may cancel one.
function renderCallbacks(data) {
  const body = $("#callbacks tbody");
  body.replaceChildren(...arr(data.callbacks).filter(isObj).map((c) => {
    const tr = el("tr", null, {"data-callback-id": str(c.id), "data-status": str(c.status)});
    const action = el("td");
    if (c.status === "waiting" || c.status === "dialling") {
      const button = el("button", "取消 Cancel", {type: "button", class: "secondary",
        "aria-label": `取消回拨 cancel callback ${str(c.id)}`});
      button.addEventListener("click", () => cancelCallback(c.id, button));
      action.append(button);
    }
    tr.append(el("td", str(c.queue)), el("td", str(c.number) || "—", {class: "number"}), timer(c.waiting_s),
      el("td", num(c.attempts), {class: "num"}), el("td", label(CALLBACK_STATUS_NAMES, c.status)),
      el("td", c.ticket_id ? `#${c.ticket_id}` : "—"), action);
    return tr;
  }));
  if (!body.children.length) body.append(emptyRow(7, "无待回拨 no callbacks waiting"));
}

async function cancelCallback(id, button) {
  button.disabled = true;
  try {
    await api("POST", `/api/supervisor/callbacks/${encodeURIComponent(id)}/cancel`);
    showStatus("ok", `回拨 #${id} 已取消 callback cancelled`);
  } catch (err) {
    showStatus("error", `无法取消回拨 cannot cancel callback #${id}: ${err.message}`);
    button.disabled = false;
  }
  poll();
}

async function poll() {
  clearTimeout(state.timer);
  if (state.leaving) return;
  let delay = POLL_MS;
  try {
    const data = await api("GET", "/api/supervisor/overview");
    state.fetchedAt = now();
    state.failures = 0;
    renderToday(data);
    renderLive(data);
    renderCallbacks(data);
    setConn("open", "实时 live");
    $("#updated").textContent = `更新于 updated ${clockText(new Date())}`;
    if ($("#status").className === "error") showStatus("", "");
    document.body.dataset.ready = "true";
  } catch (err) {
    if (err.status === 401) return;
    state.failures++;
    delay = Math.min(MAX_BACKOFF_MS, POLL_MS * 2 ** Math.min(state.failures, 3));
    setConn("closed", `连接中断 offline，${Math.round(delay / 1000)} 秒后重试`);
    showStatus("error", `无法获取实时数据 cannot load the overview: ${err.message}`);
  }
  state.timer = setTimeout(poll, delay);
}

async function start() {
  try {
    const me = await api("GET", "/api/me");
    state.csrf = me.csrf_token;
    state.user = me.user;
    $("#who").textContent = `${me.user.username}（${me.user.role}）`;
  } catch (err) {
    if (err.status !== 401) showStatus("error", `无法加载 cannot load: ${err.message}`);
    if (err.status === 401) return;
  }
  setInterval(tick, 1000);
  poll();
}

$("#logout").addEventListener("click", async () => {
  state.leaving = true;
  try { await api("POST", "/api/logout"); } catch (e) { /* going anyway */ }
  location.href = "/login?next=/supervisor";
});
document.addEventListener("visibilitychange", () => {  // a hidden tab catches up at once when shown again
  if (document.visibilityState === "visible" && !state.leaving) poll();
});
start();

trackStickyHeader();  // focus and jump links stop below the sticky header (desk.css: scroll-padding-top)
