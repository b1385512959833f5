// The follow-up page (/followups): handled tickets due for a follow-up or unreachable by the IVR;
// an agent opens one (the citizen's number, audited), phones them and records the same answers
// as the IVR's. A refused save lists every problem at once, each linked to its field; a ticket
// already followed up is refused (409) with who did it. ES module over common.js and labels.js.
import {$, $$, arr, el, fmtTime, isObj, makeApi, num, problemsOf, showStatus, str} from "./common.js";
import {CATEGORY_EN, FOLLOWUP_STATUS_NAMES, REVIEW_REASON_NAMES, SATISFACTION_NAMES, SOLVED_NAMES, label}
  from "./labels.js";

const state = {csrf: "", user: null, open: null, items: []};
const api = makeApi(state, {onUnauthorized: () => { location.href = "/login?next=/followups"; },
  refresh: loadMe});

async function loadMe() {
  const me = await api("GET", "/api/me");
  state.csrf = me.csrf_token;
  state.user = me.user;
  $("#who").textContent = `${me.user.username}（${me.user.role}）`;
}

function ticketName(t) {
  return t && t.ticket_no ? `${t.ticket_no}` : `#${num(t && t.id)}`;
}

function row(item) {
  const t = isObj(item.ticket) ? item.ticket : {};
  const tr = el("tr", null, {"data-ticket-id": num(item.ticket_id), "data-status": str(item.status)});
  const status = label(FOLLOWUP_STATUS_NAMES, item.status) +
    (item.status === "done" ? `：${SOLVED_NAMES[item.solved] || ""} ${SATISFACTION_NAMES[item.satisfaction] || ""}` : "");
  tr.append(el("td", ticketName(t)), el("td", t.category ? `${t.category} ${CATEGORY_EN[t.category] || ""}` : "—"),
    el("td", fmtTime(t.handled_at) || "—"), el("td", status), el("td", num(item.attempts), {class: "num"}),
    el("td", str(t.caller_number) || "—", {class: "code"}));
  const cell = el("td");
  if (["pending", "scheduled", "unreachable"].includes(item.status)) {
    const b = el("button", "回访 Follow up", {type: "button", class: "small open-followup",
      "aria-label": `回访工单 ${ticketName(t)} follow up ticket ${ticketName(t)}`});
    b.addEventListener("click", () => openFollowup(num(item.ticket_id)));
    cell.append(b);
  }
  tr.append(cell);
  return tr;
}

async function loadList() {
  const filter = $("#fu-filter").value;
  try {
    const data = await api("GET", `/api/followups?status=${encodeURIComponent(filter)}`);
    state.items = arr(data.items).filter(isObj);
    const body = $("#fu-table tbody");
    body.replaceChildren(...state.items.map(row));
    if (!state.items.length) {
      const tr = el("tr");
      tr.append(el("td", "暂无 nothing here", {colspan: 7, class: "empty"}));
      body.append(tr);
    }
    document.body.dataset.ready = "true";
  } catch (err) {
    if (err.status !== 401) showStatus("error", `无法加载回访列表 cannot load the follow-ups: ${err.message}`);
  }
}

function clearErrors() {
  const box = $("#fu-errors");
  box.hidden = true;
  box.replaceChildren();
  for (const s of $$(".field-error")) s.textContent = "";
  for (const f of $$("[aria-invalid]")) f.removeAttribute("aria-invalid");
}

const FIELD_TARGET = {solved: "#f-solved input", satisfaction: "#f-satisfaction input", comment: "#f-comment"};
const FIELD_NAME = {solved: "是否解决 Solved", satisfaction: "满意程度 Satisfaction", comment: "意见 Comment"};

function showErrors(problems, message) {
  const box = $("#fu-errors");
  box.replaceChildren(el("h3", "请更正以下问题 Please correct the following"));
  if (message) box.append(el("p", message));
  for (const p of problems) {
    const field = str(p.field);
    const text = `${FIELD_NAME[field] || field}：${str(p.message_zh) || ""} ${str(p.message) || ""}`.trim();
    const target = FIELD_TARGET[field];
    if (target) {
      const link = el("a", text, {href: "#"});
      link.addEventListener("click", (ev) => { ev.preventDefault(); $(target).focus(); });
      box.append(link);
      const slot = $(`.field-error[data-for="${field}"]`);
      if (slot) slot.textContent = text;
      for (const input of $$(target)) input.setAttribute("aria-invalid", "true");
    } else {
      box.append(el("p", text));
    }
  }
  box.hidden = false;
  box.focus();
}

async function openFollowup(ticketId) {
  clearErrors();
  try {
    const data = await api("GET", `/api/followups/${ticketId}`);
    const t = isObj(data.ticket) ? data.ticket : {};
    state.open = ticketId;
    for (const tr of $$("#fu-table tbody tr")) tr.classList.toggle("selected", num(tr.dataset.ticketId) === ticketId);
    $("#fu-ticket").textContent = `工单 Ticket ${ticketName(t)} · ${t.category || ""} · 办结 handled ${fmtTime(t.handled_at)}` +
      ` · ${label(FOLLOWUP_STATUS_NAMES, data.status)}` + (t.summary ? ` · ${t.summary}` : "");
    const number = str(t.caller_number);
    const link = $("#fu-number");
    link.textContent = number || "—";
    link.setAttribute("href", number ? `tel:${number}` : "#");
    $("#fu-form").reset();
    $("#form-section").hidden = false;
    $("#form-title").focus();
  } catch (err) {
    if (err.status !== 401) showStatus("error", `无法打开 cannot open: ${err.message}`);
  }
}

async function save(ev) {
  ev.preventDefault();
  if (!state.open) return;
  clearErrors();
  const form = $("#fu-form");
  const solved = $('input[name="solved"]:checked', form);
  const satisfaction = $('input[name="satisfaction"]:checked', form);
  const missing = [];
  if (!solved) missing.push({field: "solved", message_zh: "请选择", message: "choose one"});
  if (!satisfaction) missing.push({field: "satisfaction", message_zh: "请选择", message: "choose one"});
  if (missing.length) { showErrors(missing); return; }
  const body = {solved: solved.value, satisfaction: satisfaction.value};
  const comment = $("#f-comment").value.trim();
  if (comment) body.comment = comment;
  $("#fu-save").disabled = true;
  try {
    const saved = await api("POST", `/api/followups/${state.open}/answers`, body);
    const t = isObj(saved.ticket) ? saved.ticket : {};
    const review = t.review_reason ? `，转回审核 on the review list (${REVIEW_REASON_NAMES[t.review_reason] || t.review_reason})` : "";
    showStatus("ok", `已保存回访结果 saved: ${ticketName(t)} ${SOLVED_NAMES[saved.solved]} ${SATISFACTION_NAMES[saved.satisfaction]}${review}`);
    $("#form-section").hidden = true;
    state.open = null;
    await loadList();
  } catch (err) {
    if (err.status === 401) return;
    const problems = problemsOf(err.data);
    showErrors(problems, problems.length ? "" : err.message);
  } finally {
    $("#fu-save").disabled = false;
  }
}

$("#fu-form").addEventListener("submit", save);
$("#fu-cancel").addEventListener("click", () => { $("#form-section").hidden = true; state.open = null; clearErrors(); });
$("#fu-filter").addEventListener("change", loadList);
$("#fu-reload").addEventListener("click", loadList);
$("#logout").addEventListener("click", async () => {
  try { await api("POST", "/api/logout"); } catch (e) { /* going anyway */ }
  location.href = "/login?next=/followups";
});

(async () => {
  try { await loadMe(); } catch (err) { if (err.status !== 401) showStatus("error", err.message); return; }
  await loadList();
})();
