"""The sample's GeoJSON read in bulk is the same as the one-polygon path, holes included."""

from __future__ import annotations

import pytest
from django.contrib.gis.geos import Polygon

from annotation.models import AgreementPolygon, AgreementSample, Sample, SamplePolygon
from annotation.selectors import (
    PRIMARY,
    SampleCopy,
    polygon_feature,
    polygons_to_geojson,
    sample_feature_collection,
)

pytestmark = pytest.mark.django_db

OUTER = [(112.51, 30.31), (112.52, 30.31), (112.52, 30.32), (112.51, 30.32), (112.51, 30.31)]
HOLE_A = [(112.512, 30.312), (112.514, 30.312), (112.514, 30.314), (112.512, 30.312)]
HOLE_B = [(112.516, 30.316), (112.518, 30.316), (112.518, 30.318), (112.516, 30.316)]
# Coordinates that need all 17 significant digits: nothing may be rounded on the way out.
ODD = [
    (112.53000000000001, 30.330000000000002),
    (112.5412345678901, 30.33),
    (112.54, 30.341234567890123),
    (112.53000000000001, 30.330000000000002),
]


def _polygons(model, sample, users):
    shapes = [Polygon(OUTER, HOLE_A, HOLE_B), Polygon(ODD), Polygon(OUTER, HOLE_B)]
    made = []
    for i, shape in enumerate(shapes):
        shape.srid = 4326
        made.append(
            model.objects.create(
                sample=sample,
                geometry=shape,
                subtype=["paddy", "terraces", "greenhouse"][i],
                created_by=users["annotator"],
                updated_by=users["lead"] if i == 1 else None,
                model_version="seg-3" if i == 2 else "",
                round_number=2 if i == 2 else None,
            )
        )
    return made


@pytest.mark.parametrize("agreement", [False, True])
def test_bulk_features_equal_the_one_polygon_path(users, block, sources, agreement):
    source = sources["mapbox"]
    if agreement:
        copy = SampleCopy(annotator=users["annotator"])
        sample = AgreementSample.objects.create(
            block=block, source=source, annotator=users["annotator"], kind="positive", version=4
        )
        made = _polygons(AgreementPolygon, sample, users)
    else:
        copy = PRIMARY
        sample = Sample.objects.create(block=block, source=source, kind="positive", version=4)
        made = _polygons(SamplePolygon, sample, users)
        # Another source's polygons are not this sample's.
        other = Sample.objects.create(block=block, source=sources["google"], kind="positive")
        SamplePolygon.objects.create(sample=other, geometry=Polygon(OUTER, srid=4326))

    data = sample_feature_collection(block=block, source=source, copy=copy)

    expected = [polygon_feature(polygon=p, source=source) for p in made]
    assert data["features"] == expected
    assert data["version"] == 4 and data["agreement"] is agreement
    first = data["features"][0]["geometry"]["coordinates"]
    assert [len(r) for r in first] == [5, 4, 4]  # the exterior, then both holes, in order
    assert data["features"][1]["geometry"]["coordinates"][0] == [list(p) for p in ODD]
    assert data["features"][1]["properties"]["updated_by"] == "lead"
    assert data["features"][2]["properties"]["round_number"] == 2


def test_no_polygons_is_an_empty_list():
    assert polygons_to_geojson([]) == []
