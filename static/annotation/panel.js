/* The workspace's labelling panel: verdict and coverage type per source, the integration
 * decision (leads), the block's assignment (start, submit, accept, reject), the "next block"
 * queue and the block's change log. Strings arrive translated in the page config (C.panel).
 *
 * Labels are last-writer-wins values (PUT with an op_id). They go through the workspace's
 * IndexedDB outbox (workspace/sync.js), the same ordered queue as the polygon edits: a label chosen
 * offline waits there, survives a reload, and is sent in its place once the network returns,
 * with its op_id, so the server applies it once. */
(function () {
  "use strict";
  const C = JSON.parse(document.getElementById("ws-config").textContent);
  const P = C.panel;
  const M = P.messages;
  const WS = window.croplayerWorkspace;
  const csrf = document.querySelector("input[name=csrfmiddlewaretoken]").value;
  const fmt = (s, args) => s.replace(/%\((\w+)\)s/g, (_, k) => String(args[k] ?? ""));
  const $ = id => document.getElementById(id);
  const FIELD = { verdict: "verdict", coverage: "coverage_type", integration: "decision" };
  const CHOICES = { verdict: P.verdicts, coverage: P.coverage, integration: P.integration };
  const sourceName = slug => (C.sources.find(s => s.slug === slug) || { name: slug || "" }).name;
  const labelOf = (kind, value) => (CHOICES[kind].find(c => c.value === value) || { label: value }).label;
  const when = iso => (iso ? new Date(iso).toLocaleString(P.lang, { dateStyle: "short", timeStyle: "short" }) : "");

  let labels = { verdicts: [], coverage: [], integration: null };
  let assignments = P.assignments.slice();
  const current = () => (WS ? WS.source() : (C.sources[0] || {}).slug);

  async function api(method, url, body) {
    const res = await fetch(url, {
      method, credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await res.json(); } catch (_) { /* 204 or not JSON */ }
    return { res, data };
  }
  function reasonOf(data, status) {
    if (!data) return `HTTP ${status}`;
    if (data.detail) return String(data.detail);
    return Object.entries(data).map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(" ") : v}`).join("; ");
  }
  function say(id, text, state) {
    const el = $(id);
    el.textContent = text || "";
    el.dataset.state = state || "";
  }

  // ---- labels: through the outbox ------------------------------------------------------------------
  const urlOf = (kind, source) => `/api/blocks/${C.block}/labels/${kind}/${kind === "integration" ? "" : `${source}/`}`;
  const KIND_OF_URL = /\/labels\/(verdict|coverage|integration)\/(?:([\w-]+)\/)?$/;
  const opLabel = op => {
    const [, kind, source] = op.url.match(KIND_OF_URL) || [];
    return kind ? { kind, source: source || null, value: op.body[FIELD[kind]] } : null;
  };

  function provenanceFor(source) {
    // The prediction a verdict judges; for the integration decision, the first source's.
    const p = P.predictions[source] || Object.values(P.predictions)[0] || {};
    return { model_version: p.model_version || "", round_number: p.round_number ?? null };
  }
  function pendingLabel(kind, source, value, body) {
    return { kind, source, value, user: P.user, updated_at: null, model_version: body.model_version,
      round_number: body.round_number, pending: true };
  }
  async function setLabel(kind, value) {
    const source = kind === "integration" ? null : current();
    if (kind !== "integration" && !source) return;
    if (kind === "verdict" && !P.predictions[source]) { say("pn-label-msg", M.noModel, "error"); return; }
    const body = { [FIELD[kind]]: value, ...provenanceFor(source) };
    applyLocal(pendingLabel(kind, source, value, body));
    say("pn-label-msg", M.saving, "saving");
    const op = await WS.enqueueLabel({ url: urlOf(kind, source), body });
    await WS.flush();
    if ((await WS.queuedLabels()).some(o => o.op_id === op.op_id)) say("pn-label-msg", M.queued, "offline");
  }
  function applyLocal(label) {
    if (label.kind === "integration") { labels.integration = label; render(); return; }
    const list = label.kind === "verdict" ? labels.verdicts : labels.coverage;
    const i = list.findIndex(l => l.source === label.source && l.user === label.user);
    if (i >= 0) list[i] = { ...list[i], ...label }; else list.push(label);
    render();
  }
  async function onLabelResult(op, result) {
    if (result.ok) {
      // A newer value for the same label may wait behind it: keep showing that one.
      const mineNext = (await WS.queuedLabels()).some(o => o.url === op.url);
      if (!mineNext) applyLocal({ ...result.data, pending: false });
      say("pn-label-msg", M.saved, "saved");
    } else {
      say("pn-label-msg", fmt(M.error, { reason: result.reason }), "error");
      await loadLabels(); // show what the server holds, not the refused value
    }
    refreshAudit();
  }
  async function adoptOldPending() {
    // Labels an older version of this page left waiting in localStorage join the outbox (same
    // op_id: if one did reach the server, it is not applied twice).
    const key = `croplayer-labels:${P.user}:${C.block}`;
    let old = {};
    try { old = JSON.parse(localStorage.getItem(key) || "{}"); } catch (_) { /* unreadable: none */ }
    for (const item of Object.values(old)) {
      const { op_id: opId, ...body } = item.body;
      await WS.enqueueLabel({ url: urlOf(item.kind, item.source), body, opId });
    }
    localStorage.removeItem(key);
  }

  async function loadLabels() {
    try {
      const { res, data } = await api("GET", `/api/blocks/${C.block}/labels/`);
      if (!res.ok) throw new Error(reasonOf(data, res.status));
      labels = { verdicts: data.verdicts, coverage: data.coverage, integration: data.integration };
    } catch (err) {
      say("pn-label-msg", fmt(M.error, { reason: err.message }), "error");
    }
    // Values still waiting in the outbox are what this person last chose, in order: show them.
    for (const op of await WS.queuedLabels()) {
      const l = opLabel(op);
      if (l) applyLocal(pendingLabel(l.kind, l.source, l.value, op.body));
    }
    if ((await WS.queuedLabels()).length && !navigator.onLine) say("pn-label-msg", M.queued, "offline");
    render();
  }

  // ---- labels: rendering ------------------------------------------------------------------------
  const SEP = " · ";
  function provText(label, kind, others) {
    if (!label) {
      // Not labelled by this person: say so, and what the others said (leads see everyone's).
      if (others && others.length) {
        return fmt(M.noneOthers, { others: others.map(l => `${l.user}: ${labelOf(kind, l.value)}`).join(", ") });
      }
      return M.none;
    }
    // A part left empty (no source for the integration decision) leaves no empty "· ·".
    const by = fmt(M.by, { user: label.user || "?", when: label.pending ? M.saving : when(label.updated_at),
      source: label.source ? sourceName(label.source) : "" });
    const parts = by.split(SEP).map(p => p.trim()).filter(Boolean);
    if (label.model_version) parts.push(fmt(M.model, { model: label.model_version, round: label.round_number ?? "–" }));
    return parts.join(SEP);
  }
  const othersOn = (list, source) => list.filter(l => l.source === source && l.user !== P.user && !l.pending);
  function mark(containerId, value) {
    document.querySelectorAll(`#${containerId} [data-value]`).forEach(b => {
      b.classList.toggle("active", b.dataset.value === value);
      b.setAttribute("aria-pressed", b.dataset.value === value ? "true" : "false");
    });
  }
  function mine(list, source) { return list.find(l => l.source === source && l.user === P.user); }
  function render() {
    const src = current();
    $("pn-label-source").textContent = src ? sourceName(src) : "";
    const pred = P.predictions[src];
    $("pn-prediction").textContent = pred
      ? fmt(M.model, { model: pred.model_version, round: pred.round_number ?? "–" }) : M.noModel;
    const v = mine(labels.verdicts, src);
    const c = mine(labels.coverage, src);
    mark("pn-verdicts", v && v.value);
    // A verdict judges a prediction: none on this source, nothing to judge (the server says so too).
    document.querySelectorAll("#pn-verdicts button").forEach(b => { b.disabled = !pred; });
    mark("pn-coverage", c && c.value);
    $("pn-verdict-prov").textContent = provText(v, "verdict", othersOn(labels.verdicts, src));
    $("pn-coverage-prov").textContent = provText(c, "coverage", othersOn(labels.coverage, src));
    if ($("pn-integration")) {
      mark("pn-integration", labels.integration && labels.integration.value);
      $("pn-integration-prov").textContent = provText(labels.integration);
    }
    renderSummary();
  }
  function renderSummary() {
    // Every label this person may see, per source and person (leads: everyone's).
    const rows = new Map();
    const row = l => {
      const k = `${l.source}|${l.user}`;
      if (!rows.has(k)) rows.set(k, { source: l.source, user: l.user });
      return rows.get(k);
    };
    labels.verdicts.forEach(l => { row(l).verdict = labelOf("verdict", l.value); });
    labels.coverage.forEach(l => { row(l).coverage = labelOf("coverage", l.value); });
    const table = $("pn-summary");
    table.replaceChildren();
    [...rows.values()].sort((a, b) => (a.source + a.user).localeCompare(b.source + b.user)).forEach(r => {
      const tr = table.insertRow();
      [sourceName(r.source), r.verdict || "–", r.coverage || "–", r.user].forEach(t => { tr.insertCell().textContent = t; });
    });
    if (labels.integration) {
      const tr = table.insertRow();
      tr.className = "pn-integration-row";
      const td = tr.insertCell();
      td.colSpan = 3;
      td.textContent = labelOf("integration", labels.integration.value);
      tr.insertCell().textContent = labels.integration.user || "";
    }
  }
  for (const kind of ["verdict", "coverage", "integration"]) {
    const box = $(kind === "verdict" ? "pn-verdicts" : `pn-${kind}`);
    if (!box) continue;
    box.querySelectorAll("[data-value]").forEach(b => b.addEventListener("click", () => setLabel(kind, b.dataset.value)));
  }

  // ---- work flow ----------------------------------------------------------------------------------
  const OPEN = ["todo", "in_progress", "submitted"];
  const own = () => assignments.filter(a => a.user === P.user).sort((a, b) => b.id - a.id)
    .find(a => OPEN.includes(a.status)) || assignments.filter(a => a.user === P.user).sort((a, b) => b.id - a.id)[0];
  const reviewable = () => assignments.filter(a => a.status === "submitted" && a.user !== P.user);
  function renderWork() {
    const box = $("pn-assignments");
    box.replaceChildren();
    if (!assignments.length && !P.lead) {
      box.append(Object.assign(document.createElement("div"), { className: "muted", textContent: M.noAssignment }));
    }
    for (const a of assignments) {
      const div = document.createElement("div");
      div.className = "pn-assignment";
      div.dataset.status = a.status;
      div.dataset.user = a.user;
      const line = document.createElement("div");
      line.append(Object.assign(document.createElement("span"), { className: "pn-badge", textContent: P.statuses[a.status] || a.status }));
      line.append(` ${a.user}`);
      div.append(line);
      if (a.last_review === "rejected" && a.status !== "accepted") {
        div.append(Object.assign(document.createElement("div"), { className: "pn-rejected",
          textContent: fmt(M.rejected, { user: a.reviewed_by || "?", comment: a.review_comment }) }));
      } else if (a.last_review === "accepted") {
        div.append(Object.assign(document.createElement("div"), { className: "pn-accepted",
          textContent: fmt(M.accepted, { user: a.reviewed_by || "?" }) }));
      }
      box.append(div);
    }
    const mineNow = own();
    $("pn-start").hidden = !(mineNow && mineNow.status === "todo");
    $("pn-submit").hidden = !(mineNow && ["todo", "in_progress"].includes(mineNow.status));
    if ($("pn-review")) {
      const todo = reviewable();
      $("pn-review").hidden = !todo.length;
      if (todo.length) $("pn-review").dataset.assignment = todo[0].id;
    }
  }
  async function transition(a, action, body) {
    say("pn-work-msg", M.saving, "saving");
    let out;
    try { out = await api("POST", `/api/assignments/${a.id}/${action}/`, body); }
    catch (err) { say("pn-work-msg", fmt(M.error, { reason: err.message }), "error"); return false; }
    if (!out.res.ok) { say("pn-work-msg", fmt(M.error, { reason: reasonOf(out.data, out.res.status) }), "error"); return false; }
    assignments = assignments.map(x => (x.id === out.data.id ? out.data : x));
    say("pn-work-msg", M.saved, "saved");
    renderWork();
    refreshAudit();
    return true;
  }
  $("pn-start").addEventListener("click", () => transition(own(), "start"));
  $("pn-submit").addEventListener("click", async () => {
    const a = own();
    if (a.status === "todo" && !(await transition(a, "start"))) return;
    await WS.flush(); // labels (and edits) chosen just now go in with the submitted work
    transition(own(), "submit");
  });
  function review(decision) {
    const a = assignments.find(x => String(x.id) === $("pn-review").dataset.assignment);
    const comment = $("pn-comment").value.trim();
    if (decision === "reject" && !comment) {
      say("pn-work-msg", M.commentNeeded, "error");
      $("pn-comment").focus();
      return;
    }
    transition(a, "review", { decision, comment }).then(ok => { if (ok) $("pn-comment").value = ""; });
  }
  if ($("pn-review")) {
    $("pn-accept").addEventListener("click", () => review("accept"));
    $("pn-reject").addEventListener("click", () => review("reject"));
    $("pn-comment").placeholder = M.rejectPrompt;
  }

  async function nextBlock() {
    say("pn-work-msg", M.loading, "saving");
    let out;
    try { out = await api("POST", `/api/campaigns/${P.campaign}/next-block/`); }
    catch (err) { say("pn-work-msg", fmt(M.error, { reason: err.message }), "error"); return; }
    if (out.res.status === 204) { say("pn-work-msg", M.nothingLeft, "idle"); return; }
    if (!out.res.ok) { say("pn-work-msg", fmt(M.error, { reason: reasonOf(out.data, out.res.status) }), "error"); return; }
    const a = out.data.assignment;
    if (a.block === C.block) {
      assignments = assignments.some(x => x.id === a.id) ? assignments.map(x => (x.id === a.id ? a : x)) : [...assignments, a];
      renderWork();
      say("pn-work-msg", M.nextIsThis, "idle");
      return;
    }
    window.location.assign(`/annotate/blocks/${a.block}/`);
  }
  if ($("pn-next")) $("pn-next").addEventListener("click", nextBlock);

  // ---- change log ---------------------------------------------------------------------------------
  function summarize(value) {
    if (value === null || value === undefined) return "–";
    if (typeof value !== "object") return String(value);
    if (value.type && value.coordinates) {
      const count = JSON.stringify(value.coordinates).split("],[").length;
      return fmt(M.geometry, { n: count });
    }
    return JSON.stringify(value);
  }
  function changes(before, after) {
    // The fields that differ, each "field: before → after" (whole geometries are summarised).
    if (!before || typeof before !== "object") before = {};
    if (!after || typeof after !== "object") after = {};
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])];
    return keys.filter(k => JSON.stringify(before[k]) !== JSON.stringify(after[k]))
      .map(k => `${k}: ${summarize(before[k])} → ${summarize(after[k])}`);
  }
  let auditLoading = null;
  async function loadAudit() {
    const list = $("pn-audit-list");
    if (!list.children.length) list.replaceChildren(Object.assign(document.createElement("li"), { textContent: M.loading }));
    let out;
    try { out = await api("GET", `/api/blocks/${C.block}/audit/?limit=50`); }
    catch (err) { list.replaceChildren(Object.assign(document.createElement("li"), { textContent: fmt(M.error, { reason: err.message }) })); return; }
    if (!out.res.ok) { list.replaceChildren(Object.assign(document.createElement("li"), { textContent: fmt(M.error, { reason: reasonOf(out.data, out.res.status) }) })); return; }
    const entries = out.data.results || out.data;
    list.replaceChildren();
    if (!entries.length) list.append(Object.assign(document.createElement("li"), { className: "muted", textContent: M.noAudit }));
    for (const e of entries) {
      const li = document.createElement("li");
      li.dataset.action = e.action;
      const head = document.createElement("div");
      head.className = "pn-audit-head";
      head.append(Object.assign(document.createElement("time"), { dateTime: e.created_at, textContent: when(e.created_at) }), " ",
        Object.assign(document.createElement("strong"), { textContent: e.user }), " ",
        P.actions[e.action] || e.action,
        e.source ? ` · ${sourceName(e.source)}` : "", e.version ? ` · v${e.version}` : "");
      li.append(head);
      const diff = changes(e.before, e.after);
      if (diff.length) {
        const ul = document.createElement("ul");
        ul.className = "pn-diff";
        diff.forEach(d => ul.append(Object.assign(document.createElement("li"), { textContent: d })));
        li.append(ul);
      }
      list.append(li);
    }
    const total = out.data.count;
    if (total > entries.length) list.append(Object.assign(document.createElement("li"), { className: "muted", textContent: fmt(M.more, { n: total - entries.length }) }));
    list.dataset.loaded = String(entries.length);
  }
  function refreshAudit() {
    if (!$("pn-audit").open) return;
    if (!auditLoading) auditLoading = loadAudit().finally(() => { auditLoading = null; });
  }
  $("pn-audit").addEventListener("toggle", refreshAudit);
  $("pn-audit-refresh").addEventListener("click", refreshAudit);

  // ---- keyboard (capture phase: these keys are the panel's, keyboard.js never sees them) ----
  window.addEventListener("keydown", ev => {
    if (ev.target.closest && ev.target.closest("input[type=text], textarea, select")) return;
    if (ev.ctrlKey || ev.metaKey || ev.repeat) return;
    let act = null;
    if (ev.shiftKey && !ev.altKey) {
      const v = P.verdicts.find(c => c.code === ev.code);
      const c = P.coverage.find(x => x.code === ev.code);
      if (v) act = () => setLabel("verdict", v.value);
      else if (c) act = () => setLabel("coverage", c.value);
      else if (ev.code === P.nextKey.code && $("pn-next")) act = nextBlock;
    } else if (ev.altKey && !ev.shiftKey && P.lead) {
      const d = P.integration.find(x => x.code === ev.code);
      if (d) act = () => setLabel("integration", d.value);
    }
    if (!act) return;
    ev.preventDefault();
    ev.stopImmediatePropagation();
    act();
  }, true);

  // ---- start --------------------------------------------------------------------------------------
  WS.onSourceChange(() => render());
  WS.onLabelResult(onLabelResult); // the workspace sends the outbox (also when the network returns)
  window.croplayerPanel = { loadLabels, refreshAudit };
  renderWork();
  render();
  adoptOldPending().then(loadLabels).then(() => WS.flush())
    .then(() => { document.getElementById("ws").dataset.panelReady = "1"; performance.mark("ws-panel-ready"); });
})();
