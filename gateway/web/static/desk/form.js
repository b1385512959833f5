// The decision form: fill and read it, submit or close, every refused field shown at once.
import {$, $$, arr, el, fmtTime, isObj, problemsOf, showStatus, str} from "../common.js";
import {CATEGORIES, DISPATCH_MODE_NAMES, URGENCY_NAMES} from "../labels.js";
import {dropLocalDraft, hooks, key, state, store} from "./state.js";
import {api, notice} from "./session.js";
import {article, isLocked, unitNames} from "./util.js";
import {markTaken, persist, prefill} from "./drafts.js";

const FIELDS = ["category", "urgency", "place", "summary", "units", "dispatch_mode", "linked_ticket_id", "answer",
  "followup_opt_out"];

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
export function fillForm(form, data) {
  form.elements.namedItem("category").value = CATEGORIES.includes(data.category) ? data.category : "";
  form.elements.namedItem("urgency").value = URGENCY_NAMES[data.urgency] ? data.urgency : "normal";
  form.elements.namedItem("place").value = str(data.place);
  form.elements.namedItem("summary").value = str(data.summary);
  form.elements.namedItem("linked_ticket_id").value = str(data.linked_ticket_id);
  form.elements.namedItem("answer").value = str(data.answer);
  form.elements.namedItem("followup_opt_out").checked = data.followup_opt_out === true;
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
    followup_opt_out: form.elements.namedItem("followup_opt_out").checked,
  };
}
export function wireForm(form, entry) {
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
    const row = b.closest(".unit-row");
    const next = row.nextElementSibling || row.previousElementSibling;
    row.remove();
    (next ? $(".unit-name", next) : $(".add-unit", form)).focus();  // not lost to the page's top
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
  $(".decision-error", form).replaceChildren();
}

// -- refused decisions: every problem, zh first then en; focus on the first invalid field ------
function fieldName(problem) {
  const tokens = [problem.field, ...(Array.isArray(problem.path) ? problem.path : [problem.path])]
    .flatMap((x) => str(x).split(/[.[\]/]+/));
  return tokens.find((t) => FIELDS.includes(t)) || "";
}
function bilingual(zh, en) { zh = str(zh); en = str(en); return zh && en && zh !== en ? `${zh} ${en}` : (zh || en); }
export function problemsOfError(err) {
  const data = isObj(err.data) ? err.data : {};
  const list = problemsOf(data).map((p) => ({field: fieldName(p), text: bilingual(p.message_zh, p.message)}));
  if (list.length) return list;
  const d = isObj(data.details) ? data.details : {};
  return [{field: fieldName({field: d.field, path: arr(d.fields)[0]}),
           text: bilingual(data.message_zh, data.message) || err.message}];
}
function inputOf(form, field) {
  if (field === "units") {
    return $$(".units .unit-name", form).find((x) => !x.value.trim()) || $(".units .unit-name", form) || $(".add-unit", form);
  }
  if (field === "dispatch_mode") return $('input[name="dispatch_mode"]:checked', form) || $('input[name="dispatch_mode"]', form);
  return form.elements.namedItem(field);
}
function showProblems(form, problems) {
  const summary = $(".decision-error", form);
  summary.replaceChildren(el("p", `未提交：请修改以下 ${problems.length} 处。Not sent: ${problems.length} problem(s).`));
  const ul = el("ul");
  for (const p of problems) {
    const li = el("li", null, {"data-field": p.field || null});
    const input = p.field ? inputOf(form, p.field) : null;
    if (input) {
      const link = el("a", p.text, {href: `#${input.id || ""}`});
      link.addEventListener("click", (ev) => { ev.preventDefault(); input.focus(); });
      li.append(link);
      input.setAttribute("aria-invalid", "true");
      const box = $(`.field-error[data-for="${p.field}"]`, form);
      if (box) box.textContent = box.textContent ? `${box.textContent}\n${p.text}` : p.text;
    } else {
      li.textContent = p.text;
    }
    ul.append(li);
  }
  summary.append(ul);
  const first = problems.map((p) => p.field).filter(Boolean).sort((a, b) => FIELDS.indexOf(a) - FIELDS.indexOf(b))[0];
  const target = first ? inputOf(form, first) : null;
  if (target && target.focus) {
    target.focus();
    target.scrollIntoView({block: "center"});
  } else {
    summary.focus();
  }
}

function linkedValue(raw) {
  const s = str(raw).trim();
  if (!s) return null;
  return /^\d{1,12}$/.test(s) ? Number(s) : s;  // anything else: the server says what is wrong
}
function decisionBody(entry, action) {
  const f = entry.form;
  const body = {version_id: entry.view.version_id, category: f.category || null, urgency: f.urgency || "normal",
    place: str(f.place), summary: str(f.summary), linked_ticket_id: linkedValue(f.linked_ticket_id)};
  if (f.followup_opt_out === true) body.followup_opt_out = true;  // 不需要回访
  if (action === "submit") {
    body.dispatch_mode = f.dispatch_mode || "direct";
    body.units = arr(f.units).filter((u) => str(u.name).trim() || u.kind)
      .map((u) => ({id: u.id || null, name: str(u.name).trim(), kind: u.kind || null}));
  } else {
    body.answer = str(f.answer);
  }
  return body;
}

export async function decide(entry, action) {
  if (entry.status !== "open" || entry.busy) return;
  const node = article(entry.id);
  const form = node && $("form.decision", node);
  if (form) { entry.form = Object.assign(readForm(form), {saved_at: entry.form.saved_at}); clearErrors(form); }
  clearTimeout(entry.saveTimer);
  entry.saveTimer = null;
  store(localStorage, key("draft", entry.id), {data: entry.form, saved_at: Date.now()});
  const label = action === "submit" ? "提交派单 Submit" : "答复办结 Close";
  entry.busy = true;
  hooks.renderState(entry);
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
    hooks.renderList();
    if (state.selected === entry.id) { hooks.renderInfo(entry); if (form) fillForm(form, entry.form); hooks.renderState(entry); }
  } catch (err) {
    entry.busy = false;
    const d = (err.data && err.data.details) || {};
    if (state.selected === entry.id) hooks.renderState(entry);  // the fields enabled again before focusing one
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
      const problems = problemsOfError(err);
      showStatus("error", `工单 #${entry.id} 未提交 not sent：${problems.map((p) => p.text).join("；")}`);
      showProblems(form, problems);
    } else {
      if (form) $(".decision-error", form).textContent = err.message;
      showStatus("error", `工单 #${entry.id}：${err.message}`);
    }
  }
}
export async function refreshTicket(entry) {
  try {
    const view = await api("GET", `/api/desk/tickets/${entry.id}`);
    entry.view = view;
    if (view.status !== "draft" && entry.status === "open") {
      markTaken(entry, `工单已由 ${view.decided_by || "他人"} 于 ${fmtTime(view.decided_at)} 处理（${view.status}）`);
    }
    if (state.selected === entry.id) { hooks.renderInfo(entry); hooks.renderState(entry); }
  } catch (err) { notice(`#${entry.id} 刷新失败 reload failed: ${err.message}`, "warn"); }
}

const PREVIEW_LABELS = [["id", "工单 Ticket"], ["category", "诉求类型 Type"], ["urgency", "紧急程度 Urgency"],
  ["line_number", "来电热线 Line"], ["line_name", "热线名称 Line name"], ["caller", "来电人 Caller"],
  ["caller_number", "来电号码 Number"], ["place", "地点 Place"], ["summary", "诉求摘要 Summary"],
  ["dispatch_mode", "派单方式 Dispatch"], ["units", "承办单位 Units"], ["linked_ticket_id", "关联工单 Linked"],
  ["emergency", "紧急 Emergency"], ["created_at", "来电时间 Received"], ["decided_at", "派单时间 Dispatched"]];
async function preview(entry) {
  const node = article(entry.id);
  const box = node && $(".preview-box", node);
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
      else if (k === "dispatch_mode") value = value ? `${DISPATCH_MODE_NAMES[value] || ""} ${value}` : "—";
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
