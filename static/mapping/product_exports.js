// Product exports: start a job, follow its progress over the job websocket, reload when done.
(function () {
  "use strict";
  const form = document.getElementById("export-form");
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  function follow(row) {
    const job = row.dataset.job;
    const ws = new WebSocket(`${proto}//${location.host}/ws/jobs/${job}/`);
    ws.onmessage = (ev) => {
      const e = JSON.parse(ev.data);
      row.querySelector("[data-k=status]").textContent = e.status + (e.failure_reason ? `: ${e.failure_reason}` : "");
      row.querySelector("[data-k=progress]").textContent = `${e.stage} ${e.done} / ${e.total}`;
      if (e.status === "done" || e.status === "failed") { ws.close(); location.reload(); }
    };
  }
  document.querySelectorAll("#exports tr[data-job]").forEach((row) => {
    const status = row.querySelector("[data-k=status]").textContent.trim();
    if (status === "queued" || status === "running") follow(row);
  });
  if (!form) return;
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    const body = {kind: data.get("kind")};
    if (body.kind === "province" && data.get("province")) body.province = Number(data.get("province"));
    const resp = await fetch(form.dataset.api, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": data.get("csrfmiddlewaretoken")},
      body: JSON.stringify(body),
    });
    const out = await resp.json();
    if (!resp.ok) {
      document.getElementById("export-message").textContent = out.detail || JSON.stringify(out);
      return;
    }
    location.reload();
  });
})();
