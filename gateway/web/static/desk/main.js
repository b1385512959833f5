// The agent desk (/desk): screen pops over a WebSocket, the ticket with its suggestions, the
// agent's decision. ES modules, no build step; served from /static/desk/ (CSP script-src 'self').
//
// Keyboard: Tab reaches every control in reading order; in a drafts list the arrow keys move
// and Enter opens; Ctrl+Enter submits the open ticket; Alt+↑/Alt+↓ the previous/next open
// draft; Alt+1..9 the Nth open draft (the shortcuts are listed on the page).
import {$, el, showStatus} from "../common.js";
import {CATEGORIES, CATEGORY_EN, UNIT_KIND_EN, UNIT_KIND_NAMES, URGENCY_NAMES} from "../labels.js";
import {forgetOldDrafts, hooks, key, load, state, store, dropLocalDraft} from "./state.js";
import {api, loadMe, notice} from "./session.js";
import {flushAll} from "./drafts.js";
import {addTicket, listKeys, openEntries, renderList, selectTicket, switchDraft} from "./list.js";
import {renderInfo, renderState} from "./detail.js";
import {decide} from "./form.js";
import {connect, reloadInbox, saveSeq} from "./live.js";

// The renderers drafts.js and form.js call, from the modules above them (see state.js).
Object.assign(hooks, {renderList, renderInfo, renderState});

async function openById(id) {
  try {
    const view = await api("GET", `/api/desk/tickets/${id}`);
    addTicket(view, {select: true});
    showStatus("ok", `已打开工单 #${id}。Opened ticket #${id}.`);
  } catch (err) {
    showStatus("error", `无法打开工单 #${id}：${err.message}`);
  }
}

function shortcuts(ev) {
  if (ev.defaultPrevented || ev.isComposing) return;  // an IME composing Chinese keeps its keys
  if ((ev.ctrlKey || ev.metaKey) && !ev.altKey && ev.key === "Enter") {
    const entry = state.selected && state.tickets.get(state.selected);
    if (entry && entry.status === "open") { ev.preventDefault(); decide(entry, "submit"); }
    return;
  }
  if (!ev.altKey || ev.ctrlKey || ev.metaKey) return;
  if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
    if (switchDraft(ev.key === "ArrowDown" ? 1 : -1)) ev.preventDefault();
    return;
  }
  const digit = /^Digit([1-9])$/.exec(ev.code || "");  // the code: Alt+digit may type a symbol on some layouts
  if (digit && switchDraft(0, Number(digit[1]) - 1)) ev.preventDefault();
}

/** The form's choices from labels.js (the one source of the labels), into the page's templates. */
function fillChoices() {
  const form = $("#t-ticket").content;
  $("#f-category", form).append(...CATEGORIES.map((c) => el("option", `${c} ${CATEGORY_EN[c] || ""}`.trim(), {value: c})));
  $("#f-urgency", form).append(...Object.entries(URGENCY_NAMES).map(([k, zh]) => el("option", `${zh} ${k}`, {value: k})));
  $(".unit-kind", $("#t-unit").content).append(...Object.entries(UNIT_KIND_NAMES)
    .map(([k, zh]) => el("option", `${zh} ${UNIT_KIND_EN[k] || k}`, {value: k})));
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
    const first = openEntries()[0];
    if (first) selectTicket(first.id);
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
fillChoices();
document.addEventListener("keydown", shortcuts);
for (const list of [$("#open-list"), $("#done-list")]) list.addEventListener("keydown", listKeys);
window.addEventListener("pagehide", () => {
  state.leaving = true;
  flushAll(true);
  if (state.ws) state.ws.close(1000);
});
window.addEventListener("pageshow", (ev) => {  // back from the back/forward cache: listen again
  if (ev.persisted) { state.leaving = false; state.wsRetry = 0; connect(); }
});
start();
