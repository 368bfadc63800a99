/* Saving: the outbox queue sent in order with If-Match and op_id, the conflict banner, and the
 * service worker that keeps the page and its data for a reload offline. */
import { API, C, M, PREDICTION_API, csrfToken, fmt, state, user, uuid, versions } from "./config.js";
import { markCrossings, multi, redoStack, select, showSelected, undoStack, unselectLayer } from "./drawing.js";
import { drawn, findLayer, map } from "./map.js";
import { predictions } from "./prediction.js";
import { loadSample, setStatus, updateStatus } from "./sample.js";
import { idGet, idPut, outboxAll, outboxDelete, outboxPut } from "./store.js";

export const pendingLocal = []; // ops of this page not yet confirmed (for the status line)
export const labelListeners = []; // fn(op, {ok, data} | {ok: false, reason}) once a label op is settled

export async function enqueue({ kind, method, target = null, tmp = null, body = null, group: opGroup = null }) {
  performance.mark("ws-edit");
  const v = versions[state.source];
  const op = {
    op_id: uuid(), kind, method, block: C.block, source: state.source, user, target, tmp, body,
    group: opGroup, expected_version: v.expected, created: Date.now(),
  };
  v.expected += 1;
  pendingLocal.push(op.op_id);
  await outboxPut(op);
  updateStatus();
  flush();
}
export async function enqueueLabel({ url, body, opId = uuid() }) {
  // A label is a last-writer-wins value, not part of a sample's versions: it takes no If-Match
  // (source null keeps it out of every per-source version count), only its place in the queue.
  performance.mark("ws-edit");
  const op = {
    op_id: opId, kind: "label", method: "PUT", block: C.block, source: null, user, url, body,
    created: Date.now(),
  };
  pendingLocal.push(op.op_id);
  await outboxPut(op);
  updateStatus();
  flush();
  return op;
}
const labelSettled = (op, result) => labelListeners.forEach(fn => {
  try { fn(op, result); } catch (err) { console.error(err); }
});
async function urlFor(op) {
  if (op.kind === "label") return op.url;
  const base = `${API}${op.source}/`;
  if (op.kind === "create") return `${base}polygons/`;
  if (op.kind === "negative") return `${base}negative/`;
  const id = op.target.startsWith("id:") ? Number(op.target.slice(3)) : await idGet(op.target);
  if (!id) return null;
  const url = `${base}polygons/${id}/`;
  return op.kind === "delete" ? `${url}?op_id=${op.op_id}` : url;
}

let retryTimer = null;
let retryDelay = 2000;
function retryLater() {
  // Online but unreachable (server restarting, flaky link): try again, backing off to a minute.
  if (retryTimer) return;
  retryTimer = setTimeout(() => { retryTimer = null; flush(); }, retryDelay);
  retryDelay = Math.min(retryDelay * 2, 60000);
}
let flushing = null;
let flushAgain = false;
export function flush() {
  if (flushing) { flushAgain = true; return flushing; }
  flushing = (async () => {
    do { flushAgain = false; await flushOnce(); } while (flushAgain && !state.conflict);
  })().finally(() => { flushing = null; updateStatus(); });
  return flushing;
}
async function flushOnce() {
  for (;;) {
    if (state.conflict) return;
    const ops = await outboxAll();
    if (!ops.length) {
      if (state.resyncAfterFlush) { state.resyncAfterFlush = false; await loadSample(); }
      return;
    }
    const op = ops[0];
    const url = await urlFor(op);
    if (!url) { await dropOp(op, ops, "the polygon this change belongs to was never saved"); continue; }
    let res;
    try {
      updateStatus();
      const body = op.kind === "delete" ? undefined
        : JSON.stringify({ op_id: op.op_id, ...(op.body || {}) });
      performance.mark("ws-sending");
      res = await fetch(url, {
        method: op.method, credentials: "same-origin", body,
        headers: {
          "Content-Type": "application/json", "X-CSRFToken": csrfToken(),
          // Who made it: sent under someone else's session, the server keeps it out (409).
          "X-Croplayer-User": encodeURIComponent(op.user || user),
          ...(op.kind === "label" ? {} : { "If-Match": `"${op.expected_version}"` }),
        },
      });
    } catch (err) {
      // Network down (or the answer was lost): the op stays queued; its op_id makes a resend safe.
      state.resyncAfterFlush = true;
      setStatus("offline", fmt(M["offline: %(n)s change(s) waiting"], { n: ops.length }));
      if (navigator.onLine) retryLater();
      return;
    }
    let data = null;
    try { data = await res.json(); } catch (_) { /* empty or not JSON */ }
    performance.mark("ws-answered");
    if (res.ok) {
      await outboxDelete(op.seq);
      settle(op);
      state.lastError = null;
      state.sessionEnded = false;
      delete document.getElementById("ws").dataset.sessionEnded;
      retryDelay = 2000;
      swSaved(op, data, url);
      onSaved(op, data);
    } else if (res.status === 412) {
      showConflict(op, data);
      return;
    } else if (res.status >= 500 || res.status === 429) {
      setStatus("error", fmt(M["error: %(reason)s"], { reason: `HTTP ${res.status}` }));
      state.resyncAfterFlush = true;
      retryLater(); // passing trouble (labels used to retry on their own): the queue waits
      return;
    } else if (data && (data.code === "not_authenticated" || data.code === "csrf_failed" || data.code === "other_user")) {
      // The session ended (logged out, expired while offline), or someone else logged in in
      // this browser: not a refusal of the work. The queue is kept, and sent once its author
      // is logged in again.
      state.sessionEnded = data.code === "other_user" ? (op.user || user) : true;
      document.getElementById("ws").dataset.sessionEnded = "1";
      retryLater();
      return;
    } else {
      const at = data && Array.isArray(data.location) ? data.location.map(Number) : null;
      if (at && at.length === 2 && at.every(Number.isFinite) && op.source === state.source) markCrossings([at]);
      // An edit the server refused must not stay on screen as if it were stored.
      if (op.kind === "update") state.resyncAfterFlush = true;
      await dropOp(op, ops, reasonOf(data, res.status));
    }
  }
}
export function reasonOf(data, status) {
  if (!data) return `HTTP ${status}`;
  if (typeof data === "string") return data;
  if (data.detail) return String(data.detail);
  // A geometry refusal is the reason itself (already in the reader's language); its location
  // is marked on the map, not printed.
  if (Array.isArray(data.geometry)) return data.geometry.join(" ");
  return Object.entries(data).filter(([k]) => k !== "location")
    .map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(" ") : v}`).join("; ");
}
export function settle(op) {
  const i = pendingLocal.indexOf(op.op_id);
  if (i >= 0) pendingLocal.splice(i, 1);
}
async function dropOp(op, ops, reason) {
  if (op.kind === "label") {
    // Refused for good (e.g. the prediction changed): the panel shows why and what is stored.
    await outboxDelete(op.seq);
    settle(op);
    labelSettled(op, { ok: false, reason });
    return;
  }
  // The server refused it for good. The rest of its group (a split or a merge) goes with it, so
  // a half-done split or merge never deletes or shrinks a field; later ops of the same source
  // expected each dropped op to bump the version.
  const doomed = new Set([op, ...ops.slice(1).filter(o => op.group && o.group === op.group)]);
  let dropped = 0;
  for (const o of ops) {
    if (doomed.has(o)) {
      await outboxDelete(o.seq);
      settle(o);
      dropped += 1;
      if (o.kind === "create") {
        const layer = findLayer(o.tmp);
        if (layer) { unselectLayer(layer); drawn.removeLayer(layer); multi.delete(layer); if (state.selected === layer) select(null); }
      }
    } else if (o.source === op.source && dropped) {
      o.expected_version -= dropped;
      await outboxPut(o);
    }
  }
  if (versions[op.source]) versions[op.source].expected -= dropped;
  if (doomed.size > 1) state.resyncAfterFlush = true; // show what the server kept
  state.lastError = fmt(M["error: %(reason)s"], { reason });
  setStatus("error", state.lastError);
}
function onSaved(op, data) {
  if (op.kind === "label") { labelSettled(op, { ok: true, data }); updateStatus(); return; }
  const v = versions[op.source];
  if (v) {
    v.server = data.version;
    if (v.expected < data.version) v.expected = data.version;
  }
  if (op.source === state.source) state.sampleKind = data.kind;
  if (op.kind === "create" && data.polygon) {
    idPut(op.tmp, data.polygon.id);
    const layer = findLayer(op.tmp);
    if (layer && op.source === state.source) {
      layer._ws.id = data.polygon.id;
      refreshFromServer(layer, data.polygon);
    }
  } else if (op.kind === "update" && data.polygon && op.source === state.source) {
    const layer = findLayer(`id:${data.polygon.id}`) || findLayer(op.target);
    if (layer) refreshFromServer(layer, data.polygon);
  }
  performance.mark("ws-saved");
  updateStatus();
}
function refreshFromServer(layer, feature) {
  // The server clips to the block: show what was stored, unless the user is editing it.
  layer._ws.props = feature.properties || {};
  const busy = layer.pm.enabled() || (layer.pm.layerDragEnabled && layer.pm.layerDragEnabled());
  if (!busy && feature.geometry) {
    layer.setLatLngs(L.GeoJSON.coordsToLatLngs(feature.geometry.coordinates, 1));
    layer._ws.geometry = feature.geometry;
  }
  if (state.selected === layer) showSelected();
}

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

// /annotate/sw.js (templates/annotation/service_worker.js) keeps this page, its scripts and the
// block's data, so that a reload without network shows the block and the outbox's changes on
// top. It hears of every write the server confirmed, so its copy stays what the server holds;
// logging out forgets the copies (the outbox stays: it is unsent work, filtered by user).
const swUrl = document.getElementById("ws").dataset.serviceWorker;
const sw = swUrl && "serviceWorker" in navigator ? navigator.serviceWorker : null;
const servedByWorker = !!(sw && sw.controller);
const offlineReady = () => { document.getElementById("ws").dataset.offlineReady = "1"; };
export function swSaved(op, data, url) {
  if (!sw || !sw.controller || !data) return;
  const polygonId = Number((url.match(/\/polygons\/(\d+)\//) || [])[1]) || null;
  sw.controller.postMessage(op.kind === "label"
    ? { type: "saved", op: "label", block: op.block, answer: data }
    : { type: "saved", op: op.kind, block: op.block, source: op.source, polygonId, answer: data });
}
export async function swStart() {
  if (!sw) return;
  sw.addEventListener("message", ev => { if (ev.data && ev.data.type === "warmed") offlineReady(); });
  let reg;
  try { reg = await sw.register(swUrl); await sw.ready; } catch (err) { console.warn(err); return; }
  if (servedByWorker) { offlineReady(); return; }
  // This page did not come through the worker (a first visit, or the worker is new): hand it
  // the page and what the page read, for a reload offline.
  const tilesSeen = performance.getEntriesByType("resource").map(r => r.name)
    .filter(u => u.includes(`/api/blocks/${C.block}/imagery/`));
  const urls = [window.location.href, `/api/blocks/${C.block}/labels/`,
    ...Object.keys(versions).map(slug => `${API}${slug}/`),
    ...Object.keys(predictions).filter(slug => !(C.predictionMissing || {})[slug]).map(PREDICTION_API),
    ...tilesSeen];
  (reg.active || sw.controller).postMessage({ type: "warm", urls });
}
const logoutForm = document.querySelector(".topbar form.user");
if (logoutForm && window.caches) {
  logoutForm.addEventListener("submit", ev => {
    ev.preventDefault();
    const mine = name => name.startsWith("croplayer-data") || name.startsWith("croplayer-tiles");
    caches.keys().then(names => Promise.all(names.filter(mine).map(name => caches.delete(name))))
      .catch(() => {}).finally(() => logoutForm.submit());
  }, { once: true });
}
