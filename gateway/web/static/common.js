// Helpers shared by the desk, admin and supervisor pages (ES module, no build step; served
// as /static/common.js under the pages' CSP, script-src 'self').

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

/** An element with text (never parsed as HTML) and attributes; null/undefined/false skip an
 * attribute, true sets it empty. */
export function el(tag, text, attrs) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v; else e.setAttribute(k, v === true ? "" : String(v));
  }
  return e;
}
export function isObj(x) { return x !== null && typeof x === "object" && !Array.isArray(x); }
export function arr(x) { return Array.isArray(x) ? x : []; }
export function str(x) { return typeof x === "string" ? x : (x === null || x === undefined ? "" : String(x)); }
export function num(x) { const n = Number(x); return Number.isFinite(n) ? n : 0; }

export const DEFAULT_TZ = "Asia/Shanghai";

/** "2026-12-02 09:30:00" in the hotline's zone; the input as it came if it is no time. */
export function fmtTime(iso, tz = DEFAULT_TZ) {
  if (!iso) return "";
  const d = new Date(iso);
  if (isNaN(d)) return String(iso);
  try {
    return new Intl.DateTimeFormat("sv-SE", {timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit"}).format(d);
  } catch (e) { return String(iso); }
}
/** "09:30:00" of a Date in the hotline's zone. */
export function clockText(date, tz = DEFAULT_TZ) {
  try {
    return new Intl.DateTimeFormat("sv-SE", {timeZone: tz, hour: "2-digit", minute: "2-digit", second: "2-digit"})
      .format(date);
  } catch (e) { return date.toISOString().slice(11, 19); }
}
/** "04:05" or "1:02:03". */
export function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const two = (n) => String(n).padStart(2, "0");
  return h ? `${h}:${two(m)}:${two(r)}` : `${two(m)}:${two(r)}`;
}

/** The page's status line (#status): kind is "ok", "error", "busy"... */
export function showStatus(kind, message, {box = "#status", extraClass = ""} = {}) {
  const node = typeof box === "string" ? $(box) : box;
  if (!node) return;
  node.className = (extraClass ? extraClass + " " : "") + kind;
  node.textContent = message;
}

export class ApiError extends Error {}

/**
 * A JSON API caller for one page. ``session`` holds the CSRF token (``session.csrf``);
 * ``onUnauthorized()`` runs on a 401 (go to the login page); ``refresh()`` reloads the
 * session after a 403 ``csrf`` (logged in again elsewhere) and the call is tried once more.
 * Errors are ApiError with ``status`` (0: network) and ``data`` (the problem body).
 */
export function makeApi(session, {onUnauthorized, refresh} = {}) {
  async function api(method, path, body, {retried = false, keepalive = false} = {}) {
    const opts = {method, headers: {Accept: "application/json"}, credentials: "same-origin", cache: "no-store",
      keepalive};
    if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
    if (method !== "GET") opts.headers["X-CSRF-Token"] = session.csrf;
    let resp;
    try {
      resp = await fetch(path, opts);
    } catch (exc) {
      const err = new ApiError("网络错误，无法连接网关 network error: the gateway is unreachable");
      err.status = 0; err.data = null;
      throw err;
    }
    if (resp.status === 401) {
      if (onUnauthorized) onUnauthorized();
      const err = new ApiError("登录已过期 session expired, please log in");
      err.status = 401; err.data = null;
      throw err;
    }
    const ctype = resp.headers.get("Content-Type") || "";
    let data;
    try { data = ctype.includes("json") ? await resp.json() : {message: await resp.text()}; } catch (e) { data = {}; }
    if (resp.status === 403 && isObj(data) && data.error === "csrf" && !retried && refresh) {
      await refresh();
      return api(method, path, body, {retried: true, keepalive});
    }
    if (!resp.ok) {
      const err = new ApiError(problemMessage(data) || `${resp.status} ${resp.statusText}`);
      err.status = resp.status; err.data = isObj(data) ? data : {};
      throw err;
    }
    return data;
  }
  return api;
}

/** The message of an error body in both languages: "中文 — English" (one of them if only one). */
export function problemMessage(data) {
  if (!isObj(data)) return "";
  const zh = str(data.message_zh), en = str(data.message);
  return zh && en && zh !== en ? `${zh} — ${en}` : (zh || en);
}
/** Every problem of an error body (details.problems), each {path, field, message, message_zh, file, line}. */
export function problemsOf(data) {
  const details = isObj(data) && isObj(data.details) ? data.details : {};
  return arr(details.problems).filter(isObj);
}

/**
 * A form's error summary (its ``.error-summary`` box): ``heading`` then one line per problem,
 * each problem with a ``field`` linked to that field (marked aria-invalid); the box takes the focus.
 */
export function showErrorSummary(form, problems, heading) {
  const box = $(".error-summary", form);
  box.replaceChildren(el("p", heading));
  const ul = el("ul");
  for (const p of problems) {
    const field = p.field ? $(`[name=${p.field}]`, form) : null;
    const li = el("li");
    if (field) {
      field.setAttribute("aria-invalid", "true");
      const link = el("a", p.message, {href: `#${field.id}`});
      link.addEventListener("click", (ev) => { ev.preventDefault(); field.focus(); });
      li.append(link);
    } else li.textContent = p.message;
    ul.append(li);
  }
  box.append(ul);
  box.focus();
}

// A page with a sticky header: keeps --header-h (on <html>) at the header's real height, which wraps
// onto more lines on narrow windows, so that scroll-padding-top (desk.css) stops focus moves, jump
// links and scrollIntoView below the header instead of under it.
export function trackStickyHeader(header = document.querySelector("body > header")) {
  if (!header) return;
  const set = () => document.documentElement.style.setProperty("--header-h", `${Math.ceil(header.offsetHeight)}px`);
  set();
  if (typeof ResizeObserver === "function") new ResizeObserver(set).observe(header);
  else window.addEventListener("resize", set);
}

// Redraw a polled list and keep the keyboard where it was: on the same control of the same row
// (rows carry `rowAttr`). Without this a poll drops the focus of an agent tabbing through the list.
const CONTROLS = "a[href], button, input, select, textarea";
export function redrawKeepingFocus(box, rowAttr, redraw) {
  const active = document.activeElement;
  const row = active && box.contains(active) ? active.closest(`[${rowAttr}]`) : null;
  const key = row ? row.getAttribute(rowAttr) : null;
  const index = row ? $$(CONTROLS, row).indexOf(active) : -1;
  redraw();
  if (key === null || index < 0) return;
  const again = box.querySelector(`[${rowAttr}="${CSS.escape(key)}"]`);
  const target = again ? $$(CONTROLS, again)[index] : null;
  if (target) target.focus();
}

// Loads that may overlap (a poll and a user's click): only the latest one's answer is drawn.
// `const mine = loads.next(); … if (!loads.isLatest(mine)) return;`
export function latestWins() {
  let count = 0;
  return {next: () => ++count, isLatest: (n) => n === count};
}
