/* Drawing and editing: selection and subtype, undo and redo, the polygon writes (each queued
 * in the outbox), outlines that cross themselves, split and merge, freehand, the tool buttons. */
import { C, FREEHAND_TOLERANCE_PX, M, MAX_VERTICES, MIN_AREA_DEG2, state, t, uuid } from "./config.js";
import { bbox, bboxesMeet, cleanPieces, closed, inPolygon, outlineCrossings, polygonArea, repairPieces, round8, simplify, splitRings, vertexCount } from "./geometry.js";
import { currentSubtype, drawn, findLayer, geomOf, hint, keyOf, live, map, style } from "./map.js";
import { predictionNow, startFromPrediction, togglePrediction } from "./prediction.js";
import { enqueue } from "./sync.js";

export const multi = new Set(); // every selected polygon (shift-click adds): merge, split, delete

export function onPolygonClick(ev) {
  if (drawingNow()) return; // the click places a vertex of what is being drawn
  L.DomEvent.stopPropagation(ev);
  select(ev.target, { add: ev.originalEvent.shiftKey });
}

export function unselectLayer(layer) {
  if (layer.pm.enabled()) layer.pm.disable();
  if (layer.pm.layerDragEnabled && layer.pm.layerDragEnabled()) layer.pm.disableLayerDrag();
  if (drawn.hasLayer(layer)) layer.setStyle(style(layer._ws.subtype, false));
}
export function select(layer, { add = false } = {}) {
  if (add && layer) {
    // Shift-click: add to (or take out of) the selection, for merging.
    if (state.selected && !multi.has(state.selected)) multi.add(state.selected);
    if (multi.has(layer)) {
      multi.delete(layer);
      unselectLayer(layer);
      if (state.selected === layer) state.selected = multi.size ? [...multi][multi.size - 1] : null;
    } else {
      if (state.selected && state.selected.pm.enabled()) state.selected.pm.disable();
      multi.add(layer);
      state.selected = layer;
    }
  } else {
    [...multi].forEach(l => { if (l !== layer) unselectLayer(l); });
    if (state.selected && state.selected !== layer) unselectLayer(state.selected);
    multi.clear();
    state.selected = layer;
    if (layer) multi.add(layer);
  }
  multi.forEach(l => l.setStyle(style(l._ws.subtype, true)));
  if (state.selected) {
    const radio = document.querySelector(`input[name=subtype][value=${state.selected._ws.subtype}]`);
    if (radio) radio.checked = true;
  }
  showSelected();
}
export function showSelected() {
  const el = document.getElementById("ws-selected");
  el.dataset.count = String(multi.size);
  if (multi.size > 1) { el.textContent = t("selected", { n: multi.size }); return; }
  if (!state.selected) { el.textContent = ""; return; }
  const p = state.selected._ws.props || {};
  const rows = [
    state.selected._ws.id ? `#${state.selected._ws.id}` : M["not saved yet"],
    p.created_by ? `${p.created_by} · ${(p.created_at || "").slice(0, 16).replace("T", " ")}` : "",
    p.updated_by ? `✎ ${p.updated_by} · ${(p.updated_at || "").slice(0, 16).replace("T", " ")}` : "",
    p.source || state.source,
    p.model_version ? `${p.model_version}${p.round_number != null ? " / r" + p.round_number : ""}` : "",
  ].filter(Boolean);
  el.textContent = rows.join(" · ");
}
document.querySelectorAll("input[name=subtype]").forEach(radio => {
  radio.addEventListener("change", () => setSubtype(radio.value));
});
export function setSubtype(value) {
  const radio = document.querySelector(`input[name=subtype][value=${value}]`);
  if (radio) radio.checked = true;
  const layers = [...multi].filter(l => l._ws.subtype !== value);
  if (!layers.length) return;
  record(group(layers.map(l => change(l._ws.h, { subtype: l._ws.subtype }, { subtype: value }))));
}

export const undoStack = [];
export const redoStack = [];
// An action is what one user gesture did, as writes that can be played backwards and forwards:
//   {kind: "create"|"delete", h, geometry, subtype, prov}, {kind: "update", h, before, after},
//   {kind: "group", parts}.
// ``h`` is a handle {layer}: a polygon deleted and brought back by undo is a new layer (and a new
// polygon on the server); the handle follows it, so older actions still reach it.
export function record(action) {
  if (!action) return;
  undoStack.push(action);
  redoStack.length = 0;
}
export const group = parts => (parts.length === 1 ? parts[0] : { kind: "group", parts });
function play(action, backwards) {
  if (action.kind === "group") {
    (backwards ? [...action.parts].reverse() : action.parts).forEach(a => play(a, backwards));
  } else if (action.kind === "update") {
    const layer = live(action.h);
    if (layer) applyValues(layer, backwards ? action.before : action.after);
  } else {
    const remove = (action.kind === "create") === backwards;
    if (remove) { const layer = live(action.h); if (layer) deletePolygon(layer); }
    else createPolygon(action.geometry, action.subtype, action.prov, action.h);
  }
}
export function undo() {
  const a = undoStack.pop();
  if (!a) { hint(M["nothing to undo"]); return; }
  select(null);
  play(a, true);
  redoStack.push(a);
}
export function redo() {
  const a = redoStack.pop();
  if (!a) { hint(t("nothingRedo")); return; }
  select(null);
  play(a, false);
  undoStack.push(a);
}
export function rebindHandles() {
  // After a reload every polygon is a new layer: point the handles of the history at them.
  const stale = new Map();
  const visit = a => {
    if (a.kind === "group") a.parts.forEach(visit);
    else if (a.h && a.h.layer && a.h.layer._ws) stale.set(a.h, keyOf(a.h.layer));
  };
  [...undoStack, ...redoStack].forEach(visit);
  stale.forEach((key, h) => {
    const layer = key && findLayer(key);
    if (layer) { layer._ws.h = h; h.layer = layer; }
  });
}

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

export function splitAlong(line) {
  if (line.length < 2) return;
  const box = bbox(line);
  const candidates = multi.size ? [...multi] : drawn.getLayers();
  const parts = [];
  let refused = false;
  for (const layer of candidates) {
    const rings = layer._ws.geometry.coordinates;
    if (!bboxesMeet(box, bbox(rings[0]))) continue;
    // Both ends outside: a line ending inside a field says nothing about where the cut goes.
    if (inPolygon(line[0], rings) || inPolygon(line[line.length - 1], rings)) continue;
    const pieces = splitRings(rings, line);
    if (pieces === null) { refused = true; continue; }
    if (pieces.length < 2) continue;
    pieces.sort((a, b) => polygonArea(b) - polygonArea(a));
    if (pieces.some(p => vertexCount(p) > MAX_VERTICES)) { refused = true; continue; }
    // Pieces first, the shrinking of the original last: if the server refuses a piece, the rest
    // of the split is dropped with it (same op group) and nothing of the field is lost.
    const opGroup = uuid();
    const prov = provOf(layer);
    pieces.slice(1).forEach(p => parts.push(created(
      createPolygon({ type: "Polygon", coordinates: p }, layer._ws.subtype, prov, null, { group: opGroup }))));
    parts.push(change(layer._ws.h, { geometry: layer._ws.geometry },
      { geometry: { type: "Polygon", coordinates: pieces[0] } }, { group: opGroup }));
  }
  if (!parts.length) { hint(t(refused ? "splitFailed" : "splitNone")); return; }
  record(group(parts));
  select(null);
  hint("");
}
export function mergeSelected() {
  const layers = [...multi];
  if (layers.length < 2) { hint(t("mergeNeedTwo")); return; }
  const keep = layers[0]; // the first one clicked keeps its identity (and provenance)
  const union = cleanPieces(
    polygonClipping.union(...layers.map(l => l._ws.geometry.coordinates)), MIN_AREA_DEG2);
  if (union.length !== 1) { hint(t("mergeApart")); return; }
  if (vertexCount(union[0]) > MAX_VERTICES) { hint(t("tooManyVertices", { n: vertexCount(union[0]), max: MAX_VERTICES })); return; }
  // The kept polygon grows first, then the others go: a refused union deletes nothing.
  const opGroup = uuid();
  const parts = [change(keep._ws.h, { geometry: keep._ws.geometry },
    { geometry: { type: "Polygon", coordinates: union[0] } }, { group: opGroup })];
  layers.filter(l => l !== keep).forEach(l => parts.push(deletePolygon(l, { group: opGroup })));
  record(group(parts));
  select(keep);
  hint("");
}

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

export const drawingNow = () => freehand.on || map.pm.globalDrawModeEnabled() || map.pm.globalCutModeEnabled()
  || performance.now() - freehand.endedAt < 300; // the click that ends a freehand stroke
export function setToolActive(name, on) {
  document.querySelector(`[data-tool=${name}]`)?.classList.toggle("active", on);
}
export function stopTools() {
  if (freehand.on) freehandStop();
  map.pm.disableDraw();
  if (map.pm.globalCutModeEnabled()) map.pm.disableGlobalCutMode();
  drawn.getLayers().forEach(l => { if (l.pm.layerDragEnabled()) l.pm.disableLayerDrag(); });
  setToolActive("move", false);
  setToolActive("split", false);
}
export function tool(name) {
  if (name === "polygon") { stopTools(); map.pm.enableDraw("Polygon"); }
  else if (name === "rectangle") { stopTools(); map.pm.enableDraw("Rectangle"); }
  else if (name === "freehand") { if (freehand.on) freehandStop(); else freehandStart(); }
  else if (name === "split") {
    stopTools();
    map.pm.enableDraw("Line", { snappable: true });
    setToolActive("split", true);
    hint(t(multi.size ? "splitHowSelected" : "splitHow"));
  } else if (name === "merge") mergeSelected();
  else if (name === "move") moveToggle();
  else if (name === "cut") { stopTools(); map.pm.enableGlobalCutMode(); }
  else if (name === "edit") {
    // Only the selected polygon gets vertex handles: 2,000 polygons in edit mode at once would
    // put 20,000 markers on the page.
    if (!state.selected) { hint(t("selectFirst")); return; }
    if (state.selected.pm.enabled()) state.selected.pm.disable();
    else { if (state.selected.pm.layerDragEnabled()) state.selected.pm.disableLayerDrag(); state.selected.pm.enable({ snappable: true, allowSelfIntersection: true }); }
  } else if (name === "delete") deleteSelected();
  else if (name === "undo") undo();
  else if (name === "redo") redo();
  else if (name === "prediction") togglePrediction();
  else if (name === "prediction-start") startFromPrediction();
}
document.querySelectorAll("[data-tool]").forEach(b => b.addEventListener("click", () => tool(b.dataset.tool)));
map.on("pm:drawend", () => setToolActive("split", false));
document.getElementById("ws-negative").addEventListener("click", markNegative);
map.on("click", () => { if (!drawingNow()) select(null); });

function moveToggle() {
  if (!state.selected) { hint(t("selectFirst")); return; }
  if (state.selected.pm.layerDragEnabled()) { state.selected.pm.disableLayerDrag(); setToolActive("move", false); hint(""); return; }
  if (state.selected.pm.enabled()) state.selected.pm.disable();
  state.selected.pm.enableLayerDrag();
  setToolActive("move", true);
  hint(t("moveHow"));
}
