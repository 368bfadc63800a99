/* The freehand tool: a stroke simplified in screen pixels, cut at its crossings. */
import { FREEHAND_TOLERANCE_PX, MIN_AREA_DEG2, t } from "./config.js";
import { createPolygon, created, provenance } from "./edits.js";
import { cleanPieces, closed, simplify, vertexCount } from "./geometry.js";
import { group, record } from "./history.js";
import { currentSubtype, hint, map } from "./map.js";
import { select } from "./selection.js";
import { setToolActive, stopTools } from "./tools.js";

export const freehand = { on: false, points: null, line: null, endedAt: 0 };
export function freehandStart() {
  stopTools();
  freehand.on = true;
  map.dragging.disable();
  map.getContainer().classList.add("ws-freehand");
  setToolActive("freehand", true);
  hint(t("freehandHow"));
}
export function freehandStop() {
  freehand.on = false;
  freehand.points = null;
  if (freehand.line) { map.removeLayer(freehand.line); freehand.line = null; }
  map.dragging.enable();
  map.getContainer().classList.remove("ws-freehand");
  setToolActive("freehand", false);
}
map.on("mousedown", ev => {
  if (!freehand.on || ev.originalEvent.button !== 0) return;
  freehand.points = [[ev.containerPoint.x, ev.containerPoint.y]];
  freehand.line = L.polyline([ev.latlng], {
    color: "#00e5ff", weight: 2, interactive: false, pmIgnore: true, snapIgnore: true,
  }).addTo(map);
});
map.on("mousemove", ev => {
  if (!freehand.points) return;
  const [lx, ly] = freehand.points[freehand.points.length - 1];
  if (Math.hypot(ev.containerPoint.x - lx, ev.containerPoint.y - ly) < 1) return;
  freehand.points.push([ev.containerPoint.x, ev.containerPoint.y]);
  freehand.line.addLatLng(ev.latlng);
});
// On the document, not the map: a stroke may end outside the map.
document.addEventListener("mouseup", () => { if (freehand.points) freehandFinish(); });
function freehandFinish() {
  const raw = freehand.points.length;
  const stroke = simplify(freehand.points, FREEHAND_TOLERANCE_PX);
  freehandStop();
  freehand.endedAt = performance.now();
  const toLonLat = ([x, y]) => { const ll = map.containerPointToLatLng([x, y]); return [ll.lng, ll.lat]; };
  const ring = closed(stroke.map(toLonLat));
  // A pixel of the screen in degrees²: pieces smaller than a few pixels are slips of the hand.
  const a = map.containerPointToLatLng([0, 0]), b = map.containerPointToLatLng([1, 1]);
  const px2 = Math.abs((b.lng - a.lng) * (b.lat - a.lat));
  if (ring.length < 4) { hint(t("freehandSmall")); return; }
  // A stroke that crosses itself is cut at the crossings into valid polygons.
  const pieces = cleanPieces(polygonClipping.union([ring]), Math.max(16 * px2, MIN_AREA_DEG2));
  if (!pieces.length) { hint(t("freehandSmall")); return; }
  const prov = provenance();
  const subtype = currentSubtype();
  const made = pieces.map(p => createPolygon({ type: "Polygon", coordinates: p }, subtype, prov));
  record(group(made.map(created)));
  select(made[0]);
  hint(t("freehandDone", { n: vertexCount(pieces[0]), m: raw }));
}
