// The admin page's state, API caller, times in the hotline's zone, the error summary and the
// change helper every form uses. The other admin modules import from here; main.js starts it.
import {$, $$, el, arr, isObj, str, makeApi, fmtTime as fmtIn, showStatus, problemsOf, DEFAULT_TZ} from "../common.js";

export const state = {
  csrf: "", user: null, overview: null, versions: [], tz: DEFAULT_TZ, offset: "+08:00",
  refresh: async () => {},  // set by main.js: reload the overview and history after a change
};

async function loadSession() {
  const me = await api("GET", "/api/me");
  state.csrf = me.csrf_token; state.user = me.user;
  $("#who").textContent = `${me.user.username}（${me.user.role}）`;
}
export const api = makeApi(state, {onUnauthorized: () => { location.href = "/login?next=/admin"; },
                                   refresh: loadSession});
export {loadSession};

// -- time: the hotline's zone (Asia/Shanghai, UTC+08:00) ------------------------------------------
export function zoneOffset(tz) {
  try {
    const part = new Intl.DateTimeFormat("en-US", {timeZone: tz, timeZoneName: "longOffset"})
      .formatToParts(new Date()).find((p) => p.type === "timeZoneName");
    const m = part && /GMT([+-]\d\d:\d\d)/.exec(part.value);
    return m ? m[1] : "+08:00";
  } catch (e) { return "+08:00"; }
}
/** "2027-02-20T23:00" -> "2027-02-20T23:00:00+08:00"; null for an empty input. */
export function withOffset(local) {
  if (!local) return null;
  return (local.length === 16 ? local + ":00" : local) + state.offset;
}
export function fmtTime(iso) { return fmtIn(iso, state.tz); }
export function localNow() { return fmtTime(new Date().toISOString()).replace(" ", "T").slice(0, 16); }

// -- the error summary: every problem at once, zh first then en, each linked to its field ---------
/** The form control a problem's path or field names ("lines[3].queue", "fields.queue" -> queue). */
function controlFor(form, path) {
  if (!form || !path || !form.elements) return null;
  const parts = String(path).split(/[.\[\]]/).filter((p) => p && !/^\d+$/.test(p));
  for (let i = parts.length - 1; i >= 0; i--) {
    const found = form.elements.namedItem(parts[i]);
    if (found && found.setAttribute && !found.closest(".hidden")) return found;
    if (found && typeof found.length === "number" && found.length && found[0].setAttribute) return found[0];
  }
  return null;
}
export function clearProblems(form) {
  const box = $(".problems", form);
  if (box) box.replaceChildren();
  $$("[aria-invalid]", form).forEach((x) => { x.removeAttribute("aria-invalid"); x.removeAttribute("aria-describedby"); });
}
/** "中文" and "English" of one problem (either may be missing); never twice the same text. */
export function bilingual(p) {
  const zh = str(p.message_zh), en = str(p.message);
  return {zh: zh && zh !== en ? zh : "", en: en || zh};
}
let problemIds = 0;
/** Show what the server (or the page) refused: every problem, each field marked, focus on the first. */
export function showProblems(form, err, {focus = true} = {}) {
  const box = form && $(".problems", form);
  if (!box) return;
  clearProblems(form);
  const data = isObj(err.data) ? err.data : {};
  const problems = problemsOf(data);
  const details = isObj(data.details) ? data.details : {};
  const top = bilingual(data);
  box.setAttribute("tabindex", "-1");
  if (problems.length) {
    box.appendChild(el("strong", `${problems.length} 个问题，未做任何修改 — ${problems.length} problem(s), nothing was changed:`));
  } else {
    box.appendChild(el("strong", "被拒绝，未做任何修改 Refused, nothing was changed:"));
  }
  const ul = el("ul");
  const marked = [];
  const items = problems.length ? problems : [{field: details.field, message: top.en || err.message,
                                                message_zh: top.zh}];
  for (const p of items) {
    const id = `problem-${++problemIds}`;
    const li = el("li", null, {id});
    const where = [p.file, p.line ? `line ${p.line}` : null].filter(Boolean).join(":");
    if (where) li.appendChild(el("span", `${where} `, {class: "where"}));
    const control = controlFor(form, p.field || p.path);
    const name = p.field || p.path || "";
    if (control) {
      // the field as the form names it ("队列 Queue"), then the path the server gave (lines[3].queue)
      const caption = control.id && form.querySelector(`label[for="${control.id}"]`);
      const link = el("a", caption ? caption.textContent.replace(/\s*\*$/, "").trim() : name, {href: `#${control.id}`});
      link.addEventListener("click", (ev) => { ev.preventDefault(); control.focus(); });
      li.appendChild(link);
      if (caption && name) li.appendChild(el("span", ` ${name}`, {class: "where"}));
      control.setAttribute("aria-invalid", "true");
      const before = control.getAttribute("aria-describedby");
      control.setAttribute("aria-describedby", before ? `${before} ${id}` : id);
      marked.push(control);
    } else if (name) {
      li.appendChild(el("b", name));
    }
    const {zh, en} = bilingual(p);
    if (name) li.appendChild(document.createTextNode("："));
    if (zh) li.appendChild(el("span", zh, {class: "zh", lang: "zh-CN"}));
    if (en) li.appendChild(el("span", en, {class: zh ? "en" : "", lang: "en"}));
    ul.appendChild(li);
  }
  box.appendChild(ul);
  if (!focus) return;
  // focus the first invalid field in reading order, else the summary itself
  const first = $$("input, select, textarea", form).find((x) => marked.includes(x));
  (first || box).focus();
}
/** A problem found by the page itself, shown the same way as the server's. */
export function refuse(form, field, zh, en) {
  const err = new Error(en);
  err.data = {message: en, message_zh: zh, details: {problems: [{field, message: en, message_zh: zh}]}};
  showProblems(form, err);
  showStatus("error", `${zh} ${en}`, {extraClass: "wide"});
}
export function requireComment(form, input) {
  if (input.value.trim()) return true;
  refuse(form, input.name, "请填写原因（每次修改都记入审计）", "A comment is required (every change is audited)");
  return false;
}
export function status(kind, message) { showStatus(kind, message, {extraClass: "wide"}); }

// One change: busy state, the answer in the status area, problems next to the form, then reload.
export async function submitChange(label, form, call) {
  if (form) clearProblems(form);
  const buttons = form ? $$("button", form) : [];
  buttons.forEach((b) => { b.disabled = true; });
  status("busy", `${label}…`);
  try {
    let v;
    try {
      v = await call();
    } catch (err) {
      const n = problemsOf(err.data).length;
      status("error", `${label} 被拒绝 refused (${err.status || "?"} ${err.data ? str(err.data.error) : ""})：` +
        (n ? `${n} 个问题，见表单 ${n} problem(s), see the form` : err.message) + "。未做任何修改 Nothing was changed.");
      buttons.forEach((b) => { b.disabled = false; });
      if (form) showProblems(form, err);
      return null;
    }
    const when = v.status === "scheduled" ? `已计划 scheduled for ${fmtTime(v.effective_at)}` : "已生效 applied";
    // the change form follows the live line again (refresh prefills it): drop a stale comment and time too
    $("#c-comment").value = ""; $("#c-when").value = ""; clearProblems($("#change-form"));
    if (form && form !== $("#change-form")) form.reset();
    let reload = "";
    try {
      await state.refresh();  // the page shows the new version before it says so
    } catch (err) {
      reload = ` 页面刷新失败，请重新载入 The page could not reload: ${err.message}`;
    }
    status(reload ? "error" : "ok", `${label}：版本 v${v.id} ${when}。Version v${v.id} ${v.status}.${reload}`);
    return v;
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
    if (form) form.dispatchEvent(new CustomEvent("admin:settled"));
  }
}

// A comment (and maybe more) from the admin in a modal dialog; resolves null when backed out.
export function ask(title, text, {announcement = false, when = false, onOpen = null} = {}) {
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
    if (onOpen) onOpen();
    dlg.showModal();
    $("#ask-comment").focus();
  });
}
$("#ask-ok").addEventListener("click", (ev) => {
  if (!$("#ask-comment").value.trim()) {
    ev.preventDefault();
    const form = $("#ask-form");
    const err = new Error("A comment is required");
    err.data = {details: {problems: [{field: "comment", message: "A comment is required",
                                      message_zh: "请填写原因"}]}};
    showProblems(form, err);
  }
});

export function lineByNumber(number) { return arr(state.overview && state.overview.lines).find((l) => l.number === number); }
