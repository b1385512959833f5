// The supervisor board's SMS section (issue 13): texts with the ticket number not sent yet,
// failing or given up (dead), numbers masked; GET /api/sms every 10 s; a failed or dead
// text can be sent again (POST /api/sms/{id}/retry, audited). Its own module beside
// supervisor.js, so the board's code is untouched.
import {$, arr, el, fmtTime, isObj, latestWins, makeApi, num, redrawKeepingFocus, showStatus, str} from "./common.js";
import {SMS_KIND_NAMES, SMS_STATUS_NAMES, groupedTicketNo, label} from "./labels.js";

const POLL_MS = 10000;
const session = {csrf: ""};
const api = makeApi(session, {onUnauthorized: () => { location.href = "/login?next=/supervisor"; }});
let timer = null;
const loads = latestWins();  // a retry's reload and a poll may overlap: the latest answer is drawn

function row(item) {
  const tr = el("tr", null, {"data-sms-id": str(item.id), "data-status": str(item.status)});
  tr.append(el("td", item.ticket_no ? groupedTicketNo(item.ticket_no) : `#${str(item.ticket_id)}`, {class: "number"}),
    el("td", str(item.to_number), {class: "number"}),
    el("td", label(SMS_KIND_NAMES, item.kind)),
    el("td", label(SMS_STATUS_NAMES, item.status), {class: `sms-status sms-${str(item.status)}`}),
    el("td", num(item.attempts), {class: "num"}),
    el("td", item.status === "dead" ? "—" : fmtTime(item.next_at), {class: "number"}),
    el("td", str(item.last_error) || "—"));
  const cell = el("td");
  if (item.status === "failed" || item.status === "dead") {
    const b = el("button", "重发 Retry", {type: "button", class: "secondary sms-retry",
      "aria-label": `重发短信 retry text ${str(item.id)}`});
    b.addEventListener("click", () => retry(item.id, b));
    cell.append(b);
  }
  tr.append(cell);
  return tr;
}

async function load() {
  clearTimeout(timer);
  const mine = loads.next();
  try {
    const data = await api("GET", "/api/sms");
    if (!loads.isLatest(mine)) return;
    const stats = isObj(data.stats) ? data.stats : {};
    $("#sms-summary").textContent = `待发送 backlog ${num(stats.backlog)} · 已放弃 dead ${num(stats.dead)} · ` +
      `已发送 sent ${num(stats.sent)}`;
    const body = $("#sms tbody");
    const items = arr(data.items).filter(isObj);
    redrawKeepingFocus(body, "data-sms-id", () => body.replaceChildren(...items.map(row)));
    if (!items.length) {
      const empty = el("tr", null);
      empty.append(el("td", "无待处理短信 nothing pending", {class: "empty", colspan: 8}));
      body.append(empty);
    }
  } catch (err) {
    if (err.status === 401 || !loads.isLatest(mine)) return;
    $("#sms-summary").textContent = `无法加载短信列表 cannot load the texts: ${err.message}`;
  }
  timer = setTimeout(load, POLL_MS);
}

async function retry(id, button) {
  button.disabled = true;
  try {
    await api("POST", `/api/sms/${id}/retry`);
    showStatus("ok", `短信 ${id} 已重新排队 queued again`);
  } catch (err) {
    showStatus("error", `重发失败 retry failed: ${err.message}`);
  }
  await load();
  const again = $(`#sms tr[data-sms-id="${id}"] button.sms-retry`);
  (again || $("#sms-section h2")).focus();
}

async function start() {
  try {
    const me = await api("GET", "/api/me");
    session.csrf = me.csrf_token;
  } catch (err) {
    return;
  }
  load();
}
start();
