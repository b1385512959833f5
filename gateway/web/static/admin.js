"use strict";
(() => {
const MODE_NAMES = {primary: "主号", retired: "整体并入", dual_number: "双号并行", sub_centre: "设分中心"};
const STATUS_NAMES = {applied: "已生效", scheduled: "已计划", cancelled: "已取消", failed: "失败"};
const MODE_FIELDS = {
  primary: ["hours"],
  retired: ["announce", "announcement"],
  dual_number: ["greeting", "queue"],
  sub_centre: ["greeting", "queue", "hours", "after_hours", "overflow_seconds"],
};
const state = {csrf: "", user: null, overview: null, versions: [], tz: "Asia/Shanghai", offset: "+08:00"};
const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

function el(tag, text, attrs) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  return e;
}
function modeLabel(mode) { return MODE_NAMES[mode] ? `${MODE_NAMES[mode]} ${mode}` : String(mode); }

// -- time: the hotline's zone (Asia/Shanghai, UTC+08:00) ------------------------------------
function zoneOffset(tz) {
  try {
    const part = new Intl.DateTimeFormat("en-US", {timeZone: tz, timeZoneName: "longOffset"})
      .formatToParts(new Date()).find((p) => p.type === "timeZoneName");
    const m = part && /GMT([+-]\d\d:\d\d)/.exec(part.value);
    return m ? m[1] : "+08:00";
  } catch (e) { return "+08:00"; }
}
function withOffset(local) {  // "2027-02-20T23:00" -> "2027-02-20T23:00:00+08:00"
  if (!local) return null;
  return (local.length === 16 ? local + ":00" : local) + state.offset;
}
function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (isNaN(d)) return String(iso);
  try {
    return new Intl.DateTimeFormat("sv-SE", {timeZone: state.tz, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit"}).format(d);
  } catch (e) { return String(iso); }
}
function localNow() { return fmtTime(new Date().toISOString()).replace(" ", "T").slice(0, 16); }

// -- status and problems ------------------------------------------------------------------
function showStatus(kind, message) {
  const box = $("#status");
  box.className = "wide " + kind;
  box.textContent = message;
}
function clearProblems(form) {
  const box = $(".problems", form);
  if (box) box.replaceChildren();
  $$("[aria-invalid]", form).forEach((x) => x.removeAttribute("aria-invalid"));
}
function showProblems(form, err) {
  const box = form && $(".problems", form);
  if (!box) return;
  box.replaceChildren();
  const problems = (err.data && err.data.details && err.data.details.problems) || [];
  const field = err.data && err.data.details && err.data.details.field;
  box.appendChild(el("strong", problems.length
    ? `${problems.length} 个问题，未做任何修改 — ${problems.length} problem(s), nothing was changed:`
    : `被拒绝，未做任何修改 Refused, nothing was changed: ${err.message}`));
  if (problems.length) {
    const ul = el("ul");
    for (const p of problems) {
      const li = el("li");
      const where = [p.file, p.line ? `line ${p.line}` : null].filter(Boolean).join(":");
      li.appendChild(el("span", `${where} `, {class: "where"}));
      li.appendChild(el("b", p.field || "(document)"));
      li.appendChild(document.createTextNode(`: ${p.message}`));
      ul.appendChild(li);
      markInvalid(form, p.field);
    }
    box.appendChild(ul);
  }
  if (field) markInvalid(form, field);
}
function markInvalid(form, path) {
  if (!path) return;
  const name = String(path).split(/[.\[\]]/).filter(Boolean).pop();
  const input = form.elements && form.elements.namedItem(name);
  if (input && input.setAttribute) input.setAttribute("aria-invalid", "true");
}

// -- API ------------------------------------------------------------------------------------
class ApiError extends Error {}
async function api(method, path, body, retried) {
  const opts = {method, headers: {Accept: "application/json"}, credentials: "same-origin", cache: "no-store"};
  if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
  if (method !== "GET") opts.headers["X-CSRF-Token"] = state.csrf;
  const resp = await fetch(path, opts);
  if (resp.status === 401) {
    location.href = "/login?next=/admin";
    throw new ApiError("登录已过期 session expired, please log in");
  }
  const ctype = resp.headers.get("Content-Type") || "";
  const data = ctype.includes("json") ? await resp.json() : {message: await resp.text()};
  if (resp.status === 403 && data.error === "csrf" && !retried) {  // logged in again elsewhere: refresh the token
    await loadMe();
    return api(method, path, body, true);
  }
  if (!resp.ok) {
    const err = new ApiError(data.message || `${resp.status} ${resp.statusText}`);
    err.status = resp.status; err.data = data;
    throw err;
  }
  return data;
}
async function loadMe() {
  const me = await api("GET", "/api/me");
  state.csrf = me.csrf_token; state.user = me.user;
  $("#who").textContent = `${me.user.username}（${me.user.role}）`;
}

// One change: busy state, the answer in the status area, problems next to the form, then reload.
async function submitChange(label, form, call) {
  if (form) clearProblems(form);
  const buttons = form ? $$("button", form) : [];
  buttons.forEach((b) => { b.disabled = true; });
  showStatus("busy", `${label}…`);
  try {
    const v = await call();
    const when = v.status === "scheduled" ? `已计划 scheduled for ${fmtTime(v.effective_at)}` : "已生效 applied";
    showStatus("ok", `${label}：版本 v${v.id} ${when}。Version v${v.id} ${v.status}.`);
    // the change form follows the live line again (refresh prefills it): drop a stale comment and time too
    $("#c-comment").value = ""; $("#c-when").value = ""; clearProblems($("#change-form"));
    if (form && form !== $("#change-form")) form.reset();
    await refresh();
    return v;
  } catch (err) {
    const n = err.data && err.data.details && err.data.details.problems ? err.data.details.problems.length : 0;
    showStatus("error", `${label} 被拒绝 refused (${err.status || "?"} ${err.data ? err.data.error : ""})：` +
      (n ? `${n} 个问题，见表单 ${n} problem(s), see the form` : err.message) + "。未做任何修改 Nothing was changed.");
    if (form) showProblems(form, err);
    return null;
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
    if (form === $("#change-form")) syncChangeForm(false);
  }
}

// A comment (and maybe more) from the admin in a modal dialog; resolves null when backed out.
function ask(title, text, {announcement = false, when = false} = {}) {
  const dlg = $("#ask"), form = $("#ask-form");
  $("#ask-title").textContent = title;
  $("#ask-text").textContent = text;
  form.reset(); clearProblems(form);
  $$(".field", form).forEach((x) => x.classList.toggle("hidden",
    !((x.dataset.field === "announcement" && announcement) || (x.dataset.field === "when" && when))));
  return new Promise((resolve) => {
    const done = () => {
      dlg.removeEventListener("close", done);
      if (dlg.returnValue !== "ok") return resolve(null);
      resolve({comment: $("#ask-comment").value.trim(), announcement: $("#ask-announcement").value.trim(),
               effective_at: withOffset($("#ask-when").value)});
    };
    dlg.addEventListener("close", done);
    dlg.returnValue = "";
    dlg.showModal();
    $("#ask-comment").focus();
  });
}
$("#ask-ok").addEventListener("click", (ev) => {
  if (!$("#ask-comment").value.trim()) {
    ev.preventDefault();
    const box = $("#ask-problems");
    box.replaceChildren(el("strong", "请填写原因 A comment is required"));
    $("#ask-comment").setAttribute("aria-invalid", "true");
    $("#ask-comment").focus();
  }
});

function requireComment(form, input) {
  if (input.value.trim()) return true;
  clearProblems(form);
  $(".problems", form).appendChild(el("strong", "请填写原因 A comment is required (every change is audited)"));
  input.setAttribute("aria-invalid", "true");
  input.focus();
  showStatus("error", "请填写原因 A comment is required");
  return false;
}

// -- overview and history ---------------------------------------------------------------------
async function refresh() {
  const [overview, versions] = await Promise.all([api("GET", "/api/admin/overview"), api("GET", "/api/admin/versions")]);
  state.overview = overview; state.versions = versions.items;
  state.tz = overview.timezone || "Asia/Shanghai"; state.offset = zoneOffset(state.tz);
  $$(".offset").forEach((x) => { x.textContent = state.offset; });
  renderLines(); renderLists(); renderBroadcasts(); renderVersions();
  syncChangeForm(true);
  loadPrompts();  // after a change the texts (and their audio) may be new
}

function lineByNumber(number) { return (state.overview.lines || []).find((l) => l.number === number); }

function renderLines() {
  const o = state.overview;
  $("#version-info").textContent =
    `当前版本 live v${o.version} · ${o.content_hash} · ${o.timezone} · ${o.lines.length} 条热线 lines`;
  const body = $("#lines tbody");
  body.replaceChildren();
  for (const ln of o.lines) {
    const tr = el("tr", null, {"data-number": ln.number, "data-mode": ln.mode});
    const stillCalled = ln.mode === "retired" && (ln.calls_7_days > 0 || ln.calls_today > 0);
    if (stillCalled) tr.classList.add("still-calling");
    tr.appendChild(el("td", ln.number, {class: "number"}));
    const name = el("td", ln.name);
    if (stillCalled) name.appendChild(el("span", "仍有来电 still called", {class: "badge warn"}));
    tr.appendChild(name);
    const mode = el("td", MODE_NAMES[ln.mode] || ln.mode, {class: "mode"});
    mode.appendChild(document.createTextNode(" "));
    mode.appendChild(el("span", ln.mode, {class: "code"}));
    if (ln.mode === "retired") mode.appendChild(el("div", ln.announce ? "播放并入提示 announce" : "不提示 no notice",
                                                   {class: "hint"}));
    tr.appendChild(mode);
    const dept = el("td", ln.department || "—");
    if (ln.handled_by && ln.handled_by !== ln.department) dept.appendChild(el("div", `承办 ${ln.handled_by}`, {class: "hint"}));
    tr.appendChild(dept);
    const queue = el("td", ln.queue || (ln.mode === "primary" || ln.mode === "retired" ? "12345 菜单 menu" : "—"));
    if (ln.mode === "sub_centre" && ln.overflow_seconds) {
      queue.appendChild(el("div", `${ln.overflow_seconds} s 未接 → 12345`, {class: "hint"}));
    }
    tr.appendChild(queue);
    const hours = el("td", ln.hours === "always" ? "7×24" : ln.hours);
    if (ln.mode === "sub_centre") {
      hours.appendChild(el("div", ln.after_hours === "hangup" ? "下班后挂机 hangup" : "下班后转12345 central", {class: "hint"}));
    }
    tr.appendChild(hours);
    tr.appendChild(el("td", ln.calls_today, {class: "num"}));
    tr.appendChild(el("td", ln.calls_7_days, {class: "num"}));
    tr.appendChild(el("td", ln.last_call_at ? fmtTime(ln.last_call_at) : "—", {title: ln.last_call_at || ""}));
    const act = el("td");
    const edit = el("button", "修改 Edit", {type: "button", class: "secondary small"});
    edit.addEventListener("click", () => {
      $("#c-number").value = ln.number; syncChangeForm(true);
      $("#change-section").scrollIntoView({behavior: "smooth"}); $("#c-mode").focus();
    });
    act.appendChild(edit);
    tr.appendChild(act);
    body.appendChild(tr);
  }
}

function renderLists() {
  const o = state.overview;
  const fill = (id, values) => {
    const list = $(id); list.replaceChildren();
    for (const [value, label] of values) { const opt = el("option", label); opt.value = value; list.appendChild(opt); }
  };
  fill("#queue-list", o.queues.map((q) => [q, q]));
  fill("#schedule-list", ["always", ...o.schedules.filter((s) => s !== "always")].map((s) => [s, s]));
  fill("#number-list", o.lines.map((l) => [l.number, `${l.name}（${MODE_NAMES[l.mode] || l.mode}）`]));
  const select = $("#c-number"), chosen = select.value;
  select.replaceChildren();
  for (const l of o.lines) {
    const opt = el("option", `${l.number} ${l.name}（${MODE_NAMES[l.mode] || l.mode}）`); opt.value = l.number;
    select.appendChild(opt);
  }
  if (chosen && lineByNumber(chosen)) select.value = chosen;
  else { const first = o.lines.find((l) => l.mode !== "primary"); if (first) select.value = first.number; }
  const checks = $("#b-lines"), ticked = new Set($$("input:checked", checks).map((x) => x.value));
  checks.replaceChildren();
  for (const [value, label] of [["all", "全部 all"], ...o.lines.map((l) => [l.number, l.number])]) {
    const lab = el("label"); const box = el("input", null, {type: "checkbox", name: "lines", value});
    box.checked = ticked.size ? ticked.has(value) : value === "all";
    lab.appendChild(box); lab.appendChild(document.createTextNode(" " + label)); checks.appendChild(lab);
  }
}

function renderBroadcasts() {
  const list = $("#broadcast-list");
  list.replaceChildren();
  const items = state.overview.broadcasts || [];
  if (!items.length) { list.appendChild(el("li", "当前没有播报 No broadcasts", {class: "hint"})); return; }
  for (const b of items) {
    const li = el("li", null, {"data-broadcast": b.id});
    li.appendChild(el("b", b.id));
    li.appendChild(document.createTextNode(` ${fmtTime(b.start)} – ${fmtTime(b.end)} [${(b.lines || []).join(", ")}]：`));
    li.appendChild(el("span", b.text));
    const rm = el("button", "删除 Remove", {type: "button", class: "secondary small"});
    rm.style.marginLeft = "6px";
    rm.addEventListener("click", async () => {
      const answer = await ask(`删除播报 ${b.id} / Remove broadcast`, b.text);
      if (!answer) return;
      await submitChange("删除播报 Remove broadcast", null, () => api("POST", "/api/admin/changes",
        {change: {op: "remove_broadcast", id: b.id}, comment: answer.comment}));
    });
    li.appendChild(rm);
    list.appendChild(li);
  }
}

function renderVersions() {
  const live = state.overview.version;
  $("#version-count").textContent = `共 ${state.versions.length} 个版本 ${state.versions.length} versions`;
  const body = $("#versions tbody");
  body.replaceChildren();
  for (const v of state.versions) {
    const tr = el("tr", null, {"data-version": String(v.id), "data-status": v.status});
    if (v.id === live) tr.classList.add("live");
    const id = el("td", `v${v.id}`);
    if (v.id === live) id.appendChild(el("span", "当前 live", {class: "badge live"}));
    if (v.parent_id) id.appendChild(el("div", `基于 from v${v.parent_id}`, {class: "hint"}));
    tr.appendChild(id);
    const st = el("td", `${STATUS_NAMES[v.status] || v.status} `, {class: "st-" + v.status});
    st.appendChild(el("span", v.status, {class: "code"}));
    tr.appendChild(st);
    tr.appendChild(el("td", v.created_by));
    const when = el("td");
    when.appendChild(el("div", `提交 ${fmtTime(v.created_at)}`, {class: "nowrap", title: v.created_at || ""}));
    if (v.effective_at) when.appendChild(el("div", `生效 ${fmtTime(v.effective_at)}`, {class: "hint nowrap", title: "effective_at"}));
    if (v.applied_at && v.applied_at !== v.created_at) when.appendChild(el("div", `应用 ${fmtTime(v.applied_at)}`, {class: "hint nowrap", title: "applied_at"}));
    tr.appendChild(when);
    const comment = el("td", null, {class: "comment"});
    comment.appendChild(el("div", v.comment));
    if (v.change && v.change.op) comment.appendChild(el("div", describeChange(v.change), {class: "code"}));
    if (v.error) comment.appendChild(el("div", `${v.status === "failed" ? "错误 error" : "备注 note"}: ${v.error}`,
                                        {class: v.status === "failed" ? "st-failed" : "hint"}));
    tr.appendChild(comment);
    const diffCell = el("td", null, {class: "diff"});
    if (v.diff) {
      const det = el("details");
      det.appendChild(el("summary", `查看差异 show diff (${v.diff.split("\n").filter((x) => /^[+-][^+-]/.test(x)).length} 行 lines)`));
      det.appendChild(el("pre", v.diff));
      diffCell.appendChild(det);
    } else {
      diffCell.appendChild(el("span", "—", {class: "hint"}));
    }
    tr.appendChild(diffCell);
    const actions = el("td", null, {class: "actions"});
    if (v.status === "applied" && v.id !== live && v.content_hash !== state.overview.content_hash) {
      const b = el("button", "回滚到此版本 Roll back to this", {type: "button", class: "secondary small", "data-action": "rollback"});
      b.addEventListener("click", async () => {
        const answer = await ask(`回滚到 v${v.id} / Roll back to v${v.id}`,
          `将 v${v.id} 的配置作为新版本重新生效（${v.comment}）。Applies v${v.id}'s configuration again as a new version.`);
        if (!answer) return;
        await submitChange(`回滚到 v${v.id} Rollback`, null,
          () => api("POST", `/api/admin/versions/${v.id}/rollback`, {comment: answer.comment}));
      });
      actions.appendChild(b);
    }
    if (v.status === "scheduled") {
      const b = el("button", "取消 Cancel", {type: "button", class: "danger small", "data-action": "cancel"});
      b.addEventListener("click", async () => {
        const answer = await ask(`取消计划中的 v${v.id} / Cancel scheduled v${v.id}`, v.comment);
        if (!answer) return;
        await submitChange(`取消 v${v.id} Cancel`, null,
          () => api("POST", `/api/admin/versions/${v.id}/cancel`, {comment: answer.comment}));
      });
      actions.appendChild(b);
    }
    tr.appendChild(actions);
    body.appendChild(tr);
  }
}

function describeChange(change) {
  const c = change;
  switch (c.op) {
    case "update_line": return `修改 update ${c.number}: ${Object.keys(c.fields || {}).join(", ")}`;
    case "retire_line": return `撤号 retire ${c.number}`;
    case "create_line": return `新建 create ${(c.line || {}).number || ""}`;
    case "rollback": return `回滚 rollback to v${c.to}`;
    case "add_broadcast": return `播报 broadcast ${(c.broadcast || {}).id || ""}`;
    case "remove_broadcast": return `删除播报 remove broadcast ${c.id}`;
    default: return c.op;
  }
}

// -- the change form ------------------------------------------------------------------------
function showFieldsFor(form, mode) {
  const wanted = new Set(MODE_FIELDS[mode] || []);
  $$(".field", form).forEach((x) => x.classList.toggle("hidden", !wanted.has(x.dataset.field)));
}
function fillModes(select, current) {
  select.replaceChildren();
  const modes = current === "primary" ? ["primary"] : ["retired", "dual_number", "sub_centre"];
  for (const m of modes) { const opt = el("option", modeLabel(m)); opt.value = m; select.appendChild(opt); }
  select.value = current;
  select.disabled = current === "primary";
}
// prefill: put the selected line's current values into the form (after a reload or a new selection)
function syncChangeForm(prefill) {
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
    $("#c-announce").checked = !!line.announce;
    $("#c-announcement").value = line.announcement || "";
  }
  showFieldsFor($("#change-form"), $("#c-mode").value);
  $("#retire").disabled = line.mode === "retired" || line.mode === "primary";
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
function changedFields() {
  const line = lineByNumber($("#c-number").value);
  const mode = $("#c-mode").value;
  const fields = {};
  const newMode = mode !== line.mode;
  if (newMode) fields.mode = mode;
  for (const name of MODE_FIELDS[mode] || []) {
    const value = readField(name);
    const current = line[name] === undefined ? null : line[name];
    if (newMode) {
      if (value !== "") fields[name] = value;
    } else if (value === "" ) {
      if (current !== null && current !== "") fields[name] = null;  // emptied: back to the default
    } else if (value !== current) {
      fields[name] = value;
    }
  }
  return {line, fields};
}
$("#c-number").addEventListener("change", () => { clearProblems($("#change-form")); syncChangeForm(true); });
$("#c-mode").addEventListener("change", () => syncChangeForm(false));
$("#change-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  if (!requireComment(form, $("#c-comment"))) return;
  const {line, fields} = changedFields();
  if (!Object.keys(fields).length) {
    clearProblems(form);
    showStatus("error", "没有修改任何字段 Nothing to change: edit a field first");
    return;
  }
  await submitChange(`修改 ${line.number} Change`, form, () => api("PATCH", `/api/admin/lines/${encodeURIComponent(line.number)}`,
    {fields, comment: $("#c-comment").value.trim(), effective_at: withOffset($("#c-when").value)}));
});
$("#c-dry").addEventListener("click", async () => {
  const {line, fields} = changedFields();
  const change = Object.keys(fields).length ? {op: "update_line", number: line.number, fields} : null;
  $("#d-number").value = line.number;
  if (!$("#d-at").value) $("#d-at").value = localNow();
  await runDry(change);
});
$("#retire").addEventListener("click", async () => {
  const line = lineByNumber($("#c-number").value);
  if (!line) return;
  const answer = await ask(`整体并入 ${line.number} ${line.name} / Retire`,
    `号码取消，来电由12345受理，部门预置为“${line.department || ""}”。The number is retired; 12345 takes its calls.`,
    {announcement: true, when: true});
  if (!answer) return;
  const body = {comment: answer.comment, effective_at: answer.effective_at};
  if (answer.announcement) body.announcement = answer.announcement;
  await submitChange(`整体并入 ${line.number} Retire`, $("#change-form"),
    () => api("POST", `/api/admin/lines/${encodeURIComponent(line.number)}/retire`, body));
});

// -- create ----------------------------------------------------------------------------------
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

// -- broadcasts --------------------------------------------------------------------------------
$("#broadcast-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  if (!requireComment(form, $("#b-comment"))) return;
  let lines = $$("#b-lines input:checked").map((x) => x.value);
  if (lines.includes("all") || !lines.length) lines = ["all"];
  const broadcast = {id: $("#b-id").value.trim(), text: $("#b-text").value.trim(), start: withOffset($("#b-start").value),
                     end: withOffset($("#b-end").value), lines};
  await submitChange(`播报 ${broadcast.id} Broadcast`, form, () => api("POST", "/api/admin/changes",
    {change: {op: "add_broadcast", broadcast}, comment: $("#b-comment").value.trim()}));
});

// -- dry run -------------------------------------------------------------------------------------
async function runDry(change) {
  const form = $("#dry-form"), out = $("#dry-result");
  clearProblems(form);
  out.replaceChildren(el("p", "试运行中… running", {class: "hint"}));
  const body = {number: $("#d-number").value.trim(), at: withOffset($("#d-at").value), digits: $("#d-digits").value.trim()};
  if (change) body.change = change;
  try {
    const r = await api("POST", "/api/admin/dry-run", body);
    renderDry(r);
    showStatus("ok", `试运行完成（未做任何修改）Dry run done, nothing changed: ${r.number} → ${destinationText(r.destination)}`);
  } catch (err) {
    out.replaceChildren();
    showProblems(form, err);
    showStatus("error", `试运行失败 Dry run failed: ${err.message}`);
  }
}
function destinationText(d) {
  if (!d) return "无 none";
  if (d.hangup) return "挂机 hang up";
  let s = `队列 queue ${d.queue}`;
  if (d.overflow_queue) s += `，${d.overflow_seconds} 秒未接溢出到 overflows after ${d.overflow_seconds} s to ${d.overflow_queue}`;
  return s;
}
function renderDry(r) {
  const out = $("#dry-result");
  out.replaceChildren();
  const dl = el("dl", null, {id: "dry-summary"});
  const add = (term, value, attrs) => { dl.appendChild(el("dt", term)); dl.appendChild(el("dd", value, attrs)); };
  add("热线 Line", `${r.number} ${r.line}（${modeLabel(r.mode)}）`);
  add("时间 At", `${fmtTime(r.at)}（${r.at}）`);
  add("服务时间 Open", r.open ? "服务时间内 open" : "非服务时间 closed", {id: "dry-open"});
  add("按键 Digits", r.digits || "（无 none）");
  add("去向 Destination", destinationText(r.destination), {id: "dry-destination"});
  add("承办 Handled by", r.handled_by || "12345");
  if (r.department) add("部门 Department", r.department);
  if (r.category) add("诉求类型 Category", r.category);
  add("结果 Outcome", r.outcome || "");
  add("配置 Config", r.configuration || "");
  out.appendChild(dl);
  out.appendChild(el("div", "路径 Path", {class: "hint"}));
  out.appendChild(el("pre", r.path_text, {id: "dry-path"}));
  out.appendChild(el("div", `听到的提示 Prompts heard (${r.heard.length})`, {class: "hint"}));
  const ol = el("ol", null, {id: "dry-heard"});
  for (const h of r.heard) {
    const li = el("li");
    li.appendChild(el("span", h.text || "（无文本 no text）"));
    li.appendChild(document.createTextNode(" "));
    li.appendChild(el("span", h.prompt, {class: "prompt"}));
    ol.appendChild(li);
  }
  out.appendChild(ol);
}
$("#dry-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  if (!/^\d{3,20}$/.test($("#d-number").value.trim())) {
    clearProblems(form);
    $(".problems", form).appendChild(el("strong", "号码为3-20位数字 The number is 3-20 digits"));
    return;
  }
  await runDry(null);
});

// -- prompts: play each one as callers hear it (issue 10) -----------------------------------------
let promptsLoaded = 0;
async function loadPrompts() {
  const body = $("#prompts tbody");
  let data;
  try {
    data = await api("GET", "/api/admin/prompts");
  } catch (err) {
    body.replaceChildren(el("tr")); body.firstChild.appendChild(el("td", `加载失败 Could not load: ${err.message}`, {colspan: "5"}));
    return;
  }
  promptsLoaded += 1;  // new audio after an edit: the player asks again, never a stale copy
  const v = data.voice || {};
  $("#voice-info").textContent = v.problem
    ? `备用语音 fallback espeak-ng ${v.voice}: ${v.problem}` : `普通话 Mandarin: Kokoro ${v.voice || ""}`;
  body.replaceChildren(...data.items.map((p) => {
    const tr = el("tr", null, {"data-key": p.key});
    tr.appendChild(el("td", p.key));
    tr.appendChild(el("td", p.text, {lang: p.language === "ko" ? "ko" : "zh-CN"}));
    tr.appendChild(el("td", p.spoken === p.text ? "" : p.spoken, {lang: "zh-CN"}));
    tr.appendChild(el("td", `${p.engine} ${p.voice}` + (p.recorded ? " (录音 recorded)" : "")));
    const cell = el("td");
    if (p.rendered) {
      const button = el("button", "▶ 试听 Play", {type: "button", class: "secondary", "aria-label": `试听 Play ${p.key}`});
      button.addEventListener("click", () => {
        let audio = $("audio", cell);
        if (!audio) {
          audio = el("audio", null, {controls: "", preload: "none", "aria-label": `${p.key}`});
          audio.src = `${p.url}?r=${promptsLoaded}`;
          cell.appendChild(audio);
        }
        audio.play().catch(() => {});
        audio.focus();
      });
      cell.appendChild(button);
    } else {
      cell.textContent = "未合成 not rendered yet";
    }
    tr.appendChild(cell);
    return tr;
  }));
}

// -- log out and start -------------------------------------------------------------------------
$("#logout").addEventListener("click", async () => {
  try { await api("POST", "/api/logout"); } finally { location.href = "/login?next=/admin"; }
});

(async () => {
  try {
    await loadMe();
    await refresh();
    $("#d-at").value = localNow();
    showFieldsFor($("#create-form"), $("#n-mode").value);
    document.body.dataset.ready = "true";
  } catch (err) {
    showStatus("error", `加载失败 Could not load: ${err.message}`);
  }
})();
})();
