"""GeoTIFF read/write helpers for block images and masks, and PNG rendering of XYZ tiles.

Block image convention (every imagery source writes this):
  * EPSG:4326, the block's lon/lat pixel grid (``BlockRaster.transform()``), north-up;
  * 3 bands, uint8, RGB (photometric RGB), tiled 256x256, DEFLATE with horizontal predictor;
  * validity as an internal per-dataset mask band (GDAL "internal mask", read it with
    ``dataset.dataset_mask()`` or :func:`read_block_image`): 255 = imagery, 0 = no data.
    Pixels without data are also written as RGB (0, 0, 0) so readers that ignore the mask see
    black fill, which is what the "Nodata" coverage type means on screen.
Writes are atomic: a temporary file in the destination folder is renamed into place.
"""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import rasterio
from PIL import Image
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.transform import Affine, from_bounds
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds

from mapping.geo.grid import BlockRaster, tile_bounds_mercator

LONLAT = CRS.from_epsg(4326)
WEB_MERCATOR = CRS.from_epsg(3857)
_GTIFF_ENV = {"GDAL_TIFF_INTERNAL_MASK": True, "GDAL_NUM_THREADS": "1"}

U8 = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]


def sha256_file(path: Path, *, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``dest``; on success ``os.replace`` it onto ``dest``."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        # Also removes a half-written file when the writer raised.
        for p in (tmp, tmp.with_name(tmp.name + ".aux.xml")):
            if p.exists():
                p.unlink()


def affine_of(raster: BlockRaster) -> Affine:
    return Affine(*raster.transform())


def write_block_image(dest: Path, rgb: U8, valid: Mask | None, raster: BlockRaster) -> str:
    """Write a (3, H, W) uint8 RGB block image with its validity mask; return its sha256.

    ``valid`` is (H, W) bool, True where there is imagery (None: all valid). Invalid pixels
    are zeroed so the file content is a function of the visible image only.
    """
    if rgb.shape != (3, raster.height, raster.width) or rgb.dtype != np.uint8:
        raise ValueError(
            f"expected uint8 (3, {raster.height}, {raster.width}), got {rgb.dtype} {rgb.shape}"
        )
    mask = np.full((raster.height, raster.width), 255, np.uint8)
    if valid is not None:
        if valid.shape != mask.shape:
            raise ValueError(f"mask shape {valid.shape} != {mask.shape}")
        mask[~valid] = 0
        rgb = np.where(valid[None], rgb, np.uint8(0))
    profile = _profile(raster, count=3, dtype="uint8")
    profile["photometric"] = "RGB"
    with atomic_path(dest) as tmp, rasterio.Env(**_GTIFF_ENV):
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(rgb)
            dst.write_mask(mask)
    return sha256_file(dest)


def write_single_band(
    dest: Path,
    band: npt.NDArray[np.generic],
    raster: BlockRaster,
    *,
    nodata: float | None = None,
) -> str:
    """Write one band (a 0/1 mask, a DEM) on a lon/lat grid; return its sha256."""
    if band.shape != (raster.height, raster.width):
        raise ValueError(f"expected ({raster.height}, {raster.width}), got {band.shape}")
    profile = _profile(raster, count=1, dtype=band.dtype.name)
    if nodata is not None:
        profile["nodata"] = nodata
    if band.dtype.kind == "f":
        profile["predictor"] = 3
    with atomic_path(dest) as tmp, rasterio.Env(**_GTIFF_ENV):
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(band, 1)
    return sha256_file(dest)


def _profile(raster: BlockRaster, *, count: int, dtype: str) -> dict[str, object]:
    profile: dict[str, object] = {
        "driver": "GTiff",
        "width": raster.width,
        "height": raster.height,
        "count": count,
        "dtype": dtype,
        "crs": LONLAT,
        "transform": affine_of(raster),
        "compress": "deflate",
        "predictor": 2,
        "zlevel": 6,
    }
    # GDAL needs tile sizes that are multiples of 16; tiny rasters stay striped.
    if raster.width >= 256 and raster.height >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    return profile


@dataclass(frozen=True)
class BlockImage:
    rgb: U8  # (3, H, W)
    valid: Mask  # (H, W)
    transform: Affine
    crs: CRS


def read_block_image(path: Path) -> BlockImage:
    with rasterio.open(path) as src:
        rgb = src.read(indexes=[1, 2, 3])
        valid = src.dataset_mask() > 0
        return BlockImage(rgb=rgb, valid=valid, transform=src.transform, crs=src.crs)


# --- XYZ tiles for the browser ----------------------------------------------------------------


def render_xyz_tile(
    block_tif: Path,
    z: int,
    x: int,
    y: int,
    *,
    tile_size: int = 256,
    resampling: Resampling = Resampling.bilinear,
) -> bytes | None:
    """A ``tile_size``² RGBA PNG of the block image cut to XYZ tile (z, x, y).

    Transparent outside the block and where the block has no data. Returns None when the
    tile does not overlap the block at all (the endpoint can answer 204 or a blank tile).
    """
    n = 2**z
    if not (0 <= x < n and 0 <= y < n):
        raise ValueError(f"tile {z}/{x}/{y} is outside the XYZ grid")
    left, bottom, right, top = tile_bounds_mercator(x, y, z)
    with rasterio.open(block_tif) as src:
        w, s, e, nn = transform_bounds(src.crs, WEB_MERCATOR, *src.bounds)
        if right <= w or left >= e or top <= s or bottom >= nn:
            return None
        dst_transform = from_bounds(left, bottom, right, top, tile_size, tile_size)
        with WarpedVRT(
            src,
            crs=WEB_MERCATOR,
            transform=dst_transform,
            width=tile_size,
            height=tile_size,
            resampling=resampling,
            add_alpha=True,
        ) as vrt:
            data = vrt.read()
    rgba = np.moveaxis(data[[0, 1, 2, vrt.count - 1]], 0, -1)
    return png_bytes(np.ascontiguousarray(rgba))


def png_bytes(hwc: U8) -> bytes:
    """Encode an (H, W, 3|4) uint8 array as PNG."""
    buf = io.BytesIO()
    Image.fromarray(hwc).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
