"""Geometry rules: what is rejected (with which reason), what is clipped, and properties."""

from __future__ import annotations

import math

import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Polygon, mapping

from annotation.geometry import (
    MAX_VERTICES,
    MIN_AREA_DEG2,
    GeometryRejected,
    polygon_clean,
    polygon_to_geojson,
)

BOUNDS = (112.5, 30.3, 112.55, 30.35)
W, S, E, N = BOUNDS
BLOCK = shapely.box(*BOUNDS)


def gj(*rings):
    return {"type": "Polygon", "coordinates": [[list(p) for p in r] for r in rings]}


def square(x0, y0, x1, y1):
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]


def reason(geometry, **kw) -> str:
    with pytest.raises(GeometryRejected) as e:
        polygon_clean(geometry, bounds=BOUNDS, **kw)
    return e.value.reason


def test_polygon_inside_is_kept_and_oriented_counter_clockwise():
    clockwise = square(112.51, 30.31, 112.52, 30.32)[::-1]
    hole = square(112.512, 30.312, 112.514, 30.314)
    p = polygon_clean(gj(clockwise, hole), bounds=BOUNDS)
    assert p.exterior.is_ccw and not p.interiors[0].is_ccw
    assert p.area == pytest.approx(0.01**2 - 0.002**2)
    assert shapely.equals(p, Polygon(clockwise, [hole]))


def test_height_is_dropped():
    ring = [(x, y, 12.5) for x, y in square(112.51, 30.31, 112.52, 30.32)]
    assert not polygon_clean(gj(ring), bounds=BOUNDS).has_z


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_coordinates_are_rejected(bad):
    ring = square(112.51, 30.31, 112.52, 30.32)
    ring[2] = (bad, 30.32)
    assert "finite" in reason(gj(ring))


@pytest.mark.parametrize(
    ("geometry", "words"),
    [
        ({"type": "Point", "coordinates": [112.51, 30.31]}, "not 'Point'"),
        (
            {"type": "MultiPolygon", "coordinates": [[square(112.51, 30.31, 112.52, 30.32)]]},
            "each part as its own polygon",
        ),
        ("POLYGON((0 0, 1 0, 1 1, 0 0))", "GeoJSON object"),
        (None, "GeoJSON object"),
        ({"type": "Polygon"}, "list of rings"),
        ({"type": "Polygon", "coordinates": []}, "list of rings"),
        ({"type": "Polygon", "coordinates": [["a", "b", "c", "d"]]}, "[longitude, latitude]"),
        ({"type": "Polygon", "coordinates": [[[112.51, "30"]] * 4]}, "must be numbers"),
        ({"type": "Polygon", "coordinates": [[[True, 30.31]] * 4]}, "must be numbers"),
    ],
)
def test_not_a_polygon_is_rejected(geometry, words):
    assert words in reason(geometry)


def test_rings_must_be_closed_and_long_enough():
    assert "not closed" in reason(gj(square(112.51, 30.31, 112.52, 30.32)[:-1]))
    assert "at least 4 positions" in reason(gj([(112.51, 30.31), (112.52, 30.31), (112.51, 30.31)]))
    two_corners = [(112.51, 30.31), (112.52, 30.31), (112.51, 30.31), (112.51, 30.31)]
    assert "3 distinct corners" in reason(gj(two_corners))
    hole_open = square(112.512, 30.312, 112.514, 30.314)[:-1]
    assert reason(gj(square(112.51, 30.31, 112.52, 30.32), hole_open)).startswith("hole 1")


def test_self_intersection_says_what_and_gives_the_place_apart():
    bowtie = [(112.51, 30.31), (112.52, 30.32), (112.52, 30.31), (112.51, 30.32), (112.51, 30.31)]
    with pytest.raises(GeometryRejected) as e:
        polygon_clean(gj(bowtie), bounds=BOUNDS)
    assert e.value.reason.startswith("the outline crosses or touches itself")
    # The place is for the map, not GEOS's "[x y]" in the sentence.
    assert "[" not in e.value.reason and "Self-intersection" not in e.value.reason
    assert e.value.location == pytest.approx((112.515, 30.315))


def test_hole_outside_shell_is_invalid():
    with pytest.raises(GeometryRejected) as e:
        polygon_clean(
            gj(square(112.51, 30.31, 112.52, 30.32), square(112.53, 30.33, 112.54, 30.34)),
            bounds=BOUNDS,
        )
    assert e.value.reason == "a hole lies outside the polygon (at the marked point)"
    assert e.value.location is not None


def test_zero_area_and_slivers_are_rejected():
    flat = [(112.51, 30.31), (112.52, 30.31), (112.53, 30.31), (112.51, 30.31)]
    assert "zero area (its corners lie on one line)" in reason(gj(flat))
    # Not exactly on one line in floating point: valid for GEOS, but of no use as a field.
    almost = [(112.51, 30.31), (112.52, 30.32), (112.53, 30.33), (112.51, 30.31)]
    assert Polygon(almost).is_valid
    assert "less than about 1 m²" in reason(gj(almost))
    # Clipping that leaves only a sliver inside the block.
    assert "no area left" in reason(gj(square(E - 1e-9, 30.31, 112.6, 30.32)))


def test_vertex_limit():
    def circle(n):
        return [
            (
                112.525 + 0.01 * math.cos(2 * math.pi * i / n),
                30.325 + 0.01 * math.sin(2 * math.pi * i / n),
            )
            for i in range(n)
        ]

    ok = circle(MAX_VERTICES)
    assert len(polygon_clean(gj([*ok, ok[0]]), bounds=BOUNDS).exterior.coords) == MAX_VERTICES + 1
    many = circle(MAX_VERTICES + 1)
    assert "too many vertices (5001; at most 5000)" in reason(gj([*many, many[0]]))
    assert "too many vertices" in reason(gj(square(112.51, 30.31, 112.52, 30.32)), max_vertices=3)


def test_coordinates_must_be_degrees():
    mercator = square(12_523_000.0, 3_540_000.0, 12_524_000.0, 3_541_000.0)
    assert "not a longitude/latitude" in reason(gj(mercator))


def test_polygon_crossing_the_edge_is_clipped_to_the_block():
    p = polygon_clean(gj(square(112.54, 30.34, 112.6, 30.4)), bounds=BOUNDS)
    assert shapely.equals(p, shapely.box(112.54, 30.34, E, N))
    assert BLOCK.covers(p)


def test_polygon_outside_or_only_touching_is_rejected():
    assert "outside the block" in reason(gj(square(112.6, 30.4, 112.7, 30.5)))
    assert "outside the block" in reason(gj(square(E, 30.31, 112.6, 30.32)))  # shares an edge


def test_clip_that_splits_the_polygon_is_rejected():
    # A "U" whose bottom lies outside the block: clipped, its two arms remain.
    u = [
        (112.51, 30.29),
        (112.54, 30.29),
        (112.54, 30.32),
        (112.53, 30.32),
        (112.53, 30.295),
        (112.52, 30.295),
        (112.52, 30.32),
        (112.51, 30.32),
        (112.51, 30.29),
    ]
    assert "several parts" in reason(gj(u))


# --- properties -----------------------------------------------------------------------------

# Centres around the block, a little past its edges, so that keeping, clipping and rejecting all
# happen; star-shaped rings are simple polygons, random rings are mostly self-intersecting.
xs = st.floats(W - 0.02, E + 0.02, allow_nan=False)
ys = st.floats(S - 0.02, N + 0.02, allow_nan=False)
WEIRD = [math.nan, math.inf, -math.inf, 1e308, 200.0]


@st.composite
def star_ring(draw, cx, cy, max_radius):
    n = draw(st.integers(3, 30))
    angles = sorted(set(draw(st.lists(st.floats(0, 2 * math.pi), min_size=n, max_size=n))))
    radii = draw(st.lists(st.floats(max_radius / 20, max_radius), min_size=len(angles)))
    pts = [
        (cx + r * math.cos(a), cy + r * math.sin(a)) for a, r in zip(angles, radii, strict=False)
    ]
    return [*pts, pts[0]] if pts else pts


@st.composite
def drawn_polygons(draw):
    cx, cy = draw(xs), draw(ys)
    if draw(st.booleans()):
        rings = [draw(star_ring(cx, cy, draw(st.sampled_from([0.002, 0.01, 0.03]))))]
        if draw(st.booleans()):
            rings.append(draw(star_ring(cx, cy, 0.001)))
    else:
        pts = draw(st.lists(st.tuples(xs, ys), min_size=3, max_size=10))
        rings = [[*pts, pts[0]]]
    if draw(st.sampled_from([False] * 9 + [True])):  # now and then a broken coordinate
        ring = draw(st.sampled_from(rings))
        if ring:
            i = draw(st.integers(0, len(ring) - 1))
            ring[i] = (draw(st.sampled_from(WEIRD)), ring[i][1])
    return rings


@settings(max_examples=300, deadline=None)
@given(drawn_polygons(), st.booleans())
def test_random_polygons_are_stored_valid_inside_the_block_or_rejected(ring_list, reverse):
    geometry = gj(*[r[::-1] if reverse else r for r in ring_list])
    try:
        p = polygon_clean(geometry, bounds=BOUNDS)
    except GeometryRejected as e:
        assert e.reason
        return
    assert p.geom_type == "Polygon" and p.is_valid and p.area >= MIN_AREA_DEG2
    assert BLOCK.covers(p) and p.exterior.is_ccw
    assert all(math.isfinite(c) for c in shapely.get_coordinates(p).ravel())
    # What is kept is exactly the part of the drawing inside the block.
    drawn = Polygon(ring_list[0], ring_list[1:])
    assert p.area == pytest.approx(drawn.intersection(BLOCK).area, rel=1e-9, abs=1e-15)
    # Cleaning is idempotent: a stored polygon sent back unchanged is accepted as it is.
    again = polygon_clean(polygon_to_geojson(p), bounds=BOUNDS)
    assert shapely.equals_exact(again, p, tolerance=0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(W, E), st.floats(S, N)), min_size=3, max_size=40))
def test_convex_polygons_inside_the_block_are_always_accepted(points):
    hull = shapely.MultiPoint(points).convex_hull
    if hull.geom_type != "Polygon" or hull.area < MIN_AREA_DEG2:
        return
    p = polygon_clean(mapping(hull), bounds=BOUNDS)
    assert shapely.equals(p, hull)
