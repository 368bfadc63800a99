/* The status line: saved, saving, offline, error, and the sample's summary. */
import { M, fmt } from "./config.js";
import { drawn } from "./map.js";
import { state, versions } from "./state.js";
import { outboxAll } from "./store.js";

export function setStatus(mode, text) {
  const el = document.getElementById("ws-status");
  el.dataset.state = mode;
  el.textContent = text;
}
export async function updateStatus() {
  if (state.conflict) return;
  const v = versions[state.source];
  const waiting = (await outboxAll()).length;
  if (!navigator.onLine && waiting) setStatus("offline", fmt(M["offline: %(n)s change(s) waiting"], { n: waiting }));
  else if (waiting && typeof state.sessionEnded === "string") setStatus("error", fmt(M["%(n)s change(s) made by %(user)s are kept: log in as %(user)s (e.g. in another tab) to send them"], { n: waiting, user: state.sessionEnded }));
  else if (waiting && state.sessionEnded) setStatus("error", fmt(M["your session has ended: log in again (e.g. in another tab); %(n)s change(s) are kept and sent then"], { n: waiting }));
  else if (waiting) setStatus("saving", M["saving…"]);
  else if (state.lastError) setStatus("error", state.lastError);
  else if (v && v.server > 0) setStatus("saved", fmt(M["saved v%(v)s"], { v: v.server }));
  else setStatus("idle", M["not saved yet"]);
  const kind = state.sampleKind === "negative" ? M["negative sample (no cropland)"]
    : state.sampleKind === "positive" ? M["positive sample"] : M["no sample yet"];
  document.getElementById("ws-sample").textContent =
    `${state.source || ""} · ${kind} · ${fmt(M["%(n)s polygon(s)"], { n: drawn.getLayers().length })}`;
  document.getElementById("ws-status").dataset.version = v ? v.server : "";
}
