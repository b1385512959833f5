// The system's suggestions beside the ticket (the agent decides): each with a "use" button.
import {$, arr, el, fmtTime, isObj, str} from "../common.js";
import {CATEGORIES, DISPATCH_MODE_NAMES, TICKET_STATUS_NAMES, URGENCY_NAMES} from "../labels.js";
import {state} from "./state.js";
import {badge, cleanUnits, unitNames} from "./util.js";
import {persist} from "./drafts.js";
import {fillForm} from "./form.js";

function useButton(label, entry, apply) {
  const b = el("button", label, {type: "button", class: "small use"});
  b.disabled = entry.status !== "open";
  b.addEventListener("click", () => {
    apply(entry.form);
    const form = $("#detail form.decision");
    if (form && state.selected === entry.id) fillForm(form, entry.form);
    persist(entry);
  });
  return b;
}
function sgBox(kind, title, button) {
  const box = el("div", null, {class: "sg", "data-kind": kind});
  const h = el("h4");
  h.append(el("span", title));
  if (button) h.append(button);
  box.append(h);
  return box;
}
function reason(text) { return el("p", text, {class: "reason"}); }
function pct(x) { return typeof x === "number" ? el("span", `${Math.round(x * 100)}%`, {class: "conf"}) : null; }

const RENDERERS = {
  request_type(s, entry) {
    if (!isObj(s)) throw new Error("shape");
    const box = sgBox("request_type", `诉求类型 Type：${s.category || "待判断"}`,
      CATEGORIES.includes(s.category) ? useButton("采用 use", entry, (f) => { f.category = s.category; }) : null);
    const c = pct(s.confidence); if (c) $("h4 span", box).append(c);
    box.append(reason(str(s.reason)));
    const alt = arr(s.alternatives).filter(isObj);
    if (alt.length) box.append(reason("其他可能 also: " + alt.map((a) => `${str(a.category)}「${arr(a.matched).join("」「")}」`).join("；")));
    return box;
  },
  urgency(s, entry) {
    if (!isObj(s)) throw new Error("shape");
    const box = sgBox("urgency", `紧急程度 Urgency：${URGENCY_NAMES[s.level] || str(s.level)} ${str(s.level)}`,
      URGENCY_NAMES[s.level] ? useButton("采用 use", entry, (f) => { f.urgency = s.level; }) : null);
    if (s.level === "emergency") box.classList.add("emergency");
    box.append(reason(str(s.reason)));
    return box;
  },
  place(s, entry) {
    if (!isObj(s)) throw new Error("shape");
    const box = sgBox("place", `地点 Place：${str(s.label)}`,
      s.label ? useButton("填入 use", entry, (f) => { f.place = str(s.label); }) : null);
    const where = [isObj(s.street) ? s.street.name : null, isObj(s.district) ? s.district.name : null].filter(Boolean);
    box.append(reason(`说了「${arr(s.matched).join("」「")}」${where.length ? " → " + where.join("，") : ""}`));
    return box;
  },
  escalations(list) {
    if (!Array.isArray(list)) throw new Error("shape");
    if (!list.length) return null;
    const box = sgBox("escalations", "突发/群体/极端 Escalation");
    for (const e of list.filter(isObj)) box.append(el("div", `${str(e.label)}（${str(e.kind)}）：「${arr(e.matched).join("」「")}」`,
      {class: "item"}));
    return box;
  },
  units(list, entry) {
    if (!Array.isArray(list)) throw new Error("shape");
    if (!list.length) return null;
    const box = sgBox("units", "承办单位 Handling units");
    for (const s of list.filter(isObj)) {
      const item = el("div", null, {class: "item", "data-source": str(s.source)});
      const head = el("div");
      head.append(el("b", `${str(s.mode_label || DISPATCH_MODE_NAMES[s.mode] || s.mode)} ${str(s.mode)}：`));
      head.append(document.createTextNode(unitNames(s.units) || "（待确认 to be named）"));
      const c = pct(s.confidence); if (c) head.append(c);
      const units = cleanUnits(s.units);
      if (units.length) {
        head.append(document.createTextNode(" "));
        head.append(useButton("采用 use", entry, (f) => {
          f.units = units.map((u) => Object.assign({}, u));
          if (DISPATCH_MODE_NAMES[s.mode]) f.dispatch_mode = s.mode;
        }));
      }
      item.append(head);
      item.append(reason(str(s.reason)));
      if (arr(s.missing).length) item.append(reason(`还需确认 still to name：${arr(s.missing).join("、")}`));
      box.append(item);
    }
    return box;
  },
  answers(list, entry) {
    if (!Array.isArray(list)) throw new Error("shape");
    if (!list.length) return null;
    const box = sgBox("answers", "知识库答复 Knowledge answers");
    for (const a of list.filter(isObj)) {
      const item = el("div", null, {class: "item", "data-answer-id": str(a.id)});
      const head = el("div");
      head.append(el("b", str(a.title)));
      head.append(document.createTextNode(" "));
      if (typeof a.answer === "string") head.append(useButton("用作答复 use as answer", entry, (f) => { f.answer = a.answer; }));
      item.append(head);
      item.append(el("p", str(a.answer), {class: "answer-text"}));
      item.append(reason([a.reason, a.source ? `来源 ${a.source}` : "", a.updated ? `更新 ${a.updated}` : ""]
        .filter(Boolean).join(" · ")));
      box.append(item);
    }
    return box;
  },
  earlier(list, entry) { return history("earlier", "来电人历史工单 Caller's earlier tickets", list, entry); },
  similar_open(list, entry) { return history("similar_open", "相似在办工单 Similar open tickets", list, entry); },
  notes(list) {
    if (!Array.isArray(list)) throw new Error("shape");
    if (!list.length) return null;
    const box = sgBox("notes", "提示 Notes");
    const ul = el("ul", null, {class: "notes"});
    for (const n of list) ul.append(el("li", str(n)));
    box.append(ul);
    return box;
  },
};
function history(kind, title, list, entry) {
  if (!Array.isArray(list)) throw new Error("shape");
  if (!list.length) return null;
  const box = sgBox(kind, title);
  for (const h of list.filter(isObj)) {
    const item = el("div", null, {class: "item", "data-linked-id": str(h.ticket_id)});
    const head = el("div");
    head.append(el("b", `#${str(h.ticket_id)}`));
    head.append(document.createTextNode(` ${str(h.category || "未分类")} · ${TICKET_STATUS_NAMES[h.status] || str(h.status)}` +
      ` · ${fmtTime(h.created_at).slice(0, 10)} `));
    if (h.same_demand) head.append(badge("可能同一诉求 same demand", "urgent"));
    const id = Number(h.ticket_id);
    if (Number.isInteger(id) && id > 0 && id !== entry.id) {
      head.append(document.createTextNode(" "));
      head.append(useButton("关联 link", entry, (f) => { f.linked_ticket_id = String(id); }));
    }
    item.append(head);
    item.append(el("p", h.snippet === null ? "（其他来电人的保密工单，不显示内容 confidential）" : str(h.snippet),
      {class: "answer-text"}));
    item.append(reason(str(h.reason)));
    box.append(item);
  }
  return box;
}
function generic(k, value) {  // a suggestion this page does not know yet: shown as it came
  const box = sgBox(k, k);
  box.classList.add("generic");
  let text;
  try { text = typeof value === "string" ? value : JSON.stringify(value, null, 2); } catch (e) { text = String(value); }
  box.append(el("pre", text));
  return box;
}
export function renderSuggestions(box, sg, entry) {
  box.replaceChildren();
  if (!isObj(sg)) { box.append(el("p", "暂无建议 no suggestions", {class: "off"})); return; }
  if (sg.available === false) {
    box.append(el("p", `建议未启用 suggestions off${sg.reason ? "：" + str(sg.reason) : ""}`, {class: "off"}));
    return;
  }
  let shown = 0;
  for (const [k, render] of Object.entries(RENDERERS)) {
    if (!(k in sg) || sg[k] === null || sg[k] === undefined) continue;
    let part;
    try { part = render(sg[k], entry); } catch (e) { part = generic(k, sg[k]); }
    if (part) { box.append(part); shown++; }
  }
  for (const [k, value] of Object.entries(sg)) {
    if (k in RENDERERS || k === "available" || k === "catalogue_version" || value === null) continue;
    if (Array.isArray(value) && !value.length) continue;
    box.append(generic(k, value)); shown++;
  }
  if (!shown) box.append(el("p", "没有可用的建议 nothing to suggest", {class: "off"}));
  if (sg.catalogue_version) box.append(el("p", `职责目录 catalogue ${str(sg.catalogue_version)}`, {class: "hint"}));
}
