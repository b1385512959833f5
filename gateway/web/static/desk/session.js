// The desk's API caller, login state and notices.
import {$, el, makeApi, clockText} from "../common.js";
import {state} from "./state.js";

export function toLogin() {
  state.leaving = true;
  location.href = "/login?next=/desk";
}
export const api = makeApi(state, {onUnauthorized: toLogin, refresh: loadMe});

export async function loadMe() {
  const me = await api("GET", "/api/me");
  state.csrf = me.csrf_token;
  state.user = me.user;
  const agent = me.user.agent_id ? ` · 坐席 agent ${me.user.agent_id}` : " · 未绑定坐席号 no agent id";
  $("#who").textContent = `${me.user.username}（${me.user.role}）${agent}`;
  $("#to-supervisor").hidden = !["supervisor", "admin"].includes(me.user.role);
  return me;
}

export function clock(ms) { return clockText(new Date(ms)); }

export function notice(text, kind) {
  const li = el("li", `${clock(Date.now())} ${text}`, {class: kind || ""});
  const list = $("#notices");
  list.prepend(li);
  while (list.children.length > 20) list.lastChild.remove();
}

/** A short sentence for screen readers (the page's polite live region). */
export function announce(text) {
  const box = $("#announce");
  if (!box) return;
  box.textContent = "";
  setTimeout(() => { box.textContent = text; }, 50);  // a fresh text is announced again (rAF would wait while the tab is hidden)
}
