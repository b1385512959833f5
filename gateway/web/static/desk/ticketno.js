// The ticket number on the ticket (4-3-4, as the caller heard it) and the one-click
// "向来电人播报工单号": POST /api/desk/tickets/{id}/announce-number plays it into the live call
// (the agent stays connected). The outcome stays beside the button (role=status / alert).
import {el, isObj, showStatus, str} from "../common.js";
import {ANNOUNCE_NUMBER_LABEL, TICKET_NO_LABEL, groupedTicketNo} from "../labels.js";
import {announce, api} from "./session.js";
import {article} from "./util.js";

export function renderTicketNo(dl, entry) {
  const v = entry.view;
  const call = isObj(v.call) ? v.call : {};
  const live = Boolean(call.uniqueid) && call.status !== "ended";
  const a = entry.announceNo || {};
  dl.append(el("dt", TICKET_NO_LABEL));
  const dd = el("dd", null, {class: "ticket-no"});
  dd.append(el("span", v.ticket_no ? groupedTicketNo(v.ticket_no) : "—", {class: "value number", "data-ticket-no": str(v.ticket_no)}));
  if (v.ticket_no) {
    const button = el("button", a.busy ? "播报中 reading…" : ANNOUNCE_NUMBER_LABEL,
      {type: "button", class: "secondary announce-number"});
    button.disabled = Boolean(a.busy) || !live;
    if (!live) button.title = "通话已结束 the call has ended";
    button.addEventListener("click", () => announceNumber(entry));
    dd.append(button);
  }
  if (a.done) dd.append(el("span", `已播报 read to the caller（${str(a.done.by)}）`, {class: "announce-result ok", role: "status"}));
  if (a.error) dd.append(el("span", a.error, {class: "announce-result error", role: "alert"}));
  dl.append(dd);
}

async function announceNumber(entry) {
  entry.announceNo = {busy: true};
  redraw(entry);
  try {
    const result = await api("POST", `/api/desk/tickets/${entry.id}/announce-number`);
    entry.announceNo = {done: result};
    showStatus("ok", `工单 #${entry.id}：已向来电人播报工单号 ${groupedTicketNo(result.ticket_no)}。Number read to the caller.`);
    announce("已向来电人播报工单号");
  } catch (err) {
    entry.announceNo = {error: `播报失败 not read：${err.message}`};
    showStatus("error", `工单 #${entry.id}：播报工单号失败 ${err.message}`);
  }
  const dd = redraw(entry);
  const button = dd && dd.querySelector("button.announce-number");
  if (button && !button.disabled) button.focus();
}

function redraw(entry) {  // the ticket's number row again, in place (the ticket may have been left meanwhile)
  const node = article(entry.id);
  const dd = node && node.querySelector("dl.facts dd.ticket-no");
  if (!dd) return null;
  const dt = dd.previousElementSibling;
  const tmp = el("dl", null);
  renderTicketNo(tmp, entry);
  const [newDt, newDd] = [tmp.children[0], tmp.children[1]];
  dt.replaceWith(newDt);
  dd.replaceWith(newDd);
  return newDd;
}
