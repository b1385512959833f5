// The supervisor board's after-dispatch sections: tickets under review (a unit's objection, no
// catalogue unit, an unsolved follow-up) with re-dispatch / reject / close, and the 督办 list of
// overdue dispatches. ES module over common.js and labels.js; polled every 10 s.
import {$, arr, duration, el, fmtTime, isObj, latestWins, makeApi, num, problemsOf, showErrorSummary, showStatus,
  str} from "./common.js";
import {DISPATCH_STATUS_NAMES, REVIEW_REASON_NAMES, label} from "./labels.js";

const POLL_MS = 10000;
const state = {csrf: "", units: [], busy: false, timer: null};
const api = makeApi(state, {onUnauthorized: () => { location.href = "/login?next=/supervisor"; }, refresh: loadMe});
const loads = latestWins();  // an action's reload and a poll may overlap: the latest answer is drawn

async function loadMe() {
  const me = await api("GET", "/api/me");
  state.csrf = me.csrf_token;
}

function showErrors(form, problems) {
  showErrorSummary(form, problems, `未提交：请修改以下 ${problems.length} 处。Not sent: ${problems.length} problem(s).`);
}

function reviewItem(t) {
  const box = el("div", null, {class: "review-item", "data-ticket": t.id});
  const h = el("h3", `${str(t.ticket_no) || "#" + t.id} · ${str(t.category)} · ${label(REVIEW_REASON_NAMES, t.review_reason)}`);
  box.append(h, el("p", str(t.summary), {class: "hint"}));
  const ul = el("ul");
  for (const d of arr(t.dispatches).filter(isObj)) {
    ul.append(el("li", `${d.unit_name}：${DISPATCH_STATUS_NAMES[d.status] || d.status}` +
      (d.objection ? ` — 异议 objection：${d.objection}` : "") + (d.result ? ` — 办结 result：${d.result}` : "")));
  }
  box.append(ul);
  const form = el("form", null, {novalidate: true, "data-version": t.version_id});
  const sid = `units-${t.id}`, rid = `reason-${t.id}`;
  const unitsLabel = el("label", "改派至 Re-dispatch to (Ctrl/Shift 多选 multiple)", {for: sid});
  const select = el("select", null, {id: sid, name: "units", multiple: true, size: 4});
  for (const u of state.units) select.append(el("option", `${u.name}（${u.id}）`, {value: u.id}));
  const reasonLabel = el("label", "理由 Reason (required, audited)", {for: rid});
  const reason = el("textarea", null, {id: rid, name: "reason", rows: 3, maxlength: 2000});
  const left = el("div"), right = el("div");
  left.append(unitsLabel, select);
  right.append(reasonLabel, reason);
  const buttons = el("div", null, {class: "buttons"});
  const acts = [["redispatch", "改派 Re-dispatch", ""], ["reject", "驳回异议 Reject objection", "secondary"],
    ["close", "关闭工单 Close ticket", "danger"]];
  for (const [action, text, cls] of acts) {
    if (action === "reject" && t.review_reason !== "objection") continue;
    const b = el("button", text, {type: "button", class: cls, "data-action": action});
    b.addEventListener("click", () => decide(form, t, action));
    buttons.append(b);
  }
  form.append(el("div", null, {class: "error-summary", role: "alert", tabindex: "-1"}), left, right, buttons);
  box.append(form);
  return box;
}

async function decide(form, t, action) {
  for (const f of form.querySelectorAll("[aria-invalid]")) f.removeAttribute("aria-invalid");
  const reason = $("textarea", form).value.trim();
  const units = Array.from($("select", form).selectedOptions).map((o) => o.value);
  const problems = [];
  if (!reason) problems.push({field: "reason", message: "请填写理由 — a reason is required"});
  if (action === "redispatch" && !units.length) problems.push({field: "units", message: "请选择承办单位 — choose at least one unit"});
  if (problems.length) { showErrors(form, problems); return; }
  try {
    await api("POST", `/api/supervisor/review/${t.id}/${action}`,
      {version_id: t.version_id, reason, ...(action === "redispatch" ? {units} : {})});
    showStatus("ok", `工单 ${str(t.ticket_no)}：${{redispatch: "已改派 re-dispatched", reject: "已驳回异议 objection rejected",
      close: "已关闭 closed"}[action]}`);
    poll({force: true});
  } catch (err) {
    if (err.status === 400 && problemsOf(err.data).length) {
      showErrors(form, problemsOf(err.data).map((p) => ({field: p.field, message: `${str(p.message_zh)} ${str(p.message)}`})));
    } else {
      showErrors(form, [{message: err.message}]);
      if (err.status === 409) poll({force: true});
    }
  }
}

function renderReview(data, force) {
  state.units = arr(data.units).filter(isObj);
  const items = arr(data.items).filter(isObj);
  const box = $("#review");
  const focused = document.activeElement && box.contains(document.activeElement);
  if (focused && !force) return;  // not while the supervisor is typing in it
  box.replaceChildren(...items.map(reviewItem));
  $("#review-empty").hidden = items.length > 0;
  if (focused) $("#review-section").focus();  // the decided item is gone: focus stays in the section
}

function renderOverdue(data) {
  const body = $("#overdue tbody");
  const items = arr(data.items).filter(isObj);
  body.replaceChildren(...items.map((d) => {
    const t = isObj(d.ticket) ? d.ticket : {};
    const tr = el("tr", null, {"data-dispatch": d.id});
    tr.append(el("td", str(t.ticket_no) || `#${t.id}`), el("td", d.unit_name), el("td", str(t.category)),
      el("td", fmtTime(d.due_at)), el("td", duration(num(d.late_seconds)), {class: "num late"}),
      el("td", DISPATCH_STATUS_NAMES[d.status] || d.status));
    return tr;
  }));
  if (!items.length) {
    const tr = el("tr");
    tr.append(el("td", "没有超期工单 nothing overdue", {colspan: 6, class: "empty"}));
    body.append(tr);
  }
}

async function poll({force = false} = {}) {
  clearTimeout(state.timer);
  const mine = loads.next();
  try {
    const [review, overdue] = await Promise.all([api("GET", "/api/supervisor/review"), api("GET", "/api/supervisor/overdue")]);
    if (!loads.isLatest(mine)) return;  // an action's reload started after this poll: it draws
    renderReview(review, force);
    renderOverdue(overdue);
    document.body.dataset.unitsReady = "true";
  } catch (err) {
    if (err.status === 401 || !loads.isLatest(mine)) return;
    showStatus("error", `无法加载审核/督办列表 cannot load review/overdue: ${err.message}`);
  }
  state.timer = setTimeout(poll, POLL_MS);
}

loadMe().then(poll, () => {});
