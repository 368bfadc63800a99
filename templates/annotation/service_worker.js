/* The annotation workspace's service worker: the block page opens again without a network, with
 * the block as last seen, and the IndexedDB outbox (workspace/sync.js) sends what waits once
 * it returns.
 *
 * Served by annotation.offline.service_worker at /annotate/sw.js, so its scope is /annotate/.
 * GET only, each network first with the cache as fallback; other methods are never answered here
 * (they go to the network as if there were no worker). The page reports the writes the server
 * confirmed, so the cached sample and labels follow them.
 *   shell  the page's static files (precached on install, refreshed whenever fetched)
 *   data   the workspace pages and their blocks' sample, prediction and labels JSON: the
 *          logged-in person's, so it belongs to one owner (read from the page's config) and is
 *          emptied when another person opens a workspace or the login page shows (logout)
 *   tiles  imagery tiles seen, the newest MAX_TILES; emptied with data (they are the owner's too)
 */
"use strict";
const PRECACHE = {{ precache }};
const STATIC_PREFIX = {{ static_prefix }};
const LOGIN_PATH = {{ login_path }};
const SHELL = "croplayer-shell-v1";
const DATA = "croplayer-data-v1";
const TILES = "croplayer-tiles-v1";
const OWNER_KEY = "/annotate/sw.js?owner"; // a pseudo entry of DATA: whose data it holds
const MAX_DATA = 200;  // about 30 blocks (page, two samples, two predictions, labels)
const MAX_TILES = 1000;

const PAGE = /^\/annotate\/blocks\/\d+\/$/;
const BLOCK_DATA = /^\/api\/blocks\/\d+\/(samples\/[\w-]+\/|sources\/[\w-]+\/prediction\/|labels\/)$/;
const TILE = /^\/api\/blocks\/\d+\/imagery\/[\w-]+\/\d+\/\d+\/\d+\.png$/;

self.addEventListener("install", event => {
  event.waitUntil((async () => {
    const cache = await caches.open(SHELL);
    await cache.addAll(PRECACHE.map(url => new Request(url, { cache: "reload" })));
    await self.skipWaiting();
  })());
});

self.addEventListener("activate", event => {
  event.waitUntil((async () => {
    const keep = new Set([SHELL, DATA, TILES]);
    for (const name of await caches.keys()) {
      if (name.startsWith("croplayer-") && !keep.has(name)) await caches.delete(name);
    }
    await self.clients.claim(); // the page that registered it is served from now on
  })());
});

// ---- owner: whose pages and data the caches hold -------------------------------------------------
let ownerChange = Promise.resolve();
let writes = Promise.resolve(); // block data stored and writes applied, one after the other
async function ownerGet() {
  const res = await (await caches.open(DATA)).match(OWNER_KEY, MATCH);
  return res ? res.text() : null;
}
async function forget() {
  await caches.delete(DATA);
  await caches.delete(TILES);
}
function ownerSet(who) {
  // ``who``: a user name, null (nobody: forget), undefined (unknown: change nothing), or a promise
  // of one. Serialised, and set before the page's answer is handed on: data answers wait for it,
  // so nothing is stored under the previous owner.
  ownerChange = ownerChange.then(async () => {
    const user = await who;
    if (user === undefined || (await ownerGet()) === user) return;
    await forget();
    if (user) await (await caches.open(DATA)).put(OWNER_KEY, new Response(user));
  }).catch(() => {});
  return ownerChange;
}
function userOfPage(html) {
  const m = html.match(/<script id="ws-config" type="application\/json">([\s\S]*?)<\/script>/);
  if (!m) return undefined;
  try { return JSON.parse(m[1]).panel.user || undefined; } catch (_) { return undefined; }
}

// ---- storing, bounded ---------------------------------------------------------------------------
const trimTimers = {};
function trimLater(name, max) {
  // Cache keys come oldest first (a put moves its key to the end).
  if (trimTimers[name]) return;
  trimTimers[name] = setTimeout(async () => {
    delete trimTimers[name];
    const cache = await caches.open(name);
    const keys = (await cache.keys()).filter(r => !r.url.endsWith(OWNER_KEY));
    for (const r of keys.slice(0, Math.max(0, keys.length - max))) await cache.delete(r);
  }, 2000);
}
async function store(name, request, response, max) {
  if (name !== SHELL) {
    await ownerChange;
    if (!(await ownerGet())) return; // nobody known to own it: keep nothing
  }
  await (await caches.open(name)).put(request, response);
  if (max) trimLater(name, max);
}
const MATCH = { ignoreVary: true }; // keyed by URL alone: the caches are one person's anyway
const storable = res => res.ok && res.status === 200 && !res.redirected && res.type === "basic";

async function networkFirst(event, name, max) {
  const request = event.request;
  try {
    const res = await fetch(request);
    if (storable(res)) {
      const copy = res.clone();
      // Block data joins the queue of reported writes, so an older read never lands on a newer copy.
      const put = () => store(name, request, copy, max).catch(() => {});
      event.waitUntil(name === DATA ? (writes = writes.then(put)) : put());
    }
    return res;
  } catch (err) {
    const cached = await (await caches.open(name)).match(request, MATCH);
    if (cached) return cached;
    throw err;
  }
}

async function page(event) {
  const request = event.request;
  let res;
  try {
    res = await fetch(request);
  } catch (err) {
    const cache = await caches.open(DATA);
    const cached = (await cache.match(request, MATCH))
      || (await cache.match(request, { ...MATCH, ignoreSearch: true }));
    if (cached) return cached;
    throw err;
  }
  // A block page only redirects to the login page (handed on unopened, as "opaqueredirect").
  if (res.type === "opaqueredirect" || (res.redirected && new URL(res.url).pathname === LOGIN_PATH)) {
    event.waitUntil(ownerSet(null)); // logged out (or the session ended): forget the last owner's
  } else if (storable(res)) {
    const copy = res.clone();
    const user = copy.clone().text().then(userOfPage);
    event.waitUntil(ownerSet(user).then(async () => {
      if (await user) await store(DATA, request, copy, MAX_DATA);
    }).catch(() => {}));
  }
  return res;
}

// ---- writes: keep the cached sample and labels in step with what the server stored -------------
// The page reports each write the server confirmed (workspace/offline.js, after the outbox got its
// answer); the answer holds the new version and the polygon or label as stored, which is applied
// to the cached copy. When the versions do not follow on (someone else wrote meanwhile), the copy
// is read again; if that fails it is dropped rather than kept stale.
async function cachedJson(url) {
  const res = await (await caches.open(DATA)).match(url, MATCH);
  return res ? res.json() : null;
}
async function putJson(url, data, headers) {
  await store(DATA, new Request(url), new Response(JSON.stringify(data), {
    headers: { "Content-Type": "application/json", ...headers },
  }), MAX_DATA);
}
async function refetch(url) {
  try {
    const res = await fetch(url, { credentials: "same-origin", cache: "no-store" });
    if (storable(res)) { await store(DATA, new Request(url), res, MAX_DATA); return; }
  } catch (_) { /* offline: dropped below */ }
  await (await caches.open(DATA)).delete(url, MATCH);
}
async function sampleSaved(key, { op, polygonId, answer }) {
  const sample = await cachedJson(key);
  if (!sample || answer.version <= sample.version) return; // none, or it already has it
  if (answer.version !== sample.version + 1) { await refetch(key); return; }
  if (op === "negative") sample.features = [];
  else if (op === "delete") sample.features = sample.features.filter(f => f.id !== polygonId);
  else if (answer.polygon) {
    const i = sample.features.findIndex(f => f.id === answer.polygon.id);
    if (i >= 0) sample.features[i] = answer.polygon; else sample.features.push(answer.polygon);
  }
  sample.version = answer.version;
  sample.kind = answer.kind;
  await putJson(key, sample, { ETag: `"${answer.version}"` });
}
async function labelSaved(key, { answer: label }) {
  const labels = await cachedJson(key);
  if (!labels) return;
  if (label.kind === "integration") labels.integration = label;
  else {
    const list = label.kind === "verdict" ? labels.verdicts : labels.coverage;
    const i = list.findIndex(l => l.source === label.source && l.user === label.user);
    if (i >= 0) list[i] = label; else list.push(label);
  }
  await putJson(key, labels, {});
}
function saved(msg) {
  const base = `${self.location.origin}/api/blocks/${Number(msg.block)}/`;
  const key = msg.op === "label" ? `${base}labels/` : `${base}samples/${encodeURIComponent(msg.source)}/`;
  writes = writes.then(() => (msg.op === "label" ? labelSaved(key, msg) : sampleSaved(key, msg)))
    .catch(() => refetch(key));
  return writes;
}

// ---- routing -------------------------------------------------------------------------------------
self.addEventListener("fetch", event => {
  const request = event.request;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.method !== "GET") return; // never answered nor stored here
  if (request.mode === "navigate") {
    if (PAGE.test(url.pathname)) event.respondWith(page(event));
  } else if (url.pathname.startsWith(STATIC_PREFIX)) event.respondWith(networkFirst(event, SHELL));
  else if (BLOCK_DATA.test(url.pathname)) event.respondWith(networkFirst(event, DATA, MAX_DATA));
  else if (TILE.test(url.pathname)) event.respondWith(networkFirst(event, TILES, MAX_TILES));
});

// ---- messages from the page ------------------------------------------------------------------
self.addEventListener("message", event => {
  const msg = event.data || {};
  if (msg.type === "warm") {
    // A page this worker did not serve (its first visit): store the page and what it read
    // (its tiles come from the browser's HTTP cache, mostly).
    event.waitUntil((async () => {
      for (const url of msg.urls || []) {
        try {
          const res = await fetch(url, { credentials: "same-origin" });
          if (!storable(res)) continue;
          if (PAGE.test(new URL(res.url).pathname)) {
            const user = userOfPage(await res.clone().text());
            if (!user) continue;
            await ownerSet(user);
          }
          const tile = TILE.test(new URL(res.url).pathname);
          await store(tile ? TILES : DATA, new Request(url), res, tile ? MAX_TILES : MAX_DATA);
        } catch (_) { /* offline again: the next visit stores it */ }
      }
      if (event.source) event.source.postMessage({ type: "warmed" });
    })());
  } else if (msg.type === "saved") {
    event.waitUntil(saved(msg));
  }
});
