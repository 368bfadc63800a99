"""Render block images as XYZ PNG tiles for the browser."""

from __future__ import annotations

from pathlib import Path

from mapping.geo.raster import render_xyz_tile


class TileOutside(Exception):
    """The requested tile does not overlap the block image."""


def block_tile_render(*, path: Path, z: int, x: int, y: int) -> bytes:
    png = render_xyz_tile(path, z, x, y)
    if png is None:
        raise TileOutside(f"tile {z}/{x}/{y} is outside {path.name}")
    return png
