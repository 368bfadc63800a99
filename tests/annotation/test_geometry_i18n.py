"""Geometry rule reasons reach the interpreter in their language: the rules are a pure core
(English, with the message and its parts kept apart), and the API translates them."""

from __future__ import annotations

import uuid

import pytest

from annotation.geometry import GeometryRejected, Phrase, polygon_clean
from annotation.models import SamplePolygon

pytestmark = pytest.mark.django_db

BOUNDS = (112.5, 30.3, 112.55, 30.35)
OPEN_HOLE = {
    "type": "Polygon",
    "coordinates": [
        [[112.51, 30.31], [112.52, 30.31], [112.52, 30.32], [112.51, 30.32], [112.51, 30.31]],
        [[112.512, 30.312], [112.514, 30.312], [112.514, 30.314], [112.513, 30.313]],
    ],
}
OUTSIDE = {
    "type": "Polygon",
    "coordinates": [[[113.0, 31.0], [113.01, 31.0], [113.01, 31.01], [113.0, 31.0]]],
}


def test_the_core_keeps_the_message_and_its_parts_apart():
    with pytest.raises(GeometryRejected) as e:
        polygon_clean(OPEN_HOLE, bounds=BOUNDS)
    assert e.value.reason == "hole 1: the ring is not closed (last position must equal first)"
    assert e.value.phrase.params["name"] == Phrase("hole %(n)s", {"n": 1})
    marked = e.value.phrase.render(lambda m: f"<{m}>")  # each part goes through the translator
    assert marked == "<<hole 1>: the ring is not closed (last position must equal first)>"


@pytest.mark.parametrize(
    ("geometry", "english", "chinese"),
    [
        (OPEN_HOLE, "hole 1: the ring is not closed", "孔洞 1"),
        (OUTSIDE, "the polygon lies outside the block", "多边形在图块之外"),
    ],
)
def test_the_api_says_why_in_the_readers_language(
    users, block, sources, geometry, english, chinese, login
):
    c = login("annotator")
    url = f"/api/blocks/{block.pk}/samples/mapbox/polygons/"
    body = {"op_id": str(uuid.uuid4()), "geometry": geometry}
    for language, expected in (("en", english), ("zh-hans", chinese)):
        r = c.post(
            url,
            body,
            content_type="application/json",
            headers={"If-Match": '"0"', "Accept-Language": language},
        )
        assert r.status_code == 400, r.content
        assert expected in r.json()["geometry"][0], (language, r.json())
    assert not SamplePolygon.objects.exists()


def test_a_crossing_outline_is_named_in_words_and_its_place_given_apart(
    users, block, sources, login
):
    """Not GEOS's "invalid polygon: Self-intersection[112.37… 29.22…]": what is wrong in the
    reader's language, and the place as numbers for the workspace to mark on the map."""
    bowtie = {
        "type": "Polygon",
        "coordinates": [
            [[112.51, 30.31], [112.52, 30.32], [112.52, 30.31], [112.51, 30.32], [112.51, 30.31]]
        ],
    }
    c = login("annotator")
    url = f"/api/blocks/{block.pk}/samples/mapbox/polygons/"
    for language, expected in (("en", "the outline crosses"), ("zh-hans", "轮廓自相交")):
        r = c.post(
            url,
            {"op_id": str(uuid.uuid4()), "geometry": bowtie},
            content_type="application/json",
            headers={"If-Match": '"0"', "Accept-Language": language},
        )
        assert r.status_code == 400, r.content
        message = r.json()["geometry"][0]
        assert expected in message, (language, message)
        assert "Self-intersection" not in message and "112.5" not in message
        assert [float(v) for v in r.json()["location"]] == pytest.approx([112.515, 30.315])
    assert not SamplePolygon.objects.exists()
