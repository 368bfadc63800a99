/* Selecting polygons (click, shift-click) and setting their subtype. */
import { M, t } from "./config.js";
import { change } from "./edits.js";
import { group, record } from "./history.js";
import { drawn, style } from "./map.js";
import { state } from "./state.js";
import { drawingNow } from "./tools.js";

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
