// The agent desk (/desk): screen pops over a WebSocket, the ticket with its suggestions,
// the agent's decision. Plain JS, no build step; served as /static/desk.js (CSP script-src 'self').
//
// Nothing typed is lost: every change goes to localStorage at once and to the server
// (PUT /api/desk/tickets/{id}/draft) ~800 ms later; a reloaded page takes whichever copy
// is newer. The WebSocket replays what this tab missed (?since=<last seq>, kept in
// sessionStorage) and reconnects by itself with a 1 s -> 10 s backoff.
"use strict";
(() => {
const CATEGORIES = ["咨询", "建议", "举报", "投诉", "求助"];
const URGENCY_NAMES = {normal: "一般", urgent: "加急", emergency: "紧急"};
const MODE_NAMES = {direct: "直派", dual: "双派"};
const MERGE_NAMES = {primary: "主号", retired: "整体并入", dual_number: "双号并行", sub_centre: "设分中心"};
const STATUS_NAMES = {draft: "待处理", submitted: "已派单", answered: "已答复办结"};
const TS_NAMES = {none: "无转写 no transcript", pending: "转写中 pending", done: "已转写 done",
  failed: "转写失败 failed"};
const KIND_NAMES = {street: "街道", township: "乡镇", district: "区政府", city_department: "市级部门", police: "公安",
  enterprise: "企事业"};
const SAVE_DELAY = 800;
const RETRY_SAVE = 5000;
const LOCAL_KEEP_MS = 7 * 24 * 3600 * 1000;
const TZ = "Asia/Shanghai";

const state = {
  csrf: "", user: null,
  tickets: new Map(),  // id -> entry
  order: [],           // ids, newest first
  selected: null,
  ws: null, wsRetry: 0, wsTimer: null, countdown: null,
  lastSeq: 0, helloSeq: 0, connectedOnce: false, leaving: false,
};
const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

function el(tag, text, attrs) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v; else e.setAttribute(k, v === true ? "" : String(v));
  }
  return e;
}
function badge(text, cls) { return el("span", text, {class: "badge " + (cls || "")}); }
function isObj(x) { return x !== null && typeof x === "object" && !Array.isArray(x); }
function arr(x) { return Array.isArray(x) ? x : []; }
function str(x) { return typeof x === "string" ? x : (x === null || x === undefined ? "" : String(x)); }
function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (isNaN(d)) return String(iso);
  try {
    return new Intl.DateTimeFormat("sv-SE", {timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit"}).format(d);
  } catch (e) { return String(iso); }
}
function clock(ms) { return fmtTime(new Date(ms).toISOString()).slice(11); }

// -- status line and notices -----------------------------------------------------------------
function showStatus(kind, message) {
  const box = $("#status");
  box.className = kind;
  box.textContent = message;
}
function notice(text, kind) {
  const li = el("li", `${clock(Date.now())} ${text}`, {class: kind || ""});
  const list = $("#notices");
  list.prepend(li);
  while (list.children.length > 20) list.lastChild.remove();
}

// -- storage (per user) ------------------------------------------------------------------------
function key(kind, id) { return `desk:${state.user ? state.user.username : "-"}:${kind}${id === undefined ? "" : ":" + id}`; }
function store(area, k, value) {
  try {
    if (value === null || value === undefined) area.removeItem(k); else area.setItem(k, JSON.stringify(value));
  } catch (e) { /* full or disabled storage: the server copy remains */ }
}
function load(area, k) {
  try { const raw = area.getItem(k); return raw === null ? null : JSON.parse(raw); } catch (e) { return null; }
}
function localDraft(id) { const v = load(localStorage, key("draft", id)); return isObj(v) && isObj(v.data) ? v : null; }
function dropLocalDraft(id) { store(localStorage, key("draft", id), null); }
function forgetOldDrafts() {
  const prefix = key("draft") + ":";
  try {
    for (let i = localStorage.length - 1; i >= 0; i--) {
      const k = localStorage.key(i);
      if (!k || !k.startsWith(prefix)) continue;
      const v = load(localStorage, k);
      if (!isObj(v) || !(Date.now() - Number(v.saved_at || 0) < LOCAL_KEEP_MS)) localStorage.removeItem(k);
    }
  } catch (e) { /* ignore */ }
}

// -- API ----------------------------------------------------------------------------------------
class ApiError extends Error {}
function toLogin() {
  state.leaving = true;
  location.href = "/login?next=/desk";
}
async function api(method, path, body, {retried = false, keepalive = false} = {}) {
  const opts = {method, headers: {Accept: "application/json"}, credentials: "same-origin", cache: "no-store", keepalive};
  if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
  if (method !== "GET") opts.headers["X-CSRF-Token"] = state.csrf;
  let resp;
  try {
    resp = await fetch(path, opts);
  } catch (exc) {
    const err = new ApiError("网络错误，无法连接网关 network error: the gateway is unreachable");
    err.status = 0; err.data = null;
    throw err;
  }
  if (resp.status === 401) {
    toLogin();
    const err = new ApiError("登录已过期 session expired, please log in");
    err.status = 401; err.data = null;
    throw err;
  }
  const ctype = resp.headers.get("Content-Type") || "";
  let data;
  try { data = ctype.includes("json") ? await resp.json() : {message: await resp.text()}; } catch (e) { data = {}; }
  if (resp.status === 403 && data && data.error === "csrf" && !retried) {  // logged in again elsewhere
    await loadMe();
    return api(method, path, body, {retried: true, keepalive});
  }
  if (!resp.ok) {
    const err = new ApiError((data && data.message) || `${resp.status} ${resp.statusText}`);
    err.status = resp.status; err.data = data || {};
    throw err;
  }
  return data;
}
async function loadMe() {
  const me = await api("GET", "/api/me");
  state.csrf = me.csrf_token;
  state.user = me.user;
  const agent = me.user.agent_id ? ` · 坐席 agent ${me.user.agent_id}` : " · 未绑定坐席号 no agent id";
  $("#who").textContent = `${me.user.username}（${me.user.role}）${agent}`;
  $("#to-supervisor").hidden = !["supervisor", "admin"].includes(me.user.role);
  return me;
}

// -- the draft of one ticket: what the agent typed ----------------------------------------------
function cleanUnits(units) {
  return arr(units).filter((u) => isObj(u) && typeof u.name === "string")
    .map((u) => ({id: u.id ? str(u.id) : null, name: str(u.name), kind: u.kind ? str(u.kind) : null}));
}
function sanitize(data) {  // a draft from storage or the server: only known fields with sane types
  if (!isObj(data)) return {};
  const out = {};
  for (const k of ["category", "urgency", "place", "summary", "dispatch_mode", "answer", "linked_ticket_id"]) {
    if (typeof data[k] === "string") out[k] = data[k];
    else if (typeof data[k] === "number" && k === "linked_ticket_id") out[k] = String(data[k]);
  }
  if (Array.isArray(data.units)) out.units = cleanUnits(data.units);
  if (typeof data.saved_at === "number") out.saved_at = data.saved_at;
  return out;
}
function suggestionsOf(view) {
  const s = view && view.suggestions;
  return isObj(s) && s.available !== false ? s : {};
}
function prefill(view) {
  const s = suggestionsOf(view);
  const sugType = isObj(s.request_type) && CATEGORIES.includes(s.request_type.category) ? s.request_type.category : "";
  const sugUrgency = isObj(s.urgency) && URGENCY_NAMES[s.urgency.level] ? s.urgency.level : "";
  const firstUnits = arr(s.units).find((u) => isObj(u) && arr(u.units).some(isObj));
  const firstAnswer = arr(s.answers).find((a) => isObj(a) && typeof a.answer === "string");
  const decided = view.status !== "draft";
  return {
    category: view.category && (decided || !sugType) ? view.category : (sugType || str(view.category)),
    urgency: view.urgency || sugUrgency || (view.emergency ? "emergency" : "normal"),
    place: view.place || (isObj(s.place) ? str(s.place.label) : ""),
    summary: str(view.summary),
    units: arr(view.units).length || decided ? cleanUnits(view.units) : cleanUnits(firstUnits ? firstUnits.units : []),
    dispatch_mode: view.dispatch_mode || (firstUnits && MODE_NAMES[firstUnits.mode] ? firstUnits.mode : "direct"),
    linked_ticket_id: view.linked_ticket_id ? String(view.linked_ticket_id) : "",
    answer: view.answer || (!decided && firstAnswer ? firstAnswer.answer : ""),
  };
}
function startingForm(view) {
  const base = prefill(view);
  if (view.status !== "draft") return base;
  const server = sanitize(view.saved_draft);
  const local = localDraft(view.id);
  const localData = local ? sanitize(local.data) : null;
  let typed = null;
  if (localData && (!view.saved_draft || Number(localData.saved_at || 0) > Number(server.saved_at || 0))) typed = localData;
  else if (view.saved_draft) typed = server;
  return typed ? Object.assign(base, typed) : base;
}

// -- tickets: the list on the left ----------------------------------------------------------
function addTicket(view, {fresh = false, select = false} = {}) {
  let entry = state.tickets.get(view.id);
  if (!entry) {
    entry = {id: view.id, view, form: startingForm(view), status: view.status === "draft" ? "open" : "done",
             fresh, saveTimer: null, saving: null, savedAt: 0, message: ""};
    state.tickets.set(view.id, entry);
    state.order.unshift(view.id);
    state.order.sort((a, b) => b - a);
  } else {
    const changed = view.version_id !== entry.view.version_id || view.status !== entry.view.status;
    entry.view = Object.assign({}, view, {saved_draft: entry.view.saved_draft});
    if (view.status !== "draft" && entry.status === "open") {
      entry.status = "taken";
      entry.message = `工单已由 ${view.decided_by || "他人"} 于 ${fmtTime(view.decided_at)} 处理（${view.status}）`;
    }
    if (fresh) entry.fresh = true;
    if (changed && state.selected === entry.id) renderInfo(entry);
  }
  renderList();
  if (select) selectTicket(entry.id);
  return entry;
}
function listItem(entry) {
  const v = entry.view;
  const li = el("li", null, {"data-ticket-id": v.id, "data-status": entry.status,
    class: [entry.fresh ? "fresh" : "", state.selected === v.id ? "selected" : "", v.emergency ? "emergency" : "",
      entry.status === "taken" ? "taken" : ""].filter(Boolean).join(" ")});
  const l1 = el("div", null, {class: "line1"});
  l1.append(el("span", `#${v.id} ${str(v.line_number)} ${str(v.line_name)}`.trim()));
  const b = el("span");
  if (entry.fresh) b.append(badge("新 new", "new"));
  if (v.emergency) b.append(badge("紧急", "emergency"));
  if (v.confidential) b.append(badge("保密", "confidential"));
  if (entry.status === "taken") b.append(badge("已被处理 taken", "taken"));
  else if (entry.status === "done") b.append(badge(STATUS_NAMES[v.status] || v.status, "status-" + v.status));
  l1.append(b);
  li.append(l1);
  const what = [entry.form.category || v.category || "未分类", fmtTime(v.created_at).slice(11),
    entry.form.summary || v.transcript || ""].filter(Boolean).join(" · ");
  li.append(el("div", what, {class: "line2"}));
  li.addEventListener("click", () => selectTicket(v.id));
  return li;
}
function renderList() {
  const open = $("#open-list"), done = $("#done-list");
  const openItems = [], doneItems = [];
  for (const id of state.order) {
    const entry = state.tickets.get(id);
    (entry.status === "open" ? openItems : doneItems).push(listItem(entry));
  }
  open.replaceChildren(...openItems);
  done.replaceChildren(...doneItems);
  $("#open-count").textContent = String(openItems.length);
  $("#open-empty").hidden = openItems.length > 0;
}
function selectTicket(id) {
  const entry = state.tickets.get(id);
  if (!entry) return;
  state.selected = id;
  store(sessionStorage, key("selected"), id);
  renderList();
  renderDetail(entry);
  if (entry.fresh) {  // the highlight fades: a fresh pop stays marked in the list until looked at for a while
    setTimeout(() => { entry.fresh = false; renderList(); const a = $("#detail .ticket"); if (a) a.classList.remove("fresh"); },
      8000);
  }
}

// -- one ticket: the detail pane -----------------------------------------------------------
function renderDetail(entry) {
  const detail = $("#detail");
  const article = $("#t-ticket").content.firstElementChild.cloneNode(true);
  article.dataset.ticketId = entry.id;
  if (entry.fresh) article.classList.add("fresh");
  detail.replaceChildren(article);
  renderInfo(entry);
  const form = $("form.decision", article);
  fillForm(form, entry.form);
  wireForm(form, entry);
  renderState(entry);
}

function highlight(text, words) {
  // The emergency words inside the transcript, in red. Recognisers split CJK words with spaces,
  // so "着火" also matches "着 火".
  const frag = document.createDocumentFragment();
  const list = arr(words).map(str).filter((w) => w.trim()).sort((a, b) => b.length - a.length);
  if (!list.length) { frag.append(document.createTextNode(text)); return frag; }
  const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const re = new RegExp(list.map((w) => Array.from(w.replace(/\s+/g, "")).map(esc).join("\\s*")).join("|"), "g");
  let last = 0, m;
  while ((m = re.exec(text)) !== null) {
    if (!m[0]) { re.lastIndex++; continue; }
    frag.append(document.createTextNode(text.slice(last, m.index)));
    frag.append(el("mark", m[0], {class: "emergency-word"}));
    last = m.index + m[0].length;
  }
  frag.append(document.createTextNode(text.slice(last)));
  return frag;
}

function fact(dl, label, value, extra) {
  dl.append(el("dt", label));
  const dd = el("dd", value === null || value === undefined || value === "" ? "—" : value);
  for (const x of extra || []) if (x) dd.append(x);
  dl.append(dd);
  return dd;
}

function stepText(step) {
  if (!isObj(step)) return str(step);
  const parts = [];
  if (step.label) parts.push(step.label);
  if (step.key !== undefined) parts.push(step.key ? `按 ${step.key}` : "未按键");
  if (step.said) parts.push(`说「${step.said}」`);
  if (step.via === "speech" && !step.said) parts.push("语音 speech");
  if (step.queue) parts.push(`→ 队列 ${step.queue}`);
  if (step.flow) parts.push(`→ 流程 ${step.flow}`);
  if (Array.isArray(step.words) && step.words.length) parts.push(`听到：${step.words.join("、")}`);
  if (Array.isArray(step.broadcasts) && step.broadcasts.length) parts.push(`播报 ${step.broadcasts.join(", ")}`);
  if (step.duration_ms) parts.push(`${(step.duration_ms / 1000).toFixed(1)} 秒`);
  if (step.result && step.result !== "ok") parts.push(`(${step.result})`);
  return parts.join(" ");
}

function renderInfo(entry) {
  const article = $(`#detail .ticket[data-ticket-id="${entry.id}"]`);
  if (!article) return;
  const v = entry.view;
  $(".title", article).textContent = `工单 #${v.id} · ${str(v.line_number)} ${str(v.line_name)}`.trim();
  const badges = $(".badges", article);
  badges.replaceChildren(badge(STATUS_NAMES[v.status] || v.status, "status-" + v.status));
  if (v.confidential) badges.append(badge("保密 confidential", "confidential"));
  if (v.emergency) badges.append(badge("紧急 emergency", "emergency"));
  if (v.language && v.language !== "cmn" && v.language !== "zh") badges.append(badge(`语言 ${v.language}`));

  const banner = $(".emergency-banner", article);
  const words = arr(v.emergency_words).map(str).filter(Boolean);
  banner.hidden = !(v.emergency || words.length);
  banner.textContent = `⚠ 紧急情况 EMERGENCY${words.length ? "：听到「" + words.join("」「") + "」" : ""}` +
    " — 请确认是否转 110/119/120/122 紧急联动";

  const dl = $("dl.facts", article);
  dl.replaceChildren();
  const caller = v.caller_number ? str(v.caller_number)
    : v.caller_id_raw ? `无效号码 not a valid number: ${str(v.caller_id_raw)}` : "未知 unknown";
  fact(dl, "来电号码 Caller", caller, [v.caller_number_masked ? badge("已遮蔽 masked", "masked") : null,
    v.confidential ? badge("保密：对承办单位隐藏身份", "confidential") : null]).classList.add("caller");
  const line = `${str(v.line_number)} ${str(v.line_name)}`.trim();
  fact(dl, "热线 Line", line, [v.merge_mode ? badge(`${MERGE_NAMES[v.merge_mode] || ""} ${v.merge_mode}`.trim()) : null])
    .classList.add("line");
  fact(dl, "所拨号码 Dialled", v.dialled_number);
  fact(dl, "按键类型 IVR type", v.category || "未选择").classList.add("ivr-category");
  fact(dl, "队列 Queue", v.queue);
  fact(dl, "归口部门 Department", v.department || v.handled_by);
  fact(dl, "来电时间 Received", fmtTime(v.created_at));
  const call = isObj(v.call) ? v.call : {};
  fact(dl, "接听坐席 Agent", call.agent);
  fact(dl, "通话 Call", call.uniqueid || v.uniqueid).classList.add("code");
  if (v.overflow_queue) fact(dl, "溢出 Overflow", `${v.overflow_queue} (${str(v.overflow_reason)})`);
  if (v.status !== "draft") fact(dl, "处理 Decided", `${str(v.decided_by)} ${fmtTime(v.decided_at)}`);

  const ts = v.transcript_status || "none";
  const tsBox = $(".transcript-status", article);
  tsBox.className = `transcript-status ts ts-${ts}`;
  tsBox.textContent = TS_NAMES[ts] || ts;
  const tp = $(".transcript", article);
  tp.replaceChildren();
  if (v.transcript) {
    tp.classList.remove("empty");
    tp.append(highlight(str(v.transcript), words));
  } else {
    tp.classList.add("empty");
    tp.textContent = v.spoken_withheld ? "非本人接听的来电：通话内容和录音仅限接听坐席和班长。Not your call: " +
        "only the agent who answered and supervisors see what the caller said."
      : ts === "pending" ? "录音正在转写，请先听录音。Transcript pending: listen to the recording."
      : ts === "failed" ? `转写失败 ${str(v.transcript_error)}` : "（无文字 no text）";
  }
  const audio = $("audio.recording", article);
  if (v.recording_url) {
    if (audio.getAttribute("src") !== v.recording_url) audio.setAttribute("src", v.recording_url);
    audio.hidden = false;
  } else {
    audio.removeAttribute("src");
    audio.hidden = true;
  }

  const ol = $("ol.menu-path", article);
  ol.replaceChildren();
  for (const step of arr(v.menu_path)) {
    const li = el("li", null, {"data-node": isObj(step) ? str(step.node) : ""});
    if (isObj(step) && step.node === "emergency_guard") li.classList.add("guard");
    li.append(el("span", stepText(step)));
    li.append(el("span", isObj(step) ? str(step.node) : "", {class: "code"}));
    ol.append(li);
  }
  if (!ol.children.length) ol.append(el("li", "（无 none）"));

  renderSuggestions($(".suggest-body", article), v.suggestions, entry);
}

// -- suggestions ---------------------------------------------------------------------------
function useButton(label, entry, apply) {
  const b = el("button", label, {type: "button", class: "small use"});
  b.disabled = entry.status !== "open";
  b.addEventListener("click", () => {
    apply(entry.form);
    const form = $("#detail form.decision");
    if (form && state.selected === entry.id) fillForm(form, entry.form);
    persist(entry);
  });
  return b;
}
function sgBox(kind, title, button) {
  const box = el("div", null, {class: "sg", "data-kind": kind});
  const h = el("h4");
  h.append(el("span", title));
  if (button) h.append(button);
  box.append(h);
  return box;
}
function reason(text) { return el("p", text, {class: "reason"}); }
function pct(x) { return typeof x === "number" ? el("span", `${Math.round(x * 100)}%`, {class: "conf"}) : null; }
function unitNames(units) { return arr(units).filter(isObj).map((u) => str(u.name)).filter(Boolean).join("、"); }

const RENDERERS = {
  request_type(s, entry) {
    if (!isObj(s)) throw new Error("shape");
    const box = sgBox("request_type", `诉求类型 Type：${s.category || "待判断"}`,
      CATEGORIES.includes(s.category) ? useButton("采用 use", entry, (f) => { f.category = s.category; }) : null);
    const c = pct(s.confidence); if (c) $("h4 span", box).append(c);
    box.append(reason(str(s.reason)));
    const alt = arr(s.alternatives).filter(isObj);
    if (alt.length) box.append(reason("其他可能 also: " + alt.map((a) => `${str(a.category)}「${arr(a.matched).join("」「")}」`).join("；")));
    return box;
  },
  urgency(s, entry) {
    if (!isObj(s)) throw new Error("shape");
    const box = sgBox("urgency", `紧急程度 Urgency：${URGENCY_NAMES[s.level] || str(s.level)} ${str(s.level)}`,
      URGENCY_NAMES[s.level] ? useButton("采用 use", entry, (f) => { f.urgency = s.level; }) : null);
    if (s.level === "emergency") box.classList.add("emergency");
    box.append(reason(str(s.reason)));
    return box;
  },
  place(s, entry) {
    if (!isObj(s)) throw new Error("shape");
    const box = sgBox("place", `地点 Place：${str(s.label)}`,
      s.label ? useButton("填入 use", entry, (f) => { f.place = str(s.label); }) : null);
    const where = [isObj(s.street) ? s.street.name : null, isObj(s.district) ? s.district.name : null].filter(Boolean);
    box.append(reason(`说了「${arr(s.matched).join("」「")}」${where.length ? " → " + where.join("，") : ""}`));
    return box;
  },
  escalations(list) {
    if (!Array.isArray(list)) throw new Error("shape");
    if (!list.length) return null;
    const box = sgBox("escalations", "突发/群体/极端 Escalation");
    for (const e of list.filter(isObj)) box.append(el("div", `${str(e.label)}（${str(e.kind)}）：「${arr(e.matched).join("」「")}」`,
      {class: "item"}));
    return box;
  },
  units(list, entry) {
    if (!Array.isArray(list)) throw new Error("shape");
    if (!list.length) return null;
    const box = sgBox("units", "承办单位 Handling units");
    for (const s of list.filter(isObj)) {
      const item = el("div", null, {class: "item", "data-source": str(s.source)});
      const head = el("div");
      head.append(el("b", `${str(s.mode_label || MODE_NAMES[s.mode] || s.mode)} ${str(s.mode)}：`));
      head.append(document.createTextNode(unitNames(s.units) || "（待确认 to be named）"));
      const c = pct(s.confidence); if (c) head.append(c);
      const units = cleanUnits(s.units);
      if (units.length) {
        head.append(document.createTextNode(" "));
        head.append(useButton("采用 use", entry, (f) => {
          f.units = units.map((u) => Object.assign({}, u));
          if (MODE_NAMES[s.mode]) f.dispatch_mode = s.mode;
        }));
      }
      item.append(head);
      item.append(reason(str(s.reason)));
      if (arr(s.missing).length) item.append(reason(`还需确认 still to name：${arr(s.missing).join("、")}`));
      box.append(item);
    }
    return box;
  },
  answers(list, entry) {
    if (!Array.isArray(list)) throw new Error("shape");
    if (!list.length) return null;
    const box = sgBox("answers", "知识库答复 Knowledge answers");
    for (const a of list.filter(isObj)) {
      const item = el("div", null, {class: "item", "data-answer-id": str(a.id)});
      const head = el("div");
      head.append(el("b", str(a.title)));
      head.append(document.createTextNode(" "));
      if (typeof a.answer === "string") head.append(useButton("用作答复 use as answer", entry, (f) => { f.answer = a.answer; }));
      item.append(head);
      item.append(el("p", str(a.answer), {class: "answer-text"}));
      item.append(reason([a.reason, a.source ? `来源 ${a.source}` : "", a.updated ? `更新 ${a.updated}` : ""]
        .filter(Boolean).join(" · ")));
      box.append(item);
    }
    return box;
  },
  earlier(list, entry) { return history("earlier", "来电人历史工单 Caller's earlier tickets", list, entry); },
  similar_open(list, entry) { return history("similar_open", "相似在办工单 Similar open tickets", list, entry); },
  notes(list) {
    if (!Array.isArray(list)) throw new Error("shape");
    if (!list.length) return null;
    const box = sgBox("notes", "提示 Notes");
    const ul = el("ul", null, {class: "notes"});
    for (const n of list) ul.append(el("li", str(n)));
    box.append(ul);
    return box;
  },
};
function history(kind, title, list, entry) {
  if (!Array.isArray(list)) throw new Error("shape");
  if (!list.length) return null;
  const box = sgBox(kind, title);
  for (const h of list.filter(isObj)) {
    const item = el("div", null, {class: "item", "data-linked-id": str(h.ticket_id)});
    const head = el("div");
    head.append(el("b", `#${str(h.ticket_id)}`));
    head.append(document.createTextNode(` ${str(h.category || "未分类")} · ${STATUS_NAMES[h.status] || str(h.status)}` +
      ` · ${fmtTime(h.created_at).slice(0, 10)} `));
    if (h.same_demand) head.append(badge("可能同一诉求 same demand", "urgent"));
    const id = Number(h.ticket_id);
    if (Number.isInteger(id) && id > 0 && id !== entry.id) {
      head.append(document.createTextNode(" "));
      head.append(useButton("关联 link", entry, (f) => { f.linked_ticket_id = String(id); }));
    }
    item.append(head);
    item.append(el("p", h.snippet === null ? "（其他来电人的保密工单，不显示内容 confidential）" : str(h.snippet),
      {class: "answer-text"}));
    item.append(reason(str(h.reason)));
    box.append(item);
  }
  return box;
}
function generic(k, value) {  // a suggestion this page does not know yet: shown as it came
  const box = sgBox(k, k);
  box.classList.add("generic");
  let text;
  try { text = typeof value === "string" ? value : JSON.stringify(value, null, 2); } catch (e) { text = String(value); }
  box.append(el("pre", text));
  return box;
}
function renderSuggestions(box, sg, entry) {
  box.replaceChildren();
  if (!isObj(sg)) { box.append(el("p", "暂无建议 no suggestions", {class: "off"})); return; }
  if (sg.available === false) {
    box.append(el("p", `建议未启用 suggestions off${sg.reason ? "：" + str(sg.reason) : ""}`, {class: "off"}));
    return;
  }
  let shown = 0;
  for (const [k, render] of Object.entries(RENDERERS)) {
    if (!(k in sg) || sg[k] === null || sg[k] === undefined) continue;
    let part;
    try { part = render(sg[k], entry); } catch (e) { part = generic(k, sg[k]); }
    if (part) { box.append(part); shown++; }
  }
  for (const [k, value] of Object.entries(sg)) {
    if (k in RENDERERS || k === "available" || k === "catalogue_version" || value === null) continue;
    if (Array.isArray(value) && !value.length) continue;
    box.append(generic(k, value)); shown++;
  }
  if (!shown) box.append(el("p", "没有可用的建议 nothing to suggest", {class: "off"}));
  if (sg.catalogue_version) box.append(el("p", `职责目录 catalogue ${str(sg.catalogue_version)}`, {class: "hint"}));
}

// -- the decision form ---------------------------------------------------------------------
function unitRow(unit) {
  const row = $("#t-unit").content.firstElementChild.cloneNode(true);
  $(".unit-name", row).value = str(unit.name);
  const kind = $(".unit-kind", row);
  if (unit.kind && !Array.from(kind.options).some((o) => o.value === unit.kind)) {
    kind.append(el("option", unit.kind, {value: unit.kind}));
  }
  kind.value = unit.kind || "";
  if (unit.id) row.dataset.unitId = unit.id;
  return row;
}
function fillForm(form, data) {
  form.elements.namedItem("category").value = CATEGORIES.includes(data.category) ? data.category : "";
  form.elements.namedItem("urgency").value = URGENCY_NAMES[data.urgency] ? data.urgency : "normal";
  form.elements.namedItem("place").value = str(data.place);
  form.elements.namedItem("summary").value = str(data.summary);
  form.elements.namedItem("linked_ticket_id").value = str(data.linked_ticket_id);
  form.elements.namedItem("answer").value = str(data.answer);
  for (const r of $$('input[name="dispatch_mode"]', form)) r.checked = r.value === (data.dispatch_mode || "direct");
  $(".units", form).replaceChildren(...arr(data.units).map(unitRow));
}
function readForm(form) {
  const mode = $('input[name="dispatch_mode"]:checked', form);
  return {
    category: form.elements.namedItem("category").value,
    urgency: form.elements.namedItem("urgency").value,
    place: form.elements.namedItem("place").value,
    summary: form.elements.namedItem("summary").value,
    units: $$(".unit-row", form).map((row) => ({id: row.dataset.unitId || null, name: $(".unit-name", row).value,
      kind: $(".unit-kind", row).value || null})),
    dispatch_mode: mode ? mode.value : "direct",
    linked_ticket_id: form.elements.namedItem("linked_ticket_id").value,
    answer: form.elements.namedItem("answer").value,
  };
}
function wireForm(form, entry) {
  const changed = (ev) => {
    if (ev && ev.target && ev.target.classList.contains("unit-name")) delete ev.target.closest(".unit-row").dataset.unitId;
    if (ev && ev.target) { ev.target.removeAttribute("aria-invalid"); clearFieldError(form, fieldOf(ev.target)); }
    entry.form = Object.assign(readForm(form), {saved_at: entry.form.saved_at});
    persist(entry);
  };
  form.addEventListener("input", changed);
  form.addEventListener("change", changed);
  $(".add-unit", form).addEventListener("click", () => {
    const row = unitRow({name: "", kind: null});
    $(".units", form).append(row);
    $(".unit-name", row).focus();
    changed();
  });
  $(".units", form).addEventListener("click", (ev) => {
    const b = ev.target.closest(".remove-unit");
    if (!b) return;
    b.closest(".unit-row").remove();
    changed();
  });
  form.addEventListener("submit", (ev) => { ev.preventDefault(); decide(entry, "submit"); });
  $(".close-answered", form).addEventListener("click", () => decide(entry, "close"));
  $(".preview", form).addEventListener("click", () => preview(entry));
}
function fieldOf(input) {
  if (input.closest && input.closest(".units")) return "units";
  return input.name || "";
}
function clearFieldError(form, field) {
  const box = field && $(`.field-error[data-for="${field}"]`, form);
  if (box) box.textContent = "";
}
function clearErrors(form) {
  $$(".field-error", form).forEach((x) => { x.textContent = ""; });
  $$("[aria-invalid]", form).forEach((x) => x.removeAttribute("aria-invalid"));
  $(".decision-error", form).textContent = "";
}
function renderState(entry) {  // banners, disabled buttons, save state of the selected ticket
  const article = $(`#detail .ticket[data-ticket-id="${entry.id}"]`);
  if (!article) return;
  const form = $("form.decision", article);
  const open = entry.status === "open";
  article.classList.toggle("readonly", !open);
  article.dataset.status = entry.status;
  for (const x of $$("input, select, textarea, button", form)) {
    if (x.classList.contains("preview")) continue;
    x.disabled = !open || entry.busy === true;
  }
  for (const b of $$(".suggest-body button.use", article)) b.disabled = !open;
  const taken = $(".taken-banner", article);
  taken.hidden = true;
  taken.className = "taken-banner";
  if (entry.status === "taken") {
    taken.hidden = false;
    taken.textContent = `已被他人处理 Taken: ${entry.message}`;
  } else if (entry.status === "done") {
    taken.hidden = false;
    taken.className = "done-banner";
    const v = entry.view;
    taken.textContent = v.status === "submitted"
      ? `已提交派单 Submitted — ${MODE_NAMES[v.dispatch_mode] || ""}至 ${unitNames(v.units)}（${str(v.decided_by)} ${fmtTime(v.decided_at)}）`
      : v.status === "answered" ? `已答复办结 Closed as answered（${str(v.decided_by)} ${fmtTime(v.decided_at)}）`
        : `状态 ${STATUS_NAMES[v.status] || v.status}`;
  }
  const save = $(".save-state", article);
  save.classList.toggle("error", Boolean(entry.saveError));
  save.textContent = !open ? "" : entry.saveError ? entry.saveError
    : entry.saveTimer || entry.saving ? "保存中 saving…"
      : entry.savedAt ? `已自动保存 saved ${clock(entry.savedAt)}` : "";
}

// -- autosave -------------------------------------------------------------------------------
function persist(entry) {
  if (entry.status !== "open") return;
  entry.form.saved_at = Date.now();
  store(localStorage, key("draft", entry.id), {data: entry.form, saved_at: entry.form.saved_at});
  clearTimeout(entry.saveTimer);
  entry.saveTimer = setTimeout(() => saveDraft(entry), SAVE_DELAY);
  renderList();
  renderState(entry);
}
async function saveDraft(entry, {keepalive = false} = {}) {
  clearTimeout(entry.saveTimer);
  entry.saveTimer = null;
  if (entry.status !== "open") return;
  if (entry.saving) {  // one PUT at a time; the newest data goes next
    entry.saveAgain = true;
    return;
  }
  const data = Object.assign({}, entry.form);
  entry.saving = api("PUT", `/api/desk/tickets/${entry.id}/draft`, {data}, {keepalive});
  try {
    await entry.saving;
    entry.savedAt = Date.now();
    entry.saveError = "";
    entry.view.saved_draft = data;
  } catch (err) {
    if (err.status === 409 && entry.status === "open") {
      const d = (err.data && err.data.details) || {};
      markTaken(entry, d.decided_by ? `工单已由 ${d.decided_by} 处理（${d.status || ""}）` : err.message);
    } else if (isLocked(err) && entry.status === "open") {
      markTaken(entry, err.message);
    } else if (entry.status === "open") {
      entry.saveError = `未能保存到服务器（${err.message}），已保存在本机 saved in this browser only`;
      entry.saveTimer = setTimeout(() => saveDraft(entry), RETRY_SAVE);
    }
  } finally {
    entry.saving = null;
    if (entry.saveAgain) { entry.saveAgain = false; if (entry.status === "open") saveDraft(entry); }
    if (state.selected === entry.id) renderState(entry);
  }
}
function flushAll(keepalive) {
  const pending = [];
  for (const entry of state.tickets.values()) {
    if (entry.status === "open" && entry.saveTimer) pending.push(saveDraft(entry, {keepalive}));
  }
  return Promise.allSettled(pending);
}

// -- decisions ------------------------------------------------------------------------------
function linkedValue(raw) {
  const s = str(raw).trim();
  if (!s) return null;
  return /^\d{1,12}$/.test(s) ? Number(s) : s;  // anything else: the server says what is wrong
}
function decisionBody(entry, action) {
  const f = entry.form;
  const body = {version_id: entry.view.version_id, category: f.category || null, urgency: f.urgency || "normal",
    place: str(f.place), summary: str(f.summary), linked_ticket_id: linkedValue(f.linked_ticket_id)};
  if (action === "submit") {
    body.dispatch_mode = f.dispatch_mode || "direct";
    body.units = arr(f.units).filter((u) => str(u.name).trim() || u.kind)
      .map((u) => ({id: u.id || null, name: str(u.name).trim(), kind: u.kind || null}));
  } else {
    body.answer = str(f.answer);
  }
  return body;
}
function isLocked(err) {  // another agent's call: theirs until decided (403 locked)
  return err.status === 403 && Boolean(err.data) && err.data.error === "locked";
}
function markTaken(entry, message) {
  entry.status = "taken";
  entry.message = message;
  clearTimeout(entry.saveTimer);
  entry.saveTimer = null;
  dropLocalDraft(entry.id);
  const box = $(`#detail .ticket[data-ticket-id="${entry.id}"] .preview-box`);
  if (box) { box.hidden = true; box.replaceChildren(); }  // it showed a dispatch that will not happen
  renderList();
  if (state.selected === entry.id) renderState(entry);
}
async function decide(entry, action) {
  if (entry.status !== "open" || entry.busy) return;
  const form = $(`#detail .ticket[data-ticket-id="${entry.id}"] form.decision`);
  if (form) { entry.form = Object.assign(readForm(form), {saved_at: entry.form.saved_at}); clearErrors(form); }
  clearTimeout(entry.saveTimer);
  entry.saveTimer = null;
  store(localStorage, key("draft", entry.id), {data: entry.form, saved_at: Date.now()});
  const label = action === "submit" ? "提交派单 Submit" : "答复办结 Close";
  entry.busy = true;
  renderState(entry);
  showStatus("busy", `工单 #${entry.id}：${label}…`);
  try {
    if (entry.saving) await entry.saving.catch(() => null);
    const ticket = await api("POST", `/api/desk/tickets/${entry.id}/${action}`, decisionBody(entry, action));
    entry.busy = false;
    entry.status = "done";
    entry.view = Object.assign({}, entry.view, ticket);
    entry.form = prefill(entry.view);
    dropLocalDraft(entry.id);
    const box = form && form.querySelector(".preview-box");
    if (box) { box.hidden = true; box.replaceChildren(); }  // it showed the draft: stale now
    showStatus("ok", action === "submit"
      ? `工单 #${entry.id} 已提交派单至 ${unitNames(ticket.units)}。Ticket #${entry.id} submitted.`
      : `工单 #${entry.id} 已答复办结。Ticket #${entry.id} closed as answered.`);
    renderList();
    if (state.selected === entry.id) { renderInfo(entry); if (form) fillForm(form, entry.form); renderState(entry); }
  } catch (err) {
    entry.busy = false;
    const d = (err.data && err.data.details) || {};
    if ((err.status === 409 && d.decided_by) || isLocked(err)) {
      markTaken(entry, err.message);
      if (err.status === 409) refreshTicket(entry);  // its status and who decided it, as stored
      showStatus("error", `工单 #${entry.id}：${err.message}`);
      if (form) $(".decision-error", form).textContent = err.message;
    } else if (err.status === 409) {  // the ticket changed (a transcript came in): reload it, keep what was typed
      showStatus("error", `工单 #${entry.id}：${err.message}`);
      if (form) $(".decision-error", form).textContent = `${err.message}\n工单已刷新，请核对后再提交。Reloaded: check and submit again.`;
      await refreshTicket(entry);
    } else if (err.status === 400 && form) {
      const field = str(d.field).split(".")[0];
      const box = field && $(`.field-error[data-for="${field}"]`, form);
      if (box) {
        box.textContent = err.message;
        const input = field === "units" ? $(".units .unit-name", form) || $(".add-unit", form)
          : form.elements.namedItem(field);
        if (input && input.setAttribute) { input.setAttribute("aria-invalid", "true"); if (input.focus) input.focus(); }
      } else {
        $(".decision-error", form).textContent = err.message;
      }
      showStatus("error", `工单 #${entry.id} 未提交 not sent：${err.message}`);
    } else {
      if (form) $(".decision-error", form).textContent = err.message;
      showStatus("error", `工单 #${entry.id}：${err.message}`);
    }
    if (state.selected === entry.id) renderState(entry);
  }
}
async function refreshTicket(entry) {
  try {
    const view = await api("GET", `/api/desk/tickets/${entry.id}`);
    entry.view = view;
    if (view.status !== "draft" && entry.status === "open") {
      markTaken(entry, `工单已由 ${view.decided_by || "他人"} 于 ${fmtTime(view.decided_at)} 处理（${view.status}）`);
    }
    if (state.selected === entry.id) { renderInfo(entry); renderState(entry); }
  } catch (err) { notice(`#${entry.id} 刷新失败 reload failed: ${err.message}`, "warn"); }
}

const PREVIEW_LABELS = [["id", "工单 Ticket"], ["category", "诉求类型 Type"], ["urgency", "紧急程度 Urgency"],
  ["line_number", "来电热线 Line"], ["line_name", "热线名称 Line name"], ["caller", "来电人 Caller"],
  ["caller_number", "来电号码 Number"], ["place", "地点 Place"], ["summary", "诉求摘要 Summary"],
  ["dispatch_mode", "派单方式 Dispatch"], ["units", "承办单位 Units"], ["linked_ticket_id", "关联工单 Linked"],
  ["emergency", "紧急 Emergency"], ["created_at", "来电时间 Received"], ["decided_at", "派单时间 Dispatched"]];
async function preview(entry) {
  const box = $(`#detail .ticket[data-ticket-id="${entry.id}"] .preview-box`);
  if (!box) return;
  box.hidden = false;
  box.replaceChildren(el("p", "加载中 loading…", {class: "hint"}));
  try {
    const doc = await api("GET", `/api/desk/tickets/${entry.id}/dispatch`);
    const shown = Object.assign({}, doc);
    const draft = entry.status === "open";
    if (draft) {  // what the unit would receive if the agent submitted now
      const body = decisionBody(entry, "submit");
      for (const k of ["category", "urgency", "place", "summary", "dispatch_mode", "units", "linked_ticket_id"]) shown[k] = body[k];
    }
    box.replaceChildren(el("h3", draft ? "承办单位将收到（按当前填写）What the unit will receive, as typed now"
      : "承办单位收到的派单 What the unit received"));
    const dl = el("dl", null, {class: "dispatch"});
    const seen = new Set();
    for (const [k, label] of PREVIEW_LABELS) {
      if (!(k in shown)) continue;
      seen.add(k);
      let value = shown[k];
      if (k === "units") value = unitNames(value) || "—";
      else if (k === "urgency") value = value ? `${URGENCY_NAMES[value] || ""} ${value}` : "—";
      else if (k === "dispatch_mode") value = value ? `${MODE_NAMES[value] || ""} ${value}` : "—";
      else if (k === "emergency") value = value ? "是 yes" : "否 no";
      else if (k.endsWith("_at")) value = fmtTime(value) || "—";
      else if (value === null || value === undefined || value === "") value = k === "caller_number" && doc.caller ? "（不提供 withheld）" : "—";
      dl.append(el("dt", label), el("dd", value, {"data-field": k}));
    }
    for (const [k, value] of Object.entries(shown)) {
      if (seen.has(k)) continue;
      dl.append(el("dt", k), el("dd", typeof value === "object" ? JSON.stringify(value) : str(value), {"data-field": k}));
    }
    box.append(dl);
  } catch (err) {
    box.replaceChildren(el("p", `预览失败 preview failed: ${err.message}`, {class: "field-error"}));
  }
}

// -- events from the WebSocket --------------------------------------------------------------
function setConn(kind, text) {
  const c = $("#conn");
  c.dataset.state = kind;
  c.textContent = text;
  document.body.dataset.ws = kind;
}
function saveSeq(seq) {
  state.lastSeq = seq;
  store(sessionStorage, key("seq"), seq);
}
async function onEvent(msg) {
  if (!isObj(msg)) return;
  if (msg.type === "hello") {
    state.wsRetry = 0;
    const hello = Number(msg.last_seq) || 0;
    state.helloSeq = hello;
    setConn("open", "已连接 connected");
    const restarted = hello < state.lastSeq;  // the gateway restarted: its numbers began again
    if (restarted) saveSeq(hello);
    if (state.connectedOnce) {
      // Back after a break. The replay covers what this user missed, unless the gateway restarted
      // meanwhile (its numbers carry no epoch): the inbox is the truth either way.
      notice("已重新连接 reconnected");
      try { await reloadInbox(); } catch (err) { notice(`收件箱加载失败 inbox failed: ${err.message}`, "warn"); }
    } else if (restarted) {
      await reloadInbox();
    }
    state.connectedOnce = true;
    return;
  }
  const seq = Number(msg.seq) || 0;
  const replay = seq && seq <= state.helloSeq;
  if (msg.type === "resync") {
    notice("离线期间事件过多，已重新加载 resynced", "warn");
    await reloadInbox();
  } else if (msg.type === "screen_pop" && isObj(msg.ticket)) {
    await onPop(msg, replay);
  } else if (msg.type === "call_without_ticket") {
    notice(`来电 ${str(msg.uniqueid)}（${str(msg.queue)}）没有工单：请手工记录 call without a ticket`, "warn");
    showStatus("error", `来电已接通但没有工单（队列 ${str(msg.queue)}）。A call without a ticket: take notes by hand.`);
  } else if (isObj(msg.ticket) && state.tickets.has(msg.ticket.id)) {  // an event of a later version: a newer view
    addTicket(msg.ticket);
  } else if (state.tickets.has(Number(msg.ticket_id))) {  // "this ticket changed" (e.g. its transcript came)
    await refreshTicket(state.tickets.get(Number(msg.ticket_id)));
  }
  if (seq) saveSeq(Math.max(state.lastSeq, seq));
}
async function onPop(msg, replay) {
  let view = msg.ticket;
  if (replay && !state.tickets.has(view.id)) {  // missed while away: it may have been decided since
    try { view = await api("GET", `/api/desk/tickets/${view.id}`); } catch (err) { return; }
    if (view.status !== "draft") return;
  }
  const known = state.tickets.has(view.id);
  if (replay && known) { addTicket(view); return; }  // already shown (from the inbox): keep the agent where they are
  addTicket(view, {fresh: true, select: true});
  if (!known) {
    notice(`弹屏 screen pop：工单 #${view.id}（${str(view.line_number)}，${str(msg.queue)}）`);
    showStatus("ok", `新来电 New call：工单 #${view.id} ${str(view.line_number)} ${str(view.line_name)}` +
      (view.emergency ? " ⚠ 紧急 EMERGENCY" : ""));
  }
}
function connect() {
  clearTimeout(state.wsTimer);
  clearInterval(state.countdown);
  if (state.leaving) return;
  setConn("connecting", "连接中 connecting…");
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  let ws;
  try {
    ws = new WebSocket(`${proto}//${location.host}/api/desk/ws?since=${encodeURIComponent(state.lastSeq)}`);
  } catch (e) { reconnectLater(); return; }
  state.ws = ws;
  let chain = Promise.resolve();
  ws.addEventListener("message", (ev) => {
    let msg;
    try { msg = JSON.parse(ev.data); } catch (e) { return; }
    chain = chain.then(() => onEvent(msg)).catch((e) => notice(`事件处理失败 event failed: ${e.message}`, "warn"));
  });
  ws.addEventListener("close", (ev) => {
    if (state.ws !== ws) return;
    state.ws = null;
    if (ev.code === 4401) { setConn("closed", "登录已过期 session expired"); toLogin(); return; }
    if (!state.leaving) reconnectLater();
  });
}
function reconnectLater() {
  const delay = Math.min(10000, 1000 * 2 ** state.wsRetry);
  state.wsRetry++;
  let left = Math.round(delay / 1000);
  setConn("closed", `已断开 disconnected，${left} 秒后重连`);
  clearInterval(state.countdown);
  state.countdown = setInterval(() => {
    left = Math.max(0, left - 1);
    if (!state.ws) setConn("closed", `已断开 disconnected，${left} 秒后重连`);
  }, 1000);
  state.wsTimer = setTimeout(async () => {
    clearInterval(state.countdown);
    try { await api("GET", "/api/me"); } catch (err) { if (err.status === 401) return; }  // 401 went to /login
    connect();
  }, delay);
}

// -- loading ----------------------------------------------------------------------------------
async function reloadInbox() {
  const inbox = await api("GET", "/api/desk/inbox");
  for (const view of arr(inbox.items).slice().reverse()) addTicket(view);
  return inbox;
}
async function openById(id) {
  try {
    const view = await api("GET", `/api/desk/tickets/${id}`);
    addTicket(view, {select: true});
    showStatus("ok", `已打开工单 #${id}。Opened ticket #${id}.`);
  } catch (err) {
    showStatus("error", `无法打开工单 #${id}：${err.message}`);
  }
}

async function start() {
  try {
    await loadMe();
  } catch (err) {
    if (err.status !== 401) showStatus("error", `无法加载 cannot load: ${err.message}`);
    return;
  }
  if (!state.user.agent_id) notice("您未绑定坐席号，不会收到弹屏。Not tied to an agent id: no screen pops.", "warn");
  forgetOldDrafts();
  let inbox = {last_seq: 0};
  try {
    inbox = await reloadInbox();
  } catch (err) {
    showStatus("error", `无法加载待处理工单 cannot load the inbox: ${err.message}`);
  }
  const stored = Number(load(sessionStorage, key("seq"))) || 0;
  const last = Number(inbox.last_seq) || 0;
  // This tab's own last event when the gateway still counts from there, else the inbox's.
  saveSeq(stored && stored <= last ? stored : last);
  const selected = Number(load(sessionStorage, key("selected")));
  if (selected && state.tickets.has(selected)) selectTicket(selected);
  else {
    const first = state.order.find((id) => state.tickets.get(id).status === "open");
    if (first) selectTicket(first);
  }
  connect();
  document.body.dataset.ready = "true";
}

$("#open-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const id = Number($("#open-id").value);
  if (Number.isInteger(id) && id > 0) openById(id);
});
$("#logout").addEventListener("click", async () => {
  state.leaving = true;
  await flushAll(false);
  for (const entry of state.tickets.values()) {  // drafts safely on the server need no copy in this browser
    if (entry.status !== "open" || (entry.savedAt && !entry.saveError)) dropLocalDraft(entry.id);
  }
  store(sessionStorage, key("seq"), null);
  store(sessionStorage, key("selected"), null);
  if (state.ws) state.ws.close();
  try { await api("POST", "/api/logout"); } catch (e) { /* going anyway */ }
  location.href = "/login?next=/desk";
});
window.addEventListener("pagehide", () => {
  state.leaving = true;
  flushAll(true);
  if (state.ws) state.ws.close(1000);
});
window.addEventListener("pageshow", (ev) => {  // back from the back/forward cache: listen again
  if (ev.persisted) { state.leaving = false; state.wsRetry = 0; connect(); }
});
start();
})();
