// The drafts on the left: open ones (emergency and urgent first, then newest), done ones.
// Each entry is a button; the arrow keys move between them (roving tabindex).
import {$, $$, el, fmtTime, str} from "../common.js";
import {TICKET_STATUS_NAMES} from "../labels.js";
import {key, state, store} from "./state.js";
import {badge} from "./util.js";
import {startingForm} from "./drafts.js";
import {renderDetail, renderInfo} from "./detail.js";

/** 0 emergency, 1 urgent, 2 the rest: the open list's order before age. */
export function rank(entry) {
  const v = entry.view, urgency = entry.form.urgency || v.urgency;
  if (v.emergency || urgency === "emergency") return 0;
  return urgency === "urgent" ? 1 : 2;
}
export function openEntries() {
  return state.order.map((id) => state.tickets.get(id)).filter((e) => e.status === "open")
    .sort((a, b) => rank(a) - rank(b) || b.id - a.id);
}

export function addTicket(view, {fresh = false, select = false} = {}) {
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

// The list items are kept (keyed by ticket) and updated in place: a click whose button was
// rebuilt between mouse down and up would be lost (a textarea's change on blur re-renders the list).
const items = new Map();  // ticket id -> li

function itemOf(id) {
  let li = items.get(id);
  if (!li) {
    li = el("li", null, {"data-ticket-id": id});
    const button = el("button", null, {type: "button", class: "pick", tabindex: "-1", "data-ticket-id": id});
    const l1 = el("span", null, {class: "line1"});
    l1.append(el("span", null, {class: "name"}), el("span", null, {class: "tags"}));
    button.append(l1, el("span", null, {class: "line2"}));
    button.addEventListener("click", () => selectTicket(id));
    li.append(button);
    items.set(id, li);
  }
  return li;
}
function setAttr(node, name, value) {
  if (value === null || value === undefined) node.removeAttribute(name);
  else if (node.getAttribute(name) !== String(value)) node.setAttribute(name, String(value));
}
function setText(node, text) { if (node.textContent !== text) node.textContent = text; }

function listItem(entry, position) {
  const v = entry.view;
  const selected = state.selected === v.id;
  const li = itemOf(v.id);
  setAttr(li, "data-status", entry.status);
  setAttr(li, "data-rank", rank(entry));
  setAttr(li, "class", [entry.fresh ? "fresh" : "", selected ? "selected" : "", rank(entry) === 0 ? "emergency" : "",
    rank(entry) === 1 && entry.status === "open" ? "urgent" : "", entry.status === "taken" ? "taken" : ""]
    .filter(Boolean).join(" "));
  const button = $(".pick", li);
  setAttr(button, "aria-current", selected ? "true" : null);
  setAttr(button, "aria-keyshortcuts", entry.status === "open" && position < 9 ? `Alt+${position + 1}` : null);
  button.tabIndex = -1;
  setText($(".name", button), `#${v.id} ${str(v.line_number)} ${str(v.line_name)}`.trim());
  const tags = [];
  if (entry.fresh) tags.push(["新 new", "new"]);
  if (rank(entry) === 0) tags.push(["紧急", "emergency"]);
  else if (rank(entry) === 1) tags.push(["加急", "urgent"]);
  if (v.confidential) tags.push(["保密", "confidential"]);
  if (entry.status === "taken") tags.push(["已被处理 taken", "taken"]);
  else if (entry.status === "done") tags.push([TICKET_STATUS_NAMES[v.status] || v.status, "status-" + v.status]);
  const box = $(".tags", button);
  const key = JSON.stringify(tags);
  if (box.dataset.key !== key) { box.dataset.key = key; box.replaceChildren(...tags.map(([t, c]) => badge(t, c))); }
  setText($(".line2", button), [entry.form.category || v.category || "未分类", fmtTime(v.created_at).slice(11),
    entry.form.summary || v.transcript || ""].filter(Boolean).join(" · "));
  return li;
}

/** Put ``wanted`` into ``list`` in order, moving only what is out of place. */
function place(list, wanted) {
  const keep = new Set(wanted);
  for (const child of Array.from(list.children)) if (!keep.has(child)) child.remove();
  wanted.forEach((li, i) => { if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null); });
}

export function renderList() {
  const focused = document.activeElement && document.activeElement.closest
    ? document.activeElement.closest(".ticket-list .pick") : null;
  const open = openEntries();
  const done = state.order.map((id) => state.tickets.get(id)).filter((e) => e.status !== "open");
  place($("#open-list"), open.map(listItem));
  place($("#done-list"), done.map((e) => listItem(e, 99)));
  $("#open-count").textContent = String(open.length);
  $("#open-empty").hidden = open.length > 0;
  for (const list of $$(".ticket-list")) {  // one tab stop per list: the focused or selected entry, else the first
    const buttons = $$(".pick", list);
    const current = (focused && buttons.includes(focused) ? focused : null)
      || buttons.find((b) => b.getAttribute("aria-current") === "true") || buttons[0];
    if (current) current.tabIndex = 0;
  }
  if (focused && focused.isConnected && document.activeElement !== focused) focused.focus();
}

/** Arrow keys, Home and End inside a list move the focus; Enter or Space opens. */
export function listKeys(ev) {
  const button = ev.target.closest && ev.target.closest(".pick");
  if (!button || ev.altKey || ev.ctrlKey || ev.metaKey) return;
  const buttons = $$(".pick", button.closest(".ticket-list"));
  const i = buttons.indexOf(button);
  const to = {ArrowDown: i + 1, ArrowUp: i - 1, Home: 0, End: buttons.length - 1}[ev.key];
  if (to === undefined) return;
  ev.preventDefault();
  const next = buttons[Math.max(0, Math.min(buttons.length - 1, to))];
  for (const b of buttons) b.tabIndex = -1;
  next.tabIndex = 0;
  next.focus();
}

export function selectTicket(id, {focus = false} = {}) {
  const entry = state.tickets.get(id);
  if (!entry) return;
  state.selected = id;
  store(sessionStorage, key("selected"), id);
  renderList();
  renderDetail(entry);
  if (focus) {
    const title = $(`#detail .ticket[data-ticket-id="${id}"] .title`);
    if (title) title.focus();
  }
  if (entry.fresh) {  // the highlight fades: a fresh pop stays marked in the list until looked at for a while
    setTimeout(() => {
      entry.fresh = false;
      renderList();
      const a = $(`#detail .ticket[data-ticket-id="${id}"]`);
      if (a) a.classList.remove("fresh");
    }, 8000);
  }
}

/** Alt+↑ / Alt+↓: the previous / next open draft; Alt+1..9: the Nth. */
export function switchDraft(step, nth) {
  const open = openEntries();
  if (!open.length) return false;
  let target;
  if (nth !== undefined) target = open[nth];
  else {
    const i = open.findIndex((e) => e.id === state.selected);
    target = open[i < 0 ? (step > 0 ? 0 : open.length - 1) : (i + step + open.length) % open.length];
  }
  if (!target) return false;
  selectTicket(target.id, {focus: true});
  return true;
}
