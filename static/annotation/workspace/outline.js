/* Outlines that cross themselves: mark where, and offer the repair. */
import { t, uuid } from "./config.js";
import { change, createPolygon, created, provOf, provenance } from "./edits.js";
import { polygonArea, repairPieces } from "./geometry.js";
import { group, record } from "./history.js";
import { currentSubtype, hint, live, map } from "./map.js";
import { select } from "./selection.js";

const problemEl = document.getElementById("ws-problem");
const problemLayer = L.layerGroup([], { pmIgnore: true }).addTo(map);
let problemRepair = null;
export function clearProblem() {
  problemLayer.clearLayers();
  problemEl.hidden = true;
  problemRepair = null;
  delete document.getElementById("ws-map").dataset.crossings;
}
export function markCrossings(points) {
  points.forEach(([x, y]) => L.circleMarker([y, x], {
    radius: 9, color: "#ff1744", weight: 3, fillColor: "#ffeb3b", fillOpacity: 0.9,
    className: "ws-crossing", interactive: false, pmIgnore: true, snapIgnore: true,
  }).addTo(problemLayer));
  document.getElementById("ws-map").dataset.crossings = String(points.length);
}
function showProblem(text, repairLabel, repair, dismissLabel) {
  document.getElementById("ws-problem-text").textContent = text;
  const fix = document.getElementById("ws-problem-repair");
  fix.hidden = !repair;
  fix.textContent = repairLabel || "";
  document.getElementById("ws-problem-dismiss").textContent = dismissLabel;
  problemRepair = repair;
  problemEl.hidden = false;
}
export function drawnCrossing(geometry, crossings) {
  // Nothing is saved: a different shape than the one drawn is never stored without a word.
  L.polygon(L.GeoJSON.coordsToLatLngs(geometry.coordinates, 1), {
    color: "#ff1744", weight: 2, dashArray: "4 4", fillOpacity: 0.08, className: "ws-rejected",
    interactive: false, pmIgnore: true, snapIgnore: true,
  }).addTo(problemLayer);
  markCrossings(crossings);
  const pieces = repairPieces(geometry.coordinates);
  const subtype = currentSubtype();
  const prov = provenance();
  showProblem(t("crossDrawn", { n: crossings.length }),
    pieces.length ? t("crossSplit", { n: pieces.length }) : "",
    pieces.length ? () => {
      const made = pieces.map(p => createPolygon({ type: "Polygon", coordinates: p }, subtype, prov));
      record(group(made.map(created)));
      select(made[0]);
      hint(t("crossSplitDone", { n: made.length }));
    } : null,
    t("crossDiscard"));
}
export function editedCrossing(layer, geometry, crossings) {
  // The edit is undone on screen (the stored polygon never changed): the outline goes back.
  const before = layer._ws.geometry;
  if (layer.pm.enabled()) layer.pm.disable();
  layer.setLatLngs(L.GeoJSON.coordsToLatLngs(before.coordinates, 1));
  markCrossings(crossings);
  const pieces = repairPieces(geometry.coordinates);
  const h = layer._ws.h;
  showProblem(t("crossEdited", { n: crossings.length }),
    pieces.length > 1 ? t("crossSplit", { n: pieces.length }) : "",
    pieces.length > 1 ? () => {
      const target = live(h);
      if (!target) return;
      pieces.sort((a, b) => polygonArea(b) - polygonArea(a));
      const opGroup = uuid();
      const prov = provOf(target);
      const parts = [change(h, { geometry: target._ws.geometry },
        { geometry: { type: "Polygon", coordinates: pieces[0] } }, { group: opGroup })];
      pieces.slice(1).forEach(p => parts.push(created(
        createPolygon({ type: "Polygon", coordinates: p }, target._ws.subtype, prov, null, { group: opGroup }))));
      record(group(parts));
      select(target);
      hint(t("crossSplitDone", { n: pieces.length }));
    } : null,
    t("crossKeep"));
}
document.getElementById("ws-problem-repair").addEventListener("click", () => {
  const repair = problemRepair;
  clearProblem();
  if (repair) repair();
});
document.getElementById("ws-problem-dismiss").addEventListener("click", clearProblem);
