/* The annotation workspace: draw and label a block's cropland polygons; every change goes
 * through an IndexedDB outbox to the REST API (If-Match + op_id), so nothing is lost offline.
 * The panel's labels (panel.js) queue in the same outbox, and a service worker (/annotate/sw.js)
 * lets the page reload without network.
 *
 * Editing tools: polygon, rectangle, freehand (simplified with Douglas-Peucker in screen pixels),
 * vertex editing, move, cut hole, split along a drawn line, merge (union) of shift-clicked
 * polygons, snapping to neighbours (geoman), undo and redo. Split and merge run in the browser
 * (polygon-clipping) and are sent as ordinary writes (split = creates + update, merge = update +
 * deletes), so the outbox, the op ids and the server's geometry rules hold for them too. */
(function () {
  "use strict";
  const C = JSON.parse(document.getElementById("ws-config").textContent);
  const M = C.messages;
  const fmt = (s, args) => s.replace(/%\((\w+)\)s/g, (_, k) => String(args[k]));
  const pageCsrf = document.querySelector("input[name=csrfmiddlewaretoken]").value;
  // The cookie's token, read at each send: logging in again (another tab) changes it, and the
  // queue waiting for that must then be sent with the new one.
  const csrfToken = () => (document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/) || [])[1] || pageCsrf;
  const user = document.querySelector(".topbar .user span")?.textContent || "";
  const API = `/api/blocks/${C.block}/samples/`;
  const PREDICTION_API = slug => `/api/blocks/${C.block}/sources/${slug}/prediction/`;
  const COLORS = {
    paddy: "#29b6f6", irrigated_dry: "#ffeb3b", terraces: "#ff9800",
    fallow: "#bcaaa4", greenhouse: "#e0e0e0", scattered_trees: "#66bb6a",
  };
  const uuid = () => crypto.randomUUID();
  const params = new URLSearchParams(window.location.search);
  // Tool messages are translated in the template (Tools section), looked up by key.
  const T = {};
  document.querySelectorAll("#ws-tool-messages [data-key]").forEach(el => { T[el.dataset.key] = el.textContent.trim(); });
  const t = (key, args) => fmt(T[key] || key, args || {});

  // Freehand strokes are simplified before saving: a vertex survives only if it is more than this
  // many screen pixels off the simplified line (a hand on a mouse wobbles by about that much).
  const FREEHAND_TOLERANCE_PX = 2.5;
  // annotation.geometry.MAX_VERTICES: checked here too, so a merge is refused before any write.
  const MAX_VERTICES = 5000;
  // annotation.geometry.MIN_AREA_DEG2: slivers (and holes) smaller than this are not kept.
  const MIN_AREA_DEG2 = 1e-10;
  // From this many polygons on, draw on one <canvas> instead of one SVG path per polygon: 2,000
  // SVG paths make the page slow to open and to pan (see bench/bench_workspace.py).
  const CANVAS_FROM = 300;

  // ---- state -----------------------------------------------------------------------------------
  let source = C.sources.length ? C.sources[0].slug : null;
  // The first sample is asked for before anything else is set up (map, IndexedDB): on a busy
  // block the server's answer is most of the time to open the page. The page's head has asked
  // already (window.croplayerFirstSample); failing that, ask now.
  let firstFetch = window.croplayerFirstSample && window.croplayerFirstSample.source === source
    ? window.croplayerFirstSample
    : (source ? { source, res: fetch(`${API}${source}/`, { credentials: "same-origin" }) } : null);
  window.croplayerFirstSample = null;
  if (firstFetch) firstFetch.res.catch(() => {}); // handled where it is awaited (loadSample)
  const versions = {};   // source -> {server: last version confirmed, expected: next op's If-Match}
  let sampleKind = null;
  let selected = null;   // the polygon the subtype, edit, move and provenance refer to
  const multi = new Set(); // every selected polygon (shift-click adds): merge, split, delete
  let conflict = null;   // {source, version, polygons} while the banner is up
  let lastError = null;
  const undoStack = [];
  const redoStack = [];
  const pendingLocal = []; // ops of this page not yet confirmed (for the status line)
  const predictions = {};  // source -> promise of {ok, data | reason}
  let predictionShown = false;

  // ---- IndexedDB outbox --------------------------------------------------------------------------
  const dbReady = new Promise((resolve, reject) => {
    const r = indexedDB.open("croplayer-workspace", 1);
    r.onupgradeneeded = () => {
      r.result.createObjectStore("outbox", { keyPath: "seq", autoIncrement: true });
      r.result.createObjectStore("ids"); // client key of a drawn polygon -> server id
    };
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
  async function idb(store, mode, fn) {
    const db = await dbReady;
    return new Promise((resolve, reject) => {
      const tx = db.transaction(store, mode);
      const req = fn(tx.objectStore(store));
      tx.oncomplete = () => resolve(req ? req.result : undefined);
      tx.onerror = () => reject(tx.error);
    });
  }
  const outboxAll = async () => (await idb("outbox", "readonly", st => st.getAll()))
    .filter(op => op.block === C.block && op.user === user);
  const outboxPut = op => idb("outbox", "readwrite", st => st.put(op));
  const outboxDelete = seq => idb("outbox", "readwrite", st => st.delete(seq));
  const idGet = key => idb("ids", "readonly", st => st.get(key));
  const idPut = (key, id) => idb("ids", "readwrite", st => st.put(id, key));

  // ---- map -----------------------------------------------------------------------------------------
  const [w, s, e, n] = C.bounds;
  const map = L.map("ws-map", { maxZoom: C.zoom + 3, zoomSnap: 0.25, keyboard: false, doubleClickZoom: false });
  window.wsMap = map; // for tests and the console
  // A small public hook for the other scripts of the page (the labelling panel, panel.js).
  const sourceListeners = [];
  const labelListeners = []; // fn(op, {ok, data} | {ok: false, reason}) once a label op is settled
  window.croplayerWorkspace = {
    blockId: C.block,
    map,
    source: () => source,
    onSourceChange(fn) { sourceListeners.push(fn); },
    refresh: () => loadSample(),
    // Labels (panel.js) share the outbox, so they and the polygon edits replay in order, once.
    enqueueLabel: (...args) => enqueueLabel(...args),
    queuedLabels: async () => (await outboxAll()).filter(op => op.kind === "label"),
    onLabelResult(fn) { labelListeners.push(fn); },
    flush: () => flush(),
  };
  map.fitBounds([[s, w], [n, e]]);
  L.rectangle([[s, w], [n, e]], {
    color: "#ff1744", weight: 2, dashArray: "6 4", fill: false, interactive: false, pmIgnore: true,
    snapIgnore: true,
  }).addTo(map);
  const tiles = {};
  C.sources.forEach(src => {
    tiles[src.slug] = L.tileLayer(`/api/blocks/${C.block}/imagery/${src.slug}/{z}/{x}/{y}.png`, {
      maxZoom: C.zoom + 3, maxNativeZoom: C.zoom + 2, attribution: src.name, pmIgnore: true,
    });
  });
  // The polygons' canvas sits in a pane of its own above the overlay pane: a <canvas> takes every
  // click in its box, so an SVG root (geoman's guide lines) above it would swallow the clicks.
  // The prediction overlay lies below, in a pane that takes no clicks at all.
  const pane = (name, z, clicks) => {
    const el = map.createPane(name);
    el.style.zIndex = String(z);
    if (!clicks) el.style.pointerEvents = "none";
    return name;
  };
  const canvasRenderer = L.canvas({ padding: 0.3, tolerance: 4, pane: pane("ws-polygons", 410, true) });
  const predictionRenderer = L.canvas({ padding: 0.3, pane: pane("ws-prediction", 390, false) });
  let renderer; // undefined: the map's own SVG renderer, one <path> per polygon
  const chooseRenderer = count => {
    const asked = params.get("renderer"); // ?renderer=svg|canvas: the benchmark's baseline
    if (asked === "svg") return undefined;
    if (asked === "canvas") return canvasRenderer;
    return count >= CANVAS_FROM ? canvasRenderer : undefined;
  };
  const drawn = L.featureGroup().addTo(map);
  map.pm.setGlobalOptions({
    // Self-intersections are allowed to geoman, which would otherwise drop the clicked corner
    // without a word (a bow-tie became a triangle): the workspace checks every outline itself,
    // marks the crossing and says what to do (checkOutline).
    snappable: true, snapDistance: 12, allowSelfIntersection: true, layerGroup: drawn,
    templineStyle: { color: "#00e5ff" }, hintlineStyle: { color: "#00e5ff", dashArray: "5 5" },
  });
  map.pm.setLang(C.zh ? "zh" : "en");

  const currentSubtype = () => document.querySelector("input[name=subtype]:checked").value;
  const style = (subtype, isSelected) => ({
    color: isSelected ? "#ffffff" : COLORS[subtype] || "#ffeb3b",
    fillColor: COLORS[subtype] || "#ffeb3b", fillOpacity: 0.25, weight: isSelected ? 3 : 2,
    dashArray: isSelected ? "4 3" : null,
  });
  const round8 = x => Math.round(x * 1e8) / 1e8;
  const geomOf = layer => layer.toGeoJSON(8).geometry;
  const keyOf = layer => (layer._ws.id ? `id:${layer._ws.id}` : layer._ws.tmp);
  const hint = text => { document.getElementById("ws-hint").textContent = text || ""; };

  function addPolygon(feature, ws) {
    // One L.Polygon straight from the coordinates (not one L.GeoJSON group per feature): this runs
    // 2,000 times when a busy block opens.
    const latlngs = L.GeoJSON.coordsToLatLngs(feature.geometry.coordinates, 1);
    const props = feature.properties || {};
    const subtype = (ws && ws.subtype) || props.subtype || C.defaultSubtype;
    const layer = L.polygon(latlngs, { renderer, ...style(subtype, false) });
    layer._ws = { id: null, tmp: null, props, ...ws, subtype, geometry: feature.geometry };
    layer._ws.h = layer._ws.h || { layer };
    layer._ws.h.layer = layer;
    layer.on("click", onPolygonClick);
    layer.on("pm:edit", () => onEdited(layer));
    drawn.addLayer(layer);
    return layer;
  }
  function onPolygonClick(ev) {
    if (drawingNow()) return; // the click places a vertex of what is being drawn
    L.DomEvent.stopPropagation(ev);
    select(ev.target, { add: ev.originalEvent.shiftKey });
  }
  function findLayer(key) {
    return drawn.getLayers().find(l => l._ws && (keyOf(l) === key || l._ws.tmp === key
      || `id:${l._ws.id}` === key));
  }
  const live = h => (h && h.layer && drawn.hasLayer(h.layer) ? h.layer : null);

  // ---- selection and subtype -------------------------------------------------------------------
  function unselectLayer(layer) {
    if (layer.pm.enabled()) layer.pm.disable();
    if (layer.pm.layerDragEnabled && layer.pm.layerDragEnabled()) layer.pm.disableLayerDrag();
    if (drawn.hasLayer(layer)) layer.setStyle(style(layer._ws.subtype, false));
  }
  function select(layer, { add = false } = {}) {
    if (add && layer) {
      // Shift-click: add to (or take out of) the selection, for merging.
      if (selected && !multi.has(selected)) multi.add(selected);
      if (multi.has(layer)) {
        multi.delete(layer);
        unselectLayer(layer);
        if (selected === layer) selected = multi.size ? [...multi][multi.size - 1] : null;
      } else {
        if (selected && selected.pm.enabled()) selected.pm.disable();
        multi.add(layer);
        selected = layer;
      }
    } else {
      [...multi].forEach(l => { if (l !== layer) unselectLayer(l); });
      if (selected && selected !== layer) unselectLayer(selected);
      multi.clear();
      selected = layer;
      if (layer) multi.add(layer);
    }
    multi.forEach(l => l.setStyle(style(l._ws.subtype, true)));
    if (selected) {
      const radio = document.querySelector(`input[name=subtype][value=${selected._ws.subtype}]`);
      if (radio) radio.checked = true;
    }
    showSelected();
  }
  function showSelected() {
    const el = document.getElementById("ws-selected");
    el.dataset.count = String(multi.size);
    if (multi.size > 1) { el.textContent = t("selected", { n: multi.size }); return; }
    if (!selected) { el.textContent = ""; return; }
    const p = selected._ws.props || {};
    const rows = [
      selected._ws.id ? `#${selected._ws.id}` : M["not saved yet"],
      p.created_by ? `${p.created_by} · ${(p.created_at || "").slice(0, 16).replace("T", " ")}` : "",
      p.updated_by ? `✎ ${p.updated_by} · ${(p.updated_at || "").slice(0, 16).replace("T", " ")}` : "",
      p.source || source,
      p.model_version ? `${p.model_version}${p.round_number != null ? " / r" + p.round_number : ""}` : "",
    ].filter(Boolean);
    el.textContent = rows.join(" · ");
  }
  document.querySelectorAll("input[name=subtype]").forEach(radio => {
    radio.addEventListener("change", () => setSubtype(radio.value));
  });
  function setSubtype(value) {
    const radio = document.querySelector(`input[name=subtype][value=${value}]`);
    if (radio) radio.checked = true;
    const layers = [...multi].filter(l => l._ws.subtype !== value);
    if (!layers.length) return;
    record(group(layers.map(l => change(l._ws.h, { subtype: l._ws.subtype }, { subtype: value }))));
  }

  // ---- undo and redo ---------------------------------------------------------------------------
  // An action is what one user gesture did, as writes that can be played backwards and forwards:
  //   {kind: "create"|"delete", h, geometry, subtype, prov}, {kind: "update", h, before, after},
  //   {kind: "group", parts}.
  // ``h`` is a handle {layer}: a polygon deleted and brought back by undo is a new layer (and a new
  // polygon on the server); the handle follows it, so older actions still reach it.
  function record(action) {
    if (!action) return;
    undoStack.push(action);
    redoStack.length = 0;
  }
  const group = parts => (parts.length === 1 ? parts[0] : { kind: "group", parts });
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
  function undo() {
    const a = undoStack.pop();
    if (!a) { hint(M["nothing to undo"]); return; }
    select(null);
    play(a, true);
    redoStack.push(a);
  }
  function redo() {
    const a = redoStack.pop();
    if (!a) { hint(t("nothingRedo")); return; }
    select(null);
    play(a, false);
    undoStack.push(a);
  }
  function rebindHandles() {
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

  // ---- writes: create, change, delete ----------------------------------------------------------
  function provenance() {
    // Every polygon records the model whose prediction was current for its source when it was
    // drawn (the verdicts do the same): its errors are what the next round learns from.
    const known = predictionNow(source) || ((C.panel && C.panel.predictions) || {})[source];
    return known && known.model_version
      ? { model_version: known.model_version, round_number: known.round_number ?? null } : {};
  }
  function createPolygon(geometry, subtype, prov, h = null, { group: opGroup = null } = {}) {
    const tmp = `tmp:${uuid()}`;
    const layer = addPolygon({ type: "Feature", geometry, properties: { ...(prov || {}) } },
      { tmp, subtype, h: h || undefined });
    enqueue({ kind: "create", method: "POST", tmp, group: opGroup,
      body: { geometry: layer._ws.geometry, subtype, ...(prov || {}) } });
    return layer;
  }
  const created = layer => ({
    kind: "create", h: layer._ws.h, geometry: layer._ws.geometry, subtype: layer._ws.subtype,
    prov: provOf(layer),
  });
  const provOf = layer => {
    const p = layer._ws.props || {};
    return p.model_version ? { model_version: p.model_version, round_number: p.round_number ?? null } : {};
  };
  function applyValues(layer, values, { group: opGroup = null } = {}) {
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
  function change(h, before, after, opts) {
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
  function deletePolygon(layer, { group: opGroup = null } = {}) {
    unselectLayer(layer);
    drawn.removeLayer(layer);
    multi.delete(layer);
    if (selected === layer) selected = null;
    showSelected();
    enqueue({ kind: "delete", method: "DELETE", target: keyOf(layer), group: opGroup });
    return { kind: "delete", h: layer._ws.h, geometry: layer._ws.geometry, subtype: layer._ws.subtype, prov: provOf(layer) };
  }
  function deleteSelected() {
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

  // ---- geometry helpers (lon/lat arrays, as in GeoJSON) ----------------------------------------
  const ringArea = ring => {
    let a = 0;
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) a += (ring[j][0] + ring[i][0]) * (ring[j][1] - ring[i][1]);
    return Math.abs(a / 2);
  };
  const polygonArea = rings => ringArea(rings[0]) - rings.slice(1).reduce((sum, r) => sum + ringArea(r), 0);
  const vertexCount = rings => rings.reduce((sum, r) => sum + r.length - 1, 0);
  function inRing(pt, ring) {
    let inside = false;
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      const [xi, yi] = ring[i], [xj, yj] = ring[j];
      if ((yi > pt[1]) !== (yj > pt[1]) && pt[0] < (xj - xi) * (pt[1] - yi) / (yj - yi) + xi) inside = !inside;
    }
    return inside;
  }
  const inPolygon = (pt, rings) => inRing(pt, rings[0]) && !rings.slice(1).some(r => inRing(pt, r));
  const bbox = points => points.reduce(([x0, y0, x1, y1], [x, y]) =>
    [Math.min(x0, x), Math.min(y0, y), Math.max(x1, x), Math.max(y1, y)], [Infinity, Infinity, -Infinity, -Infinity]);
  const bboxesMeet = (a, b) => a[0] <= b[2] && b[0] <= a[2] && a[1] <= b[3] && b[1] <= a[3];
  function simplify(points, tolerance) {
    // Douglas-Peucker, iterative: keeps the ends and every vertex farther than ``tolerance`` from
    // the simplified line.
    if (points.length < 3) return points.slice();
    const keep = new Uint8Array(points.length);
    keep[0] = keep[points.length - 1] = 1;
    const stack = [[0, points.length - 1]];
    const tol2 = tolerance * tolerance;
    while (stack.length) {
      const [first, last] = stack.pop();
      const [ax, ay] = points[first], [bx, by] = points[last];
      const dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
      let far = -1, farD = tol2;
      for (let i = first + 1; i < last; i++) {
        const [px, py] = points[i];
        let u = len2 ? ((px - ax) * dx + (py - ay) * dy) / len2 : 0;
        u = Math.max(0, Math.min(1, u));
        const qx = ax + u * dx - px, qy = ay + u * dy - py, d = qx * qx + qy * qy;
        if (d > farD) { far = i; farD = d; }
      }
      if (far > 0) { keep[far] = 1; stack.push([first, far], [far, last]); }
    }
    return points.filter((_, i) => keep[i]);
  }
  const closed = ring => {
    const r = ring.map(([x, y]) => [round8(x), round8(y)]);
    const [a, b] = [r[0], r[r.length - 1]];
    if (a[0] !== b[0] || a[1] !== b[1]) r.push([a[0], a[1]]);
    return r;
  };
  function cleanPieces(multipolygon, minArea) {
    // polygon-clipping output -> GeoJSON Polygon coordinates, without slivers and tiny holes.
    return multipolygon
      .map(rings => [rings[0], ...rings.slice(1).filter(r => ringArea(r) >= minArea)].map(closed))
      .filter(rings => polygonArea(rings) >= minArea);
  }
  function sideRegion(line, box) {
    // The part of ``box`` on one side of ``line``: the line, its ends carried straight on to the
    // box's edge, then the box's edge back (counter-clockwise) to where it started.
    const [x0, y0, x1, y1] = box, W = x1 - x0, H = y1 - y0;
    const exit = ([px, py], [qx, qy]) => {
      const dx = qx - px, dy = qy - py;
      let tMin = Infinity;
      if (dx > 0) tMin = Math.min(tMin, (x1 - qx) / dx); else if (dx < 0) tMin = Math.min(tMin, (x0 - qx) / dx);
      if (dy > 0) tMin = Math.min(tMin, (y1 - qy) / dy); else if (dy < 0) tMin = Math.min(tMin, (y0 - qy) / dy);
      return [qx + tMin * dx, qy + tMin * dy];
    };
    const along = ([x, y]) => {
      if (Math.abs(y - y0) < 1e-12) return x - x0;
      if (Math.abs(x - x1) < 1e-12) return W + (y - y0);
      if (Math.abs(y - y1) < 1e-12) return W + H + (x1 - x);
      return 2 * W + H + (y1 - y);
    };
    const start = exit(line[1], line[0]);
    const end = exit(line[line.length - 2], line[line.length - 1]);
    const corners = [[0, [x0, y0]], [W, [x1, y0]], [W + H, [x1, y1]], [2 * W + H, [x0, y1]]];
    const perimeter = 2 * (W + H);
    const a = along(end);
    let b = along(start);
    if (b <= a) b += perimeter;
    const walk = [];
    for (const lap of [0, perimeter]) {
      for (const [pos, pt] of corners) if (pos + lap > a && pos + lap < b) walk.push(pt);
    }
    return [start, ...line, end, ...walk, start];
  }
  function splitRings(rings, line) {
    const all = [...rings[0], ...line];
    const [bx0, by0, bx1, by1] = bbox(all);
    const pad = Math.max(bx1 - bx0, by1 - by0) + 1e-6;
    const region = sideRegion(line, [bx0 - pad, by0 - pad, bx1 + pad, by1 + pad]);
    const pieces = [
      ...cleanPieces(polygonClipping.intersection([rings], [region]), MIN_AREA_DEG2),
      ...cleanPieces(polygonClipping.difference([rings], [region]), MIN_AREA_DEG2),
    ];
    const total = pieces.reduce((sum, p) => sum + polygonArea(p), 0);
    const area = polygonArea(rings);
    // A line that crosses itself makes a region that is not one side: refuse rather than guess.
    if (Math.abs(total - area) > 1e-6 * area + 1e-14) return null;
    return pieces;
  }

  // ---- outlines that cross themselves -----------------------------------------------------------
  // Where the segments of a polygon's rings cross or touch (other than at the corner two
  // neighbouring segments share): the points the server's rules would refuse as a
  // self-intersection, found here so the interpreter sees where, in their language, at once.
  function segmentMeet(p, p2, q, q2) {
    const rx = p2[0] - p[0], ry = p2[1] - p[1], sx = q2[0] - q[0], sy = q2[1] - q[1];
    const d = rx * sy - ry * sx;
    const qpx = q[0] - p[0], qpy = q[1] - p[1];
    const scale = Math.max(Math.abs(rx), Math.abs(ry), Math.abs(sx), Math.abs(sy)) || 1;
    if (Math.abs(d) < 1e-12 * scale * scale) {
      // Parallel: they meet only if they lie on one line and overlap.
      if (Math.abs(qpx * ry - qpy * rx) > 1e-12 * scale * scale) return null;
      const len2 = rx * rx + ry * ry || 1;
      const t0 = (qpx * rx + qpy * ry) / len2, t1 = ((q2[0] - p[0]) * rx + (q2[1] - p[1]) * ry) / len2;
      const lo = Math.max(0, Math.min(t0, t1)), hi = Math.min(1, Math.max(t0, t1));
      if (lo > hi) return null;
      const t = (lo + hi) / 2;
      return [p[0] + t * rx, p[1] + t * ry];
    }
    const t = (qpx * sy - qpy * sx) / d, u = (qpx * ry - qpy * rx) / d;
    if (t < 0 || t > 1 || u < 0 || u > 1) return null;
    return [p[0] + t * rx, p[1] + t * ry];
  }
  function outlineCrossings(rings) {
    const segs = [];
    rings.forEach((ring, r) => {
      const n = ring.length - 1; // closed: the last position repeats the first
      for (let i = 0; i < n; i++) {
        const a = ring[i], b = ring[i + 1];
        if (a[0] === b[0] && a[1] === b[1]) continue; // a doubled click: no segment
        segs.push({ r, i, n, a, b, box: [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[0], b[0]), Math.max(a[1], b[1])] });
      }
    });
    const found = [];
    const seen = new Set();
    for (let x = 0; x < segs.length; x++) {
      const A = segs[x];
      for (let y = x + 1; y < segs.length; y++) {
        const B = segs[y];
        if (!bboxesMeet(A.box, B.box)) continue;
        const neighbours = A.r === B.r && (B.i === A.i + 1 || (A.i === 0 && B.i === A.n - 1));
        const pt = segmentMeet(A.a, A.b, B.a, B.b);
        if (!pt) continue;
        if (neighbours) {
          // Neighbours share a corner; they are at fault only if they fold back over each other.
          const shared = B.i === A.i + 1 ? A.b : A.a;
          if (Math.hypot(pt[0] - shared[0], pt[1] - shared[1]) < 1e-12) continue;
        }
        const key = `${pt[0].toFixed(9)},${pt[1].toFixed(9)}`;
        if (!seen.has(key)) { seen.add(key); found.push(pt); }
      }
    }
    return found;
  }
  function repairPieces(rings) {
    // The drawn outline cut at its crossings into valid polygons (what freehand strokes get).
    return cleanPieces(polygonClipping.union(rings.map(closed)), MIN_AREA_DEG2)
      .filter(p => vertexCount(p) <= MAX_VERTICES);
  }
  const problemEl = document.getElementById("ws-problem");
  const problemLayer = L.layerGroup([], { pmIgnore: true }).addTo(map);
  let problemRepair = null;
  function clearProblem() {
    problemLayer.clearLayers();
    problemEl.hidden = true;
    problemRepair = null;
    delete document.getElementById("ws-map").dataset.crossings;
  }
  function markCrossings(points) {
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
  function drawnCrossing(geometry, crossings) {
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
  function editedCrossing(layer, geometry, crossings) {
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

  // ---- split and merge ---------------------------------------------------------------------------
  function splitAlong(line) {
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
  function mergeSelected() {
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

  // ---- freehand ------------------------------------------------------------------------------------
  const freehand = { on: false, points: null, line: null, endedAt: 0 };
  function freehandStart() {
    stopTools();
    freehand.on = true;
    map.dragging.disable();
    map.getContainer().classList.add("ws-freehand");
    setToolActive("freehand", true);
    hint(t("freehandHow"));
  }
  function freehandStop() {
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

  // ---- move ------------------------------------------------------------------------------------------
  function moveToggle() {
    if (!selected) { hint(t("selectFirst")); return; }
    if (selected.pm.layerDragEnabled()) { selected.pm.disableLayerDrag(); setToolActive("move", false); hint(""); return; }
    if (selected.pm.enabled()) selected.pm.disable();
    selected.pm.enableLayerDrag();
    setToolActive("move", true);
    hint(t("moveHow"));
  }

  // ---- prediction overlay ------------------------------------------------------------------------
  let overlay = null;
  const predictionNow = slug => {
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
  async function showPredictionInfo() {
    const el = document.getElementById("ws-pred-info");
    const slug = source;
    const result = await loadPrediction(slug);
    if (slug !== source) return;
    el.dataset.state = result.ok ? "ok" : "none";
    document.getElementById("ws-pred-start").disabled = !result.ok || !result.data.features.length;
    el.textContent = result.ok
      ? t("predInfo", { model: result.data.model_version, round: result.data.round_number ?? "–", n: result.data.features.length })
      : t("predNone", { reason: result.reason });
  }
  async function drawOverlay() {
    if (overlay) { map.removeLayer(overlay); overlay = null; }
    if (!predictionShown) return;
    const slug = source;
    const result = await loadPrediction(slug);
    if (slug !== source || !predictionShown || overlay) return;
    if (!result.ok) { hint(t("predNone", { reason: result.reason })); return; }
    overlay = L.geoJSON(result.data, {
      renderer: predictionRenderer, interactive: false, pmIgnore: true, snapIgnore: true,
      style: { color: "#ff00e5", weight: 2, dashArray: "5 4", fillColor: "#ff00e5", fillOpacity: 0.12 },
    }).addTo(map);
  }
  function togglePrediction() {
    predictionShown = !predictionShown;
    setToolActive("prediction", predictionShown);
    document.getElementById("ws-map").dataset.prediction = predictionShown ? "shown" : "";
    drawOverlay();
  }
  async function startFromPrediction() {
    const slug = source;
    const result = await loadPrediction(slug);
    if (slug !== source) return;
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
  function fitVertices(rings) {
    // A mask traced pixel by pixel can have more corners than a polygon may: thin the stair steps
    // (by up to a few metres) until it fits, rather than have the server refuse it.
    let tol = 2e-6;
    let out = rings;
    while (vertexCount(out) > MAX_VERTICES && tol < 1e-3) {
      out = rings.map(r => closed(simplify(r, tol))).filter(r => r.length >= 4);
      tol *= 2;
    }
    return out;
  }

  function markNegative() {
    if (!window.confirm(M["Mark this block negative on this source? Its polygons are deleted."])) return;
    select(null);
    drawn.clearLayers();
    undoStack.length = 0;
    redoStack.length = 0;
    enqueue({ kind: "negative", method: "POST" });
  }

  // ---- the outbox: enqueue and flush in order ---------------------------------------------------
  async function enqueue({ kind, method, target = null, tmp = null, body = null, group: opGroup = null }) {
    performance.mark("ws-edit");
    const v = versions[source];
    const op = {
      op_id: uuid(), kind, method, block: C.block, source, user, target, tmp, body,
      group: opGroup, expected_version: v.expected, created: Date.now(),
    };
    v.expected += 1;
    pendingLocal.push(op.op_id);
    await outboxPut(op);
    updateStatus();
    flush();
  }
  async function enqueueLabel({ url, body, opId = uuid() }) {
    // A label is a last-writer-wins value, not part of a sample's versions: it takes no If-Match
    // (source null keeps it out of every per-source version count), only its place in the queue.
    performance.mark("ws-edit");
    const op = {
      op_id: opId, kind: "label", method: "PUT", block: C.block, source: null, user, url, body,
      created: Date.now(),
    };
    pendingLocal.push(op.op_id);
    await outboxPut(op);
    updateStatus();
    flush();
    return op;
  }
  const labelSettled = (op, result) => labelListeners.forEach(fn => {
    try { fn(op, result); } catch (err) { console.error(err); }
  });
  async function urlFor(op) {
    if (op.kind === "label") return op.url;
    const base = `${API}${op.source}/`;
    if (op.kind === "create") return `${base}polygons/`;
    if (op.kind === "negative") return `${base}negative/`;
    const id = op.target.startsWith("id:") ? Number(op.target.slice(3)) : await idGet(op.target);
    if (!id) return null;
    const url = `${base}polygons/${id}/`;
    return op.kind === "delete" ? `${url}?op_id=${op.op_id}` : url;
  }

  let retryTimer = null;
  let retryDelay = 2000;
  function retryLater() {
    // Online but unreachable (server restarting, flaky link): try again, backing off to a minute.
    if (retryTimer) return;
    retryTimer = setTimeout(() => { retryTimer = null; flush(); }, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 60000);
  }
  let flushing = null;
  let flushAgain = false;
  let sessionEnded = false; // the server said "log in again": the queue waits, it is not refused
  let resyncAfterFlush = false;
  function flush() {
    if (flushing) { flushAgain = true; return flushing; }
    flushing = (async () => {
      do { flushAgain = false; await flushOnce(); } while (flushAgain && !conflict);
    })().finally(() => { flushing = null; updateStatus(); });
    return flushing;
  }
  async function flushOnce() {
    for (;;) {
      if (conflict) return;
      const ops = await outboxAll();
      if (!ops.length) {
        if (resyncAfterFlush) { resyncAfterFlush = false; await loadSample(); }
        return;
      }
      const op = ops[0];
      const url = await urlFor(op);
      if (!url) { await dropOp(op, ops, "the polygon this change belongs to was never saved"); continue; }
      let res;
      try {
        updateStatus();
        const body = op.kind === "delete" ? undefined
          : JSON.stringify({ op_id: op.op_id, ...(op.body || {}) });
        performance.mark("ws-sending");
        res = await fetch(url, {
          method: op.method, credentials: "same-origin", body,
          headers: {
            "Content-Type": "application/json", "X-CSRFToken": csrfToken(),
            // Who made it: sent under someone else's session, the server keeps it out (409).
            "X-Croplayer-User": encodeURIComponent(op.user || user),
            ...(op.kind === "label" ? {} : { "If-Match": `"${op.expected_version}"` }),
          },
        });
      } catch (err) {
        // Network down (or the answer was lost): the op stays queued; its op_id makes a resend safe.
        resyncAfterFlush = true;
        setStatus("offline", fmt(M["offline: %(n)s change(s) waiting"], { n: ops.length }));
        if (navigator.onLine) retryLater();
        return;
      }
      let data = null;
      try { data = await res.json(); } catch (_) { /* empty or not JSON */ }
      performance.mark("ws-answered");
      if (res.ok) {
        await outboxDelete(op.seq);
        settle(op);
        lastError = null;
        sessionEnded = false;
        delete document.getElementById("ws").dataset.sessionEnded;
        retryDelay = 2000;
        swSaved(op, data, url);
        onSaved(op, data);
      } else if (res.status === 412) {
        showConflict(op, data);
        return;
      } else if (res.status >= 500 || res.status === 429) {
        setStatus("error", fmt(M["error: %(reason)s"], { reason: `HTTP ${res.status}` }));
        resyncAfterFlush = true;
        retryLater(); // passing trouble (labels used to retry on their own): the queue waits
        return;
      } else if (data && (data.code === "not_authenticated" || data.code === "csrf_failed" || data.code === "other_user")) {
        // The session ended (logged out, expired while offline), or someone else logged in in
        // this browser: not a refusal of the work. The queue is kept, and sent once its author
        // is logged in again.
        sessionEnded = data.code === "other_user" ? (op.user || user) : true;
        document.getElementById("ws").dataset.sessionEnded = "1";
        retryLater();
        return;
      } else {
        const at = data && Array.isArray(data.location) ? data.location.map(Number) : null;
        if (at && at.length === 2 && at.every(Number.isFinite) && op.source === source) markCrossings([at]);
        // An edit the server refused must not stay on screen as if it were stored.
        if (op.kind === "update") resyncAfterFlush = true;
        await dropOp(op, ops, reasonOf(data, res.status));
      }
    }
  }
  function reasonOf(data, status) {
    if (!data) return `HTTP ${status}`;
    if (typeof data === "string") return data;
    if (data.detail) return String(data.detail);
    // A geometry refusal is the reason itself (already in the reader's language); its location
    // is marked on the map, not printed.
    if (Array.isArray(data.geometry)) return data.geometry.join(" ");
    return Object.entries(data).filter(([k]) => k !== "location")
      .map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(" ") : v}`).join("; ");
  }
  function settle(op) {
    const i = pendingLocal.indexOf(op.op_id);
    if (i >= 0) pendingLocal.splice(i, 1);
  }
  async function dropOp(op, ops, reason) {
    if (op.kind === "label") {
      // Refused for good (e.g. the prediction changed): the panel shows why and what is stored.
      await outboxDelete(op.seq);
      settle(op);
      labelSettled(op, { ok: false, reason });
      return;
    }
    // The server refused it for good. The rest of its group (a split or a merge) goes with it, so
    // a half-done split or merge never deletes or shrinks a field; later ops of the same source
    // expected each dropped op to bump the version.
    const doomed = new Set([op, ...ops.slice(1).filter(o => op.group && o.group === op.group)]);
    let dropped = 0;
    for (const o of ops) {
      if (doomed.has(o)) {
        await outboxDelete(o.seq);
        settle(o);
        dropped += 1;
        if (o.kind === "create") {
          const layer = findLayer(o.tmp);
          if (layer) { unselectLayer(layer); drawn.removeLayer(layer); multi.delete(layer); if (selected === layer) select(null); }
        }
      } else if (o.source === op.source && dropped) {
        o.expected_version -= dropped;
        await outboxPut(o);
      }
    }
    if (versions[op.source]) versions[op.source].expected -= dropped;
    if (doomed.size > 1) resyncAfterFlush = true; // show what the server kept
    lastError = fmt(M["error: %(reason)s"], { reason });
    setStatus("error", lastError);
  }
  function onSaved(op, data) {
    if (op.kind === "label") { labelSettled(op, { ok: true, data }); updateStatus(); return; }
    const v = versions[op.source];
    if (v) {
      v.server = data.version;
      if (v.expected < data.version) v.expected = data.version;
    }
    if (op.source === source) sampleKind = data.kind;
    if (op.kind === "create" && data.polygon) {
      idPut(op.tmp, data.polygon.id);
      const layer = findLayer(op.tmp);
      if (layer && op.source === source) {
        layer._ws.id = data.polygon.id;
        refreshFromServer(layer, data.polygon);
      }
    } else if (op.kind === "update" && data.polygon && op.source === source) {
      const layer = findLayer(`id:${data.polygon.id}`) || findLayer(op.target);
      if (layer) refreshFromServer(layer, data.polygon);
    }
    performance.mark("ws-saved");
    updateStatus();
  }
  function refreshFromServer(layer, feature) {
    // The server clips to the block: show what was stored, unless the user is editing it.
    layer._ws.props = feature.properties || {};
    const busy = layer.pm.enabled() || (layer.pm.layerDragEnabled && layer.pm.layerDragEnabled());
    if (!busy && feature.geometry) {
      layer.setLatLngs(L.GeoJSON.coordsToLatLngs(feature.geometry.coordinates, 1));
      layer._ws.geometry = feature.geometry;
    }
    if (selected === layer) showSelected();
  }

  // ---- conflict banner -----------------------------------------------------------------------------
  // Their version drawn beside ours while the banner is up, so the annotator sees both before
  // choosing (orange dashes, not editable, no snapping).
  let theirsLayer = null;
  function hideTheirs() { if (theirsLayer) { map.removeLayer(theirsLayer); theirsLayer = null; } }
  async function showConflict(op, data) {
    const ops = (await outboxAll()).filter(o => o.source === op.source);
    conflict = { source: op.source, version: data.version, polygons: data.polygons };
    hideTheirs();
    theirsLayer = L.geoJSON(data.polygons, {
      interactive: false, pmIgnore: true, snapIgnore: true,
      style: { className: "ws-theirs", color: "#ff8f00", weight: 3, dashArray: "6 4", fillOpacity: 0.05 },
    }).addTo(map);
    document.getElementById("ws-conflict-detail").textContent = fmt(M[
      "Theirs: version %(v)s with %(n)s polygon(s). Yours: %(m)s polygon(s) on screen, %(k)s change(s) not saved."
    ], { v: data.version, n: data.polygons.features.length, m: drawn.getLayers().length, k: ops.length })
      + " " + M["Their version is outlined in orange dashes."];
    document.getElementById("ws-conflict").hidden = false;
    setStatus("error", fmt(M["error: %(reason)s"], { reason: data.detail }));
  }
  document.getElementById("ws-load-theirs").addEventListener("click", async () => {
    const c = conflict;
    for (const op of (await outboxAll()).filter(o => o.source === c.source)) { await outboxDelete(op.seq); settle(op); }
    conflict = null;
    hideTheirs();
    undoStack.length = 0;
    redoStack.length = 0;
    document.getElementById("ws-conflict").hidden = true;
    await loadSample();
    flush();
  });
  document.getElementById("ws-reapply-mine").addEventListener("click", async () => {
    const c = conflict;
    let next = c.version;
    for (const op of (await outboxAll()).filter(o => o.source === c.source)) {
      settle(op);
      op.op_id = uuid(); // a new request on top of their version, not a retry of the refused one
      op.expected_version = next++;
      pendingLocal.push(op.op_id);
      await outboxPut(op);
    }
    versions[c.source] = { server: c.version, expected: next };
    conflict = null;
    hideTheirs();
    resyncAfterFlush = true; // then show their polygons and ours together
    document.getElementById("ws-conflict").hidden = true;
    flush();
  });

  // ---- loading a source's sample -----------------------------------------------------------------
  async function loadSample() {
    let data;
    const early = firstFetch && firstFetch.source === source ? firstFetch.res : null;
    firstFetch = null;
    try {
      const res = await (early || fetch(`${API}${source}/`, { credentials: "same-origin" }));
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      data = await res.json();
    } catch (err) {
      setStatus("error", fmt(M["error: %(reason)s"], { reason: err.message }));
      return;
    }
    performance.mark("ws-sample-fetched");
    select(null);
    drawn.clearLayers();
    renderer = chooseRenderer(data.features.length);
    document.getElementById("ws-map").dataset.renderer = renderer === canvasRenderer ? "canvas" : "svg";
    data.features.forEach(f => addPolygon(f, { id: f.id }));
    performance.mark("ws-sample-drawn");
    sampleKind = data.kind;
    // Changes still in the outbox (e.g. drawn offline before a reload) are shown on top.
    const queued = (await outboxAll()).filter(o => o.source === source);
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
    versions[source] = { server: data.version, expected: Math.max(data.version, last) };
    await updateStatus(); // refresh() resolves with the status line (and its version) up to date
  }

  // ---- status line ---------------------------------------------------------------------------------
  function setStatus(state, text) {
    const el = document.getElementById("ws-status");
    el.dataset.state = state;
    el.textContent = text;
  }
  async function updateStatus() {
    if (conflict) return;
    const v = versions[source];
    const waiting = (await outboxAll()).length;
    if (!navigator.onLine && waiting) setStatus("offline", fmt(M["offline: %(n)s change(s) waiting"], { n: waiting }));
    else if (waiting && typeof sessionEnded === "string") setStatus("error", fmt(M["%(n)s change(s) made by %(user)s are kept: log in as %(user)s (e.g. in another tab) to send them"], { n: waiting, user: sessionEnded }));
    else if (waiting && sessionEnded) setStatus("error", fmt(M["your session has ended: log in again (e.g. in another tab); %(n)s change(s) are kept and sent then"], { n: waiting }));
    else if (waiting) setStatus("saving", M["saving…"]);
    else if (lastError) setStatus("error", lastError);
    else if (v && v.server > 0) setStatus("saved", fmt(M["saved v%(v)s"], { v: v.server }));
    else setStatus("idle", M["not saved yet"]);
    const kind = sampleKind === "negative" ? M["negative sample (no cropland)"]
      : sampleKind === "positive" ? M["positive sample"] : M["no sample yet"];
    document.getElementById("ws-sample").textContent =
      `${source || ""} · ${kind} · ${fmt(M["%(n)s polygon(s)"], { n: drawn.getLayers().length })}`;
    document.getElementById("ws-status").dataset.version = v ? v.server : "";
  }

  // ---- imagery: source switch and swipe compare ---------------------------------------------
  let comparing = false;
  const swipe = document.getElementById("ws-swipe");
  const swipeLine = L.DomUtil.create("div", "ws-swipe-line", map.getContainer());
  swipeLine.style.display = "none";
  function otherSource() {
    const o = C.sources.find(x => x.slug !== source);
    return o ? o.slug : null;
  }
  async function setSource(slug) {
    if (!tiles[slug]) return;
    if (slug === source && map.hasLayer(tiles[slug])) return;
    stopTools();
    Object.values(tiles).forEach(tl => map.removeLayer(tl));
    if (slug !== source) {
      undoStack.length = 0; redoStack.length = 0; // history is per sample
      // Never shown under the new source's name while its sample loads (the status line may be
      // redrawn meanwhile): the old source's polygons go at once.
      select(null);
      drawn.clearLayers();
      clearProblem();
    }
    source = slug;
    // When every tile on screen has arrived (bench/bench_workspace.py reads the mark).
    tiles[slug].once("load", () => performance.mark("ws-imagery-loaded"));
    tiles[slug].addTo(map);
    document.querySelectorAll("#ws-sources [data-source]").forEach(b =>
      b.classList.toggle("active", b.dataset.source === slug));
    if (comparing) startCompare();
    if (!versions[slug]) versions[slug] = { server: 0, expected: 0 };
    await loadSample();
    showPredictionInfo();
    drawOverlay();
    sourceListeners.forEach(fn => { try { fn(slug); } catch (err) { console.error(err); } });
  }
  // The divider goes under the slider's thumb, wherever the slider sits: the thumb's centre runs
  // from half a thumb past the slider's left end to half a thumb before its right end.
  const SWIPE_THUMB_PX = 16; // #ws-swipe's thumb width in workspace.css
  function swipeX() {
    const box = map.getContainer().getBoundingClientRect(), r = swipe.getBoundingClientRect();
    return r.left - box.left + SWIPE_THUMB_PX / 2 + (r.width - SWIPE_THUMB_PX) * swipe.value / 100;
  }
  function clip() {
    const other = otherSource();
    if (!comparing || !other) return;
    const size = map.getSize();
    const x = Math.max(0, Math.min(size.x, swipeX()));
    const nw = map.containerPointToLayerPoint([0, 0]);
    const se = map.containerPointToLayerPoint(size);
    const cx = map.containerPointToLayerPoint([x, 0]).x;
    tiles[other].getContainer().style.clip = `rect(${nw.y}px, ${se.x}px, ${se.y}px, ${cx}px)`;
    swipeLine.style.left = `${x}px`;
  }
  function startCompare() {
    const other = otherSource();
    if (!other) return;
    Object.entries(tiles).forEach(([k, tl]) => { if (k !== source && k !== other) map.removeLayer(tl); });
    tiles[other].addTo(map);
    tiles[other].bringToFront();
    swipe.hidden = false;
    swipeLine.style.display = "";
    clip();
  }
  function toggleCompare() {
    comparing = !comparing;
    document.getElementById("ws-compare")?.classList.toggle("active", comparing);
    if (comparing) startCompare();
    else {
      const other = otherSource();
      if (other) { tiles[other].getContainer().style.clip = ""; map.removeLayer(tiles[other]); }
      swipe.hidden = true;
      swipeLine.style.display = "none";
    }
  }
  swipe.addEventListener("input", clip);
  map.on("move zoom resize", clip);
  document.querySelectorAll("#ws-sources [data-source]").forEach(b =>
    b.addEventListener("click", () => setSource(b.dataset.source)));
  document.getElementById("ws-compare")?.addEventListener("click", toggleCompare);

  // ---- tools and keyboard -----------------------------------------------------------------------
  const drawingNow = () => freehand.on || map.pm.globalDrawModeEnabled() || map.pm.globalCutModeEnabled()
    || performance.now() - freehand.endedAt < 300; // the click that ends a freehand stroke
  function setToolActive(name, on) {
    document.querySelector(`[data-tool=${name}]`)?.classList.toggle("active", on);
  }
  function stopTools() {
    if (freehand.on) freehandStop();
    map.pm.disableDraw();
    if (map.pm.globalCutModeEnabled()) map.pm.disableGlobalCutMode();
    drawn.getLayers().forEach(l => { if (l.pm.layerDragEnabled()) l.pm.disableLayerDrag(); });
    setToolActive("move", false);
    setToolActive("split", false);
  }
  function tool(name) {
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
      if (!selected) { hint(t("selectFirst")); return; }
      if (selected.pm.enabled()) selected.pm.disable();
      else { if (selected.pm.layerDragEnabled()) selected.pm.disableLayerDrag(); selected.pm.enable({ snappable: true, allowSelfIntersection: true }); }
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

  document.addEventListener("keydown", ev => {
    if (ev.target.closest("input[type=text], textarea, select")) return;
    const k = ev.key.toLowerCase();
    if ((ev.ctrlKey || ev.metaKey) && k === "z") { ev.preventDefault(); if (ev.shiftKey) redo(); else undo(); return; }
    if ((ev.ctrlKey || ev.metaKey) && k === "y") { ev.preventDefault(); redo(); return; }
    // Shifted and Alt keys belong to the labelling panel (verdicts, coverage, next block).
    if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.shiftKey) return;
    const subtype = C.subtypes.find(st => st.key === ev.key);
    if (subtype) { setSubtype(subtype.value); return; }
    if (k === "enter") {
      if (map.pm.Draw.Polygon.enabled()) map.pm.Draw.Polygon._finishShape();
      else if (map.pm.Draw.Line.enabled()) map.pm.Draw.Line._finishShape();
      return;
    }
    if (k === "escape") { stopTools(); select(null); hint(""); clearProblem(); return; }
    const src = C.sources.find(x => x.slug[0] === k);
    if ((k === "m" || k === "g") && src) { setSource(src.slug); return; }
    const action = {
      p: "polygon", r: "rectangle", f: "freehand", e: "edit", v: "move", x: "cut", s: "split",
      u: "merge", o: "prediction", delete: "delete", backspace: "delete",
    }[k];
    if (action) { ev.preventDefault(); tool(action); return; }
    if (k === "n") markNegative();
    else if (k === "c") toggleCompare();
  });

  // ---- offline: the service worker --------------------------------------------------------------
  // /annotate/sw.js (templates/annotation/service_worker.js) keeps this page, its scripts and the
  // block's data, so that a reload without network shows the block and the outbox's changes on
  // top. It hears of every write the server confirmed, so its copy stays what the server holds;
  // logging out forgets the copies (the outbox stays: it is unsent work, filtered by user).
  const swUrl = document.getElementById("ws").dataset.serviceWorker;
  const sw = swUrl && "serviceWorker" in navigator ? navigator.serviceWorker : null;
  const servedByWorker = !!(sw && sw.controller);
  const offlineReady = () => { document.getElementById("ws").dataset.offlineReady = "1"; };
  function swSaved(op, data, url) {
    if (!sw || !sw.controller || !data) return;
    const polygonId = Number((url.match(/\/polygons\/(\d+)\//) || [])[1]) || null;
    sw.controller.postMessage(op.kind === "label"
      ? { type: "saved", op: "label", block: op.block, answer: data }
      : { type: "saved", op: op.kind, block: op.block, source: op.source, polygonId, answer: data });
  }
  async function swStart() {
    if (!sw) return;
    sw.addEventListener("message", ev => { if (ev.data && ev.data.type === "warmed") offlineReady(); });
    let reg;
    try { reg = await sw.register(swUrl); await sw.ready; } catch (err) { console.warn(err); return; }
    if (servedByWorker) { offlineReady(); return; }
    // This page did not come through the worker (a first visit, or the worker is new): hand it
    // the page and what the page read, for a reload offline.
    const tilesSeen = performance.getEntriesByType("resource").map(r => r.name)
      .filter(u => u.includes(`/api/blocks/${C.block}/imagery/`));
    const urls = [window.location.href, `/api/blocks/${C.block}/labels/`,
      ...Object.keys(versions).map(slug => `${API}${slug}/`),
      ...Object.keys(predictions).filter(slug => !(C.predictionMissing || {})[slug]).map(PREDICTION_API),
      ...tilesSeen];
    (reg.active || sw.controller).postMessage({ type: "warm", urls });
  }
  const logoutForm = document.querySelector(".topbar form.user");
  if (logoutForm && window.caches) {
    logoutForm.addEventListener("submit", ev => {
      ev.preventDefault();
      const mine = name => name.startsWith("croplayer-data") || name.startsWith("croplayer-tiles");
      caches.keys().then(names => Promise.all(names.filter(mine).map(name => caches.delete(name))))
        .catch(() => {}).finally(() => logoutForm.submit());
    }, { once: true });
  }

  // ---- start -------------------------------------------------------------------------------------
  window.addEventListener("online", () => { updateStatus(); flush(); });
  window.addEventListener("offline", updateStatus);
  window.wsFlush = flush;
  (async () => {
    if (!source) { await flush(); swStart(); return; } // labels may still wait in the outbox
    if ((await outboxAll()).length) resyncAfterFlush = true;
    await setSource(source);
    await flush(); // changes queued before a reload, in order; op_ids make any resend harmless
    document.getElementById("ws").dataset.ready = "1";
    performance.mark("ws-ready");
    requestAnimationFrame(() => requestAnimationFrame(() => performance.mark("ws-painted")));
    swStart();
  })();
})();
