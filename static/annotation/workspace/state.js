/* What the page holds about its block: the mutable values several modules read and set. */
import { C } from "./config.js";

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
