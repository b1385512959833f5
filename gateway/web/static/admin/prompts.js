// Prompts as callers hear them (issue 10): the catalogue with a player per prompt, and the
// "callers will hear" preview of a retired line's announcement before a change is applied.
import {$, el, arr} from "../common.js";
import {api, status} from "./core.js";

let items = [];
let loads = 0;  // new audio after an edit: the player asks again, never a stale copy

export async function loadPrompts() {
  const body = $("#prompts tbody");
  let data;
  try {
    data = await api("GET", "/api/admin/prompts");
  } catch (err) {
    body.replaceChildren(el("tr"));
    body.firstChild.appendChild(el("td", `加载失败 Could not load: ${err.message}`, {colspan: "5"}));
    return;
  }
  loads += 1;
  items = arr(data.items);
  const v = data.voice || {};
  $("#voice-info").textContent = v.problem
    ? `备用语音 fallback espeak-ng ${v.voice}: ${v.problem}` : `普通话 Mandarin: Kokoro ${v.voice || ""}`;
  body.replaceChildren(...items.map((p) => {
    const tr = el("tr", null, {"data-key": p.key});
    tr.appendChild(el("td", p.key, {"data-label": "提示音 Key"}));
    tr.appendChild(el("td", p.text, {lang: p.language === "ko" ? "ko" : "zh-CN", "data-label": "文字 Text", class: "text"}));
    tr.appendChild(el("td", p.spoken === p.text ? "" : p.spoken, {lang: "zh-CN", "data-label": "读作 Spoken as", class: "text"}));
    tr.appendChild(el("td", `${p.engine} ${p.voice}` + (p.recorded ? " (录音 recorded)" : ""),
                      {"data-label": "语音 Voice"}));
    const cell = el("td", null, {"data-label": "试听 Play"});
    if (p.rendered) {
      const button = el("button", "▶ 试听 Play", {type: "button", class: "secondary", "aria-label": `试听 Play ${p.key}`});
      button.addEventListener("click", () => play(cell, `${p.url}?r=${loads}`, p.key));
      cell.appendChild(button);
    } else {
      cell.textContent = "未合成 not rendered yet";
    }
    tr.appendChild(cell);
    return tr;
  }));
}

function play(container, url, name) {
  let audio = container.querySelector("audio");
  if (!audio || audio.dataset.url !== url) {
    if (audio) audio.remove();
    audio = el("audio", null, {controls: "", preload: "none", "aria-label": name, "data-url": url});
    audio.src = url;
    container.appendChild(audio);
  }
  audio.play().catch(() => {});
  audio.focus();
}

/** The rendered prompt that says exactly ``text`` (a retired line's current announcement), if any. */
export function renderedWithText(text) { return items.find((p) => p.rendered && p.text === text) || null; }

/** Fill a "callers will hear" box: the text, whether it is on, and a player for it. */
export function hearPreview({box, on, text}) {
  box.classList.toggle("off", !on);
  box.dataset.text = text;
  box.querySelector(".says").textContent = text;
  const note = box.querySelector("[id$=\"-note\"]");
  const known = renderedWithText(text);
  note.textContent = !on ? "已关闭：来电不听此提示，直接进入12345菜单 Off: callers go straight to the 12345 menu"
    : known ? `现用提示音 as rendered now: ${known.key}`
      : "新文字：试听时按来电者听到的声音合成 New text: Play renders it in the callers' voice";
  const button = box.querySelector("button");
  button.disabled = !on;
  button.onclick = () => playText(box, text);
  const audio = box.querySelector("audio");
  if (audio && audio.dataset.text !== text) audio.remove();
}

async function playText(box, text) {
  const button = box.querySelector("button");
  const known = renderedWithText(text);
  let url = known ? `${known.url}?r=${loads}` : null;
  if (!url) {
    button.disabled = true;
    const before = button.textContent;
    button.textContent = "合成中… rendering";
    try {
      const r = await api("POST", "/api/admin/prompts/preview", {text});
      url = r.url;
    } catch (err) {
      status("error", `试听合成失败 Could not render the preview: ${err.message}`);
      return;
    } finally {
      button.disabled = false;
      button.textContent = before;
    }
  }
  if (box.dataset.text !== text) return;  // edited meanwhile: the box shows another text now
  play(box.querySelector(".row"), url, text);
  box.querySelector("audio").dataset.text = text;
}
