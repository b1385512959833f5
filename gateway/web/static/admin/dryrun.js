// Dry run: what would a call do? Each result says which version it was computed against; when
// the live version changes (a change, a rollback, a scheduled version taking effect) a plain
// dry run is computed again on the new version, and one of a proposed change is cleared.
import {$, el, arr} from "../common.js";
import {MERGE_MODE_NAMES, label} from "../labels.js";
import {state, api, fmtTime, withOffset, localNow, clearProblems, showProblems, refuse, status} from "./core.js";

let last = null;  // {body, version, change} of the result on screen

function destinationText(d) {
  if (!d) return "无 none";
  if (d.hangup) return "挂机 hang up";
  let s = `队列 queue ${d.queue}`;
  if (d.overflow_queue) s += `，${d.overflow_seconds} 秒未接溢出到 overflows after ${d.overflow_seconds} s to ${d.overflow_queue}`;
  return s;
}
function basisText(version, change) {
  return change
    ? `按当前版本 v${version} 加上未提交的修改计算 Computed against live v${version} with the proposed change (not applied)`
    : `按版本 v${version} 计算 Computed against v${version}`;
}

function renderDry(r, version, change) {
  const out = $("#dry-result");
  out.classList.remove("stale");
  out.replaceChildren();
  out.dataset.version = String(version);
  out.dataset.kind = change ? "change" : "live";
  out.appendChild(el("p", basisText(version, change), {class: "basis", id: "dry-basis"}));
  const dl = el("dl", null, {id: "dry-summary"});
  const add = (term, value, attrs) => { dl.appendChild(el("dt", term)); dl.appendChild(el("dd", value, attrs)); };
  add("热线 Line", `${r.number} ${r.line}（${label(MERGE_MODE_NAMES, r.mode)}）`);
  add("时间 At", `${fmtTime(r.at)}（${r.at}）`);
  add("服务时间 Open", r.open ? "服务时间内 open" : "非服务时间 closed", {id: "dry-open"});
  add("按键 Digits", r.digits || "（无 none）", {id: "dry-digits"});
  add("去向 Destination", destinationText(r.destination), {id: "dry-destination"});
  add("承办 Handled by", r.handled_by || "12345");
  if (r.department) add("部门 Department", r.department);
  if (r.category) add("诉求类型 Category", r.category);
  add("结果 Outcome", r.outcome || "");
  add("配置 Config", r.configuration || "");
  out.appendChild(dl);
  out.appendChild(el("div", "路径 Path", {class: "hint"}));
  out.appendChild(el("pre", r.path_text, {id: "dry-path"}));
  out.appendChild(el("div", `听到的提示 Prompts heard (${arr(r.heard).length})`, {class: "hint"}));
  const ol = el("ol", null, {id: "dry-heard"});
  for (const h of arr(r.heard)) {
    const li = el("li");
    li.appendChild(el("span", h.text || "（无文本 no text）"));
    li.appendChild(document.createTextNode(" "));
    li.appendChild(el("span", h.prompt, {class: "prompt"}));
    ol.appendChild(li);
  }
  out.appendChild(ol);
}

async function run(body, change, {quiet = false} = {}) {
  const form = $("#dry-form"), out = $("#dry-result");
  clearProblems(form);
  const version = state.overview.version;
  out.replaceChildren(el("p", "试运行中… running", {class: "hint"}));
  const sent = {...body};
  if (change) sent.change = change; else sent.version = version;
  try {
    const r = await api("POST", "/api/admin/dry-run", sent);
    last = {body, version, change};
    renderDry(r, version, change);
    if (!quiet) {
      status("ok", `试运行完成（未做任何修改）Dry run done, nothing changed: ${r.number} → ${destinationText(r.destination)}`);
    }
  } catch (err) {
    last = null;
    out.replaceChildren();
    showProblems(form, err, {focus: !quiet});
    status("error", `试运行失败 Dry run failed: ${err.message}`);
  }
}

function formBody() {
  return {number: $("#d-number").value.trim(), at: withOffset($("#d-at").value), digits: $("#d-digits").value.trim()};
}
function checkForm(form) {
  if (!/^\d{3,20}$/.test($("#d-number").value.trim())) {
    refuse(form, "number", "号码为3-20位数字", "The number is 3-20 digits");
    return false;
  }
  if (!/^[0-9*#]{0,20}$/.test($("#d-digits").value.trim())) {
    refuse(form, "digits", "按键最多20个（0-9、*、#）", "Digits: up to 20 of 0-9, * and #");
    return false;
  }
  return true;
}

/** "Dry-run it" on the change form: the line's number, the time and the digits the admin typed. */
export async function dryRunChange(number, change) {
  $("#d-number").value = number;
  if (!$("#d-at").value) $("#d-at").value = localNow();
  if (!checkForm($("#dry-form"))) return;
  await run(formBody(), change);
}

/** The live version changed: compute a plain dry run again, clear one of a proposed change. */
export async function liveVersionChanged(version) {
  if (!last || last.version === version) return;
  const out = $("#dry-result");
  if (last.change) {
    const was = last.version;
    last = null;
    out.replaceChildren(el("p", `上次试运行基于 v${was} 和当时未提交的修改，现已是 v${version}，结果已清除，请重新试运行。` +
      ` The last dry run was computed against v${was} with a change not yet applied; the live version is now ` +
      `v${version}, so it was cleared: run it again.`, {class: "hint", id: "dry-cleared"}));
    out.dataset.version = ""; out.dataset.kind = "cleared";
    return;
  }
  out.classList.add("stale");
  await run(last.body, null, {quiet: true});
}

$("#dry-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  if (!checkForm(form)) return;
  await run(formBody(), null);
});

export function initDryRun() {
  $("#d-at").value = localNow();
}
