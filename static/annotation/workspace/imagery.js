/* Imagery: switching source and the swipe compare of two sources. */
import { C } from "./config.js";
import { redoStack, undoStack } from "./history.js";
import { drawn, map, tiles } from "./map.js";
import { clearProblem } from "./outline.js";
import { drawOverlay, showPredictionInfo } from "./prediction.js";
import { loadSample } from "./sample.js";
import { select } from "./selection.js";
import { state, versions } from "./state.js";
import { stopTools } from "./tools.js";

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
