/* The annotation workspace: draw and label a block's cropland polygons; every change goes
 * through an IndexedDB outbox to the REST API (If-Match + op_id), so nothing is lost offline.
 * The panel's labels (panel.js) queue in the same outbox, and a service worker (/annotate/sw.js)
 * lets the page reload without network.
 *
 * Editing tools: polygon, rectangle, freehand (simplified with Douglas-Peucker in screen pixels),
 * vertex editing, move, cut hole, split along a drawn line, merge (union) of shift-clicked
 * polygons, snapping to neighbours (geoman), undo and redo. Split and merge run in the browser
 * (polygon-clipping) and are sent as ordinary writes (split = creates + update, merge = update +
 * deletes), so the outbox, the op ids and the server's geometry rules hold for them too.
 *
 * The page's script, as ES modules served as they are (no build step): this entry wires them up
 * (static/annotation/workspace/, one concept per module) and starts the page. */
import { C, state } from "./workspace/config.js";
import { map } from "./workspace/map.js";
import { loadSample, setSource, sourceListeners, updateStatus } from "./workspace/sample.js";
import { outboxAll } from "./workspace/store.js";
import { enqueueLabel, flush, labelListeners, swStart } from "./workspace/sync.js";
import "./workspace/geometry.js";
import "./workspace/drawing.js";
import "./workspace/prediction.js";
import "./workspace/keyboard.js";

// A small public hook for the other scripts of the page (the labelling panel, panel.js).
window.croplayerWorkspace = {
  blockId: C.block,
  map,
  source: () => state.source,
  onSourceChange(fn) { sourceListeners.push(fn); },
  refresh: () => loadSample(),
  // Labels (panel.js) share the outbox, so they and the polygon edits replay in order, once.
  enqueueLabel: (...args) => enqueueLabel(...args),
  queuedLabels: async () => (await outboxAll()).filter(op => op.kind === "label"),
  onLabelResult(fn) { labelListeners.push(fn); },
  flush: () => flush(),
};

window.addEventListener("online", () => { updateStatus(); flush(); });
window.addEventListener("offline", updateStatus);
window.wsFlush = flush;
(async () => {
  if (!state.source) { await flush(); swStart(); return; } // labels may still wait in the outbox
  if ((await outboxAll()).length) state.resyncAfterFlush = true;
  await setSource(state.source);
  await flush(); // changes queued before a reload, in order; op_ids make any resend harmless
  document.getElementById("ws").dataset.ready = "1";
  performance.mark("ws-ready");
  requestAnimationFrame(() => requestAnimationFrame(() => performance.mark("ws-painted")));
  swStart();
})();
