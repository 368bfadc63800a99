/* The annotation workspace: draw and label a block's cropland polygons; every change goes
 * through an IndexedDB outbox to the REST API (If-Match + op_id), so nothing is lost offline. */
(function () {
  "use strict";
  const C = JSON.parse(document.getElementById("ws-config").textContent);
  const M = C.messages;
  const fmt = (s, args) => s.replace(/%\((\w+)\)s/g, (_, k) => String(args[k]));
  const csrf = document.querySelector("input[name=csrfmiddlewaretoken]").value;
  const user = document.querySelector(".topbar .user span")?.textContent || "";
  const API = `/api/blocks/${C.block}/samples/`;
  const COLORS = {
    paddy: "#29b6f6", irrigated_dry: "#ffeb3b", terraces: "#ff9800",
    fallow: "#bcaaa4", greenhouse: "#e0e0e0", scattered_trees: "#66bb6a",
  };
  const uuid = () => crypto.randomUUID();

  // ---- state -----------------------------------------------------------------------------------
  let source = C.sources.length ? C.sources[0].slug : null;
  const versions = {};   // source -> {server: last version confirmed, expected: next op's If-Match}
  let sampleKind = null;
  let selected = null;
  let conflict = null;   // {source, version, polygons} while the banner is up
  let lastError = null;
  const undoStack = [];
  const pendingLocal = []; // ops of this page not yet confirmed (for the status line)

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
      const t = db.transaction(store, mode);
      const req = fn(t.objectStore(store));
      t.oncomplete = () => resolve(req ? req.result : undefined);
      t.onerror = () => reject(t.error);
    });
  }
  const outboxAll = async () => (await idb("outbox", "readonly", s => s.getAll()))
    .filter(op => op.block === C.block && op.user === user);
  const outboxPut = op => idb("outbox", "readwrite", s => s.put(op));
  const outboxDelete = seq => idb("outbox", "readwrite", s => s.delete(seq));
  const idGet = key => idb("ids", "readonly", s => s.get(key));
  const idPut = (key, id) => idb("ids", "readwrite", s => s.put(id, key));

  // ---- map -----------------------------------------------------------------------------------------
  const [w, s, e, n] = C.bounds;
  const map = L.map("ws-map", { maxZoom: C.zoom + 3, zoomSnap: 0.25, keyboard: false, doubleClickZoom: false });
  window.wsMap = map; // for tests and the console
  map.fitBounds([[s, w], [n, e]]);
  L.rectangle([[s, w], [n, e]], {
    color: "#ff1744", weight: 2, dashArray: "6 4", fill: false, interactive: false, pmIgnore: true,
  }).addTo(map);
  const tiles = {};
  C.sources.forEach(src => {
    tiles[src.slug] = L.tileLayer(`/api/blocks/${C.block}/imagery/${src.slug}/{z}/{x}/{y}.png`, {
      maxZoom: C.zoom + 3, maxNativeZoom: C.zoom + 2, attribution: src.name, pmIgnore: true,
    });
  });
  const drawn = L.featureGroup().addTo(map);
  map.pm.setGlobalOptions({
    snappable: true, snapDistance: 12, allowSelfIntersection: false, layerGroup: drawn,
    templineStyle: { color: "#00e5ff" }, hintlineStyle: { color: "#00e5ff", dashArray: "5 5" },
  });
  map.pm.setLang(C.zh ? "zh" : "en");

  const currentSubtype = () => document.querySelector("input[name=subtype]:checked").value;
  const style = (subtype, isSelected) => ({
    color: isSelected ? "#ffffff" : COLORS[subtype] || "#ffeb3b",
    fillColor: COLORS[subtype] || "#ffeb3b", fillOpacity: 0.25, weight: isSelected ? 3 : 2,
    dashArray: isSelected ? "4 3" : null,
  });
  const geomOf = layer => layer.toGeoJSON(8).geometry;
  const keyOf = layer => (layer._ws.id ? `id:${layer._ws.id}` : layer._ws.tmp);

  function addPolygon(feature, ws) {
    const layer = L.geoJSON(feature).getLayers()[0];
    layer._ws = { id: null, tmp: null, props: feature.properties || {}, ...ws };
    layer._ws.subtype = layer._ws.subtype || (feature.properties || {}).subtype || C.defaultSubtype;
    layer._ws.geometry = geomOf(layer);
    wireLayer(layer);
    drawn.addLayer(layer);
    return layer;
  }
  function wireLayer(layer) {
    layer.setStyle(style(layer._ws.subtype, false));
    layer.on("click", ev => { L.DomEvent.stopPropagation(ev); select(layer); });
    layer.on("pm:edit", () => onEdited(layer));
  }
  function findLayer(key) {
    return drawn.getLayers().find(l => l._ws && (keyOf(l) === key || l._ws.tmp === key
      || `id:${l._ws.id}` === key));
  }

  // ---- selection and subtype -------------------------------------------------------------------
  function select(layer) {
    if (selected && selected !== layer) {
      if (selected.pm.enabled()) selected.pm.disable();
      if (drawn.hasLayer(selected)) selected.setStyle(style(selected._ws.subtype, false));
    }
    selected = layer;
    if (layer) {
      layer.setStyle(style(layer._ws.subtype, true));
      const radio = document.querySelector(`input[name=subtype][value=${layer._ws.subtype}]`);
      if (radio) radio.checked = true;
    }
    showSelected();
  }
  function showSelected() {
    const el = document.getElementById("ws-selected");
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
  function setSubtype(value, { record = true } = {}) {
    const radio = document.querySelector(`input[name=subtype][value=${value}]`);
    if (radio) radio.checked = true;
    if (!selected || selected._ws.subtype === value) return;
    const layer = selected;
    if (record) undoStack.push({ type: "update", layer, before: { subtype: layer._ws.subtype } });
    layer._ws.subtype = value;
    layer.setStyle(style(value, true));
    enqueue({ kind: "update", method: "PATCH", target: keyOf(layer), body: { subtype: value } });
  }

  // ---- local actions -> outbox ---------------------------------------------------------------------
  map.on("pm:create", ev => {
    const layer = ev.layer;
    drawn.removeLayer(layer);
    map.removeLayer(layer);
    const f = { type: "Feature", geometry: geomOf(layer), properties: {} };
    const created = createPolygon(f, currentSubtype());
    undoStack.push({ type: "create", layer: created });
    select(created);
  });
  function createPolygon(feature, subtype) {
    const tmp = `tmp:${uuid()}`;
    const layer = addPolygon(feature, { tmp, subtype });
    enqueue({ kind: "create", method: "POST", tmp, body: { geometry: layer._ws.geometry, subtype } });
    return layer;
  }
  function onEdited(layer) {
    const geometry = geomOf(layer);
    if (JSON.stringify(geometry) === JSON.stringify(layer._ws.geometry)) return;
    undoStack.push({ type: "update", layer, before: { geometry: layer._ws.geometry } });
    layer._ws.geometry = geometry;
    enqueue({ kind: "update", method: "PATCH", target: keyOf(layer), body: { geometry } });
  }
  map.on("pm:cut", ev => {
    // Geoman replaces the cut layer by a new one: keep the polygon's identity on the server.
    const old = ev.originalLayer;
    const gj = ev.layer.toGeoJSON(8).geometry;
    map.removeLayer(ev.layer);
    drawn.removeLayer(ev.layer);
    if (!old._ws) return;
    const polys = gj.type === "MultiPolygon" ? gj.coordinates : [gj.coordinates];
    const before = old._ws.geometry;
    const layer = addPolygon({ type: "Feature", geometry: { type: "Polygon", coordinates: polys[0] } },
      { id: old._ws.id, tmp: old._ws.tmp, subtype: old._ws.subtype, props: old._ws.props });
    undoStack.push({ type: "update", layer, before: { geometry: before } });
    enqueue({ kind: "update", method: "PATCH", target: keyOf(layer), body: { geometry: layer._ws.geometry } });
    polys.slice(1).forEach(c => createPolygon({ type: "Feature", geometry: { type: "Polygon", coordinates: c } },
      old._ws.subtype));
    select(layer);
  });
  function deletePolygon(layer, { record = true } = {}) {
    if (!layer) return;
    if (layer.pm.enabled()) layer.pm.disable();
    drawn.removeLayer(layer);
    if (selected === layer) select(null);
    if (record) undoStack.push({ type: "delete", feature: { geometry: layer._ws.geometry }, subtype: layer._ws.subtype });
    enqueue({ kind: "delete", method: "DELETE", target: keyOf(layer) });
  }
  map.on("pm:remove", ev => { if (ev.layer._ws) { drawn.addLayer(ev.layer); deletePolygon(ev.layer); } });

  function undo() {
    const a = undoStack.pop();
    if (!a) { setStatus("idle", M["nothing to undo"]); return; }
    if (a.type === "create") deletePolygon(a.layer, { record: false });
    else if (a.type === "delete") select(createPolygon({ type: "Feature", geometry: a.feature.geometry }, a.subtype));
    else if (a.type === "update" && drawn.hasLayer(a.layer)) {
      const layer = a.layer;
      if (a.before.subtype) {
        select(layer);
        setSubtype(a.before.subtype, { record: false });
      } else {
        if (layer.pm.enabled()) layer.pm.disable();
        layer.setLatLngs(L.GeoJSON.coordsToLatLngs(a.before.geometry.coordinates, 1));
        layer._ws.geometry = a.before.geometry;
        enqueue({ kind: "update", method: "PATCH", target: keyOf(layer), body: { geometry: a.before.geometry } });
      }
    }
  }

  function markNegative() {
    if (!window.confirm(M["Mark this block negative on this source? Its polygons are deleted."])) return;
    drawn.clearLayers();
    select(null);
    undoStack.length = 0;
    enqueue({ kind: "negative", method: "POST" });
  }

  // ---- the outbox: enqueue and flush in order ---------------------------------------------------
  async function enqueue({ kind, method, target = null, tmp = null, body = null }) {
    const v = versions[source];
    const op = {
      op_id: uuid(), kind, method, block: C.block, source, user, target, tmp, body,
      expected_version: v.expected, created: Date.now(),
    };
    v.expected += 1;
    pendingLocal.push(op.op_id);
    await outboxPut(op);
    updateStatus();
    flush();
  }
  async function urlFor(op) {
    const base = `${API}${op.source}/`;
    if (op.kind === "create") return `${base}polygons/`;
    if (op.kind === "negative") return `${base}negative/`;
    let id = op.target.startsWith("id:") ? Number(op.target.slice(3)) : await idGet(op.target);
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
        res = await fetch(url, {
          method: op.method, credentials: "same-origin", body,
          headers: { "Content-Type": "application/json", "If-Match": `"${op.expected_version}"`, "X-CSRFToken": csrf },
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
      if (res.ok) {
        await outboxDelete(op.seq);
        settle(op);
        lastError = null;
        retryDelay = 2000;
        onSaved(op, data);
      } else if (res.status === 412) {
        showConflict(op, data);
        return;
      } else if (res.status >= 500 || res.status === 429) {
        setStatus("error", fmt(M["error: %(reason)s"], { reason: `HTTP ${res.status}` }));
        resyncAfterFlush = true;
        return;
      } else {
        await dropOp(op, ops, reasonOf(data, res.status));
      }
    }
  }
  function reasonOf(data, status) {
    if (!data) return `HTTP ${status}`;
    if (typeof data === "string") return data;
    if (data.detail) return String(data.detail);
    return Object.entries(data).map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(" ") : v}`).join("; ");
  }
  function settle(op) {
    const i = pendingLocal.indexOf(op.op_id);
    if (i >= 0) pendingLocal.splice(i, 1);
  }
  async function dropOp(op, ops, reason) {
    // The server refused it for good: later ops of the same source expected it to bump the version.
    await outboxDelete(op.seq);
    settle(op);
    for (const later of ops.slice(1)) {
      if (later.source === op.source) { later.expected_version -= 1; await outboxPut(later); }
    }
    if (versions[op.source]) versions[op.source].expected -= 1;
    if (op.kind === "create") {
      const layer = findLayer(op.tmp);
      if (layer) { drawn.removeLayer(layer); if (selected === layer) select(null); }
    }
    lastError = fmt(M["error: %(reason)s"], { reason });
    setStatus("error", lastError);
  }
  function onSaved(op, data) {
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
    updateStatus();
  }
  function refreshFromServer(layer, feature) {
    // The server clips to the block: show what was stored, unless the user is editing it.
    layer._ws.props = feature.properties || {};
    if (!layer.pm.enabled() && feature.geometry) {
      layer.setLatLngs(L.GeoJSON.coordsToLatLngs(feature.geometry.coordinates, 1));
      layer._ws.geometry = feature.geometry;
    }
    if (selected === layer) showSelected();
  }

  // ---- conflict banner -----------------------------------------------------------------------------
  async function showConflict(op, data) {
    const ops = (await outboxAll()).filter(o => o.source === op.source);
    conflict = { source: op.source, version: data.version, polygons: data.polygons };
    document.getElementById("ws-conflict-detail").textContent = fmt(M[
      "Theirs: version %(v)s with %(n)s polygon(s). Yours: %(m)s polygon(s) on screen, %(k)s change(s) not saved."
    ], { v: data.version, n: data.polygons.features.length, m: drawn.getLayers().length, k: ops.length });
    document.getElementById("ws-conflict").hidden = false;
    setStatus("error", fmt(M["error: %(reason)s"], { reason: data.detail }));
  }
  document.getElementById("ws-load-theirs").addEventListener("click", async () => {
    const c = conflict;
    for (const op of (await outboxAll()).filter(o => o.source === c.source)) { await outboxDelete(op.seq); settle(op); }
    conflict = null;
    undoStack.length = 0;
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
    resyncAfterFlush = true; // then show their polygons and ours together
    document.getElementById("ws-conflict").hidden = true;
    flush();
  });

  // ---- loading a source's sample -----------------------------------------------------------------
  async function loadSample() {
    let data;
    try {
      const res = await fetch(`${API}${source}/`, { credentials: "same-origin" });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      data = await res.json();
    } catch (err) {
      setStatus("error", fmt(M["error: %(reason)s"], { reason: err.message }));
      return;
    }
    select(null);
    drawn.clearLayers();
    data.features.forEach(f => addPolygon(f, { id: f.id }));
    sampleKind = data.kind;
    // Changes still in the outbox (e.g. drawn offline before a reload) are shown on top.
    const queued = (await outboxAll()).filter(o => o.source === source);
    for (const op of queued) {
      if (op.kind === "create") addPolygon({ type: "Feature", geometry: op.body.geometry, properties: {} },
        { tmp: op.tmp, subtype: op.body.subtype, id: (await idGet(op.tmp)) || null });
      else if (op.kind === "negative") drawn.clearLayers();
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
    const last = queued.length ? queued[queued.length - 1].expected_version + 1 : 0;
    versions[source] = { server: data.version, expected: Math.max(data.version, last) };
    updateStatus();
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
    else if (waiting) setStatus("saving", M["saving…"]);
    else if (lastError) setStatus("error", lastError);
    else if (v && v.server > 0) setStatus("saved", fmt(M["saved v%(v)s"], { v: v.server }));
    else setStatus("idle", M["not saved yet"]);
    const kind = sampleKind === "negative" ? M["negative sample (no cropland)"]
      : sampleKind === "positive" ? M["positive sample"] : M["no sample yet"];
    document.getElementById("ws-sample").textContent =
      `${source || ""} · ${kind} · ${drawn.getLayers().length} ${C.zh ? "个多边形" : "polygon(s)"}`;
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
    map.pm.disableDraw();
    Object.values(tiles).forEach(t => map.removeLayer(t));
    source = slug;
    tiles[slug].addTo(map);
    document.querySelectorAll("#ws-sources [data-source]").forEach(b =>
      b.classList.toggle("active", b.dataset.source === slug));
    if (comparing) startCompare();
    if (!versions[slug]) versions[slug] = { server: 0, expected: 0 };
    await loadSample();
  }
  function clip() {
    const other = otherSource();
    if (!comparing || !other) return;
    const size = map.getSize();
    const x = size.x * swipe.value / 100;
    const nw = map.containerPointToLayerPoint([0, 0]);
    const se = map.containerPointToLayerPoint(size);
    const cx = map.containerPointToLayerPoint([x, 0]).x;
    tiles[other].getContainer().style.clip = `rect(${nw.y}px, ${se.x}px, ${se.y}px, ${cx}px)`;
    swipeLine.style.left = `${x}px`;
  }
  function startCompare() {
    const other = otherSource();
    if (!other) return;
    Object.entries(tiles).forEach(([k, t]) => { if (k !== source && k !== other) map.removeLayer(t); });
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
  function tool(name) {
    if (name === "polygon") map.pm.enableDraw("Polygon");
    else if (name === "rectangle") map.pm.enableDraw("Rectangle");
    else if (name === "cut") map.pm.enableGlobalCutMode();
    else if (name === "edit") {
      if (selected) { if (selected.pm.enabled()) selected.pm.disable(); else selected.pm.enable({ snappable: true }); }
      else map.pm.toggleGlobalEditMode();
    } else if (name === "delete") deletePolygon(selected);
    else if (name === "undo") undo();
  }
  document.querySelectorAll("[data-tool]").forEach(b => b.addEventListener("click", () => tool(b.dataset.tool)));
  document.getElementById("ws-negative").addEventListener("click", markNegative);
  map.on("click", () => { if (!map.pm.globalDrawModeEnabled()) select(null); });

  document.addEventListener("keydown", ev => {
    if (ev.target.closest("input[type=text], textarea, select")) return;
    const k = ev.key.toLowerCase();
    if ((ev.ctrlKey || ev.metaKey) && k === "z") { ev.preventDefault(); undo(); return; }
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const subtype = C.subtypes.find(st => st.key === ev.key);
    if (subtype) { setSubtype(subtype.value); return; }
    if (k === "enter" && map.pm.Draw.Polygon.enabled()) { map.pm.Draw.Polygon._finishShape(); return; }
    if (k === "escape") { map.pm.disableDraw(); if (map.pm.globalCutModeEnabled()) map.pm.disableGlobalCutMode(); select(null); return; }
    const src = C.sources.find(x => x.slug[0] === k);
    if ((k === "m" || k === "g") && src) { setSource(src.slug); return; }
    const action = { p: "polygon", r: "rectangle", e: "edit", x: "cut", delete: "delete", backspace: "delete" }[k];
    if (action) { ev.preventDefault(); tool(action); return; }
    if (k === "n") markNegative();
    else if (k === "c") toggleCompare();
  });

  // ---- start -------------------------------------------------------------------------------------
  window.addEventListener("online", () => { updateStatus(); flush(); });
  window.addEventListener("offline", updateStatus);
  window.wsFlush = flush;
  (async () => {
    if (!source) return;
    if ((await outboxAll()).length) resyncAfterFlush = true;
    await setSource(source);
    await flush(); // changes queued before a reload, in order; op_ids make any resend harmless
    document.getElementById("ws").dataset.ready = "1";
  })();
})();
