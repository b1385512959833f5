// The supervisor board's review list, follow-up part (/supervisor): tickets whose citizen answered
// 未解决 or 不满意 in the follow-up (GET /api/followups/review every 10 s). Its own module so the
// board's other sections stay as they are.
import {$, arr, el, fmtTime, isObj, makeApi, str} from "./common.js";
import {REVIEW_REASON_NAMES, SATISFACTION_NAMES, SOLVED_NAMES} from "./labels.js";

const POLL_MS = 10000;
const state = {csrf: ""};
const api = makeApi(state, {});

async function poll() {
  try {
    const data = await api("GET", "/api/followups/review");
    const body = $("#followup-review tbody");
    const items = arr(data.items).filter(isObj);
    body.replaceChildren(...items.map((item) => {
      const t = isObj(item.ticket) ? item.ticket : {};
      const tr = el("tr", null, {"data-ticket-id": str(item.ticket_id), "data-reason": str(t.review_reason)});
      const answers = `${SOLVED_NAMES[item.solved] || ""} · ${SATISFACTION_NAMES[item.satisfaction] || ""}` +
        (item.comment_transcript ? ` ·「${item.comment_transcript}」` : "");
      tr.append(el("td", t.ticket_no || `#${str(item.ticket_id)}`),
        el("td", REVIEW_REASON_NAMES[t.review_reason] || str(t.review_reason)), el("td", answers),
        el("td", item.via === "desk" ? `坐席 desk (${str(item.agent)})` : "语音 IVR"), el("td", fmtTime(item.answered_at)));
      return tr;
    }));
    if (!items.length) {
      const tr = el("tr");
      tr.append(el("td", "无 none", {class: "empty", colspan: 5}));
      body.append(tr);
    }
  } catch (err) {
    if (err.status === 401) return;
  }
  setTimeout(poll, POLL_MS);
}
poll();
