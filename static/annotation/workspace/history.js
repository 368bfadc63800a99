/* Undo and redo of what each gesture did, as writes that can be played both ways. */
import { M, t } from "./config.js";
import { applyValues, createPolygon, deletePolygon } from "./edits.js";
import { findLayer, hint, keyOf, live } from "./map.js";
import { select } from "./selection.js";

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
