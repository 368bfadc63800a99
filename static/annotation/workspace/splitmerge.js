/* Split along a drawn line and merge (union) of selected polygons, in the browser. */
import { MAX_VERTICES, MIN_AREA_DEG2, t, uuid } from "./config.js";
import { change, createPolygon, created, deletePolygon, provOf } from "./edits.js";
import { bbox, bboxesMeet, cleanPieces, inPolygon, polygonArea, splitRings, vertexCount } from "./geometry.js";
import { group, record } from "./history.js";
import { drawn, hint } from "./map.js";
import { multi, select } from "./selection.js";

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
