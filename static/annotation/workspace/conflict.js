/* The conflict banner: their version beside ours, load theirs or re-apply mine. */
import { M, fmt, uuid } from "./config.js";
import { redoStack, undoStack } from "./history.js";
import { drawn, map } from "./map.js";
import { loadSample } from "./sample.js";
import { state, versions } from "./state.js";
import { setStatus } from "./status.js";
import { outboxAll, outboxDelete, outboxPut } from "./store.js";
import { flush, pendingLocal, settle } from "./sync.js";

// Their version drawn beside ours while the banner is up, so the annotator sees both before
// choosing (orange dashes, not editable, no snapping).
let theirsLayer = null;
function hideTheirs() { if (theirsLayer) { map.removeLayer(theirsLayer); theirsLayer = null; } }
export async function showConflict(op, data) {
  const ops = (await outboxAll()).filter(o => o.source === op.source);
  state.conflict = { source: op.source, version: data.version, polygons: data.polygons };
  hideTheirs();
  theirsLayer = L.geoJSON(data.polygons, {
    interactive: false, pmIgnore: true, snapIgnore: true,
    style: { className: "ws-theirs", color: "#ff8f00", weight: 3, dashArray: "6 4", fillOpacity: 0.05 },
  }).addTo(map);
  document.getElementById("ws-conflict-detail").textContent = fmt(M[
    "Theirs: version %(v)s with %(n)s polygon(s). Yours: %(m)s polygon(s) on screen, %(k)s change(s) not saved."
  ], { v: data.version, n: data.polygons.features.length, m: drawn.getLayers().length, k: ops.length })
    + " " + M["Their version is outlined in orange dashes."];
  document.getElementById("ws-conflict").hidden = false;
  setStatus("error", fmt(M["error: %(reason)s"], { reason: data.detail }));
}
document.getElementById("ws-load-theirs").addEventListener("click", async () => {
  const c = state.conflict;
  for (const op of (await outboxAll()).filter(o => o.source === c.source)) { await outboxDelete(op.seq); settle(op); }
  state.conflict = null;
  hideTheirs();
  undoStack.length = 0;
  redoStack.length = 0;
  document.getElementById("ws-conflict").hidden = true;
  await loadSample();
  flush();
});
document.getElementById("ws-reapply-mine").addEventListener("click", async () => {
  const c = state.conflict;
  let next = c.version;
  for (const op of (await outboxAll()).filter(o => o.source === c.source)) {
    settle(op);
    op.op_id = uuid(); // a new request on top of their version, not a retry of the refused one
    op.expected_version = next++;
    pendingLocal.push(op.op_id);
    await outboxPut(op);
  }
  versions[c.source] = { server: c.version, expected: next };
  state.conflict = null;
  hideTheirs();
  state.resyncAfterFlush = true; // then show their polygons and ours together
  document.getElementById("ws-conflict").hidden = true;
  flush();
});
