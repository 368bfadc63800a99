/* The model's prediction: overlay, provenance of new polygons, copying it into the sample. */
import { C, PREDICTION_API, state, t } from "./config.js";
import { createPolygon, created, group, record, select, setToolActive } from "./drawing.js";
import { fitVertices } from "./geometry.js";
import { currentSubtype, drawn, hint, map, predictionRenderer } from "./map.js";
import { reasonOf } from "./sync.js";

export const predictions = {};  // source -> promise of {ok, data | reason}
let predictionShown = false;
let overlay = null;
export const predictionNow = slug => {
  const p = predictions[slug];
  return p && p.settled && p.settled.ok ? p.settled.data : null;
};
function loadPrediction(slug) {
  const missing = (C.predictionMissing || {})[slug];
  if (missing && !predictions[slug]) {
    // The server said when the page was made: nothing to fetch (and no 404 in the console).
    const settled = { ok: false, reason: missing };
    predictions[slug] = { settled, promise: Promise.resolve(settled) };
  }
  if (!predictions[slug]) {
    const entry = {};
    entry.promise = fetch(PREDICTION_API(slug), { credentials: "same-origin" }).then(async res => {
      let data = null;
      try { data = await res.json(); } catch (_) { /* not JSON */ }
      if (res.ok) return { ok: true, data };
      // 404 with a reason is an answer (no model yet, no prediction); others may pass.
      if (res.status !== 404) delete predictions[slug];
      return { ok: false, reason: reasonOf(data, res.status) };
    }).catch(err => { delete predictions[slug]; return { ok: false, reason: err.message }; })
      .then(result => { entry.settled = result; return result; });
    predictions[slug] = entry;
  }
  return predictions[slug].promise;
}
export async function showPredictionInfo() {
  const el = document.getElementById("ws-pred-info");
  const slug = state.source;
  const result = await loadPrediction(slug);
  if (slug !== state.source) return;
  el.dataset.state = result.ok ? "ok" : "none";
  document.getElementById("ws-pred-start").disabled = !result.ok || !result.data.features.length;
  el.textContent = result.ok
    ? t("predInfo", { model: result.data.model_version, round: result.data.round_number ?? "–", n: result.data.features.length })
    : t("predNone", { reason: result.reason });
}
export async function drawOverlay() {
  if (overlay) { map.removeLayer(overlay); overlay = null; }
  if (!predictionShown) return;
  const slug = state.source;
  const result = await loadPrediction(slug);
  if (slug !== state.source || !predictionShown || overlay) return;
  if (!result.ok) { hint(t("predNone", { reason: result.reason })); return; }
  overlay = L.geoJSON(result.data, {
    renderer: predictionRenderer, interactive: false, pmIgnore: true, snapIgnore: true,
    style: { color: "#ff00e5", weight: 2, dashArray: "5 4", fillColor: "#ff00e5", fillOpacity: 0.12 },
  }).addTo(map);
}
export function togglePrediction() {
  predictionShown = !predictionShown;
  setToolActive("prediction", predictionShown);
  document.getElementById("ws-map").dataset.prediction = predictionShown ? "shown" : "";
  drawOverlay();
}
export async function startFromPrediction() {
  const slug = state.source;
  const result = await loadPrediction(slug);
  if (slug !== state.source) return;
  if (!result.ok) { hint(t("predNone", { reason: result.reason })); return; }
  const features = result.data.features;
  if (!features.length) { hint(t("predEmpty")); return; }
  const existing = drawn.getLayers().length;
  if (existing && !window.confirm(t("predConfirm", { n: features.length, m: existing }))) return;
  const prov = { model_version: result.data.model_version, round_number: result.data.round_number ?? null };
  const subtype = currentSubtype();
  const made = features.map(f => createPolygon(
    { type: "Polygon", coordinates: fitVertices(f.geometry.coordinates) }, subtype, prov));
  record(group(made.map(created)));
  select(null);
  if (!predictionShown) togglePrediction();
  hint(t("predCopied", { n: made.length }));
}
