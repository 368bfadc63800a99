"""Mapbox vector tiles (MVT 2.1) of grid cells, encoded without shapely or protobuf.

A block grid is axis-aligned lon/lat rectangles, and a rectangle stays one in Web Mercator: its
tile coordinates are four numbers, clipping is a clamp, and the geometry commands are fixed. So
the embedded (SpatiaLite) database's tiles are encoded here in a few vectorised numpy steps and a
small protobuf writer; PostGIS encodes the same layers with ``ST_AsMVT``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

EXTENT = 4096
BUFFER = 64
MAX_LAT = 85.0511287798066
MIN_CELL_PX = 8.0  # a map cell is at least this wide on a 256-px tile, else blocks are merged

Value = str | int | float | bool | None


def cell_blocks(zoom: int, size_deg: float, min_px: float = MIN_CELL_PX) -> int:
    """Blocks per side of one map cell at ``zoom``: 1 (single blocks) once a block is at least
    ``min_px`` wide on a 256-px tile, else the smallest power of two that makes a cell so wide
    (0.05° blocks: 1 from zoom 8, 2 at 7, ..., 32 at 3), so a tile holds at most ~1,000 cells."""
    px = size_deg / 360.0 * 256.0 * 2.0**zoom
    k = 1
    while k * px < min_px:
        k *= 2
    return k


def tile_check(z: int, x: int, y: int, max_zoom: int = 20) -> None:
    if not (0 <= z <= max_zoom):
        raise ValueError(f"zoom must be within 0..{max_zoom}")
    if not (0 <= x < 2**z and 0 <= y < 2**z):
        raise ValueError(f"x and y must be within 0..{2**z - 1} at zoom {z}")


def _merc_y(lat: npt.NDArray[np.float64], z: int, y: int, extent: int) -> npt.NDArray[np.float64]:
    lat = np.clip(lat, -MAX_LAT, MAX_LAT)
    frac = (1.0 - np.arcsinh(np.tan(np.radians(lat))) / math.pi) / 2.0 * 2.0**z
    return (frac - y) * extent


def tile_rects(
    west: npt.ArrayLike,
    south: npt.ArrayLike,
    east: npt.ArrayLike,
    north: npt.ArrayLike,
    z: int,
    x: int,
    y: int,
    extent: int = EXTENT,
    buffer: int = BUFFER,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Lon/lat rectangles as (x0, y0, x1, y1) tile coordinates (y down, so y0 is the north
    edge), clipped to the tile and its buffer; and which of them are not empty there.
    Neighbours round to the same shared edge, so there are no hairline gaps between blocks."""
    w, s, e, n = (np.asarray(v, dtype=np.float64) for v in (west, south, east, north))
    scale = 2.0**z / 360.0 * extent
    x0 = np.rint((w + 180.0) * scale - x * extent)
    x1 = np.rint((e + 180.0) * scale - x * extent)
    y0 = np.rint(_merc_y(n, z, y, extent))
    y1 = np.rint(_merc_y(s, z, y, extent))
    lo, hi = -buffer, extent + buffer
    r = np.stack([x0, y0, x1, y1], axis=1).clip(lo, hi).astype(np.int64)
    keep = (r[:, 2] > r[:, 0]) & (r[:, 3] > r[:, 1])
    return r, keep


# --- protobuf writing -----------------------------------------------------------------------

_SMALL = [bytes([v]) if v < 0x80 else bytes([(v & 0x7F) | 0x80, v >> 7]) for v in range(1 << 14)]


def _varint(v: int) -> bytes:
    if v < 1 << 14:
        return _SMALL[v]
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _zigzag(v: int) -> int:
    return (v << 1) ^ (v >> 63)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _value(v: str | int | float | bool) -> bytes:
    if isinstance(v, bool):
        return b"\x38" + (b"\x01" if v else b"\x00")
    if isinstance(v, int):
        return b"\x28" + _varint(v) if v >= 0 else b"\x30" + _varint(_zigzag(v))
    if isinstance(v, float):
        return b"\x19" + struct.pack("<d", v)
    data = v.encode()
    return b"\x0a" + _varint(len(data)) + data


def _geometries(rects: npt.NDArray[np.int64]) -> list[bytes]:
    """Each rectangle as one clockwise (in tile coordinates: an exterior) ring:
    MoveTo(x0, y0) LineTo(+w, 0) (0, +h) (-w, 0) ClosePath, zigzag-encoded."""
    x0, y0, x1, y1 = rects[:, 0], rects[:, 1], rects[:, 2], rects[:, 3]
    wdt, hgt = x1 - x0, y1 - y0

    def zz(a: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        return (a << 1) ^ (a >> 63)

    zero = np.zeros_like(x0)
    cmds = np.stack(
        [
            np.full_like(x0, 9),
            zz(x0),
            zz(y0),
            np.full_like(x0, 26),
            zz(wdt),
            zero,
            zero,
            zz(hgt),
            zz(-wdt),
            zero,
            np.full_like(x0, 15),
        ],
        axis=1,
    ).tolist()
    small = _SMALL
    return [b"".join([small[v] if v < 16384 else _varint(v) for v in row]) for row in cmds]


@dataclass
class Layer:
    """One layer of rectangles: ``rects`` from :func:`tile_rects`, a feature id each, and
    property columns (a value per feature; None leaves the property out)."""

    name: str
    rects: npt.NDArray[np.int64]
    ids: Sequence[int]
    properties: Mapping[str, Sequence[Value]] = field(default_factory=dict)
    extent: int = EXTENT


def _tag_columns(layer: Layer, values: dict[tuple[type, Value], int]) -> list[bytes]:
    """Each feature's packed tags (key index, value index pairs), built column by column: a
    column's cells repeat few values, so each distinct value is looked up and encoded once."""
    n = len(layer.ids)
    columns: list[list[bytes]] = []
    for ki, key in enumerate(layer.properties):
        kb = _varint(ki)
        encoded: dict[tuple[type, Value], bytes] = {}
        out: list[bytes] = []
        for v in layer.properties[key]:
            if v is None:
                out.append(b"")
                continue
            if isinstance(v, np.generic):
                v = v.item()
            cell = (type(v), v)
            tag = encoded.get(cell)
            if tag is None:
                tag = encoded[cell] = kb + _varint(values.setdefault(cell, len(values)))
            out.append(tag)
        columns.append(out)
    return [b"".join(row) for row in zip(*columns, strict=True)] if columns else [b""] * n


def _layer(layer: Layer) -> bytes:
    values: dict[tuple[type, Value], int] = {}
    tags = _tag_columns(layer, values)
    geoms = _geometries(layer.rects)
    parts = [b"\x78\x02", _field(1, layer.name.encode())]
    for fid, tag, geom in zip(layer.ids, tags, geoms, strict=True):
        fid = int(fid)
        feature = b"\x08" + _varint(fid) if fid >= 0 else b""
        if tag:
            feature += _field(2, tag)
        feature += b"\x18\x03" + _field(4, geom)
        parts.append(_field(2, feature))
    parts.extend(_field(3, k.encode()) for k in layer.properties)
    parts.extend(_field(4, _value(v)) for (_, v) in values)  # type: ignore[arg-type]  # no None
    parts.append(b"\x28" + _varint(layer.extent))
    return b"".join(parts)


def encode_tile(layers: Sequence[Layer]) -> bytes:
    """The tile's bytes; empty layers are left out (an empty tile is zero bytes)."""
    return b"".join(_field(3, _layer(lay)) for lay in layers if len(lay.ids))
