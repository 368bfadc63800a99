/* Loading a source's sample, with the changes still in the outbox on top. */
import { API, M, fmt } from "./config.js";
import { addPolygon } from "./edits.js";
import { rebindHandles } from "./history.js";
import { canvasRenderer, chooseRenderer, drawn, findLayer, style } from "./map.js";
import { select } from "./selection.js";
import { state, versions } from "./state.js";
import { setStatus, updateStatus } from "./status.js";
import { idGet, outboxAll } from "./store.js";

// The first sample is asked for before anything else is set up: on a busy block the server's
// answer is most of the time to open the page. The page's head has asked already, before the
// scripts loaded (window.croplayerFirstSample); failing that, ask now.
let firstFetch = window.croplayerFirstSample && window.croplayerFirstSample.source === state.source
  ? window.croplayerFirstSample
  : (state.source ? { source: state.source, res: fetch(`${API}${state.source}/`, { credentials: "same-origin" }) } : null);
window.croplayerFirstSample = null;
if (firstFetch) firstFetch.res.catch(() => {}); // handled where it is awaited (loadSample)

export async function loadSample() {
  let data;
  const early = firstFetch && firstFetch.source === state.source ? firstFetch.res : null;
  firstFetch = null;
  try {
    const res = await (early || fetch(`${API}${state.source}/`, { credentials: "same-origin" }));
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    data = await res.json();
  } catch (err) {
    setStatus("error", fmt(M["error: %(reason)s"], { reason: err.message }));
    return;
  }
  performance.mark("ws-sample-fetched");
  select(null);
  drawn.clearLayers();
  state.renderer = chooseRenderer(data.features.length);
  document.getElementById("ws-map").dataset.renderer = state.renderer === canvasRenderer ? "canvas" : "svg";
  data.features.forEach(f => addPolygon(f, { id: f.id }));
  performance.mark("ws-sample-drawn");
  state.sampleKind = data.kind;
  // Changes still in the outbox (e.g. drawn offline before a reload) are shown on top.
  const queued = (await outboxAll()).filter(o => o.source === state.source);
  for (const op of queued) {
    if (op.kind === "create") {
      addPolygon({ type: "Feature", geometry: op.body.geometry, properties: {
        model_version: op.body.model_version, round_number: op.body.round_number,
      } }, { tmp: op.tmp, subtype: op.body.subtype, id: (await idGet(op.tmp)) || null });
    } else if (op.kind === "negative") drawn.clearLayers();
    else {
      const layer = findLayer(op.target);
      if (!layer) continue;
      if (op.kind === "delete") drawn.removeLayer(layer);
      else {
        if (op.body.subtype) { layer._ws.subtype = op.body.subtype; layer.setStyle(style(op.body.subtype, false)); }
        if (op.body.geometry) {
          layer.setLatLngs(L.GeoJSON.coordsToLatLngs(op.body.geometry.coordinates, 1));
          layer._ws.geometry = op.body.geometry;
        }
      }
    }
  }
  rebindHandles();
  const last = queued.length ? queued[queued.length - 1].expected_version + 1 : 0;
  versions[state.source] = { server: data.version, expected: Math.max(data.version, last) };
  await updateStatus(); // refresh() resolves with the status line (and its version) up to date
}
