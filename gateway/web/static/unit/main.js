// The handling unit's page (/unit): my tickets (new / accepted / overdue / handled), one ticket
// with its history, and the unit's actions (签收, 办结, progress note, 派单异议). Plain ES module
// over common.js and labels.js; state in one object, rendering from it. The list is polled.
import {$, arr, duration, el, fmtTime, isObj, latestWins, makeApi, num, problemsOf, redrawKeepingFocus, showStatus,
  str} from "../common.js";
import {CATEGORY_EN, DISPATCH_STATUS_NAMES, EVENT_KIND_NAMES, UNIT_LIST_NAMES, URGENCY_NAMES, label} from "../labels.js";

const POLL_MS = 15000;
const state = {csrf: "", user: null, filter: "all", items: [], open: null, fetchedAt: 0, leaving: false, timer: null};
const toLogin = () => { state.leaving = true; location.href = "/login?next=/unit"; };
const api = makeApi(state, {onUnauthorized: toLogin, refresh: loadMe});
const loads = latestWins();  // a filter's click and a poll may overlap: the latest one's list is drawn

async function loadMe() {
  const me = await api("GET", "/api/me");
  state.csrf = me.csrf_token;
  state.user = me.user;
  $("#who").textContent = `${me.user.username}（承办单位 unit ${str(me.user.unit_id)}）`;
}

function left(seconds, status) {
  if (!["sent", "accepted"].includes(status) || seconds === undefined || seconds === null) return "—";
  const s = num(seconds);
  return s < 0 ? `超期 overdue ${duration(-s)}` : duration(s);
}

// -- the list ---------------------------------------------------------------------------------------
function renderFilters() {
  const box = $("#filters");
  box.replaceChildren(...Object.entries(UNIT_LIST_NAMES).map(([key, name]) => {
    const b = el("button", name, {type: "button", "data-filter": key, "aria-pressed": String(state.filter === key)});
    b.addEventListener("click", () => { state.filter = key; renderFilters(); loadList(); });
    return b;
  }));
}

function renderList() {
  const body = $("#list tbody");
  redrawKeepingFocus(body, "data-dispatch", () => body.replaceChildren(...state.items.map((d) => {
    const t = isObj(d.ticket) ? d.ticket : {};
    const tr = el("tr", null, {"data-dispatch": d.id, class: (d.overdue ? "overdue" : "") +
      (state.open && state.open.dispatch.id === d.id ? " selected" : "")});
    const open = el("button", str(t.ticket_no) || `#${t.id}`, {type: "button", "aria-label": `打开工单 open ticket ${str(t.ticket_no)}`});
    open.addEventListener("click", () => openDispatch(d.id, {focus: true}));
    const first = el("td");
    first.append(open);
    if (t.urgency && t.urgency !== "normal") first.append(el("span", URGENCY_NAMES[t.urgency] || t.urgency, {class: `badge ${t.urgency}`}));
    tr.append(first, el("td", str(t.category) || "—"), el("td", fmtTime(d.due_at)),
      el("td", left(d.seconds_left, d.status), {class: "left"}),
      el("td", DISPATCH_STATUS_NAMES[d.status] || d.status));
    return tr;
  })));
  if (!state.items.length) {
    const tr = el("tr");
    tr.append(el("td", "没有工单 no tickets", {colspan: 5, class: "empty"}));
    body.append(tr);
  }
}

async function loadList() {
  clearTimeout(state.timer);
  if (state.leaving) return;
  const mine = loads.next(), filter = state.filter;
  $("#list").setAttribute("aria-busy", "true");
  try {
    const data = await api("GET", `/api/unit/dispatches?state=${encodeURIComponent(filter)}`);
    if (!loads.isLatest(mine)) return;  // a newer load (another filter, or a poll) is under way or done
    state.items = arr(data.items).filter(isObj);
    $("#unit-name").textContent = `${str(data.unit_name)}（${str(data.unit_id)}）`;
    renderList();
    $("#list").dataset.filter = filter;  // the list shown is this filter's
    document.body.dataset.ready = "true";
  } catch (err) {
    if (err.status === 401 || !loads.isLatest(mine)) return;
    showStatus("error", `无法加载工单列表 cannot load the list: ${err.message}`);
  }
  $("#list").setAttribute("aria-busy", "false");
  state.timer = setTimeout(loadList, POLL_MS);
}

// -- one ticket -------------------------------------------------------------------------------------
function fact(dl, name, value) {
  dl.append(el("dt", name), el("dd", value === null || value === undefined || value === "" ? "—" : String(value)));
}

function renderOpen() {
  const o = state.open;
  $("#detail-empty").hidden = Boolean(o);
  $("#detail-body").hidden = !o;
  if (!o) return;
  const d = o.dispatch, t = o.ticket;
  const dl = $("#facts");
  dl.replaceChildren();
  fact(dl, "工单号 Ticket", t.ticket_no);
  fact(dl, "类型 Type", t.category ? `${t.category} ${CATEGORY_EN[t.category] || ""}` : "");
  fact(dl, "紧急程度 Urgency", label(URGENCY_NAMES, t.urgency || "normal"));
  fact(dl, "地点 Place", t.place);
  fact(dl, "诉求 Summary", t.summary);
  fact(dl, "来电人 Caller", t.confidential ? str(t.caller) : (t.caller_number || "—"));
  fact(dl, "派单状态 Status", label(DISPATCH_STATUS_NAMES, d.status));
  fact(dl, "办理时限 Due", `${fmtTime(d.due_at)}（${left(d.seconds_left, d.status)}）`);
  if (d.result) fact(dl, "办结答复 Result", d.result);
  if (d.objection) fact(dl, "异议理由 Objection", d.objection);
  $("#transcript").textContent = str(t.transcript) || "（无转写 no transcript）";
  const co = arr(o.co_units);
  $("#co-units").textContent = co.length ? "共同承办 also dispatched to: " +
    co.map((u) => `${u.unit_name}（${DISPATCH_STATUS_NAMES[u.status] || u.status}）`).join("、") : "";
  $("#accept-box").hidden = d.status !== "sent";
  $("#reply-form").hidden = d.status !== "accepted";
  $("#note-form").hidden = !["sent", "accepted"].includes(d.status);
  $("#object-form").hidden = !["sent", "accepted"].includes(d.status);
  $("#actions").hidden = !["sent", "accepted"].includes(d.status);
  $("#events").replaceChildren(...arr(o.events).filter(isObj).map((e) => {
    const kind = EVENT_KIND_NAMES[e.kind] || e.kind;
    const li = el("li", `${fmtTime(e.at)} ${kind}${e.public ? "" : "（内部 internal）"}：${str(e.text)}`,
      {class: e.public ? "" : (["reminder", "overdue"].includes(e.kind) ? "alert internal" : "internal"),
        "data-kind": e.kind});
    return li;
  }));
  for (const tr of document.querySelectorAll("#list tbody tr")) {
    tr.classList.toggle("selected", Number(tr.dataset.dispatch) === d.id);
  }
}

async function openDispatch(id, {focus = false} = {}) {
  try {
    state.open = await api("GET", `/api/unit/dispatches/${id}`);
    clearErrors();
    renderOpen();
    if (focus) $("#detail").focus();
  } catch (err) {
    showStatus("error", `无法打开工单 cannot open it: ${err.message}`);
  }
}

// -- errors: a summary listing every problem, each linked to its field ----------------------------------
function clearErrors() {
  $("#error-summary").replaceChildren();
  for (const id of ["reply-result", "note-text", "object-reason"]) {
    $(`#${id}`).removeAttribute("aria-invalid");
    $(`#${id}-error`).textContent = "";
  }
}

function showErrors(problems) {
  clearErrors();
  const box = $("#error-summary");
  box.append(el("p", `未提交：请修改以下 ${problems.length} 处。Not sent: ${problems.length} problem(s).`));
  const ul = el("ul");
  for (const p of problems) {
    const li = el("li");
    if (p.field) {
      const a = el("a", p.message, {href: `#${p.field}`});
      a.addEventListener("click", (ev) => { ev.preventDefault(); $(`#${p.field}`).focus(); });
      li.append(a);
      $(`#${p.field}`).setAttribute("aria-invalid", "true");
      $(`#${p.field}-error`).textContent = p.message;
    } else {
      li.textContent = p.message;
    }
    ul.append(li);
  }
  box.append(ul);
  box.focus();
}

async function act(action, body, fieldId) {
  const d = state.open && state.open.dispatch;
  if (!d) return;
  try {
    state.open = await api("POST", `/api/unit/dispatches/${d.id}/${action}`, body);
    clearErrors();
    renderOpen();
    showStatus("ok", {accept: "已签收 accepted", reply: "已办结 replied: handled", notes: "已添加进展 note added",
      object: "已提出异议，转热线审核 objection sent to the hotline"}[action]);
    for (const f of ["reply-result", "note-text", "object-reason"]) $(`#${f}`).value = "";
    loadList();
  } catch (err) {
    if (err.status === 400 && problemsOf(err.data).length) {
      showErrors(problemsOf(err.data).map((p) => ({field: fieldId, message: `${str(p.message_zh)} ${str(p.message)}`.trim()})));
    } else {
      showStatus("error", err.status === 409 ? `未完成：${err.message}（已刷新 reloaded）` : `未完成 not done: ${err.message}`);
      if (err.status === 409 || err.status === 404) { openDispatch(d.id); loadList(); }
    }
  }
}

function required(fieldId, zh, en) {
  const value = $(`#${fieldId}`).value.trim();
  if (!value) showErrors([{field: fieldId, message: `请填写${zh} — ${en} is required`}]);
  return value;
}

$("#accept").addEventListener("click", () => act("accept", {}));
$("#reply-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const result = required("reply-result", "办结答复", "the result");
  if (result) act("reply", {result}, "reply-result");
});
$("#note-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const text = required("note-text", "进展内容", "the note");
  if (text) act("notes", {text, public: $("#note-public").checked}, "note-text");
});
$("#object-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const reason = required("object-reason", "异议理由", "the reason");
  if (reason) act("object", {reason}, "object-reason");
});
$("#logout").addEventListener("click", async () => {
  state.leaving = true;
  try { await api("POST", "/api/logout"); } catch (e) { /* going anyway */ }
  location.href = "/login?next=/unit";
});

async function start() {
  try {
    await loadMe();
  } catch (err) {
    if (err.status !== 401) showStatus("error", `无法加载 cannot load: ${err.message}`);
    return;
  }
  renderFilters();
  renderOpen();
  loadList();
}
start();
