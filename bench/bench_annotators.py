"""Fifty annotators at once (issue 15, item 3): real HTTP through daphne on 127.0.0.1.

Every simulated annotator has its own user and logs in through the login page (CSRF token from
the form, session cookie), then loops over its blocks as the workspace does:

1. next block: ``POST /api/campaigns/<slug>/next-block/`` (the panel's "next block");
2. open it: the workspace page, the sample of the shown source, the labels and the audit log
   (the page's own data calls), then ``start`` the assignment;
3. draw: create a polygon (``POST .../polygons/`` with If-Match) and edit it once (``PATCH``):
   both are *saves*;
4. label: the coverage type of the source (``PUT .../labels/coverage/<source>/``);
5. submit the assignment, and on to the next block.

Each annotator pauses ``BENCH_THINK_S`` seconds (default 3, ±50 % jitter) between steps, so
a block takes about 12 s: a person reading the image and drawing its fields takes minutes, so
this is a heavier load than fifty real interpreters (about 4 blocks and 8 saves a second). The
run is bounded: ``BLOCKS`` blocks per annotator and a wall limit (``BENCH_WALL_S``, default
240 s; whatever is unfinished then counts as not done, not as an error).

Baseline in the same run, against the same server: one annotator alone doing the same loop.
``ratio`` = save p95 with fifty / save p95 alone. Goals: save p95 ≤ 300 ms, 0 errors.

Both databases, each on a throwaway store: the embedded default (SpatiaLite file and a private
redis-server on a unix socket in ``var/bench-annotators-<pid>-sqlite/``) and PostGIS + Redis
(``BENCH_PG_URL``, default ``postgis://postgres@127.0.0.1:5432/croplayer_bench_annotators``,
dropped and created; ``BENCH_REDIS_URL``, default ``redis://127.0.0.1:6379/14``). Choose with
``BENCH_BACKENDS=sqlite,postgis``.

The clients are threads with one keep-alive ``http.client`` connection each (no async HTTP
client is installed): each request is timed from its send to its last body byte.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


PASSWORD = "bench-pw-123!"
SLUG = "bench-load"
SOURCES = ("mapbox", "google")
LOGINS = threading.Semaphore(2)
STEP = 360 / 2**16  # a zoom-16 block, in degrees (near enough for a benchmark grid)
W0, S0 = 112.0, 30.0


# ---- seeding (a subprocess with Django set up on the throwaway database) ------------------------


def seed(annotators: int, blocks: int) -> dict[str, Any]:
    """``annotators`` users ``ann00``... plus ``solo`` (the baseline), each with ``blocks`` blocks
    assigned (to do); every block's bbox, for drawing inside it."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "croplayer_site.settings")
    django.setup()
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import User
    from django.contrib.gis.geos import Polygon

    from annotation.models import Assignment, AssignmentStatus
    from croplayer_site.roles import roles_ensure
    from mapping.models import Block, Campaign, ImagerySource

    group = roles_ensure()["annotator"]
    hashed = make_password(PASSWORD)  # once: each hash costs about 0.5 s of CPU
    camp = Campaign.objects.create(slug=SLUG, name="Load", region="Hubei", year=2020, zoom=16)
    for slug in SOURCES:
        ImagerySource.objects.create(
            slug=slug, name=slug.title(), kind="synthetic", config={"look": slug, "seed": 7}
        )
    names = [f"ann{i:02d}" for i in range(annotators)] + ["solo"]
    bboxes: dict[int, list[float]] = {}
    for u, name in enumerate(names):
        user = User.objects.create(username=name, password=hashed)
        user.groups.add(group)
        for k in range(blocks):
            row, col = 1000 + u, 5000 + k
            bbox = (W0 + k * STEP, S0 + u * STEP, W0 + (k + 1) * STEP, S0 + (u + 1) * STEP)
            blk = Block.objects.create(
                campaign=camp, row=row, col=col, geometry=Polygon.from_bbox(bbox)
            )
            Assignment.objects.create(
                block=blk, user=user, status=AssignmentStatus.TODO, priority=k + 1
            )
            bboxes[blk.pk] = list(bbox)
    return {"users": names, "bboxes": bboxes}


# ---- one simulated annotator ------------------------------------------------------------------


class Client:
    """One browser: a keep-alive connection, cookies, the CSRF token; every request timed."""

    def __init__(self, host: str, port: int, log: list[tuple[str, float, int, str]]) -> None:
        self.host, self.port, self.log = host, port, log
        self.conn = http.client.HTTPConnection(host, port, timeout=120)
        self.cookies: dict[str, str] = {}

    def request(self, kind: str, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None, form: bool = False) -> tuple[int, bytes]:
        hdrs = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if method != "GET":
            hdrs["X-CSRFToken"] = self.cookies.get("csrftoken", "")
            hdrs["Referer"] = f"http://{self.host}:{self.port}/"
        data = None
        if body is not None:
            if form:
                data = urllib.parse.urlencode(body).encode()
                hdrs["Content-Type"] = "application/x-www-form-urlencoded"
            else:
                data = json.dumps(body).encode()
                hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        for attempt in range(2):
            t0 = time.perf_counter()
            try:
                self.conn.request(method, path, body=data, headers=hdrs)
                res = self.conn.getresponse()
                payload = res.read()
                break
            except (http.client.HTTPException, ConnectionError) as e:
                # A keep-alive connection the server closed: reconnect once, else an error.
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
                if attempt:
                    self.log.append((kind, time.perf_counter() - t0, 0, repr(e)))
                    return 0, b""
        ms = (time.perf_counter() - t0) * 1000
        for raw in res.headers.get_all("Set-Cookie") or []:
            name, _, rest = raw.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        self.log.append((kind, ms, res.status, "" if res.status < 400 else payload[:300].decode(
            "utf-8", "replace")))
        return res.status, payload


def _json(payload: bytes) -> Any:
    return json.loads(payload) if payload else None


def _ring(bbox: list[float], rnd: random.Random, shift: float = 0.0) -> list[list[float]]:
    w, s, e, n = bbox
    cx = w + (e - w) * (0.3 + 0.4 * rnd.random())
    cy = s + (n - s) * (0.3 + 0.4 * rnd.random())
    rx, ry = (e - w) * 0.15, (n - s) * 0.15
    ring = [[cx - rx + shift, cy - ry], [cx + rx, cy - ry], [cx + rx, cy + ry],
            [cx - rx, cy + ry]]
    return [*ring, ring[0]]


class Annotator(threading.Thread):
    def __init__(self, name: str, port: int, bboxes: dict[str, list[float]], blocks: int,
                 think: float, deadline: float, log: list[tuple[str, float, int, str]],
                 ready: threading.Barrier) -> None:
        super().__init__(name=f"annotator-{name}", daemon=True)
        self.ready = ready
        self.user, self.port, self.bboxes, self.blocks = name, port, bboxes, blocks
        self.think, self.deadline = think, deadline
        self.rnd = random.Random(name)
        self.log = log
        self.done_blocks = 0
        self.failure: str | None = None

    def pause(self) -> None:
        if self.think > 0:
            time.sleep(self.think * (0.5 + self.rnd.random()))

    def expect(self, status: int, ok: tuple[int, ...], what: str) -> None:
        if status not in ok:
            raise RuntimeError(f"{what}: HTTP {status}")

    def run(self) -> None:
        c = Client("127.0.0.1", self.port, self.log)
        try:
            try:
                self.login(c)
            finally:
                # Everyone logs in first (password hashing is slow by design, and people log in
                # once a day), then all work at once.
                self.ready.wait(timeout=600)
            while self.done_blocks < self.blocks and time.monotonic() < self.deadline:
                self.one_block(c)
                self.done_blocks += 1
        except Exception as e:  # noqa: BLE001 - the report counts it
            self.failure = f"{self.user}: {e}"
        finally:
            c.conn.close()

    def login(self, c: Client) -> None:
        with LOGINS:  # two at a time: each costs a password hash (about 0.5 s of CPU)
            self._login(c)

    def _login(self, c: Client) -> None:
        st, page = c.request("login_page", "GET", "/accounts/login/")
        self.expect(st, (200,), "login page")
        m = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        if not m:
            raise RuntimeError("no CSRF token in the login form")
        form = {"csrfmiddlewaretoken": m.group(1).decode(), "username": self.user,
                "password": PASSWORD, "next": "/"}
        st, _ = c.request("login", "POST", "/accounts/login/", form, form=True)
        self.expect(st, (302,), "login")
        if "sessionid" not in c.cookies:
            raise RuntimeError("login set no session cookie")

    def one_block(self, c: Client) -> None:
        st, body = c.request("next_block", "POST", f"/api/campaigns/{SLUG}/next-block/")
        self.expect(st, (200, 201), "next block")
        a = _json(body)["assignment"]
        b, aid = a["block"], a["id"]
        src = SOURCES[0]
        # Open: the page, then its data calls (sample, labels, audit), then start the work.
        st, _ = c.request("open_page", "GET", f"/annotate/blocks/{b}/")
        self.expect(st, (200,), "workspace page")
        st, body = c.request("open_sample", "GET", f"/api/blocks/{b}/samples/{src}/")
        self.expect(st, (200,), "sample")
        version = int(_json(body)["version"])
        st, _ = c.request("open_labels", "GET", f"/api/blocks/{b}/labels/")
        self.expect(st, (200,), "labels")
        st, _ = c.request("open_audit", "GET", f"/api/blocks/{b}/audit/")
        self.expect(st, (200,), "audit")
        if a["status"] == "todo":
            st, _ = c.request("start", "POST", f"/api/assignments/{aid}/start/")
            self.expect(st, (200,), "start")
        self.pause()
        # Draw a field, then move one of its corners: two saves.
        bbox = self.bboxes[str(b)]
        st, body = c.request(
            "save", "POST", f"/api/blocks/{b}/samples/{src}/polygons/",
            {"op_id": str(uuid.uuid4()), "geometry": {"type": "Polygon",
                                                     "coordinates": [_ring(bbox, self.rnd)]}},
            headers={"If-Match": f'"{version}"'},
        )  # fmt: skip
        self.expect(st, (201,), "create polygon")
        out = _json(body)
        version = int(out["version"])
        feature = out["polygon"]
        pid = feature.get("id") or feature["properties"]["id"]
        self.pause()
        ring = [list(p) for p in feature["geometry"]["coordinates"][0]]
        dx = (bbox[2] - bbox[0]) * 0.02
        ring[0][0] -= dx
        ring[-1] = list(ring[0])
        st, body = c.request(
            "save", "PATCH", f"/api/blocks/{b}/samples/{src}/polygons/{pid}/",
            {"op_id": str(uuid.uuid4()), "geometry": {"type": "Polygon", "coordinates": [ring]}},
            headers={"If-Match": f'"{version}"'},
        )  # fmt: skip
        self.expect(st, (200,), "edit polygon")
        self.pause()
        st, _ = c.request("label", "PUT", f"/api/blocks/{b}/labels/coverage/{src}/",
                          {"op_id": str(uuid.uuid4()), "coverage_type": "planting"})
        self.expect(st, (200,), "label")
        self.pause()
        st, _ = c.request("submit", "POST", f"/api/assignments/{aid}/submit/")
        self.expect(st, (200,), "submit")


# ---- the measurement --------------------------------------------------------------------------


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return round(v[min(len(v) - 1, max(0, round(q * (len(v) - 1))))], 1)


def _phase(port: int, users: list[str], bboxes: dict[str, list[float]], blocks: int,
           think: float, wall: float) -> dict[str, Any]:
    log: list[tuple[str, float, int, str]] = []
    started: list[float] = []
    ready = threading.Barrier(len(users), action=lambda: started.append(time.monotonic()))
    deadline = time.monotonic() + 600 + wall  # moved to the real deadline once all are in
    threads = [Annotator(u, port, bboxes, blocks, think, deadline, log, ready) for u in users]
    t_login, c0 = time.monotonic(), os.times()
    for t in threads:
        t.start()
    while not started and any(t.is_alive() for t in threads):
        time.sleep(0.05)
    t0 = started[0] if started else time.monotonic()
    for t in threads:
        t.deadline = t0 + wall
    for t in threads:
        t.join(wall + 120)
    elapsed = time.monotonic() - t0
    c1 = os.times()
    by_kind: dict[str, list[float]] = {}
    errors = [(k, st, msg) for k, _, st, msg in log if st == 0 or st >= 400]
    for kind, ms, st, _ in log:
        if 0 < st < 400:
            by_kind.setdefault(kind, []).append(ms)
    saves = by_kind.get("save", [])
    opens = [ms for k, v in by_kind.items() if k.startswith("open_") for ms in v]
    failures = [t.failure for t in threads if t.failure]
    return {
        "annotators": len(users),
        "blocks_done": sum(t.done_blocks for t in threads),
        "blocks_planned": blocks * len(users),
        "login_wall_s": round(t0 - t_login, 1),
        "wall_s": round(elapsed, 1),
        "client_cpu_s": round((c1.user + c1.system) - (c0.user + c0.system), 1),
        "requests": len(log),
        "requests_per_s": round(len(log) / elapsed, 1),
        "errors": len(errors) + len([f for f in failures if "HTTP" not in f]),
        "error_samples": [f"{k} HTTP {st}: {msg[:160]}" for k, st, msg in errors[:5]],
        "failures": failures[:5],
        "save_n": len(saves),
        "save_p50_ms": _pct(saves, 0.5),
        "save_p95_ms": _pct(saves, 0.95),
        "save_max_ms": _pct(saves, 1.0),
        "open_call_p50_ms": _pct(opens, 0.5),
        "open_call_p95_ms": _pct(opens, 0.95),
        "p95_ms_by_kind": {k: _pct(v, 0.95) for k, v in sorted(by_kind.items())},
        "p50_ms_by_kind": {k: _pct(v, 0.5) for k, v in sorted(by_kind.items())},
    }


def _env(var_dir: Path, backend: str) -> dict[str, str]:
    env = dict(os.environ)
    for key in ("DATABASE_URL", "REDIS_URL", "CROPLAYER_SQLITE_PATH"):
        env.pop(key, None)
    env.update(OMP_NUM_THREADS="1", CROPLAYER_VAR_DIR=str(var_dir),
               DJANGO_SETTINGS_MODULE="croplayer_site.settings")
    if backend == "postgis":
        env["DATABASE_URL"] = os.environ.get(
            "BENCH_PG_URL", "postgis://postgres@127.0.0.1:5432/croplayer_bench_annotators")
        env["REDIS_URL"] = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
    return env


def _pg_recreate(url: str) -> None:
    import psycopg

    p = urllib.parse.urlsplit(url)
    name = p.path.lstrip("/")
    admin = urllib.parse.urlunsplit(("postgresql", p.netloc, "/postgres", "", ""))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(urllib.parse.urlunsplit(("postgresql", p.netloc, p.path, "", "")),
                         autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")


def _backend(backend: str, annotators: int, blocks: int, think: float,
             wall: float) -> dict[str, Any]:
    from bench.bench_workspace import _start_server
    from croplayer_site import embedded_redis
    from croplayer_site.processes import process_stop

    var_dir = ROOT / "var" / f"bench-annotators-{os.getpid()}-{backend}"
    shutil.rmtree(var_dir, ignore_errors=True)
    var_dir.mkdir(parents=True)
    env = _env(var_dir, backend)
    redis_proc = server = None
    try:
        if backend == "postgis":
            _pg_recreate(env["DATABASE_URL"])
            import redis

            redis.Redis.from_url(env["REDIS_URL"]).flushdb()
        else:
            sock = embedded_redis.socket_path(var_dir)
            redis_proc = embedded_redis.start(sock, log=sock.with_suffix(".log"))
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
                       cwd=ROOT, env=env, check=True)
        out = subprocess.run(
            [sys.executable, "-m", "bench.bench_annotators", "--seed", str(annotators),
             str(blocks + 1)],
            cwd=ROOT, env=env, check=True, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        seeded = json.loads(out.stdout.strip().splitlines()[-1])
        server, base = _start_server(env, var_dir / "daphne.log")
        port = int(base.rsplit(":", 1)[1])
        bboxes = seeded["bboxes"]
        # Warm up (modules, connections, static): one block by the baseline user, not counted.
        _phase(port, ["solo"], bboxes, 1, 0.0, wall)
        alone = _phase(port, ["solo"], bboxes, blocks, think, wall)
        crowd = _phase(port, seeded["users"][:-1], bboxes, blocks, think, wall)
    finally:
        process_stop(server, timeout=20)
        embedded_redis.stop(redis_proc)
        log = var_dir / "daphne.log"
        if log.exists():  # kept for the errors' tracebacks
            shutil.copy(log, ROOT / "var" / f"bench-annotators-{backend}-daphne.log")
        shutil.rmtree(var_dir, ignore_errors=True)
    return {
        "alone_baseline": alone,
        "fifty": crowd,
        "save_p95_under_300ms": crowd["save_p95_ms"] <= 300,
        "zero_errors": crowd["errors"] == 0 and alone["errors"] == 0,
        "ratio": round(crowd["save_p95_ms"] / alone["save_p95_ms"], 3),
    }


def run(quick: bool) -> dict[str, Any]:
    annotators = int(os.environ.get("BENCH_ANNOTATORS", "10" if quick else "50"))
    blocks = int(os.environ.get("BENCH_BLOCKS", "2" if quick else "4"))
    think = float(os.environ.get("BENCH_THINK_S", "3.0"))
    wall = float(os.environ.get("BENCH_WALL_S", "60" if quick else "240"))
    backends = os.environ.get("BENCH_BACKENDS", "sqlite,postgis").split(",")
    load0 = os.getloadavg()
    result: dict[str, Any] = {
        "annotators": annotators, "blocks_each": blocks, "think_s": think, "wall_limit_s": wall,
        "loadavg_before": [round(x, 2) for x in load0],
    }  # fmt: skip
    for backend in backends:
        result[backend] = _backend(backend, annotators, blocks, think, wall)
    result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    result["ratio"] = max(result[b]["ratio"] for b in backends)
    result["note"] = (
        "save = one polygon write (create or edit) timed by the client from send to the last "
        "byte; ratio = save p95 with all annotators / save p95 of one annotator alone (same "
        "server, same run; the worst backend); goal save p95 <= 300 ms and 0 errors"
    )
    return result


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--seed":
        print(json.dumps(seed(int(sys.argv[2]), int(sys.argv[3]))))
    else:
        sys.exit("usage: python -m bench.bench_annotators --seed ANNOTATORS BLOCKS "
                 "(the benchmark itself runs from bench/run.py)")  # fmt: skip
