/* Polygon writes: create, change, delete (each queued in the outbox), geoman's draw, cut and
 * remove, marking negative. */
import { C, M, t, uuid } from "./config.js";
import { outlineCrossings, round8 } from "./geometry.js";
import { group, record, redoStack, undoStack } from "./history.js";
import { currentSubtype, drawn, geomOf, hint, keyOf, map, style } from "./map.js";
import { clearProblem, drawnCrossing, editedCrossing } from "./outline.js";
import { predictionNow } from "./prediction.js";
import { multi, onPolygonClick, select, showSelected, unselectLayer } from "./selection.js";
import { splitAlong } from "./splitmerge.js";
import { state } from "./state.js";
import { enqueue } from "./sync.js";

export function addPolygon(feature, ws) {
  // One L.Polygon straight from the coordinates (not one L.GeoJSON group per feature): this runs
  // 2,000 times when a busy block opens.
  const latlngs = L.GeoJSON.coordsToLatLngs(feature.geometry.coordinates, 1);
  const props = feature.properties || {};
  const subtype = (ws && ws.subtype) || props.subtype || C.defaultSubtype;
  const layer = L.polygon(latlngs, { renderer: state.renderer, ...style(subtype, false) });
  layer._ws = { id: null, tmp: null, props, ...ws, subtype, geometry: feature.geometry };
  layer._ws.h = layer._ws.h || { layer };
  layer._ws.h.layer = layer;
  layer.on("click", onPolygonClick);
  layer.on("pm:edit", () => onEdited(layer));
  drawn.addLayer(layer);
  return layer;
}
export function provenance() {
  // Every polygon records the model whose prediction was current for its source when it was
  // drawn (the verdicts do the same): its errors are what the next round learns from.
  const known = predictionNow(state.source) || ((C.panel && C.panel.predictions) || {})[state.source];
  return known && known.model_version
    ? { model_version: known.model_version, round_number: known.round_number ?? null } : {};
}
export function createPolygon(geometry, subtype, prov, h = null, { group: opGroup = null } = {}) {
  const tmp = `tmp:${uuid()}`;
  const layer = addPolygon({ type: "Feature", geometry, properties: { ...(prov || {}) } },
    { tmp, subtype, h: h || undefined });
  enqueue({ kind: "create", method: "POST", tmp, group: opGroup,
    body: { geometry: layer._ws.geometry, subtype, ...(prov || {}) } });
  return layer;
}
export const created = layer => ({
  kind: "create", h: layer._ws.h, geometry: layer._ws.geometry, subtype: layer._ws.subtype,
  prov: provOf(layer),
});
export const provOf = layer => {
  const p = layer._ws.props || {};
  return p.model_version ? { model_version: p.model_version, round_number: p.round_number ?? null } : {};
};
export function applyValues(layer, values, { group: opGroup = null } = {}) {
  const body = {};
  if (values.geometry) {
    if (layer.pm.enabled()) layer.pm.disable();
    layer.setLatLngs(L.GeoJSON.coordsToLatLngs(values.geometry.coordinates, 1));
    layer._ws.geometry = values.geometry;
    body.geometry = values.geometry;
  }
  if (values.subtype) {
    layer._ws.subtype = values.subtype;
    layer.setStyle(style(values.subtype, multi.has(layer)));
    body.subtype = values.subtype;
  }
  enqueue({ kind: "update", method: "PATCH", target: keyOf(layer), body, group: opGroup });
}
export function change(h, before, after, opts) {
  applyValues(h.layer, after, opts);
  return { kind: "update", h, before, after };
}
const rounded = geometry => JSON.stringify(geometry.coordinates.map(r => r.map(([x, y]) => [round8(x), round8(y)])));
function onEdited(layer) {
  // Vertex edits and moves (geoman changed the layer already). Geoman also fires this on a
  // layer it has just replaced (cut): that one is off the map and speaks for nobody.
  if (!drawn.hasLayer(layer)) return;
  const geometry = geomOf(layer);
  if (rounded(geometry) === rounded(layer._ws.geometry)) return;
  clearProblem();
  const crossings = outlineCrossings(geometry.coordinates);
  if (crossings.length) { editedCrossing(layer, geometry, crossings); return; }
  record({ kind: "update", h: layer._ws.h, before: { geometry: layer._ws.geometry }, after: { geometry } });
  layer._ws.geometry = geometry;
  enqueue({ kind: "update", method: "PATCH", target: keyOf(layer), body: { geometry } });
}
export function deletePolygon(layer, { group: opGroup = null } = {}) {
  unselectLayer(layer);
  drawn.removeLayer(layer);
  multi.delete(layer);
  if (state.selected === layer) state.selected = null;
  showSelected();
  enqueue({ kind: "delete", method: "DELETE", target: keyOf(layer), group: opGroup });
  return { kind: "delete", h: layer._ws.h, geometry: layer._ws.geometry, subtype: layer._ws.subtype, prov: provOf(layer) };
}
export function deleteSelected() {
  const layers = [...multi];
  if (!layers.length) { hint(t("selectFirst")); return; }
  record(group(layers.map(l => deletePolygon(l))));
}

map.on("pm:create", ev => {
  const layer = ev.layer;
  drawn.removeLayer(layer);
  map.removeLayer(layer);
  const geometry = geomOf(layer);
  if (ev.shape === "Line") { splitAlong(geometry.coordinates); return; }
  clearProblem();
  const crossings = outlineCrossings(geometry.coordinates);
  if (crossings.length) { drawnCrossing(geometry, crossings); return; }
  const made = createPolygon(geometry, currentSubtype(), provenance());
  record(created(made));
  select(made);
});
map.on("pm:cut", ev => {
  // Geoman replaces the cut layer by a new one: keep the polygon's identity on the server.
  const old = ev.originalLayer;
  const gj = ev.layer.toGeoJSON(8).geometry;
  map.removeLayer(ev.layer);
  drawn.removeLayer(ev.layer);
  if (!old._ws) return;
  drawn.removeLayer(old);
  multi.delete(old);
  const polys = gj.type === "MultiPolygon" ? gj.coordinates : [gj.coordinates];
  const before = old._ws.geometry;
  const layer = addPolygon({ type: "Feature", geometry: { type: "Polygon", coordinates: polys[0] }, properties: old._ws.props },
    { id: old._ws.id, tmp: old._ws.tmp, subtype: old._ws.subtype, h: old._ws.h });
  const parts = [{ kind: "update", h: layer._ws.h, before: { geometry: before }, after: { geometry: layer._ws.geometry } }];
  enqueue({ kind: "update", method: "PATCH", target: keyOf(layer), body: { geometry: layer._ws.geometry } });
  polys.slice(1).forEach(c => parts.push(created(
    createPolygon({ type: "Polygon", coordinates: c }, old._ws.subtype, provOf(old)))));
  record(group(parts));
  select(layer);
});
map.on("pm:remove", ev => {
  if (!ev.layer._ws) return;
  drawn.addLayer(ev.layer);
  record(deletePolygon(ev.layer));
});

export function markNegative() {
  if (!window.confirm(M["Mark this block negative on this state.source? Its polygons are deleted."])) return;
  select(null);
  drawn.clearLayers();
  undoStack.length = 0;
  redoStack.length = 0;
  enqueue({ kind: "negative", method: "POST" });
}
