// One ticket in the detail pane: facts, what the caller said, the menu path, banners.
import {$, $$, arr, el, fmtTime, isObj, str} from "../common.js";
import {CALLBACK_LABEL, DISPATCH_MODE_NAMES, MERGE_MODE_NAMES, TICKET_STATUS_NAMES, TRANSCRIPT_STATUS_NAMES} from "../labels.js";
import {state} from "./state.js";
import {clock} from "./session.js";
import {article, badge, unitNames} from "./util.js";
import {renderSuggestions} from "./suggestions.js";
import {fillForm, wireForm} from "./form.js";
import {renderTransfer} from "./transfer.js";
import {renderTicketNo} from "./ticketno.js";

export function renderDetail(entry) {
  const detail = $("#detail");
  const node = $("#t-ticket").content.firstElementChild.cloneNode(true);
  node.dataset.ticketId = entry.id;
  if (entry.fresh) node.classList.add("fresh");
  detail.replaceChildren(node);
  renderInfo(entry);
  const form = $("form.decision", node);
  fillForm(form, entry.form);
  wireForm(form, entry);
  renderState(entry);
}

function highlight(text, words) {
  // The emergency words inside the transcript, in red. Recognisers split CJK words with spaces,
  // so "着火" also matches "着 火".
  const frag = document.createDocumentFragment();
  const list = arr(words).map(str).filter((w) => w.trim()).sort((a, b) => b.length - a.length);
  if (!list.length) { frag.append(document.createTextNode(text)); return frag; }
  const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const re = new RegExp(list.map((w) => Array.from(w.replace(/\s+/g, "")).map(esc).join("\\s*")).join("|"), "g");
  let last = 0, m;
  while ((m = re.exec(text)) !== null) {
    if (!m[0]) { re.lastIndex++; continue; }
    frag.append(document.createTextNode(text.slice(last, m.index)));
    frag.append(el("mark", m[0], {class: "emergency-word"}));
    last = m.index + m[0].length;
  }
  frag.append(document.createTextNode(text.slice(last)));
  return frag;
}

function fact(dl, label, value, extra) {
  dl.append(el("dt", label));
  const dd = el("dd", null);
  dd.append(el("span", value === null || value === undefined || value === "" ? "—" : value, {class: "value"}));
  for (const x of extra || []) if (x) dd.append(x);
  dl.append(dd);
  return dd;
}

function stepText(step) {
  if (!isObj(step)) return str(step);
  const parts = [];
  if (step.label) parts.push(step.label);
  if (step.key !== undefined) parts.push(step.key ? `按 ${step.key}` : "未按键");
  if (step.said) parts.push(`说「${step.said}」`);
  if (step.via === "speech" && !step.said) parts.push("语音 speech");
  if (step.queue) parts.push(`→ 队列 ${step.queue}`);
  if (step.flow) parts.push(`→ 流程 ${step.flow}`);
  if (Array.isArray(step.words) && step.words.length) parts.push(`听到：${step.words.join("、")}`);
  if (Array.isArray(step.broadcasts) && step.broadcasts.length) parts.push(`播报 ${step.broadcasts.join(", ")}`);
  if (step.duration_ms) parts.push(`${(step.duration_ms / 1000).toFixed(1)} 秒`);
  if (step.result && step.result !== "ok") parts.push(`(${step.result})`);
  return parts.join(" ");
}

export function renderInfo(entry) {
  const node = article(entry.id);
  if (!node) return;
  const v = entry.view;
  $(".title", node).textContent = `工单 #${v.id} · ${str(v.line_number)} ${str(v.line_name)}`.trim();
  const badges = $(".badges", node);
  badges.replaceChildren(badge(TICKET_STATUS_NAMES[v.status] || v.status, "status-" + v.status));
  if (v.confidential) badges.append(badge("保密 confidential", "confidential"));
  if (v.emergency) badges.append(badge("紧急 emergency", "emergency"));
  if (isObj(v.callback)) badges.append(badge(CALLBACK_LABEL, "callback"));
  if (v.language && v.language !== "cmn" && v.language !== "zh") badges.append(badge(`语言 ${v.language}`));

  renderBanner(entry);

  const dl = $("dl.facts", node);
  dl.replaceChildren();
  renderTicketNo(dl, entry);
  const caller = v.caller_number ? str(v.caller_number)
    : v.caller_id_raw ? `无效号码 not a valid number: ${str(v.caller_id_raw)}` : "未知 unknown";
  fact(dl, "来电号码 Caller", caller, [v.caller_number_masked ? badge("已遮蔽 masked", "masked") : null,
    v.confidential ? badge("保密：对承办单位隐藏身份", "confidential") : null]).classList.add("caller", "number");
  const line = `${str(v.line_number)} ${str(v.line_name)}`.trim();
  fact(dl, "热线 Line", line, [v.merge_mode ? badge(`${MERGE_MODE_NAMES[v.merge_mode] || ""} ${v.merge_mode}`.trim()) : null])
    .classList.add("line");
  fact(dl, "所拨号码 Dialled", v.dialled_number).classList.add("number");
  fact(dl, "按键类型 IVR type", v.category || "未选择").classList.add("ivr-category");
  fact(dl, "队列 Queue", v.queue);
  fact(dl, "归口部门 Department", v.department || v.handled_by);
  fact(dl, "来电时间 Received", fmtTime(v.created_at)).classList.add("number");
  const call = isObj(v.call) ? v.call : {};
  fact(dl, "接听坐席 Agent", call.agent).classList.add("number");
  fact(dl, "通话 Call", call.uniqueid || v.uniqueid).classList.add("code");
  if (v.recording_problem) {
    fact(dl, "录音 Recording", `录音异常，请向来电人核实诉求 Recording problem: ${str(v.recording_problem)}`)
      .classList.add("recording-problem");
  }
  if (v.overflow_queue) fact(dl, "溢出 Overflow", `${v.overflow_queue} (${str(v.overflow_reason)})`);
  if (v.status !== "draft") fact(dl, "处理 Decided", `${str(v.decided_by)} ${fmtTime(v.decided_at)}`);

  const ts = v.transcript_status || "none";
  const tsBox = $(".transcript-status", node);
  tsBox.className = `transcript-status ts ts-${ts}`;
  tsBox.textContent = TRANSCRIPT_STATUS_NAMES[ts] || ts;
  const tp = $(".transcript", node);
  tp.replaceChildren();
  const words = arr(v.emergency_words).map(str).filter(Boolean);
  if (v.transcript) {
    tp.classList.remove("empty");
    tp.append(highlight(str(v.transcript), words));
  } else {
    tp.classList.add("empty");
    tp.textContent = v.spoken_withheld ? "非本人接听的来电：通话内容和录音仅限接听坐席和班长。Not your call: " +
        "only the agent who answered and supervisors see what the caller said."
      : ts === "pending" ? "录音正在转写，请先听录音。Transcript pending: listen to the recording."
      : ts === "failed" ? `转写失败 ${str(v.transcript_error)}` : "（无文字 no text）";
  }
  const audio = $("audio.recording", node);
  if (v.recording_url) {
    if (audio.getAttribute("src") !== v.recording_url) audio.setAttribute("src", v.recording_url);
    audio.hidden = false;
  } else {
    audio.removeAttribute("src");
    audio.hidden = true;
  }

  const ol = $("ol.menu-path", node);
  ol.replaceChildren();
  for (const step of arr(v.menu_path)) {
    const li = el("li", null, {"data-node": isObj(step) ? str(step.node) : ""});
    if (isObj(step) && step.node === "emergency_guard") li.classList.add("guard");
    li.append(el("span", stepText(step)));
    li.append(el("span", isObj(step) ? str(step.node) : "", {class: "code"}));
    ol.append(li);
  }
  if (!ol.children.length) ol.append(el("li", "（无 none）"));

  renderSuggestions($(".suggest-body", node), v.suggestions, entry);
}

/** The emergency banner: what was heard, and the transfer to 110/119/120/122. Shown for an emergency
 * call, and as soon as the agent sets the urgency to 紧急. */
export function renderBanner(entry) {
  const node = article(entry.id);
  if (!node) return;
  const v = entry.view;
  const banner = $(".emergency-banner", node);
  const words = arr(v.emergency_words).map(str).filter(Boolean);
  banner.hidden = !(v.emergency || words.length || entry.form.urgency === "emergency" || entry.transfer);
  $(".emergency-text", banner).textContent = `⚠ 紧急情况 EMERGENCY${words.length ? "：听到「" + words.join("」「") + "」" : ""}` +
    " — 请确认是否转 110/119/120/122 紧急联动";
  renderTransfer($(".transfer", banner), entry);
}

export function renderState(entry) {  // banners, disabled buttons, save state of the selected ticket
  const node = article(entry.id);
  if (!node) return;
  const form = $("form.decision", node);
  const open = entry.status === "open";
  node.classList.toggle("readonly", !open);
  node.dataset.status = entry.status;
  for (const x of $$("input, select, textarea, button", form)) {
    if (x.classList.contains("preview")) continue;
    x.disabled = !open || entry.busy === true;
  }
  for (const b of $$(".suggest-body button.use", node)) b.disabled = !open;
  const taken = $(".taken-banner", node);
  taken.hidden = true;
  taken.className = "taken-banner";
  if (entry.status === "taken") {
    taken.hidden = false;
    taken.textContent = `已被他人处理 Taken: ${entry.message}`;
  } else if (entry.status === "done") {
    taken.hidden = false;
    taken.className = "done-banner";
    const v = entry.view;
    taken.textContent = v.status === "submitted"
      ? `已提交派单 Submitted — ${DISPATCH_MODE_NAMES[v.dispatch_mode] || ""}至 ${unitNames(v.units)}（${str(v.decided_by)} ${fmtTime(v.decided_at)}）`
      : v.status === "answered" ? `已答复办结 Closed as answered（${str(v.decided_by)} ${fmtTime(v.decided_at)}）`
        : `状态 ${TICKET_STATUS_NAMES[v.status] || v.status}`;
  }
  const banner = $(".emergency-banner", node);
  const stale = !banner.hidden !== Boolean(entry.view.emergency || arr(entry.view.emergency_words).length ||
    entry.form.urgency === "emergency" || entry.transfer);
  if (stale) renderBanner(entry);  // the urgency was set to or from 紧急
  const save = $(".save-state", node);
  save.classList.toggle("error", Boolean(entry.saveError));
  save.textContent = !open ? "" : entry.saveError ? entry.saveError
    : entry.saveTimer || entry.saving ? "保存中 saving…"
      : entry.savedAt ? `已自动保存 saved ${clock(entry.savedAt)}` : "";
}
