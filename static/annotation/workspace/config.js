/* The page's configuration, translated messages and fixed numbers, read once; and the values
 * several modules read and set (one object, so that every module sees the same). */

export const C = JSON.parse(document.getElementById("ws-config").textContent);
export const M = C.messages;
export const fmt = (s, args) => s.replace(/%\((\w+)\)s/g, (_, k) => String(args[k]));
const pageCsrf = document.querySelector("input[name=csrfmiddlewaretoken]").value;
// The cookie's token, read at each send: logging in again (another tab) changes it, and the
// queue waiting for that must then be sent with the new one.
export const csrfToken = () => (document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/) || [])[1] || pageCsrf;
export const user = document.querySelector(".topbar .user span")?.textContent || "";
export const API = `/api/blocks/${C.block}/samples/`;
export const PREDICTION_API = slug => `/api/blocks/${C.block}/sources/${slug}/prediction/`;
export const COLORS = {
  paddy: "#29b6f6", irrigated_dry: "#ffeb3b", terraces: "#ff9800",
  fallow: "#bcaaa4", greenhouse: "#e0e0e0", scattered_trees: "#66bb6a",
};
export const uuid = () => crypto.randomUUID();
export const params = new URLSearchParams(window.location.search);
// Tool messages are translated in the template (Tools section), looked up by key.
const T = {};
document.querySelectorAll("#ws-tool-messages [data-key]").forEach(el => { T[el.dataset.key] = el.textContent.trim(); });
export const t = (key, args) => fmt(T[key] || key, args || {});

// Freehand strokes are simplified before saving: a vertex survives only if it is more than this
// many screen pixels off the simplified line (a hand on a mouse wobbles by about that much).
export const FREEHAND_TOLERANCE_PX = 2.5;
// annotation.geometry.MAX_VERTICES: checked here too, so a merge is refused before any write.
export const MAX_VERTICES = 5000;
// annotation.geometry.MIN_AREA_DEG2: slivers (and holes) smaller than this are not kept.
export const MIN_AREA_DEG2 = 1e-10;
// From this many polygons on, draw on one <canvas> instead of one SVG path per polygon: 2,000
// SVG paths make the page slow to open and to pan (see bench/bench_workspace.py).
export const CANVAS_FROM = 300;

// One object, so that every module reads and sets the same values.
export const state = {
  source: C.sources.length ? C.sources[0].slug : null,
  sampleKind: null,
  selected: null,   // the polygon the subtype, edit, move and provenance refer to
  conflict: null,   // {source, version, polygons} while the banner is up
  lastError: null,
  renderer: undefined, // undefined: the map's own SVG renderer, one <path> per polygon
  sessionEnded: false, // the server said "log in again": the queue waits, it is not refused
  resyncAfterFlush: false,
};
export const versions = {};   // source -> {server: last version confirmed, expected: next op's If-Match}
