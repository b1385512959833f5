// The version history (diff, rollback, cancel) and the hot-topic broadcasts.
import {$, $$, el, arr} from "../common.js";
import {CONFIG_STATUS_NAMES} from "../labels.js";
import {state, api, fmtTime, withOffset, requireComment, submitChange, ask} from "./core.js";

function describeChange(c) {
  switch (c.op) {
    case "update_line": return `修改 update ${c.number}: ${Object.keys(c.fields || {}).join(", ")}`;
    case "retire_line": return `撤号 retire ${c.number}`;
    case "create_line": return `新建 create ${(c.line || {}).number || ""}`;
    case "rollback": return `回滚 rollback to v${c.to}`;
    case "add_broadcast": return `播报 broadcast ${(c.broadcast || {}).id || ""}`;
    case "remove_broadcast": return `删除播报 remove broadcast ${c.id}`;
    default: return c.op;
  }
}

function cell(tr, text, labelText, attrs) {
  const td = el("td", text, {...(attrs || {}), "data-label": labelText});
  tr.appendChild(td);
  return td;
}

export function renderVersions() {
  const live = state.overview.version;
  $("#version-count").textContent = `共 ${state.versions.length} 个版本 ${state.versions.length} versions`;
  const body = $("#versions tbody");
  body.replaceChildren();
  for (const v of state.versions) {
    const tr = el("tr", null, {"data-version": String(v.id), "data-status": v.status});
    if (v.id === live) tr.classList.add("live");
    const id = cell(tr, `v${v.id}`, "版本 Version");
    if (v.id === live) id.appendChild(el("span", "当前 live", {class: "badge live"}));
    if (v.parent_id) id.appendChild(el("div", `基于 from v${v.parent_id}`, {class: "hint"}));
    const st = cell(tr, `${CONFIG_STATUS_NAMES[v.status] || v.status} `, "状态 Status", {class: "st-" + v.status});
    st.appendChild(el("span", v.status, {class: "code"}));
    cell(tr, v.created_by, "操作人 Who");
    const when = cell(tr, null, "时间 When");
    when.appendChild(el("div", `提交 ${fmtTime(v.created_at)}`, {class: "nowrap", title: v.created_at || ""}));
    if (v.effective_at) when.appendChild(el("div", `生效 ${fmtTime(v.effective_at)}`, {class: "hint nowrap", title: "effective_at"}));
    if (v.applied_at && v.applied_at !== v.created_at) {
      when.appendChild(el("div", `应用 ${fmtTime(v.applied_at)}`, {class: "hint nowrap", title: "applied_at"}));
    }
    const comment = cell(tr, null, "原因 Comment", {class: "comment"});
    comment.appendChild(el("div", v.comment));
    if (v.change && v.change.op) comment.appendChild(el("div", describeChange(v.change), {class: "code"}));
    if (v.error) comment.appendChild(el("div", `${v.status === "failed" ? "错误 error" : "备注 note"}: ${v.error}`,
                                        {class: v.status === "failed" ? "st-failed" : "hint"}));
    const diffCell = cell(tr, null, "差异 Diff", {class: "diff"});
    if (v.diff) {
      const det = el("details");
      const count = v.diff.split("\n").filter((x) => /^[+-][^+-]/.test(x)).length;
      det.appendChild(el("summary", `查看差异 show diff (${count} 行 lines)`));
      det.appendChild(el("pre", v.diff));
      diffCell.appendChild(det);
    } else {
      diffCell.appendChild(el("span", "—", {class: "hint"}));
    }
    const actions = cell(tr, null, "操作 Actions", {class: "actions"});
    if (v.status === "applied" && v.id !== live && v.content_hash !== state.overview.content_hash) {
      const b = el("button", "回滚到此版本 Roll back to this", {type: "button", class: "secondary small", "data-action": "rollback"});
      b.addEventListener("click", async () => {
        const answer = await ask(`回滚到 v${v.id} / Roll back to v${v.id}`,
          `将 v${v.id} 的配置作为新版本重新生效（${v.comment}）。Applies v${v.id}'s configuration again as a new version.`);
        if (!answer) return;
        await submitChange(`回滚到 v${v.id} Rollback`, null,
          () => api("POST", `/api/admin/versions/${v.id}/rollback`, {comment: answer.comment}));
      });
      actions.appendChild(b);
    }
    if (v.status === "scheduled") {
      const b = el("button", "取消 Cancel", {type: "button", class: "danger small", "data-action": "cancel"});
      b.addEventListener("click", async () => {
        const answer = await ask(`取消计划中的 v${v.id} / Cancel scheduled v${v.id}`, v.comment);
        if (!answer) return;
        await submitChange(`取消 v${v.id} Cancel`, null,
          () => api("POST", `/api/admin/versions/${v.id}/cancel`, {comment: answer.comment}));
      });
      actions.appendChild(b);
    }
    body.appendChild(tr);
  }
}

export function renderBroadcasts() {
  const list = $("#broadcast-list");
  list.replaceChildren();
  const items = arr(state.overview.broadcasts);
  if (!items.length) { list.appendChild(el("li", "当前没有播报 No broadcasts", {class: "hint"})); return; }
  for (const b of items) {
    const li = el("li", null, {"data-broadcast": b.id});
    li.appendChild(el("b", b.id));
    li.appendChild(document.createTextNode(` ${fmtTime(b.start)} – ${fmtTime(b.end)} [${arr(b.lines).join(", ")}]：`));
    li.appendChild(el("span", b.text));
    const rm = el("button", "删除 Remove", {type: "button", class: "secondary small", "aria-label": `删除 Remove ${b.id}`});
    rm.addEventListener("click", async () => {
      const answer = await ask(`删除播报 ${b.id} / Remove broadcast`, b.text);
      if (!answer) return;
      await submitChange("删除播报 Remove broadcast", null, () => api("POST", "/api/admin/changes",
        {change: {op: "remove_broadcast", id: b.id}, comment: answer.comment}));
    });
    li.appendChild(rm);
    list.appendChild(li);
  }
}

$("#broadcast-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  if (!requireComment(form, $("#b-comment"))) return;
  let lines = $$("#b-lines input:checked").map((x) => x.value);
  if (lines.includes("all") || !lines.length) lines = ["all"];
  const broadcast = {id: $("#b-id").value.trim(), text: $("#b-text").value.trim(), start: withOffset($("#b-start").value),
                     end: withOffset($("#b-end").value), lines};
  await submitChange(`播报 ${broadcast.id} Broadcast`, form, () => api("POST", "/api/admin/changes",
    {change: {op: "add_broadcast", broadcast}, comment: $("#b-comment").value.trim()}));
});
