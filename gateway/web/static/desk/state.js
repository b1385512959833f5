// The desk's one state object and its per-user browser storage.
//
// Nothing typed is lost: every change goes to localStorage at once and to the server
// (PUT /api/desk/tickets/{id}/draft) ~800 ms later; a reloaded page takes whichever copy is newer.
import {isObj} from "../common.js";

export const SAVE_DELAY = 800;
export const RETRY_SAVE = 5000;
const LOCAL_KEEP_MS = 7 * 24 * 3600 * 1000;

export const state = {
  csrf: "", user: null,
  tickets: new Map(),  // id -> entry {id, view, form, status: open|done|taken, fresh, ...}
  order: [],           // ids, newest first (the open list sorts by urgency on top of this)
  selected: null,
  transfers: [],       // [{service, name, kind}]: the emergency banner's destinations
  ws: null, wsRetry: 0, wsTimer: null, countdown: null,
  lastSeq: 0, helloSeq: 0, connectedOnce: false, leaving: false,
};

// The renderers that lower modules call without importing them (list.js and detail.js import
// drafts.js and form.js, not the other way round): main.js fills these in before anything runs.
function unwired(name) { return () => { throw new Error(`desk: hooks.${name} not wired`); }; }
export const hooks = {
  renderList: unwired("renderList"),    // list.js: the drafts on the left
  renderInfo: unwired("renderInfo"),    // detail.js: the selected ticket's facts and suggestions
  renderState: unwired("renderState"),  // detail.js: its banners, buttons and save state
};

export function key(kind, id) {
  return `desk:${state.user ? state.user.username : "-"}:${kind}${id === undefined ? "" : ":" + id}`;
}
export function store(area, k, value) {
  try {
    if (value === null || value === undefined) area.removeItem(k); else area.setItem(k, JSON.stringify(value));
  } catch (e) { /* full or disabled storage: the server copy remains */ }
}
export function load(area, k) {
  try { const raw = area.getItem(k); return raw === null ? null : JSON.parse(raw); } catch (e) { return null; }
}
export function localDraft(id) { const v = load(localStorage, key("draft", id)); return isObj(v) && isObj(v.data) ? v : null; }
export function dropLocalDraft(id) { store(localStorage, key("draft", id), null); }
export function forgetOldDrafts() {
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
