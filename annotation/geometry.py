"""Geometry rules for drawn polygons: GeoJSON in, a valid shapely Polygon inside the block out.

Pure shapely (no Django), so the same rules run in the API, an import job or a notebook.

Policy for coordinates outside the block: a polygon that overlaps the block is clipped to it
(interpreters often draw past the edge on purpose, to follow a field to the border); one that lies
wholly outside, only touches the block, or falls apart into several pieces or a sliver of no area
when clipped is rejected, because what the interpreter meant is then unclear.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from shapely.geometry import Polygon
from shapely.geometry.polygon import orient

MAX_VERTICES = 5000
# About 1 m² at China's latitudes (1 degree² is about 1e10 m²); a 2.4 m image pixel is about
# 6 m². Smaller "polygons" are slivers from near-collinear clicks, not fields.
MIN_AREA_DEG2 = 1e-10

Bounds = tuple[float, float, float, float]  # west, south, east, north (degrees, WGS 84)


def gettext_noop(message: str) -> str:
    """Marks a message for the translation catalogue (``makemessages`` finds this name) without
    importing Django: the messages are translated where they are shown (``Phrase.render``)."""
    return message


@dataclass(frozen=True)
class Phrase:
    """A message with %-style named parameters, kept apart until shown, so that the web layer
    can translate the message (and any phrase among its parameters) into the reader's
    language; ``str()`` is the English text."""

    message: str
    params: Mapping[str, object] = field(default_factory=dict)

    def render(self, translate: Callable[[str], str] = gettext_noop) -> str:
        text = translate(self.message)
        if not self.params:
            return text
        return text % {
            k: v.render(translate) if isinstance(v, Phrase) else v for k, v in self.params.items()
        }

    def __str__(self) -> str:
        return self.render()


class GeometryRejected(ValueError):
    """The polygon breaks a rule; ``reason`` says which, in words an interpreter understands
    (English), ``phrase`` the same to translate (``phrase.render(gettext)``)."""

    def __init__(self, reason: str | Phrase) -> None:
        self.phrase = reason if isinstance(reason, Phrase) else Phrase(reason)
        self.reason = self.phrase.render()
        super().__init__(self.reason)


def _rejected(message: str, **params: object) -> GeometryRejected:
    return GeometryRejected(Phrase(message, params))


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
        raise _rejected(gettext_noop("invalid polygon: %(why)s"), why=shapely.is_valid_reason(poly))
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
            raise _rejected(
                gettext_noop("clipped to the block, the polygon is invalid: %(why)s"),
                why=shapely.is_valid_reason(clipped),
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
