// The emergency banner's transfer: one button per configured service (110/119/120/122), a
// confirmation, then POST /api/desk/tickets/{id}/transfer; the result stays in the banner.
import {$, el, fmtTime, showStatus} from "../common.js";
import {state} from "./state.js";
import {announce, api} from "./session.js";

function destination(service) { return state.transfers.find((t) => t.service === service); }
function label(t) { return `${t.service} · ${t.name}`; }

export function renderTransfer(box, entry) {
  if (!box) return;
  const t = entry.transfer || {};
  box.replaceChildren();
  if (t.done) {
    box.append(el("p", `✓ 已转接至 ${label(t.done)}（${t.done.by} ${fmtTime(t.done.at).slice(11)}）` +
      `Transferred to ${t.done.service}.`, {class: "transfer-result ok", role: "status", tabindex: "-1"}));
    return;
  }
  if (!state.transfers.length) {
    box.append(el("p", "未配置紧急转接目的地 no transfer destinations configured (hotlines.yaml emergency_transfers)",
      {class: "transfer-result"}));
    return;
  }
  if (t.confirm) {
    const dest = destination(t.confirm);
    const question = el("p", `确认将来电转接至 ${label(dest)}？ Transfer the caller to ${dest.service}?`,
      {class: "transfer-question", id: `transfer-q-${entry.id}`});
    const yes = el("button", t.busy ? "转接中 transferring…" : `确认转接 ${dest.service} Confirm`,
      {type: "button", class: "confirm-transfer", "aria-describedby": question.id});
    const no = el("button", "取消 Cancel", {type: "button", class: "secondary cancel-transfer"});
    yes.disabled = no.disabled = Boolean(t.busy);
    yes.addEventListener("click", () => transfer(entry, dest.service));
    no.addEventListener("click", () => { entry.transfer = {}; renderTransfer(box, entry); focusFirst(box); });
    const row = el("div", null, {class: "row transfer-confirm"});
    row.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape" && !t.busy) { ev.preventDefault(); no.click(); }
    });
    row.append(yes, no);
    box.append(question, row);
    if (!t.busy) yes.focus();
    return;
  }
  const row = el("div", null, {class: "row transfer-buttons", role: "group", "aria-label": "紧急转接 Emergency transfer"});
  for (const dest of state.transfers) {
    const b = el("button", `转 ${label(dest)}`, {type: "button", class: "transfer-btn", "data-service": dest.service});
    b.addEventListener("click", () => {
      entry.transfer = {confirm: dest.service};
      renderTransfer(box, entry);
    });
    row.append(b);
  }
  box.append(row);
  if (t.error) box.append(el("p", t.error, {class: "transfer-result error", role: "alert"}));
}
function focusFirst(box) { const b = $("button", box); if (b) b.focus(); }

async function transfer(entry, service) {
  const box = $(`#detail .ticket[data-ticket-id="${entry.id}"] .emergency-banner .transfer`);
  entry.transfer = {confirm: service, busy: true};
  renderTransfer(box, entry);
  try {
    const result = await api("POST", `/api/desk/tickets/${entry.id}/transfer`, {service});
    entry.transfer = {done: result};
    showStatus("ok", `工单 #${entry.id}：来电已转接至 ${label(result)}。Caller transferred to ${service}.`);
    announce(`来电已转接至 ${service}`);
  } catch (err) {
    entry.transfer = {error: `转接失败 transfer failed：${err.message}`};
    showStatus("error", `工单 #${entry.id}：转接失败 transfer failed：${err.message}`);
  }
  const now = $(`#detail .ticket[data-ticket-id="${entry.id}"] .emergency-banner .transfer`);
  renderTransfer(now, entry);
  if (now && entry.transfer.done) $(".transfer-result", now).focus();  // the button pressed is gone: focus the outcome
  else if (now) focusFirst(now);
}
