/* The Leaflet map: block outline, imagery tile layers, panes and renderers, the polygons' layer
 * group. */
import { C, CANVAS_FROM, COLORS, params } from "./config.js";

const [w, s, e, n] = C.bounds;
export const map = L.map("ws-map", { maxZoom: C.zoom + 3, zoomSnap: 0.25, keyboard: false, doubleClickZoom: false });
window.wsMap = map; // for tests and the console
map.fitBounds([[s, w], [n, e]]);
L.rectangle([[s, w], [n, e]], {
  color: "#ff1744", weight: 2, dashArray: "6 4", fill: false, interactive: false, pmIgnore: true,
  snapIgnore: true,
}).addTo(map);
export const tiles = {};
C.sources.forEach(src => {
  tiles[src.slug] = L.tileLayer(`/api/blocks/${C.block}/imagery/${src.slug}/{z}/{x}/{y}.png`, {
    maxZoom: C.zoom + 3, maxNativeZoom: C.zoom + 2, attribution: src.name, pmIgnore: true,
  });
});
// The polygons' canvas sits in a pane of its own above the overlay pane: a <canvas> takes every
// click in its box, so an SVG root (geoman's guide lines) above it would swallow the clicks.
// The prediction overlay lies below, in a pane that takes no clicks at all.
const pane = (name, z, clicks) => {
  const el = map.createPane(name);
  el.style.zIndex = String(z);
  if (!clicks) el.style.pointerEvents = "none";
  return name;
};
export const canvasRenderer = L.canvas({ padding: 0.3, tolerance: 4, pane: pane("ws-polygons", 410, true) });
export const predictionRenderer = L.canvas({ padding: 0.3, pane: pane("ws-prediction", 390, false) });
export const chooseRenderer = count => {
  const asked = params.get("renderer"); // ?renderer=svg|canvas: the benchmark's baseline
  if (asked === "svg") return undefined;
  if (asked === "canvas") return canvasRenderer;
  return count >= CANVAS_FROM ? canvasRenderer : undefined;
};
export const drawn = L.featureGroup().addTo(map);
map.pm.setGlobalOptions({
  // Self-intersections are allowed to geoman, which would otherwise drop the clicked corner
  // without a word (a bow-tie became a triangle): the workspace checks every outline itself,
  // marks the crossing and says what to do (checkOutline).
  snappable: true, snapDistance: 12, allowSelfIntersection: true, layerGroup: drawn,
  templineStyle: { color: "#00e5ff" }, hintlineStyle: { color: "#00e5ff", dashArray: "5 5" },
});
map.pm.setLang(C.zh ? "zh" : "en");

export const currentSubtype = () => document.querySelector("input[name=subtype]:checked").value;
export const style = (subtype, isSelected) => ({
  color: isSelected ? "#ffffff" : COLORS[subtype] || "#ffeb3b",
  fillColor: COLORS[subtype] || "#ffeb3b", fillOpacity: 0.25, weight: isSelected ? 3 : 2,
  dashArray: isSelected ? "4 3" : null,
});
export const geomOf = layer => layer.toGeoJSON(8).geometry;
export const keyOf = layer => (layer._ws.id ? `id:${layer._ws.id}` : layer._ws.tmp);
export const hint = text => { document.getElementById("ws-hint").textContent = text || ""; };

export function findLayer(key) {
  return drawn.getLayers().find(l => l._ws && (keyOf(l) === key || l._ws.tmp === key
    || `id:${l._ws.id}` === key));
}
export const live = h => (h && h.layer && drawn.hasLayer(h.layer) ? h.layer : null);
