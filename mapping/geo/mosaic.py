"""Mosaic XYZ tiles into one Web Mercator image and warp it onto a block's lon/lat grid."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
from rasterio.enums import Resampling
from rasterio.transform import Affine, from_bounds
from rasterio.warp import reproject

from mapping.geo.grid import BlockRaster, TileRange, tile_bounds_mercator
from mapping.geo.raster import LONLAT, WEB_MERCATOR, affine_of

U8 = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]

RESAMPLING = {
    "bilinear": Resampling.bilinear,
    "cubic": Resampling.cubic,
    "nearest": Resampling.nearest,
}


def mosaic_tiles(
    tiles: Mapping[tuple[int, int], U8 | None], trange: TileRange, tile_size: int = 256
) -> tuple[U8, Affine]:
    """Paste (H, W, 4) RGBA tiles into a (4, H, W) mosaic of the whole range.

    Tiles that are None or not in ``tiles`` stay fully transparent (alpha 0 = no data).
    Returns the mosaic and its EPSG:3857 affine transform.
    """
    nx = trange.x_max - trange.x_min + 1
    ny = trange.y_max - trange.y_min + 1
    out = np.zeros((4, ny * tile_size, nx * tile_size), np.uint8)
    for (tx, ty), tile in tiles.items():
        if tile is None:
            continue
        if tile.shape != (tile_size, tile_size, 4):
            raise ValueError(f"tile {tx},{ty} has shape {tile.shape}, expected RGBA {tile_size}²")
        i, j = ty - trange.y_min, tx - trange.x_min
        if not (0 <= i < ny and 0 <= j < nx):
            raise ValueError(f"tile {tx},{ty} is outside the range")
        out[:, i * tile_size : (i + 1) * tile_size, j * tile_size : (j + 1) * tile_size] = (
            np.moveaxis(tile, -1, 0)
        )
    left, _, _, top = tile_bounds_mercator(trange.x_min, trange.y_min, trange.zoom)
    _, bottom, right, _ = tile_bounds_mercator(trange.x_max, trange.y_max, trange.zoom)
    return out, from_bounds(left, bottom, right, top, out.shape[2], out.shape[1])


def warp_rgba_to_block(
    rgba: U8,
    src_transform: Affine,
    src_crs: object,
    raster: BlockRaster,
    resampling: str = "bilinear",
) -> tuple[U8, Mask]:
    """Warp a (4, H, W) RGBA image onto the block grid: (3, h, w) RGB and (h, w) validity.

    RGB is premultiplied by alpha before the warp and divided by the warped alpha after, so
    no-data pixels do not bleed black into their neighbours (exact for bilinear). This is
    about 3x faster than letting GDAL weight by an alpha band (``src_alpha``). A destination
    pixel is valid when its warped alpha is at least half.
    """
    src = rgba
    if (rgba[3] < 255).any():
        src = rgba.copy()
        src[:3] = (rgba[:3].astype(np.uint16) * rgba[3] // 255).astype(np.uint8)
    dst = np.zeros((4, raster.height, raster.width), np.uint8)
    reproject(
        source=src,
        destination=dst,
        src_transform=src_transform,
        src_crs=src_crs,
        dst_transform=affine_of(raster),
        dst_crs=LONLAT,
        resampling=RESAMPLING[resampling],
        warp_mem_limit=256,
    )
    alpha = dst[3]
    valid = alpha >= 128
    rgb = dst[:3]
    partial = valid & (alpha < 255)
    if partial.any():
        scale = 255.0 / alpha[partial]
        rgb[:, partial] = np.clip(rgb[:, partial] * scale + 0.5, 0, 255).astype(np.uint8)
    rgb[:, ~valid] = 0
    return np.ascontiguousarray(rgb), valid


def assemble_block(
    tiles: Mapping[tuple[int, int], U8 | None],
    trange: TileRange,
    raster: BlockRaster,
    *,
    tile_size: int = 256,
    resampling: str = "bilinear",
) -> tuple[U8, Mask]:
    """Mosaic XYZ tiles and warp them from Web Mercator onto the block's lon/lat grid."""
    mosaic, transform = mosaic_tiles(tiles, trange, tile_size)
    return warp_rgba_to_block(mosaic, transform, WEB_MERCATOR, raster, resampling)
