// The stopping dashboard: province choropleth (Leaflet) and per-province history charts
// (Chart.js), drawn from the numbers the server put in the page (#dashboard-data).
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("dashboard-data").textContent);
  const t = JSON.parse(document.getElementById("dashboard-messages").textContent);
  const cfg = document.getElementById("dashboard-config").dataset;
  const rows = {};
  for (const r of data.provinces) rows[r.adcode] = r;
  const th = data.thresholds;

  // --- choropleth ------------------------------------------------------------------------
  const DECISION_COLOURS = {converged: "#2e7d32", continue: "#f0a202", excluded: "#8c8c8c", "": "#ffffff"};
  const RAMP = ["#b00020", "#e8590c", "#f0a202", "#c0ca33", "#2e7d32"];
  function rampColour(value, threshold) {
    if (value === null || value === undefined) return "#ffffff";
    // Five steps, the top one at or above the threshold.
    const steps = [threshold * 0.5, threshold * 0.7, threshold * 0.85, threshold];
    let i = 0;
    while (i < steps.length && value >= steps[i]) i++;
    return RAMP[i];
  }
  const METRICS = {
    decision: {colour: r => DECISION_COLOURS[r.evaluated ? r.decision : ""]},
    iou: {colour: r => rampColour(r.iou, th.iou_min), threshold: th.iou_min},
    correctness: {colour: r => rampColour(r.correctness, th.correctness_min), threshold: th.correctness_min},
    area_ratio: {colour: r => rampColour(r.area_ratio, th.area_ratio_min), threshold: th.area_ratio_min},
  };
  const fmt = (v, d) => (v === null || v === undefined) ? "–" : Number(v).toFixed(d);
  const pct = v => (v === null || v === undefined) ? "–" : Number(v).toFixed(1) + " %";
  const mapEl = document.getElementById("province-map");
  const map = L.map(mapEl, {preferCanvas: true}).setView([35, 105], 4);
  let layer = null;
  const metricSel = document.getElementById("map-metric");

  function legend(metric) {
    const el = document.getElementById("map-legend");
    if (metric === "decision") {
      el.innerHTML = Object.entries({converged: t.converged, continue: t.continue, excluded: t.excluded, "": t.not_evaluated})
        .map(([k, label]) => `<span><i style="background:${DECISION_COLOURS[k]}"></i>${label}</span>`).join("");
    } else {
      const thr = METRICS[metric].threshold;
      const labels = [`< ${fmt(thr * 0.5, 2)}`, `< ${fmt(thr * 0.7, 2)}`, `< ${fmt(thr * 0.85, 2)}`, `< ${fmt(thr, 2)}`, `≥ ${fmt(thr, 2)}`];
      el.innerHTML = RAMP.map((c, i) => `<span><i style="background:${c}"></i>${labels[i]}</span>`).join("")
        + `<span><i style="background:#fff"></i>${t.no_value}</span>`;
    }
  }
  function restyle() {
    const metric = metricSel.value;
    if (layer) layer.setStyle(f => ({color: "#333", weight: 0.8, fillOpacity: 0.75,
      fillColor: METRICS[metric].colour(rows[f.properties.adcode] || {})}));
    legend(metric);
  }
  function popup(r) {
    const status = r.official_status ? (r.official_verified ? r.official_status : "⚠ " + r.official_status) : "";
    return `<b>${r.name_zh} · ${r.name_en}</b><br>${t.decision}: ${r.evaluated ? r.decision_label : t.not_evaluated}<br>`
      + `IoU ${fmt(r.iou, 3)} (${r.iou_samples})<br>${t.correctness} ${fmt(r.correctness, 3)} (${r.correctness_samples})<br>`
      + `Mapbox ${pct(r.area_mapbox_pct)} · Google ${pct(r.area_google_pct)} ${status}<br>`
      + `${t.supplementary}: ${r.supplementary_rounds} / ${r.max_supplementary_rounds}`;
  }
  fetch(cfg.geojson, {credentials: "same-origin"}).then(r => r.json()).then(fc => {
    layer = L.geoJSON(fc, {
      onEachFeature: (f, l) => {
        const r = rows[f.properties.adcode];
        if (r) l.bindPopup(popup(r));
        l.on("click", () => showHistory(String(f.properties.adcode)));
      },
    }).addTo(map);
    restyle();
    mapEl.dataset.provinces = String(fc.features.length);
    if (fc.features.length) map.fitBounds(layer.getBounds());
  });
  metricSel.addEventListener("change", restyle);

  // --- history charts -----------------------------------------------------------------------
  // One x position per round of the campaign (a province not evaluated in a round has a gap the
  // line spans), the province's values as lines with their points, and the threshold as a line
  // across the whole chart (drawn by the plugin below, so it shows even with a single round).
  const THRESHOLD_COLOUR = "#c62828";
  const thresholdLine = {
    id: "croplayerThreshold",
    afterDatasetsDraw(chart, _args, opts) {
      const y = chart.scales.y, area = chart.chartArea;
      if (opts.value === null || opts.value === undefined || !y || !area) return;
      const py = y.getPixelForValue(opts.value);
      if (py < area.top || py > area.bottom) return;
      const ctx = chart.ctx;
      ctx.save();
      ctx.strokeStyle = THRESHOLD_COLOUR;
      ctx.lineWidth = 2;
      ctx.setLineDash([8, 4]);
      ctx.beginPath();
      ctx.moveTo(area.left, py);
      ctx.lineTo(area.right, py);
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.fillStyle = THRESHOLD_COLOUR;
      ctx.font = "11px sans-serif";
      ctx.textAlign = "right";
      ctx.fillText(`${t.threshold} ${opts.value}`, area.right - 4, py - 4);
      ctx.restore();
    },
  };
  const allRounds = [...new Set(Object.values(data.history).flat().map(p => p.round))].sort((a, b) => a - b);
  const charts = {};
  function lineChart(id, threshold, percent) {
    const el = document.getElementById(id);
    if (!el || !window.Chart) return null;
    return new Chart(el, {
      type: "line",
      data: {labels: [], datasets: []},
      plugins: [thresholdLine],
      options: {
        animation: false, responsive: true, spanGaps: true,
        elements: {line: {borderWidth: 2, tension: 0}, point: {radius: 4, hoverRadius: 6}},
        scales: {
          y: {min: 0, suggestedMax: percent ? 1.2 : 1},
          x: {title: {display: true, text: t.round}, offset: true},
        },
        plugins: {legend: {position: "bottom"}, croplayerThreshold: {value: threshold}},
      },
    });
  }
  charts.iou = lineChart("chart-iou", th.iou_min);
  charts.correctness = lineChart("chart-correctness", th.correctness_min);
  charts.area = lineChart("chart-area", th.area_ratio_min, true);
  function setChart(chart, labels, series) {
    if (!chart) return;
    chart.data.labels = labels;
    chart.data.datasets = series.map(d => ({...d, backgroundColor: d.borderColor, fill: false}));
    chart.update();
  }
  const histSel = document.getElementById("history-province");
  function showHistory(adcode) {
    if (histSel.value !== adcode) histSel.value = adcode;
    const h = data.history[adcode] || [];
    const byRound = new Map(h.map(p => [p.round, p]));
    const labels = allRounds.map(r => "#" + r);
    const pick = (f) => allRounds.map(r => { const p = byRound.get(r); return p ? f(p) : null; });
    setChart(charts.iou, labels, [{label: "IoU", data: pick(p => p.iou), borderColor: "#2e7d32"}]);
    setChart(charts.correctness, labels, [{label: t.correctness, data: pick(p => p.correctness), borderColor: "#1565c0"}]);
    setChart(charts.area, labels, [
      {label: "Mapbox", data: pick(p => p.area_mapbox_pct === null ? null : p.area_mapbox_pct / 100), borderColor: "#6a1b9a"},
      {label: "Google", data: pick(p => p.area_google_pct === null ? null : p.area_google_pct / 100), borderColor: "#e8590c"},
    ]);
    document.querySelector(".charts").dataset.points = String(h.length);
  }
  histSel.addEventListener("change", () => showHistory(histSel.value));
  const firstWithHistory = data.provinces.find(r => (data.history[r.adcode] || []).length);
  if (histSel.options.length) showHistory(firstWithHistory ? String(firstWithHistory.adcode) : histSel.value);

  // --- savings chart ------------------------------------------------------------------------
  const sim = data.savings.simulation;
  const savingsEl = document.getElementById("chart-savings");
  if (savingsEl && window.Chart && sim && sim.active_curve) {
    new Chart(savingsEl, {
      type: "scatter",
      data: {datasets: [
        {label: t.labelling_order, data: sim.active_curve.map(p => ({x: p.labels, y: p.iou})), showLine: true, borderColor: "#2e7d32"},
        {label: t.random_order, data: sim.random_curve.map(p => ({x: p.labels, y: p.iou})), showLine: true, borderColor: "#b00020"},
      ]},
      options: {animation: false, scales: {x: {title: {display: true, text: t.blocks}}, y: {min: 0, max: 1, title: {display: true, text: "IoU"}}}},
    });
  }
})();
