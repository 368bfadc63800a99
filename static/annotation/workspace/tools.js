/* The editing tools: buttons, modes, move. */
import { t } from "./config.js";
import { deleteSelected, markNegative } from "./edits.js";
import { freehand, freehandStart, freehandStop } from "./freehand.js";
import { redo, undo } from "./history.js";
import { drawn, hint, map } from "./map.js";
import { startFromPrediction, togglePrediction } from "./prediction.js";
import { multi, select } from "./selection.js";
import { mergeSelected } from "./splitmerge.js";
import { state } from "./state.js";

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
