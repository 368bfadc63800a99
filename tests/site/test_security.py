"""Websocket and session security, against the real stack.

Websockets go through daphne (a real server process) with a raw handshake, so the Origin,
Host and Cookie headers are exactly what a browser on another site could send. Unsafe API
calls on a session need the CSRF token and a same-origin Origin."""

from __future__ import annotations

import base64
import json
import os
import socket
import uuid
from dataclasses import dataclass
from urllib.parse import urlparse

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.gis.geos import Polygon
from django.test import Client

from annotation.models import Assignment, AssignmentStatus, VerdictLabel
from mapping.models import Block, Campaign, ImagerySource
from tests.factories import current_prediction_make


@dataclass
class Socket:
    sock: socket.socket
    reply: bytes  # what the server sent so far, starting with its reply head

    @property
    def status(self) -> int:
        return int(self.reply.split(b" ", 2)[1])

    def text_frame(self) -> dict:
        """One unmasked text frame from the server (short payloads only)."""
        rest = self.reply.split(b"\r\n\r\n", 1)[1]
        while len(rest) < 2:
            rest += self.sock.recv(4096)
        assert rest[0] == 0x81, rest[:2]  # FIN + text
        n = rest[1] & 0x7F
        assert n < 126
        while len(rest) < 2 + n:
            rest += self.sock.recv(4096)
        return json.loads(rest[2 : 2 + n])


def _handshake(base: str, path: str, *, origin: str | None, cookie: str | None) -> Socket:
    """Open a websocket the way a browser does, and read the server's reply head."""
    u = urlparse(base)
    sock = socket.create_connection((u.hostname, u.port), timeout=10)
    head = [
        f"GET {path} HTTP/1.1",
        f"Host: {u.netloc}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}",
        "Sec-WebSocket-Version: 13",
    ]
    if origin is not None:
        head.append(f"Origin: {origin}")
    if cookie is not None:
        head.append(f"Cookie: {cookie}")
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return Socket(sock=sock, reply=data)


def _accepted_and_receives(base: str, cookie: str, job: str) -> None:
    ws = _handshake(base, f"/ws/jobs/{job}/", origin=base, cookie=cookie)
    try:
        assert ws.status == 101, ws.reply
        layer = get_channel_layer()
        for _ in range(50):  # the consumer joins its group right after the handshake
            async_to_sync(layer.group_send)(
                f"job.{job}", {"type": "job.progress", "job": job, "ok": 2}
            )
            ws.sock.settimeout(0.2)
            try:
                ws.reply += ws.sock.recv(4096)
            except TimeoutError:
                continue
            break
        ws.sock.settimeout(10)
        assert ws.text_frame() == {"job": job, "ok": 2}
    finally:
        ws.sock.close()


def _refused(base: str, job: str, *, origin: str | None, cookie: str | None) -> None:
    ws = _handshake(base, f"/ws/jobs/{job}/", origin=origin, cookie=cookie)
    try:
        assert ws.status == 403, (origin, cookie, ws.reply)
    finally:
        ws.sock.close()


@pytest.mark.django_db(transaction=True)
def test_websockets_only_from_this_origin_and_with_a_session(users, asgi_server, session_cookie):
    """Through daphne: a same-origin websocket with a session is accepted and gets messages
    sent through the channel layer; from another origin (which can still make the browser
    send the session cookie), with a null or no Origin, the handshake is refused (403) before
    any consumer runs; without a session (or a forged one) the consumer refuses it."""
    from mapping.models import FetchRun
    from mapping.services.members import campaign_members_add

    camp = Campaign.objects.create(slug="sec-ws", name="W", region="t", year=2020)
    campaign_members_add(campaign=camp, users=[users["lead"]])
    source = ImagerySource.objects.create(slug="mapbox", name="Mapbox", kind="synthetic")
    job = f"fetch-{FetchRun.objects.create(campaign=camp, source=source).pk}"
    session = session_cookie("lead")
    _accepted_and_receives(asgi_server, session, job)
    for origin in ("https://evil.example", "http://127.0.0.1.evil.example", "null", None):
        _refused(asgi_server, job, origin=origin, cookie=session)
    for cookie in (None, "sessionid=forged-not-a-session"):
        _refused(asgi_server, job, origin=asgi_server, cookie=cookie)


# --- CSRF on session-authenticated API calls ---------------------------------------------------


@pytest.fixture
def labelled_block(db, users):
    c = Campaign.objects.create(slug="sec", name="Sec", region="Hubei", year=2020)
    b = Block.objects.create(
        campaign=c, row=2406, col=5850, geometry=Polygon.from_bbox((112.5, 30.3, 112.55, 30.35))
    )
    src = ImagerySource.objects.create(slug="mapbox", name="Mapbox", kind="synthetic")
    Assignment.objects.create(block=b, user=users["annotator"], status=AssignmentStatus.TODO)
    current_prediction_make(blocks=[b], sources=[src])  # a verdict judges a prediction
    return b


def _logged_in(users) -> tuple[Client, str]:
    """A browser-like client: real login form, CSRF checks on, and the token it was given."""
    c = Client(enforce_csrf_checks=True)
    login = c.get("/accounts/login/")
    token = login.cookies["csrftoken"].value
    r = c.post(
        "/accounts/login/",
        {"username": "annotator", "password": "annotator-pw-123!", "csrfmiddlewaretoken": token},
    )
    assert r.status_code == 302, r.content[:300]
    return c, c.cookies["csrftoken"].value


def test_unsafe_session_calls_need_the_csrf_token(users, labelled_block):
    c, token = _logged_in(users)
    url = f"/api/blocks/{labelled_block.pk}/labels/verdict/mapbox/"
    body = {"verdict": "tp"}
    r = c.put(url, body, content_type="application/json")
    assert r.status_code == 403 and "CSRF" in r.json()["detail"]
    r = c.put(url, body, content_type="application/json", headers={"X-CSRFToken": "x" * 64})
    assert r.status_code == 403 and "CSRF" in r.json()["detail"]
    sample = f"/api/blocks/{labelled_block.pk}/samples/mapbox/polygons/"
    poly = {
        "op_id": str(uuid.uuid4()),
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[112.51, 30.31], [112.52, 30.31], [112.52, 30.32], [112.51, 30.31]]],
        },
    }
    r = c.post(sample, poly, content_type="application/json", headers={"If-Match": '"0"'})
    assert r.status_code == 403 and "CSRF" in r.json()["detail"]
    assert not VerdictLabel.objects.exists()
    # reads need no token
    assert c.get(f"/api/blocks/{labelled_block.pk}/labels/").status_code == 200
    # the same calls with the token pass
    ok = c.put(url, body, content_type="application/json", headers={"X-CSRFToken": token})
    assert ok.status_code == 200, ok.content
    assert VerdictLabel.objects.get().verdict == "tp"
    r = c.post(
        sample,
        poly,
        content_type="application/json",
        headers={"If-Match": '"0"', "X-CSRFToken": token},
    )
    assert r.status_code == 201, r.content


def test_a_foreign_origin_is_refused_even_with_the_token(users, labelled_block):
    c, token = _logged_in(users)
    url = f"/api/blocks/{labelled_block.pk}/labels/verdict/mapbox/"
    r = c.put(
        url,
        {"verdict": "fp"},
        content_type="application/json",
        headers={"X-CSRFToken": token, "Origin": "https://evil.example"},
    )
    assert r.status_code == 403 and "Origin checking failed" in r.json()["detail"]
    assert not VerdictLabel.objects.exists()
    same = c.put(
        url,
        {"verdict": "fp"},
        content_type="application/json",
        headers={"X-CSRFToken": token, "Origin": "http://testserver"},
    )
    assert same.status_code == 200


def test_logout_needs_post_with_token(users, labelled_block):
    c, token = _logged_in(users)
    assert c.post("/accounts/logout/").status_code == 403  # no token: still logged in
    assert c.get(f"/api/blocks/{labelled_block.pk}/labels/").status_code == 200
    assert c.post("/accounts/logout/", {"csrfmiddlewaretoken": token}).status_code in (200, 302)
    assert c.get(f"/api/blocks/{labelled_block.pk}/labels/").status_code == 403
