"""A queued change names its author (X-Croplayer-User); under another person's session: 409."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from django.test import Client

from tests.factories import user_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def zhang(db):
    u = user_make("张三", role="annotator")
    return u


def test_a_change_sent_as_someone_else_is_kept_out(users, zhang, login):
    c = login("lead")
    url = "/api/blocks/999999/labels/verdict/mapbox/"
    r = c.put(url, {"verdict": "tp"}, content_type="application/json",
              headers={"X-Croplayer-User": quote("张三")})  # fmt: skip
    assert r.status_code == 409
    assert r.json()["code"] == "other_user" and "张三" in r.json()["detail"]
    # Its own author, no header, or a read: the request goes on (here: no such block).
    for headers in ({"X-Croplayer-User": "lead"}, {}):
        r = c.put(url, {"verdict": "tp"}, content_type="application/json", headers=headers)
        assert r.status_code == 404
    assert c.get(url, headers={"X-Croplayer-User": "someone"}).status_code in (404, 405)
    c.force_login(zhang)
    r = c.put(url, {"verdict": "tp"}, content_type="application/json",
              headers={"X-Croplayer-User": quote("张三")})  # fmt: skip
    assert r.status_code == 404


def test_nobody_logged_in_is_told_so_not_other_user(db):
    r = Client().put(
        "/api/blocks/1/labels/verdict/mapbox/",
        {"verdict": "tp"},
        content_type="application/json",
        headers={"X-Croplayer-User": "annotator"},
    )
    assert r.status_code == 403 and r.json()["code"] == "not_authenticated"
