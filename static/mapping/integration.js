// Integration review: blocks coloured by decision, Mapbox | Google swipe, keyboard decisions.
(function () {
  "use strict";
  const cfg = JSON.parse(document.getElementById("integration-config").textContent);
  const COLOURS = {neither: "#9e9e9e", only_mapbox: "#1e88e5", only_google: "#e53935", merge_both: "#8e24aa"};
  const KEYS = {"1": "neither", "2": "only_mapbox", "3": "only_google", "4": "merge_both"};
  const $ = (id) => document.getElementById(id);
  const csrf = document.querySelector("input[name=csrfmiddlewaretoken]").value;
  const message = (text) => { $("integ-message").textContent = text; };

  const map = L.map("map", {maxZoom: cfg.zoom + 2, keyboard: false});
  if (window.croplayerBasemap) window.croplayerBasemap(map);
  map.createPane("left").style.zIndex = 250;
  map.createPane("right").style.zIndex = 251;
  let features = [];
  let order = [];
  let current = -1;
  let layers = {};
  const byId = new Map();

  const style = (f) => ({
    color: f.properties.source === "lead" ? "#000" : COLOURS[f.properties.decision],
    weight: f.properties.source === "lead" ? 2 : 1,
    dashArray: f.properties.source === "lead" ? "4 3" : null,
    fillColor: COLOURS[f.properties.decision], fillOpacity: 0.35,
  });
  const blocks = L.geoJSON(null, {
    style,
    onEachFeature: (f, layer) => {
      byId.set(f.id, layer);
      layer.on("click", () => select(order.indexOf(f.id)));
    },
  }).addTo(map);

  const legend = $("integ-legend");
  Object.entries(cfg.decisions).forEach(([value, label]) => {
    const s = document.createElement("span");
    const i = document.createElement("i");
    i.style.background = COLOURS[value];
    s.append(i, document.createTextNode(label));
    legend.append(s);
  });

  function clip() {
    const pane = map.getPane("right");
    const size = map.getSize();
    const nw = map.containerPointToLayerPoint([0, 0]);
    const se = map.containerPointToLayerPoint(size);
    // Under the slider's thumb (16 px wide, integration.css), wherever the slider sits.
    const box = map.getContainer().getBoundingClientRect();
    const r = $("integ-swipe").getBoundingClientRect();
    const sx = r.left - box.left + 8 + (r.width - 16) * $("integ-swipe").value / 100;
    const x = map.containerPointToLayerPoint([Math.max(0, Math.min(size.x, sx)), 0]).x;
    pane.style.clip = `rect(${nw.y}px, ${se.x}px, ${se.y}px, ${x}px)`;
  }
  map.on("move zoom resize", clip);
  $("integ-swipe").addEventListener("input", clip);
  ["mousedown", "touchstart", "pointerdown"].forEach((ev) =>
    $("integ-swipe").addEventListener(ev, (e) => e.stopPropagation()));

  function sortOrder() {
    const list = features.slice();
    if ($("integ-order").value === "confidence") {
      list.sort((a, b) => (a.properties.model_probability ?? 1) - (b.properties.model_probability ?? 1));
    }
    order = list.map((f) => f.id);
  }

  function show(f) {
    const p = f.properties;
    $("integ-code").textContent = p.code;
    $("integ-position").textContent = `${current + 1} / ${order.length}`;
    $("integ-decision").textContent = cfg.decisions[p.decision];
    $("integ-decision").dataset.value = p.decision;
    $("integ-source").textContent = p.source === "lead" ? `${cfg.strings.lead} (${p.overridden_by})` : `${cfg.strings.model} ${p.model_version}`;
    $("integ-model").textContent = p.model_decision
      ? `${cfg.decisions[p.model_decision]} (${(100 * p.model_probability).toFixed(1)} %)` : "–";
    const body = document.querySelector("#integ-probs tbody");
    body.replaceChildren(...Object.entries(cfg.decisions).map(([value, label]) => {
      const tr = document.createElement("tr");
      const a = document.createElement("td");
      const b = document.createElement("td");
      a.textContent = label;
      const pr = (p.probabilities || {})[value];
      b.textContent = pr === undefined ? "–" : `${(100 * pr).toFixed(1)} %`;
      tr.append(a, b);
      return tr;
    }));
    document.querySelectorAll("[data-decision]").forEach((btn) =>
      btn.classList.toggle("active", btn.dataset.decision === p.decision));
    $("integ-workspace").href = cfg.workspace.replace("/0/", `/${f.id}/`);
  }

  function select(i) {
    if (!order.length) return;
    current = (i + order.length) % order.length;
    const id = order[current];
    const f = features.find((x) => x.id === id);
    Object.values(layers).forEach((l) => map.removeLayer(l));
    layers = {};
    [["mapbox", "left"], ["google", "right"]].forEach(([src, pane]) => {
      layers[src] = L.tileLayer(`/api/blocks/${id}/imagery/${src}/{z}/{x}/{y}.png`,
        {pane, maxZoom: cfg.zoom + 2, maxNativeZoom: cfg.zoom + 2, attribution: src}).addTo(map);
      showPrediction(id, src, pane);
    });
    map.fitBounds(byId.get(id).getBounds(), {animate: false});
    blocks.setStyle(style);
    byId.get(id).setStyle({weight: 4, color: "#ffeb3b", fillOpacity: 0});
    clip();
    show(f);
  }

  // Each source's predicted cropland outlined on its side of the swipe, so the lead sees what
  // each source mapped, not only its imagery.
  const PREDICTION_COLOURS = {mapbox: COLOURS.only_mapbox, google: COLOURS.only_google};
  async function showPrediction(id, src, pane) {
    const resp = await fetch(`/api/blocks/${id}/sources/${src}/prediction/`, {credentials: "same-origin"});
    if (!resp.ok || order[current] !== id) return;  // none, or the lead has moved on
    const data = await resp.json();
    layers[`${src}-prediction`] = L.geoJSON(data, {
      pane, interactive: false,
      style: {color: PREDICTION_COLOURS[src], weight: 2, fillColor: PREDICTION_COLOURS[src], fillOpacity: 0.2},
    }).addTo(map);
    $("map").dataset[`${src}Polygons`] = String(data.features.length);
  }

  async function decide(decision) {
    if (current < 0) return;
    const id = order[current];
    const resp = await fetch(cfg.decide.replace("/0/", `/${id}/`), {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": csrf},
      body: JSON.stringify({decision}),
    });
    const data = await resp.json();
    if (!resp.ok) { message(JSON.stringify(data)); return; }
    const f = features.find((x) => x.id === id);
    f.properties = data;
    message(`${data.code}: ${cfg.decisions[data.decision]} · ${cfg.strings.saved}`);
    select(current + 1);
  }

  async function load() {
    const resp = await fetch(cfg.geojson, {credentials: "same-origin"});
    const data = await resp.json();
    features = data.features;
    blocks.clearLayers();
    byId.clear();
    blocks.addData(data);
    sortOrder();
    if (!features.length) { message(cfg.strings.none); map.setView([35, 105], 4); return; }
    map.fitBounds(blocks.getBounds());
    select(0);
  }

  document.querySelectorAll("[data-decision]").forEach((btn) =>
    btn.addEventListener("click", () => decide(btn.dataset.decision)));
  $("integ-next").addEventListener("click", () => select(current + 1));
  $("integ-prev").addEventListener("click", () => select(current - 1));
  $("integ-order").addEventListener("change", () => { sortOrder(); select(0); });
  $("integ-run").addEventListener("click", async () => {
    const resp = await fetch(cfg.run, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": csrf}, body: "{}",
    });
    const data = await resp.json();
    message(resp.ok ? cfg.strings.queued : (data.detail || JSON.stringify(data)));
  });
  document.addEventListener("keydown", (ev) => {
    if (ev.target.closest("input, select, textarea") || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const key = ev.key.toLowerCase();
    if (KEYS[key]) { ev.preventDefault(); decide(KEYS[key]); }
    else if (key === "j") { ev.preventDefault(); select(current + 1); }
    else if (key === "k") { ev.preventDefault(); select(current - 1); }
  });
  window.integrationReview = {select, decide, state: () => ({current, order})};
  load();
})();
