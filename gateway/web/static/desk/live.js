// Screen pops over the WebSocket. It replays what this tab missed (?since=<last seq>, kept in
// sessionStorage) and reconnects by itself with a 1 s -> 10 s backoff. A pop never takes the
// ticket the agent is working on away: it is announced (sound, highlight, screen reader) and
// opens by itself only when no open draft is on screen.
import {$, arr, isObj, showStatus, str} from "../common.js";
import {key, state, store} from "./state.js";
import {announce, api, notice, toLogin} from "./session.js";
import {addTicket, openEntries, selectTicket} from "./list.js";
import {refreshTicket} from "./form.js";
import {chime} from "./chime.js";
import {CALLBACK_LABEL} from "../labels.js";

function setConn(kind, text) {
  const c = $("#conn");
  c.dataset.state = kind;
  c.textContent = text;
  document.body.dataset.ws = kind;
}
export function saveSeq(seq) {
  state.lastSeq = seq;
  store(sessionStorage, key("seq"), seq);
}
export async function reloadInbox() {
  const inbox = await api("GET", "/api/desk/inbox");
  state.transfers = arr(inbox.transfers).filter(isObj);
  for (const view of arr(inbox.items).slice().reverse()) addTicket(view);
  return inbox;
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
  } else if (msg.type === "transferred_call") {
    const what = msg.ticket_id ? `工单 #${msg.ticket_id}` : str(msg.uniqueid);
    notice(`紧急转接来电 transferred emergency call：${what}（转 ${str(msg.service)}，${str(msg.queue)}）`, "warn");
    showStatus("ok", `紧急转接来电 ${what}（${str(msg.service)}）：请接听并按需记录。A caller transferred by the desk.`);
    announce(`紧急转接来电 ${what}`);
    chime(true);
  } else if (isObj(msg.ticket) && state.tickets.has(msg.ticket.id)) {  // an event of a later version: a newer view
    addTicket(msg.ticket);
  } else if (state.tickets.has(Number(msg.ticket_id))) {  // "this ticket changed" (e.g. its transcript came)
    await refreshTicket(state.tickets.get(Number(msg.ticket_id)));
  }
  if (seq) saveSeq(Math.max(state.lastSeq, seq));
}

/** Is the agent working on a draft right now (an open ticket on screen)? */
function busyWithDraft() {
  const current = state.selected && state.tickets.get(state.selected);
  return Boolean(current && current.status === "open");
}

async function onPop(msg, replay) {
  let view = msg.ticket;
  if (replay && !state.tickets.has(view.id)) {  // missed while away: it may have been decided since
    try { view = await api("GET", `/api/desk/tickets/${view.id}`); } catch (err) { return; }
    if (view.status !== "draft") return;
  }
  const known = state.tickets.has(view.id);
  if (replay && known) { addTicket(view); return; }  // already shown (from the inbox): keep the agent where they are
  const takeOver = !busyWithDraft() || state.selected === view.id;
  addTicket(view, {fresh: true});
  if (takeOver) selectTicket(view.id);
  if (known) return;
  const emergency = Boolean(view.emergency);
  // A citizen the gateway called back (virtual hold): the original call's ticket, said as such.
  const what = `${isObj(msg.callback) ? CALLBACK_LABEL + "：" : ""}工单 #${view.id} ${str(view.line_number)} ${str(view.line_name)}`.trim();
  notice(`弹屏 screen pop：工单 #${view.id}（${str(view.line_number)}，${str(msg.queue)}）`);
  chime(emergency);
  const n = openEntries().findIndex((e) => e.id === view.id) + 1;
  const keys = n >= 1 && n <= 9 ? `Alt+${n}` : "Alt+↓";
  const where = takeOver ? "" : `，已列入左侧待处理（${keys} 打开）in the list: ${keys} opens it`;
  showStatus("ok", `新来电 New call：${what}${emergency ? " ⚠ 紧急 EMERGENCY" : ""}${where}`);
  announce(`${emergency ? "紧急来电 emergency call" : "新来电 new call"}：${what}${takeOver ? "" : "，已列入待处理列表"}`);
  const item = $(`#open-list li[data-ticket-id="${view.id}"]`);
  if (item && !takeOver) item.scrollIntoView({block: "nearest"});
}

export function connect() {
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
