// What the agent typed for one ticket: the form's starting values, autosave, "taken" drafts.
import {$, arr, isObj, str} from "../common.js";
import {CATEGORIES, DISPATCH_MODE_NAMES, URGENCY_NAMES} from "../labels.js";
import {RETRY_SAVE, SAVE_DELAY, dropLocalDraft, hooks, key, localDraft, state, store} from "./state.js";
import {api} from "./session.js";
import {cleanUnits, isLocked} from "./util.js";

function sanitize(data) {  // a draft from storage or the server: only known fields with sane types
  if (!isObj(data)) return {};
  const out = {};
  for (const k of ["category", "urgency", "place", "summary", "dispatch_mode", "answer", "linked_ticket_id"]) {
    if (typeof data[k] === "string") out[k] = data[k];
    else if (typeof data[k] === "number" && k === "linked_ticket_id") out[k] = String(data[k]);
  }
  if (Array.isArray(data.units)) out.units = cleanUnits(data.units);
  if (typeof data.followup_opt_out === "boolean") out.followup_opt_out = data.followup_opt_out;
  if (typeof data.saved_at === "number") out.saved_at = data.saved_at;
  return out;
}
function suggestionsOf(view) {
  const s = view && view.suggestions;
  return isObj(s) && s.available !== false ? s : {};
}
export function prefill(view) {
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
    dispatch_mode: view.dispatch_mode || (firstUnits && DISPATCH_MODE_NAMES[firstUnits.mode] ? firstUnits.mode : "direct"),
    linked_ticket_id: view.linked_ticket_id ? String(view.linked_ticket_id) : "",
    answer: view.answer || (!decided && firstAnswer ? firstAnswer.answer : ""),
    followup_opt_out: view.followup_opt_out === true,
  };
}
export function startingForm(view) {
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

// -- autosave -------------------------------------------------------------------------------
export function persist(entry) {
  if (entry.status !== "open") return;
  entry.form.saved_at = Date.now();
  store(localStorage, key("draft", entry.id), {data: entry.form, saved_at: entry.form.saved_at});
  clearTimeout(entry.saveTimer);
  entry.saveTimer = setTimeout(() => saveDraft(entry), SAVE_DELAY);
  hooks.renderList();
  hooks.renderState(entry);
}
export async function saveDraft(entry, {keepalive = false} = {}) {
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
    if (state.selected === entry.id) hooks.renderState(entry);
  }
}
export function flushAll(keepalive) {
  const pending = [];
  for (const entry of state.tickets.values()) {
    if (entry.status === "open" && entry.saveTimer) pending.push(saveDraft(entry, {keepalive}));
  }
  return Promise.allSettled(pending);
}

export function markTaken(entry, message) {
  entry.status = "taken";
  entry.message = message;
  clearTimeout(entry.saveTimer);
  entry.saveTimer = null;
  dropLocalDraft(entry.id);
  const box = $(`#detail .ticket[data-ticket-id="${entry.id}"] .preview-box`);
  if (box) { box.hidden = true; box.replaceChildren(); }  // it showed a dispatch that will not happen
  hooks.renderList();
  if (state.selected === entry.id) hooks.renderState(entry);
}
