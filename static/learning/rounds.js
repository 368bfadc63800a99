// The rounds page: start a round (admins), watch its progress live over the websocket
// (ws/rounds/<id>/, falling back to polling the progress API), cancel it.
(function () {
  "use strict";
  const t = JSON.parse(document.getElementById("rounds-messages").textContent);
  const csrf = (document.querySelector("input[name=csrfmiddlewaretoken]") || {}).value
    || (document.cookie.match(/csrftoken=([^;]+)/) || [])[1] || "";
  const PRESETS = JSON.parse(document.getElementById("round-presets").textContent);

  function post(url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": csrf, "Accept": "application/json"},
      body: JSON.stringify(body || {}),
    }).then(r => r.json().catch(() => ({})).then(j => ({status: r.status, body: j})));
  }
  function reasonOf(body) {
    if (!body) return "";
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail)) return body.detail.join(" ");
    return Object.entries(body).map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(" ") : v}`).join("; ");
  }

  // --- start ------------------------------------------------------------------------------
  const form = document.getElementById("round-start");
  if (form) {
    form.addEventListener("submit", ev => {
      ev.preventDefault();
      const out = document.getElementById("start-result");
      const scope = form.querySelector("input[name=scope]:checked").value;
      const chosen = [...form.querySelectorAll("input[name=province]:checked")].map(i => Number(i.value));
      if (scope === "chosen" && !chosen.length) { out.textContent = t.choose_province; return; }
      const config = Object.assign({}, PRESETS[form.elements.preset.value] || {});
      config.select_per_province = Number(form.elements.select_per_province.value);
      const extra = form.elements.extra_config.value.trim();
      if (extra) {
        let parsed;
        try { parsed = JSON.parse(extra); } catch (e) { out.textContent = `${t.bad_json}: ${e.message}`; return; }
        if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) { out.textContent = t.bad_json; return; }
        Object.assign(config, parsed);
      }
      const body = {config: config};
      if (scope === "chosen") body.provinces = chosen;
      out.textContent = t.starting;
      document.getElementById("start-button").disabled = true;
      post(form.dataset.url, body).then(({status, body}) => {
        document.getElementById("start-button").disabled = false;
        if (status === 201) {
          location.search = "?round=" + body.round;  // the new round's database id
        } else if (status === 409) {
          // The engine answers with the running round's number and its API link.
          out.innerHTML = "";
          out.append(document.createTextNode(reasonOf(body) + " "));
          const a = document.createElement("a");
          a.href = "?number=" + body.active_round;
          a.id = "conflict-link";
          a.textContent = t.watch_running;
          out.append(a);
        } else {
          out.textContent = `${t.error} (${status}): ${reasonOf(body)}`;
        }
      }).catch(e => { document.getElementById("start-button").disabled = false; out.textContent = String(e); });
    });
  }

  // --- progress ---------------------------------------------------------------------------
  const panel = document.getElementById("round-progress");
  if (!panel) return;
  const roundId = panel.dataset.round;
  const set = (k, v) => { const el = panel.querySelector(`[data-k=${k}]`); if (el) el.textContent = v; };
  function duration(s) {
    if (s === null || s === undefined || !isFinite(s)) return "–";
    s = Math.max(0, Math.round(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    return (h ? h + " h " : "") + (h || m ? m + " min " : "") + sec + " s";
  }
  let last = JSON.parse(document.getElementById("round-snapshot").textContent);
  let receivedAt = Date.now();
  let updates = 0;
  const seen = [];
  function render(msg) {
    last = msg; receivedAt = Date.now();
    if (seen[seen.length - 1] !== msg.state) { seen.push(msg.state); panel.dataset.states = seen.join(" "); }
    set("state_label", msg.state_label || msg.state);
    set("state", msg.state);
    set("stage_done", msg.stage_done);
    set("stage_total", msg.stage_total);
    set("stage_percent", Math.round(msg.stage_percent ?? msg.percent ?? 0));
    set("overall_percent", Math.round(msg.overall_percent ?? 0));
    set("failure_reason", msg.failure_reason || "");
    document.getElementById("bar-stage").style.width = (msg.stage_percent ?? msg.percent ?? 0) + "%";
    document.getElementById("bar-overall").style.width = (msg.overall_percent ?? 0) + "%";
    if (Array.isArray(msg.log_tail)) {
      const log = document.getElementById("round-log");
      log.textContent = msg.log_tail.join("\n");
      log.scrollTop = log.scrollHeight;
    }
    tick();
    // The banner at the top names the running round: it follows the same snapshots, so it
    // never says "running" beside a panel that says done.
    const banner = document.getElementById("active-round");
    if (banner && String(msg.round) === banner.dataset.round) {
      if (msg.active) {
        const st = document.getElementById("active-round-state");
        if (st) st.textContent = msg.state_label || msg.state;
      } else {
        banner.hidden = true;
      }
    }
    const warning = document.getElementById("worker-warning");
    if (warning && String(msg.round) === warning.dataset.round) {
      const text = msg.active ? (msg.worker_warning || "") : "";
      warning.textContent = text;
      warning.hidden = !text;
    }
    const cancel = document.getElementById("cancel-button");
    if (!msg.active) {
      if (cancel) cancel.hidden = true;
      document.getElementById("round-done").hidden = false;
      panel.dataset.final = msg.state;
    }
  }
  function tick() {
    const running = last.active && last.elapsed_s !== null && last.elapsed_s !== undefined;
    const extra = running ? (Date.now() - receivedAt) / 1000 : 0;
    set("elapsed", duration(last.elapsed_s === null || last.elapsed_s === undefined ? null : last.elapsed_s + extra));
    set("eta", last.eta_s === null || last.eta_s === undefined ? "–" : duration(Math.max(0, last.eta_s - extra)));
  }
  render(last);
  setInterval(tick, 1000);

  // Websocket first; while it is down (server restart, network) poll the progress API and
  // try to reconnect, so the panel never freezes on a live round.
  let polling = null;
  let reconnects = 0;
  function startPolling() {
    if (polling) return;
    polling = setInterval(() => {
      fetch(panel.dataset.progressUrl, {credentials: "same-origin"}).then(r => r.json()).then(msg => {
        render(msg);
        if (!msg.active) stopPolling();
      });
    }, 3000);
  }
  function stopPolling() { if (polling) { clearInterval(polling); polling = null; } }
  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws/rounds/${roundId}/`);
    ws.onopen = () => { panel.dataset.ws = "open"; stopPolling(); };
    ws.onmessage = ev => {
      const msg = JSON.parse(ev.data);
      if (msg.event === "progress") set("updates", ++updates);
      render(msg);
      if (!msg.active) ws.close(1000);
    };
    ws.onclose = ev => {
      panel.dataset.ws = "closed";
      if (!last.active || ev.code === 1000 || ev.code === 4401 || ev.code === 4404) return;
      startPolling();
      panel.dataset.reconnects = String(++reconnects);
      setTimeout(() => { if (last.active) connect(); }, Math.min(30000, 2000 * reconnects));
    };
  }
  if (last.active) connect();
  // Events come from workers: with none alive there are none, so the page also asks now and
  // then (a worker that died mid-round shows up as a warning, not as a frozen bar).
  const slow = setInterval(() => {
    if (!last.active) { clearInterval(slow); return; }
    fetch(panel.dataset.progressUrl, {credentials: "same-origin"}).then(r => r.json()).then(render)
      .catch(() => {});
  }, 15000);

  const cancel = document.getElementById("cancel-button");
  if (cancel) {
    cancel.addEventListener("click", () => {
      if (!confirm(t.confirm_cancel)) return;
      const out = document.getElementById("cancel-result");
      post(panel.dataset.cancelUrl, {}).then(({status, body}) => {
        out.textContent = status < 300 ? t.cancelled : `${t.error} (${status}): ${reasonOf(body)}`;
      });
    });
  }
})();
