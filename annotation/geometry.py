"""Geometry rules for drawn polygons: GeoJSON in, a valid shapely Polygon inside the block out.

Pure shapely (no Django), so the same rules run in the API, an import job or a notebook.

Policy for coordinates outside the block: a polygon that overlaps the block is clipped to it
(interpreters often draw past the edge on purpose, to follow a field to the border); one that lies
wholly outside, only touches the block, or falls apart into several pieces or a sliver of no area
when clipped is rejected, because what the interpreter meant is then unclear.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import shapely
from shapely.geometry import Polygon
from shapely.geometry.polygon import orient

from mapping.phrase import Phrase, gettext_noop

MAX_VERTICES = 5000
# About 1 m² at China's latitudes (1 degree² is about 1e10 m²); a 2.4 m image pixel is about
# 6 m². Smaller "polygons" are slivers from near-collinear clicks, not fields.
MIN_AREA_DEG2 = 1e-10

Bounds = tuple[float, float, float, float]  # west, south, east, north (degrees, WGS 84)


class GeometryRejected(ValueError):
    """The polygon breaks a rule; ``reason`` says which, in words an interpreter understands
    (English), ``phrase`` the same to translate (``phrase.render(gettext)``), ``location`` the
    (longitude, latitude) of the fault when there is one place to mark on the map."""

    def __init__(self, reason: str | Phrase, location: tuple[float, float] | None = None) -> None:
        self.phrase = reason if isinstance(reason, Phrase) else Phrase(reason)
        self.reason = self.phrase.render()
        self.location = location
        super().__init__(self.reason)


def _rejected(message: str, **params: object) -> GeometryRejected:
    return GeometryRejected(Phrase(message, params))


# GEOS's validity reasons (``shapely.is_valid_reason``: "Self-intersection[112.37 29.22]") in
# an interpreter's words; the place goes to the map, not into the sentence.
_INVALID_REASONS = {
    "Self-intersection": gettext_noop(
        "the outline crosses or touches itself (at the marked point): move the corner back, "
        "or draw the parts as separate polygons"
    ),
    "Ring Self-intersection": gettext_noop(
        "the outline touches itself (at the marked point): move the corner apart, "
        "or draw the parts as separate polygons"
    ),
    "Hole lies outside shell": gettext_noop(
        "a hole lies outside the polygon (at the marked point)"
    ),
    "Nested holes": gettext_noop("a hole lies inside another hole (at the marked point)"),
    "Interior is disconnected": gettext_noop(
        "the holes cut the polygon into pieces (at the marked point): draw each piece as "
        "its own polygon"
    ),
    "Too few points": gettext_noop("the outline has too few distinct corners"),
}
_REASON_AT = re.compile(r"^(?P<kind>[^\[]+?)\s*\[(?P<x>[-+0-9.eE]+) (?P<y>[-+0-9.eE]+)\]$")


def invalid_reason(poly: Polygon) -> GeometryRejected:
    """Why GEOS finds ``poly`` invalid, translatable, with the place to mark when it names one."""
    raw = shapely.is_valid_reason(poly)
    m = _REASON_AT.match(raw)
    kind = (m.group("kind") if m else raw).strip()
    where = (float(m.group("x")), float(m.group("y"))) if m else None
    message = _INVALID_REASONS.get(kind)
    if message is None:
        # A reason GEOS may add one day: its kind, without the coordinates.
        return GeometryRejected(
            Phrase(gettext_noop("the polygon is not valid (%(why)s)"), {"why": kind}), where
        )
    return GeometryRejected(Phrase(message), where)


def _number(value: object, where: Phrase) -> float:
    # bool is an int in Python, but `true` is not a coordinate.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _rejected(gettext_noop("%(where)s: coordinates must be numbers"), where=where)
    x = float(value)
    if not math.isfinite(x):
        raise _rejected(
            gettext_noop("%(where)s: coordinates must be finite numbers (no NaN or infinity)"),
            where=where,
        )
    return x


def _ring(raw: object, index: int) -> list[tuple[float, float]]:
    name = (
        Phrase(gettext_noop("outer ring"))
        if index == 0
        else Phrase(gettext_noop("hole %(n)s"), {"n": index})
    )
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise _rejected(
            gettext_noop("%(name)s: must be a list of [longitude, latitude] positions"), name=name
        )
    points = []
    for i, pos in enumerate(raw):
        where = Phrase(gettext_noop("%(name)s, vertex %(n)s"), {"name": name, "n": i + 1})
        if not isinstance(pos, Sequence) or isinstance(pos, str) or not 2 <= len(pos) <= 3:
            raise _rejected(
                gettext_noop("%(where)s: a position is [longitude, latitude]"), where=where
            )
        # A third number (height) is allowed by GeoJSON and dropped.
        x, y = _number(pos[0], where), _number(pos[1], where)
        if not (-180 <= x <= 180 and -90 <= y <= 90):
            raise _rejected(
                gettext_noop(
                    "%(where)s: (%(x)s, %(y)s) is not a longitude/latitude in degrees (WGS 84)"
                ),
                where=where,
                x=f"{x:g}",
                y=f"{y:g}",
            )
        points.append((x, y))
    if len(points) < 4:
        raise _rejected(
            gettext_noop("%(name)s: a ring needs at least 4 positions (3 corners + closing)"),
            name=name,
        )
    if points[0] != points[-1]:
        raise _rejected(
            gettext_noop("%(name)s: the ring is not closed (last position must equal first)"),
            name=name,
        )
    if len(set(points)) < 3:
        raise _rejected(
            gettext_noop("%(name)s: a ring needs at least 3 distinct corners"), name=name
        )
    return points


def _vertex_count(poly: Polygon) -> int:
    # Closing positions are not vertices an interpreter placed.
    return int(shapely.get_num_coordinates(poly)) - 1 - len(poly.interiors)


def polygon_from_geojson(geometry: object, *, max_vertices: int = MAX_VERTICES) -> Polygon:
    """Parse a GeoJSON Polygon strictly; check vertex count and validity, not the block."""
    if not isinstance(geometry, Mapping):
        raise _rejected(gettext_noop("geometry must be a GeoJSON object"))
    kind = geometry.get("type")
    if kind != "Polygon":
        if kind == "MultiPolygon":
            raise _rejected(
                gettext_noop(
                    "geometry must be a GeoJSON Polygon, not 'MultiPolygon' "
                    "(draw each part as its own polygon)"
                )
            )
        raise _rejected(
            gettext_noop("geometry must be a GeoJSON Polygon, not %(kind)s"), kind=repr(kind)
        )
    rings: Any = geometry.get("coordinates")
    if not isinstance(rings, Sequence) or isinstance(rings, str) or not rings:
        raise _rejected(gettext_noop("coordinates must be a list of rings (outer ring first)"))
    n_positions = sum(len(r) for r in rings if isinstance(r, Sequence))
    if n_positions - len(rings) > max_vertices:
        raise _rejected(
            gettext_noop(
                "too many vertices (%(n)s; at most %(max)s): simplify the polygon or split it"
            ),
            n=n_positions - len(rings),
            max=max_vertices,
        )
    parsed = [_ring(r, i) for i, r in enumerate(rings)]
    poly = Polygon(parsed[0], parsed[1:])
    if poly.exterior.convex_hull.area == 0:
        # GEOS calls this a self-intersection; interpreters know it as a polygon of no area.
        raise _rejected(gettext_noop("the polygon has zero area (its corners lie on one line)"))
    if not poly.is_valid:
        raise invalid_reason(poly)
    if not poly.area >= MIN_AREA_DEG2:
        raise _rejected(gettext_noop("the polygon has (almost) zero area: less than about 1 m²"))
    return poly


def polygon_clean(geometry: object, *, bounds: Bounds, max_vertices: int = MAX_VERTICES) -> Polygon:
    """The polygon to store for a block with ``bounds``, or GeometryRejected with the reason.

    The result is valid, has an area of at least ``MIN_AREA_DEG2``, lies within ``bounds``
    (clipped if it crossed the edge) and has its outer ring counter-clockwise (RFC 7946).
    """
    poly = polygon_from_geojson(geometry, max_vertices=max_vertices)
    w, s, e, n = bounds
    block = shapely.box(w, s, e, n)
    if not block.covers(poly):
        if not poly.intersects(block) or poly.intersection(block).area == 0:
            raise _rejected(gettext_noop("the polygon lies outside the block"))
        clipped = poly.intersection(block)
        # Computed crossing points may land a rounding error outside the edge; put them on it.
        clipped = shapely.transform(
            clipped, lambda xy: np.column_stack([xy[:, 0].clip(w, e), xy[:, 1].clip(s, n)])
        )
        if clipped.geom_type == "MultiPolygon" or (
            clipped.geom_type == "GeometryCollection"
            and sum(g.geom_type == "Polygon" for g in clipped.geoms) > 1
        ):
            raise _rejected(
                gettext_noop(
                    "clipped to the block, the polygon falls into several parts: "
                    "draw each part inside the block"
                )
            )
        if clipped.geom_type == "GeometryCollection":
            # A polygon that also touches the block edge elsewhere comes back with stray lines.
            parts = [g for g in clipped.geoms if g.geom_type == "Polygon"]
            clipped = parts[0] if parts else clipped
        if clipped.geom_type != "Polygon" or not clipped.area >= MIN_AREA_DEG2:
            raise _rejected(
                gettext_noop("clipped to the block, the polygon has (almost) no area left")
            )
        if not clipped.is_valid:
            fault = invalid_reason(clipped)
            raise GeometryRejected(
                Phrase(gettext_noop("clipped to the block, %(why)s"), {"why": fault.phrase}),
                fault.location,
            )
        if _vertex_count(clipped) > max_vertices:
            raise _rejected(
                gettext_noop(
                    "clipped to the block, the polygon has too many vertices "
                    "(%(n)s; at most %(max)s)"
                ),
                n=_vertex_count(clipped),
                max=max_vertices,
            )
        poly = clipped
    return orient(poly, sign=1.0)


def polygon_to_geojson(poly: Polygon) -> dict[str, Any]:
    """A GeoJSON Polygon with full float precision (lists, so it serialises as JSON)."""
    return {
        "type": "Polygon",
        "coordinates": [
            [list(p) for p in ring.coords] for ring in (poly.exterior, *poly.interiors)
        ],
    }
