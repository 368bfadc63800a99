/* A source's sample: switching imagery source (and the swipe compare), loading the sample with
 * the outbox's changes on top, and the status line. */
import { API, C, M, fmt, state, versions } from "./config.js";
import { addPolygon, clearProblem, rebindHandles, redoStack, select, stopTools, undoStack } from "./drawing.js";
import { canvasRenderer, chooseRenderer, drawn, findLayer, map, style, tiles } from "./map.js";
import { drawOverlay, showPredictionInfo } from "./prediction.js";
import { idGet, outboxAll } from "./store.js";

export const sourceListeners = [];

let comparing = false;
const swipe = document.getElementById("ws-swipe");
const swipeLine = L.DomUtil.create("div", "ws-swipe-line", map.getContainer());
swipeLine.style.display = "none";
function otherSource() {
  const o = C.sources.find(x => x.slug !== state.source);
  return o ? o.slug : null;
}
export async function setSource(slug) {
  if (!tiles[slug]) return;
  if (slug === state.source && map.hasLayer(tiles[slug])) return;
  stopTools();
  Object.values(tiles).forEach(tl => map.removeLayer(tl));
  if (slug !== state.source) {
    undoStack.length = 0; redoStack.length = 0; // history is per sample
    // Never shown under the new source's name while its sample loads (the status line may be
    // redrawn meanwhile): the old source's polygons go at once.
    select(null);
    drawn.clearLayers();
    clearProblem();
  }
  state.source = slug;
  // When every tile on screen has arrived (bench/bench_workspace.py reads the mark).
  tiles[slug].once("load", () => performance.mark("ws-imagery-loaded"));
  tiles[slug].addTo(map);
  document.querySelectorAll("#ws-sources [data-source]").forEach(b =>
    b.classList.toggle("active", b.dataset.source === slug));
  if (comparing) startCompare();
  if (!versions[slug]) versions[slug] = { server: 0, expected: 0 };
  await loadSample();
  showPredictionInfo();
  drawOverlay();
  sourceListeners.forEach(fn => { try { fn(slug); } catch (err) { console.error(err); } });
}
// The divider goes under the slider's thumb, wherever the slider sits: the thumb's centre runs
// from half a thumb past the slider's left end to half a thumb before its right end.
const SWIPE_THUMB_PX = 16; // #ws-swipe's thumb width in workspace.css
function swipeX() {
  const box = map.getContainer().getBoundingClientRect(), r = swipe.getBoundingClientRect();
  return r.left - box.left + SWIPE_THUMB_PX / 2 + (r.width - SWIPE_THUMB_PX) * swipe.value / 100;
}
function clip() {
  const other = otherSource();
  if (!comparing || !other) return;
  const size = map.getSize();
  const x = Math.max(0, Math.min(size.x, swipeX()));
  const nw = map.containerPointToLayerPoint([0, 0]);
  const se = map.containerPointToLayerPoint(size);
  const cx = map.containerPointToLayerPoint([x, 0]).x;
  tiles[other].getContainer().style.clip = `rect(${nw.y}px, ${se.x}px, ${se.y}px, ${cx}px)`;
  swipeLine.style.left = `${x}px`;
}
function startCompare() {
  const other = otherSource();
  if (!other) return;
  Object.entries(tiles).forEach(([k, tl]) => { if (k !== state.source && k !== other) map.removeLayer(tl); });
  tiles[other].addTo(map);
  tiles[other].bringToFront();
  swipe.hidden = false;
  swipeLine.style.display = "";
  clip();
}
export function toggleCompare() {
  comparing = !comparing;
  document.getElementById("ws-compare")?.classList.toggle("active", comparing);
  if (comparing) startCompare();
  else {
    const other = otherSource();
    if (other) { tiles[other].getContainer().style.clip = ""; map.removeLayer(tiles[other]); }
    swipe.hidden = true;
    swipeLine.style.display = "none";
  }
}
swipe.addEventListener("input", clip);
map.on("move zoom resize", clip);
document.querySelectorAll("#ws-sources [data-source]").forEach(b =>
  b.addEventListener("click", () => setSource(b.dataset.source)));
document.getElementById("ws-compare")?.addEventListener("click", toggleCompare);

// The first sample is asked for before anything else is set up: on a busy block the server's
// answer is most of the time to open the page. The page's head has asked already, before the
// scripts loaded (window.croplayerFirstSample); failing that, ask now.
let firstFetch = window.croplayerFirstSample && window.croplayerFirstSample.source === state.source
  ? window.croplayerFirstSample
  : (state.source ? { source: state.source, res: fetch(`${API}${state.source}/`, { credentials: "same-origin" }) } : null);
window.croplayerFirstSample = null;
if (firstFetch) firstFetch.res.catch(() => {}); // handled where it is awaited (loadSample)

export async function loadSample() {
  let data;
  const early = firstFetch && firstFetch.source === state.source ? firstFetch.res : null;
  firstFetch = null;
  try {
    const res = await (early || fetch(`${API}${state.source}/`, { credentials: "same-origin" }));
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    data = await res.json();
  } catch (err) {
    setStatus("error", fmt(M["error: %(reason)s"], { reason: err.message }));
    return;
  }
  performance.mark("ws-sample-fetched");
  select(null);
  drawn.clearLayers();
  state.renderer = chooseRenderer(data.features.length);
  document.getElementById("ws-map").dataset.renderer = state.renderer === canvasRenderer ? "canvas" : "svg";
  data.features.forEach(f => addPolygon(f, { id: f.id }));
  performance.mark("ws-sample-drawn");
  state.sampleKind = data.kind;
  // Changes still in the outbox (e.g. drawn offline before a reload) are shown on top.
  const queued = (await outboxAll()).filter(o => o.source === state.source);
  for (const op of queued) {
    if (op.kind === "create") {
      addPolygon({ type: "Feature", geometry: op.body.geometry, properties: {
        model_version: op.body.model_version, round_number: op.body.round_number,
      } }, { tmp: op.tmp, subtype: op.body.subtype, id: (await idGet(op.tmp)) || null });
    } else if (op.kind === "negative") drawn.clearLayers();
    else {
      const layer = findLayer(op.target);
      if (!layer) continue;
      if (op.kind === "delete") drawn.removeLayer(layer);
      else {
        if (op.body.subtype) { layer._ws.subtype = op.body.subtype; layer.setStyle(style(op.body.subtype, false)); }
        if (op.body.geometry) {
          layer.setLatLngs(L.GeoJSON.coordsToLatLngs(op.body.geometry.coordinates, 1));
          layer._ws.geometry = op.body.geometry;
        }
      }
    }
  }
  rebindHandles();
  const last = queued.length ? queued[queued.length - 1].expected_version + 1 : 0;
  versions[state.source] = { server: data.version, expected: Math.max(data.version, last) };
  await updateStatus(); // refresh() resolves with the status line (and its version) up to date
}

export function setStatus(mode, text) {
  const el = document.getElementById("ws-status");
  el.dataset.state = mode;
  el.textContent = text;
}
export async function updateStatus() {
  if (state.conflict) return;
  const v = versions[state.source];
  const waiting = (await outboxAll()).length;
  if (!navigator.onLine && waiting) setStatus("offline", fmt(M["offline: %(n)s change(s) waiting"], { n: waiting }));
  else if (waiting && typeof state.sessionEnded === "string") setStatus("error", fmt(M["%(n)s change(s) made by %(user)s are kept: log in as %(user)s (e.g. in another tab) to send them"], { n: waiting, user: state.sessionEnded }));
  else if (waiting && state.sessionEnded) setStatus("error", fmt(M["your session has ended: log in again (e.g. in another tab); %(n)s change(s) are kept and sent then"], { n: waiting }));
  else if (waiting) setStatus("saving", M["saving…"]);
  else if (state.lastError) setStatus("error", state.lastError);
  else if (v && v.server > 0) setStatus("saved", fmt(M["saved v%(v)s"], { v: v.server }));
  else setStatus("idle", M["not saved yet"]);
  const kind = state.sampleKind === "negative" ? M["negative sample (no cropland)"]
    : state.sampleKind === "positive" ? M["positive sample"] : M["no sample yet"];
  document.getElementById("ws-sample").textContent =
    `${state.source || ""} · ${kind} · ${fmt(M["%(n)s polygon(s)"], { n: drawn.getLayers().length })}`;
  document.getElementById("ws-status").dataset.version = v ? v.server : "";
}
