"""Simultaneous writers against the real server (daphne, its own process and connections): they
wait their turn, never get 500 "database is locked", and If-Match still picks exactly one winner.

Sessions are real (a session row in the test database, its cookie and a CSRF token sent over
HTTP); the requests are released together by a barrier from one thread per writer.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.contrib.auth.models import User
from django.contrib.gis.geos import Polygon

from annotation.models import Assignment, AssignmentStatus, Sample, SamplePolygon
from croplayer_site.roles import roles_ensure
from mapping.models import Block, Campaign
from tests.annotation.conftest import square

CSRF = "c" * 32  # a well-formed CSRF secret: sent as the cookie and as X-CSRFToken


class Http:
    """One person's browser: their session cookie, JSON over a real socket."""

    def __init__(self, base: str, session: str) -> None:
        self.base = base
        self.cookie = f"{session}; csrftoken={CSRF}"

    def send(
        self, method: str, path: str, body: dict | None = None, if_match: int | None = None
    ) -> tuple[int, dict, dict | str]:
        headers = {"Cookie": self.cookie, "X-CSRFToken": CSRF, "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if if_match is not None:
            headers["If-Match"] = f'"{if_match}"'
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                status, head, raw = r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            status, head, raw = e.code, dict(e.headers), e.read()
        try:
            return status, head, json.loads(raw)
        except ValueError:
            return status, head, raw.decode(errors="replace")[:500]


def _together(n: int, work) -> list:
    """Run ``work(i)`` in n threads, all released at the same moment."""
    barrier = threading.Barrier(n)

    def run(i: int):
        barrier.wait(timeout=60)
        return work(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def _writers(n: int) -> tuple[list[User], list[Block]]:
    """n annotators, each with a block of their own (in progress)."""
    group = roles_ensure()["annotator"]
    campaign = Campaign.objects.create(slug="busy", name="Busy", region="Hubei", year=2020)
    people, blocks = [], []
    for i in range(n):
        u = User.objects.create_user(f"writer{i}")
        u.groups.add(group)
        x = 112.5 + 0.05 * i
        b = Block.objects.create(
            campaign=campaign,
            row=2386,
            col=5850 + i,
            geometry=Polygon.from_bbox((x, 30.3, x + 0.05, 30.35)),
        )
        Assignment.objects.create(block=b, user=u, status=AssignmentStatus.IN_PROGRESS)
        people.append(u)
        blocks.append(b)
    return people, blocks


def _inside(block: Block, k: int) -> dict:
    """A small square inside the block, a little further east for each k."""
    x0, y0, _, _ = block.geometry.extent
    x = x0 + 0.002 + 0.003 * k
    return square(x, y0 + 0.01, x + 0.002, y0 + 0.012)


def _statuses(results) -> Counter:
    return Counter(status for status, _, _ in results)


WRITERS = 6
ROUNDS = 4


def test_writes_to_different_blocks_at_the_same_moment_all_succeed(
    asgi_server, sources, session_cookie
):
    """6 people, each drawing on their own block, all at the same moment, 4 times over: every
    write is 201 and every version comes out right (the probe saw one 500 in every run of 2)."""
    people, blocks = _writers(WRITERS)
    browsers = [Http(asgi_server, session_cookie(u)) for u in people]

    def draw(i: int, k: int):
        return browsers[i].send(
            "POST",
            f"/api/blocks/{blocks[i].pk}/samples/mapbox/polygons/",
            {"op_id": str(uuid.uuid4()), "geometry": _inside(blocks[i], k)},
            if_match=k,  # each write of a person follows their previous one
        )

    for k in range(ROUNDS):
        results = _together(WRITERS, lambda i, k=k: draw(i, k))
        assert _statuses(results) == {201: WRITERS}, [r for r in results if r[0] != 201]
        assert [r[2]["version"] for r in results] == [k + 1] * WRITERS
    assert SamplePolygon.objects.count() == WRITERS * ROUNDS
    assert sorted(Sample.objects.values_list("version", flat=True)) == [ROUNDS] * WRITERS


EDITORS = 20


def test_same_if_match_edits_at_the_same_moment_one_wins_the_rest_412(
    asgi_server, sources, session_cookie
):
    """20 edits of one polygon, all sent against the same version at the same moment: one 200,
    19 × 412 with the winner's version (the probe saw one 200 and 17 × 500), no 5xx."""
    people, blocks = _writers(1)
    browser = Http(asgi_server, session_cookie(people[0]))
    url = f"/api/blocks/{blocks[0].pk}/samples/mapbox/polygons/"
    status, _, made = browser.send(
        "POST", url, {"op_id": str(uuid.uuid4()), "geometry": _inside(blocks[0], 0)}, if_match=0
    )
    assert status == 201, made
    pid = made["polygon"]["id"]

    def edit(i: int):
        return browser.send(
            "PATCH",
            f"{url}{pid}/",
            {"op_id": str(uuid.uuid4()), "geometry": _inside(blocks[0], 1 + i % 5)},
            if_match=1,
        )

    results = _together(EDITORS, edit)
    assert _statuses(results) == {200: 1, 412: EDITORS - 1}, [
        r for r in results if r[0] not in (200, 412)
    ]
    assert {r[2]["version"] for r in results} == {2}
    assert {r[1]["ETag"] for r in results} == {'"2"'}
    assert Sample.objects.get().version == 2



class LockElsewhere:
    """Another connection that takes the lock a polygon write needs and holds it; meanwhile
    this process gives up waiting for it after half a second (instead of 30 s): SQLite's write
    lock with a short busy timeout, or PostgreSQL's table lock with a lock_timeout."""

    def __init__(self, monkeypatch) -> None:
        from django.db import connection

        self.monkeypatch = monkeypatch
        self.connection = connection
        self.other = None

    def take(self) -> None:
        opts = self.connection.settings_dict
        if self.connection.vendor == "sqlite":
            import sqlite3

            self.other = sqlite3.connect(opts["NAME"], isolation_level=None)
            self.other.execute("BEGIN IMMEDIATE")
            self.monkeypatch.setitem(opts["OPTIONS"], "timeout", 0.5)
            self.connection.close()  # reconnects with the short timeout
        else:
            import psycopg

            self.other = psycopg.connect(
                dbname=opts["NAME"],
                user=opts["USER"],
                password=opts["PASSWORD"] or None,
                host=opts["HOST"],
                port=opts["PORT"] or None,
            )
            self.other.execute("LOCK TABLE annotation_sample IN EXCLUSIVE MODE")
            with self.connection.cursor() as cur:
                cur.execute("SET lock_timeout = '500ms'")

    def release(self) -> None:
        if self.other is not None:
            self.other.rollback()
            self.other.close()
            self.other = None


@pytest.fixture
def lock_elsewhere(transactional_db, monkeypatch):
    lock = LockElsewhere(monkeypatch)
    yield lock
    lock.release()
    from django.db import connection

    connection.close()  # the next test connects with the usual settings


def test_a_write_that_cannot_get_the_lock_is_503_with_retry_after(
    users, blocks, sources, lock_elsewhere, login
):
    """Past the wait, the writer is told the database is busy (503, Retry-After, JSON with a
    reason in the user's language), nothing is half written, and the same request succeeds
    once the lock is free."""
    c = login("annotator")
    body = {"op_id": str(uuid.uuid4()), "geometry": _inside(blocks[0], 0)}
    url = f"/api/blocks/{blocks[0].pk}/samples/mapbox/polygons/"
    headers = {"If-Match": '"0"'}

    lock_elsewhere.take()
    r = c.post(url, body, content_type="application/json", headers=headers)
    assert r.status_code == 503, r.content
    assert r["Retry-After"] == "2"
    assert r.json()["code"] == "database_busy"
    assert "busy" in r.json()["detail"]
    zh_headers = {**headers, "Accept-Language": "zh-hans"}
    zh = c.post(url, body, content_type="application/json", headers=zh_headers)
    assert zh.status_code == 503 and "繁忙" in zh.json()["detail"]

    lock_elsewhere.release()
    assert (Sample.objects.count(), SamplePolygon.objects.count()) == (0, 0)
    r = c.post(url, body, content_type="application/json", headers=headers)
    assert r.status_code == 201, r.content
