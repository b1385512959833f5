// The lines table, the change form (with what callers of a retired line will hear) and the
// create form.
import {$, $$, el} from "../common.js";
import {MERGE_MODE_NAMES, label} from "../labels.js";
import {state, api, fmtTime, withOffset, clearProblems, requireComment, refuse, submitChange, ask,
        lineByNumber} from "./core.js";
import {dryRunChange} from "./dryrun.js";
import {hearPreview} from "./prompts.js";

export const MODE_FIELDS = {
  primary: ["hours"],
  retired: ["announce", "announcement"],
  dual_number: ["greeting", "queue"],
  sub_centre: ["greeting", "queue", "hours", "after_hours", "overflow_seconds"],
};
const modeName = (mode) => MERGE_MODE_NAMES[mode] || mode;

/** The announcement callers of a retired line hear: its own text, else the gateway's default
 * (gateway.ivr_flows.validate: 您拨打的1 2 3 1 9已并入12345市民服务热线，现在为您转接。). */
export function announcementText(number, text) {
  return text || `您拨打的${String(number).split("").join(" ")}已并入12345市民服务热线，现在为您转接。`;
}

function cell(tr, text, labelText, attrs) {
  const td = el("td", text, {...(attrs || {}), "data-label": labelText});
  tr.appendChild(td);
  return td;
}

export function renderLines() {
  const o = state.overview;
  $("#version-info").textContent =
    `当前版本 live v${o.version} · ${o.content_hash} · ${o.timezone} · ${o.lines.length} 条热线 lines`;
  const body = $("#lines tbody");
  body.replaceChildren();
  for (const ln of o.lines) {
    const tr = el("tr", null, {"data-number": ln.number, "data-mode": ln.mode});
    const stillCalled = ln.mode === "retired" && (ln.calls_7_days > 0 || ln.calls_today > 0);
    if (stillCalled) tr.classList.add("still-calling");
    cell(tr, ln.number, "号码 Number", {class: "number"});
    const name = cell(tr, ln.name, "名称 Name");
    if (stillCalled) name.appendChild(el("span", "仍有来电 still called", {class: "badge warn"}));
    const mode = cell(tr, modeName(ln.mode), "归并方式 Mode", {class: "mode"});
    mode.appendChild(document.createTextNode(" "));
    mode.appendChild(el("span", ln.mode, {class: "code"}));
    if (ln.mode === "retired") mode.appendChild(el("div", ln.announce ? "播放并入提示 announce" : "不提示 no notice",
                                                   {class: "hint"}));
    const dept = cell(tr, ln.department || "—", "部门 Department");
    if (ln.handled_by && ln.handled_by !== ln.department) dept.appendChild(el("div", `承办 ${ln.handled_by}`, {class: "hint"}));
    const queue = cell(tr, ln.queue || (ln.mode === "primary" || ln.mode === "retired" ? "12345 菜单 menu" : "—"),
                       "队列 Queue");
    if (ln.mode === "sub_centre" && ln.overflow_seconds) {
      queue.appendChild(el("div", `${ln.overflow_seconds} s 未接 → 12345`, {class: "hint"}));
    }
    const hours = cell(tr, ln.hours === "always" ? "7×24" : ln.hours, "服务时间 Hours");
    if (ln.mode === "sub_centre") {
      hours.appendChild(el("div", ln.after_hours === "hangup" ? "下班后挂机 hangup" : "下班后转12345 central", {class: "hint"}));
    }
    cell(tr, ln.calls_today, "今日来电 Today", {class: "num"});
    cell(tr, ln.calls_7_days, "7日来电 7 days", {class: "num"});
    cell(tr, ln.last_call_at ? fmtTime(ln.last_call_at) : "—", "最近来电 Last call", {title: ln.last_call_at || ""});
    const act = cell(tr, null, "操作 Action");
    const edit = el("button", "修改 Edit", {type: "button", class: "secondary small",
                                             "aria-label": `修改 Edit ${ln.number} ${ln.name}`});
    edit.addEventListener("click", () => {
      $("#c-number").value = ln.number; clearProblems($("#change-form")); syncChangeForm(true);
      $("#change-section").scrollIntoView({behavior: "smooth"}); $("#c-mode").focus();
    });
    act.appendChild(edit);
    body.appendChild(tr);
  }
}

export function renderLists() {
  const o = state.overview;
  const fill = (id, values) => {
    const list = $(id); list.replaceChildren();
    for (const [value, text] of values) { const opt = el("option", text); opt.value = value; list.appendChild(opt); }
  };
  fill("#queue-list", o.queues.map((q) => [q, q]));
  fill("#schedule-list", ["always", ...o.schedules.filter((s) => s !== "always")].map((s) => [s, s]));
  fill("#number-list", o.lines.map((l) => [l.number, `${l.name}（${modeName(l.mode)}）`]));
  const select = $("#c-number"), chosen = select.value;
  select.replaceChildren();
  for (const l of o.lines) {
    const opt = el("option", `${l.number} ${l.name}（${modeName(l.mode)}）`); opt.value = l.number;
    select.appendChild(opt);
  }
  if (chosen && lineByNumber(chosen)) select.value = chosen;
  else { const first = o.lines.find((l) => l.mode !== "primary"); if (first) select.value = first.number; }
  const checks = $("#b-lines"), ticked = new Set($$("input:checked", checks).map((x) => x.value));
  checks.replaceChildren();
  for (const [value, text] of [["all", "全部 all"], ...o.lines.map((l) => [l.number, l.number])]) {
    const lab = el("label"); const box = el("input", null, {type: "checkbox", name: "lines", value});
    box.checked = ticked.size ? ticked.has(value) : value === "all";
    lab.appendChild(box); lab.appendChild(document.createTextNode(" " + text)); checks.appendChild(lab);
  }
}

// -- the change form ---------------------------------------------------------------------------
export function showFieldsFor(form, mode) {
  const wanted = new Set(MODE_FIELDS[mode] || []);
  $$(".field", form).forEach((x) => x.classList.toggle("hidden", !wanted.has(x.dataset.field)));
}
function fillModes(select, current) {
  select.replaceChildren();
  const modes = current === "primary" ? ["primary"] : ["retired", "dual_number", "sub_centre"];
  for (const m of modes) { const opt = el("option", label(MERGE_MODE_NAMES, m)); opt.value = m; select.appendChild(opt); }
  select.value = current;
  select.disabled = current === "primary";
}
// prefill: put the selected line's current values into the form (after a reload or a new selection)
export function syncChangeForm(prefill) {
  if (!state.overview) return;
  const line = lineByNumber($("#c-number").value);
  if (!line) return;
  if (prefill) {
    fillModes($("#c-mode"), line.mode);
    $("#c-greeting").value = line.greeting || "";
    $("#c-queue").value = line.queue || "";
    $("#c-hours").value = line.hours || "";
    $("#c-after").value = line.after_hours || "central";
    $("#c-overflow").value = line.overflow_seconds == null ? "" : line.overflow_seconds;
    // a retired line's own switch; any other line becoming retired announces (the server's default)
    $("#c-announce").checked = line.mode === "retired" ? line.announce !== false : true;
    $("#c-announcement").value = line.mode === "retired" && line.announcement !== announcementText(line.number, "")
      ? (line.announcement || "") : "";
  }
  showFieldsFor($("#change-form"), $("#c-mode").value);
  $("#retire").disabled = line.mode === "retired" || line.mode === "primary";
  renderChangeHear();
}
function renderChangeHear() {
  const line = lineByNumber($("#c-number").value);
  if (!line || $("#c-mode").value !== "retired") return;
  hearPreview({box: $("#c-hear"), on: $("#c-announce").checked,
               text: announcementText(line.number, $("#c-announcement").value.trim())});
}
function readField(name) {
  switch (name) {
    case "greeting": return $("#c-greeting").value.trim();
    case "queue": return $("#c-queue").value.trim();
    case "hours": return $("#c-hours").value.trim();
    case "after_hours": return $("#c-after").value;
    case "overflow_seconds": { const v = $("#c-overflow").value.trim(); return v === "" ? "" : Number(v); }
    case "announce": return $("#c-announce").checked;
    case "announcement": return $("#c-announcement").value.trim();
  }
  return "";
}
// Only what differs from the live line; a new mode takes every filled field that mode allows.
export function changedFields() {
  const line = lineByNumber($("#c-number").value);
  const mode = $("#c-mode").value;
  const fields = {};
  const newMode = mode !== line.mode;
  if (newMode) fields.mode = mode;
  for (const name of MODE_FIELDS[mode] || []) {
    let value = readField(name);
    let current = line[name] === undefined ? null : line[name];
    if (name === "announcement" && current === announcementText(line.number, "")) current = null;  // the default
    if (name === "announce") {
      // on is the default: only an admin who switches it off writes it (and back on, if it was off)
      if (newMode ? value === false : value !== (current !== false)) fields.announce = value;
      continue;
    }
    if (newMode) {
      if (value !== "") fields[name] = value;
    } else if (value === "") {
      if (current !== null && current !== "") fields[name] = null;  // emptied: back to the default
    } else if (value !== current) {
      fields[name] = value;
    }
  }
  return {line, fields};
}
$("#c-number").addEventListener("change", () => { clearProblems($("#change-form")); syncChangeForm(true); });
$("#c-mode").addEventListener("change", () => syncChangeForm(false));
$("#c-announce").addEventListener("change", renderChangeHear);
$("#c-announcement").addEventListener("input", renderChangeHear);
$("#change-form").addEventListener("admin:settled", () => syncChangeForm(false));
$("#change-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  if (!requireComment(form, $("#c-comment"))) return;
  const {line, fields} = changedFields();
  if (!Object.keys(fields).length) {
    refuse(form, "mode", "没有修改任何字段，请先修改", "Nothing to change: edit a field first");
    return;
  }
  await submitChange(`修改 ${line.number} Change`, form, () => api("PATCH", `/api/admin/lines/${encodeURIComponent(line.number)}`,
    {fields, comment: $("#c-comment").value.trim(), effective_at: withOffset($("#c-when").value)}));
});
$("#c-dry").addEventListener("click", async () => {
  const {line, fields} = changedFields();
  const change = Object.keys(fields).length ? {op: "update_line", number: line.number, fields} : null;
  await dryRunChange(line.number, change);
});
function renderAskHear(line) {
  hearPreview({box: $("#ask-hear"), on: true,
               text: announcementText(line.number, $("#ask-announcement").value.trim())});
}
let retiring = null;
$("#ask-announcement").addEventListener("input", () => { if (retiring) renderAskHear(retiring); });
$("#retire").addEventListener("click", async () => {
  const line = lineByNumber($("#c-number").value);
  if (!line) return;
  retiring = line;
  let answer;
  try {
    answer = await ask(`整体并入 ${line.number} ${line.name} / Retire`,
      `号码取消，来电由12345受理，部门预置为“${line.department || ""}”。来电者先听到并入提示（之后可在“修改热线”关闭）。` +
      "The number is retired; 12345 takes its calls, which first hear the notice below.",
      {announcement: true, when: true, onOpen: () => renderAskHear(line)});
  } finally {
    retiring = null;
  }
  if (!answer) return;
  const body = {comment: answer.comment, effective_at: answer.effective_at};
  if (answer.announcement) body.announcement = answer.announcement;
  await submitChange(`整体并入 ${line.number} Retire`, $("#change-form"),
    () => api("POST", `/api/admin/lines/${encodeURIComponent(line.number)}/retire`, body));
});

// -- create ------------------------------------------------------------------------------------
$("#n-mode").addEventListener("change", () => showFieldsFor($("#create-form"), $("#n-mode").value));
$("#create-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  if (!requireComment(form, $("#n-comment"))) return;
  const mode = $("#n-mode").value;
  const line = {number: $("#n-number").value.trim(), name: $("#n-name").value.trim(), mode,
                department: $("#n-department").value.trim()};
  const values = {greeting: $("#n-greeting").value.trim(), queue: $("#n-queue").value.trim(),
                  hours: $("#n-hours").value.trim(), after_hours: $("#n-after").value,
                  overflow_seconds: $("#n-overflow").value.trim() === "" ? "" : Number($("#n-overflow").value),
                  announcement: $("#n-announcement").value.trim()};
  for (const name of MODE_FIELDS[mode]) if (values[name] !== undefined && values[name] !== "") line[name] = values[name];
  const r = await submitChange(`新建 ${line.number} Create`, form, () => api("POST", "/api/admin/lines",
    {line, comment: $("#n-comment").value.trim(), effective_at: withOffset($("#n-when").value)}));
  if (r) showFieldsFor(form, $("#n-mode").value);
});

export function initLines() {
  showFieldsFor($("#create-form"), $("#n-mode").value);
}
