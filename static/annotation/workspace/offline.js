/* Offline: the service worker that keeps the page and its data, and forgetting it on logout. */
import { API, C, PREDICTION_API } from "./config.js";
import { predictions } from "./prediction.js";
import { versions } from "./state.js";

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
