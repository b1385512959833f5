// The admin page (/admin): hotline mergers, dry runs, broadcasts, prompts and the version
// history. ES modules over ../common.js and ../labels.js, no build step; the page runs under
// the CSP of gateway.web.edge (script-src 'self', no inline script).
import {$, $$} from "../common.js";
import {state, api, loadSession, zoneOffset, status} from "./core.js";
import {renderLines, renderLists, syncChangeForm, initLines} from "./lines.js";
import {renderVersions, renderBroadcasts} from "./history.js";
import {initDryRun, liveVersionChanged} from "./dryrun.js";
import {loadPrompts} from "./prompts.js";

async function refresh() {
  const [overview, versions] = await Promise.all([api("GET", "/api/admin/overview"), api("GET", "/api/admin/versions")]);
  const before = state.overview && state.overview.version;
  state.overview = overview; state.versions = versions.items;
  state.tz = overview.timezone || state.tz; state.offset = zoneOffset(state.tz);
  $$(".offset").forEach((x) => { x.textContent = state.offset; });
  renderLines(); renderLists(); renderBroadcasts(); renderVersions();
  await loadPrompts();  // after a change the texts (and their audio) may be new
  syncChangeForm(true);
  if (before !== undefined && before !== null && before !== overview.version) await liveVersionChanged(overview.version);
}
state.refresh = refresh;

$("#logout").addEventListener("click", async () => {
  try { await api("POST", "/api/logout"); } finally { location.href = "/login?next=/admin"; }
});

(async () => {
  try {
    await loadSession();
    await refresh();
    initDryRun();
    initLines();
    document.body.dataset.ready = "true";
  } catch (err) {
    status("error", `加载失败 Could not load: ${err.message}`);
  }
})();
