// Small helpers every desk module may use: they import nothing of the desk but state-free
// common.js, so the modules above them form layers (no module imports one that imports it back).
import {$, arr, el, isObj, str} from "../common.js";

export function badge(text, cls) { return el("span", text, {class: "badge " + (cls || "")}); }

/** The units' names, joined for reading: "市水务局、街道办". */
export function unitNames(units) { return arr(units).filter(isObj).map((u) => str(u.name)).filter(Boolean).join("、"); }

/** Units from storage, the server or a suggestion: only {id, name, kind}, each a string or null. */
export function cleanUnits(units) {
  return arr(units).filter((u) => isObj(u) && typeof u.name === "string")
    .map((u) => ({id: u.id ? str(u.id) : null, name: str(u.name), kind: u.kind ? str(u.kind) : null}));
}

export function isLocked(err) {  // another agent's call: theirs until decided (403 locked)
  return err.status === 403 && Boolean(err.data) && err.data.error === "locked";
}

/** The detail pane's article of one ticket, when it is the one shown. */
export function article(id) { return $(`#detail .ticket[data-ticket-id="${id}"]`); }
