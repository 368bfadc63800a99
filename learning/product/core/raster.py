"""Province mosaics of final block masks as Cloud-Optimized GeoTIFFs, and the national
area-fraction map (one pixel per block) as a GeoTIFF and a PNG figure.

The province grid is EPSG:4326 with every block an exact window of ``block_w`` x ``block_h``
pixels: a 0.05° block at zoom 16 is ~2,330 px wide at every latitude, and its height (more rows
further north) is taken from the block nearest the province's mean latitude; blocks elsewhere are
resampled (nearest) to that height, a change of a few rows per block across a province. Pixel
values: 1 cropland, 0 other, 255 no data (outside the blocks, or ignored pixels).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import rasterio
import rasterio.shutil
from rasterio.transform import Affine
from rasterio.windows import Window

from mapping.geo.grid import ORIGIN_LAT, ORIGIN_LON, block_raster
from mapping.geo.raster import LONLAT, atomic_path

NODATA = 255
COG_BLOCKSIZE = 512
# GDAL's block cache while a mosaic is written and copied to a COG. GDAL's default is 5 % of the
# machine's memory, and the mosaic's dirty tiles fill all of it: exporting Hong Kong (65 blocks)
# peaked at 1.36 GB resident on a 23 GB machine, 0.43 GB with 64 MB here, in the same time.
GDAL_CACHE_MB = 128
Bounds = tuple[float, float, float, float]
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class MosaicGrid:
    """A north-up lon/lat grid on which every block is a whole ``block_h`` x ``block_w`` window."""

    west: float
    north: float
    block_deg: float
    block_w: int
    block_h: int
    n_block_rows: int
    n_block_cols: int

    @property
    def width(self) -> int:
        return self.n_block_cols * self.block_w

    @property
    def height(self) -> int:
        return self.n_block_rows * self.block_h

    @property
    def transform(self) -> Affine:
        return Affine(
            self.block_deg / self.block_w,
            0.0,
            self.west,
            0.0,
            -self.block_deg / self.block_h,
            self.north,
        )

    def window(self, bounds: Bounds) -> Window:
        """The pixel window of a block given by its (west, south, east, north)."""
        w, _s, _e, n = bounds
        r = round((self.north - n) / self.block_deg)
        c = round((w - self.west) / self.block_deg)
        if not (0 <= r < self.n_block_rows and 0 <= c < self.n_block_cols):
            raise ValueError(f"block at {bounds} is outside the mosaic")
        return Window(c * self.block_w, r * self.block_h, self.block_w, self.block_h)


def mosaic_grid(blocks: Sequence[Bounds], *, block_deg: float, zoom: int) -> MosaicGrid:
    """The smallest mosaic holding ``blocks``, at the pixel size of XYZ ``zoom``."""
    if not blocks:
        raise ValueError("a mosaic needs at least one block")
    west = min(b[0] for b in blocks)
    south = min(b[1] for b in blocks)
    east = max(b[2] for b in blocks)
    north = max(b[3] for b in blocks)
    mid = (south + north) / 2
    ref = min(blocks, key=lambda b: abs((b[1] + b[3]) / 2 - mid))
    r = block_raster(ref, zoom)
    return MosaicGrid(
        west=west,
        north=north,
        block_deg=block_deg,
        block_w=r.width,
        block_h=r.height,
        n_block_rows=round((north - south) / block_deg),
        n_block_cols=round((east - west) / block_deg),
    )


def fit_block(mask: npt.NDArray[np.uint8], grid: MosaicGrid) -> npt.NDArray[np.uint8]:
    """A block mask resampled (nearest) to the mosaic's block window size."""
    if mask.shape == (grid.block_h, grid.block_w):
        return mask
    out = cv2.resize(mask, (grid.block_w, grid.block_h), interpolation=cv2.INTER_NEAREST)
    return np.asarray(out, dtype=np.uint8)


@dataclass(frozen=True)
class CogInfo:
    width: int
    height: int
    overviews: list[int]
    blocks: int
    cropland_pixels: int
    valid_pixels: int


def write_mask_cog(
    dest: Path,
    grid: MosaicGrid,
    blocks: Iterable[tuple[Bounds, npt.NDArray[np.uint8]]],
    *,
    total: int | None = None,
    progress: Progress | None = None,
) -> CogInfo:
    """Mosaic the block masks and write ``dest`` as a COG (DEFLATE, 512 px tiles, overviews).

    The mosaic is first written as a tiled GeoTIFF beside ``dest``, then copied by GDAL's COG
    driver to a temporary name and renamed onto ``dest``: a failure anywhere leaves no file at
    ``dest`` (nor a half-written one) and removes the staging files.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.stage.tif")
    profile = {
        "driver": "GTiff",
        "width": grid.width,
        "height": grid.height,
        "count": 1,
        "dtype": "uint8",
        "crs": LONLAT,
        "transform": grid.transform,
        "nodata": NODATA,
        "tiled": True,
        "blockxsize": COG_BLOCKSIZE,
        "blockysize": COG_BLOCKSIZE,
        "compress": "deflate",
        "BIGTIFF": "IF_SAFER",
    }
    n = cropland = valid = 0
    gdal = {"GDAL_NUM_THREADS": "1", "GDAL_CACHEMAX": GDAL_CACHE_MB * 2**20}  # rasterio: bytes
    try:
        with rasterio.Env(**gdal), rasterio.open(stage, "w", **profile) as dst:
            # Tiles never written are filled with the nodata value when GDAL closes the file
            # (FillEmptyTiles), so pixels outside the blocks read as no data, not as 0.
            for bounds, mask in blocks:
                fitted = fit_block(mask, grid)
                dst.write(fitted, 1, window=grid.window(bounds))
                n += 1
                cropland += int(np.count_nonzero(fitted == 1))
                valid += int(np.count_nonzero(fitted != NODATA))
                if progress is not None:
                    progress(n, total if total is not None else n)
        with atomic_path(dest) as tmp, rasterio.Env(**gdal):
            rasterio.shutil.copy(
                stage,
                tmp,
                driver="COG",
                COMPRESS="DEFLATE",
                BLOCKSIZE=str(COG_BLOCKSIZE),
                OVERVIEW_RESAMPLING="NEAREST",
                BIGTIFF="IF_SAFER",
            )
    finally:
        stage.unlink(missing_ok=True)
    with rasterio.open(dest) as ds:
        overviews = ds.overviews(1)
    return CogInfo(grid.width, grid.height, overviews, n, cropland, valid)


@dataclass
class CogReport:
    """What :func:`cog_check` found; ``problems`` empty means a valid COG."""

    problems: list[str] = field(default_factory=list)
    overviews: list[int] = field(default_factory=list)
    blocksize: tuple[int, int] = (0, 0)
    compression: str = ""

    @property
    def is_cog(self) -> bool:
        return not self.problems


def cog_check(path: Path) -> CogReport:
    """Check the COG layout the way GDAL's ``validate_cloud_optimized_geotiff.py`` does.

    A COG is a tiled GeoTIFF whose IFDs (directories) come first, with overviews down to a
    single tile, and whose overview tiles are stored before the full-resolution tiles so that a
    reader of a small-scale view fetches only the start of the file. GDAL's COG driver marks its
    files with ``LAYOUT=COG`` in the IMAGE_STRUCTURE metadata (the "ghost" header).
    """
    rep = CogReport()
    with rasterio.open(path) as ds:
        if ds.driver != "GTiff":
            rep.problems.append(f"driver is {ds.driver}, not GTiff")
            return rep
        bh, bw = ds.block_shapes[0]
        rep.blocksize = (bw, bh)
        rep.compression = (ds.compression.value if ds.compression else "none").lower()
        structure = ds.tags(ns="IMAGE_STRUCTURE")
        if structure.get("LAYOUT") != "COG":
            rep.problems.append("no LAYOUT=COG ghost header (not written by the COG driver)")
        big = ds.width > bw or ds.height > bh
        if big and (bw == ds.width or bh == 1):
            rep.problems.append(f"not tiled (blocks {bw}x{bh})")
        rep.overviews = ds.overviews(1)
        full_offset = _first_tile_offset(ds)
    if big:
        if not rep.overviews:
            rep.problems.append("no overviews")
        else:
            last = len(rep.overviews) - 1
            with rasterio.open(path, overview_level=last) as ov:
                if ov.width > bw or ov.height > bh:
                    rep.problems.append(
                        f"smallest overview {ov.width}x{ov.height} is larger than one tile"
                    )
                ov_offset = _first_tile_offset(ov)
            if ov_offset is not None and full_offset is not None and ov_offset > full_offset:
                rep.problems.append("overview tiles are stored after full-resolution tiles")
    return rep


def _first_tile_offset(ds: rasterio.io.DatasetReader) -> int | None:
    raw = ds.get_tag_item("BLOCK_OFFSET_0_0", "TIFF", bidx=1)
    return int(raw) if raw else None


def write_af_geotiff(
    dest: Path, fractions: dict[tuple[int, int], float], *, block_deg: float
) -> tuple[int, int]:
    """One float32 pixel per block (row, col on the global grid) = its cropland area fraction;
    NaN where a block has no value. Returns (width, height)."""
    if not fractions:
        raise ValueError("no blocks to map")
    rows = [r for r, _ in fractions]
    cols = [c for _, c in fractions]
    r0, r1, c0, c1 = min(rows), max(rows), min(cols), max(cols)
    width, height = c1 - c0 + 1, r1 - r0 + 1
    arr = np.full((height, width), np.nan, dtype=np.float32)
    for (r, c), v in fractions.items():
        arr[r1 - r, c - c0] = v
    per_degree = round(1 / block_deg)
    west = ORIGIN_LON + c0 / per_degree
    north = ORIGIN_LAT + (r1 + 1) / per_degree
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": 1,
        "dtype": "float32",
        "crs": LONLAT,
        "transform": Affine(block_deg, 0.0, west, 0.0, -block_deg, north),
        "nodata": float("nan"),
        "compress": "deflate",
        "predictor": 3,
    }
    with atomic_path(Path(dest)) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(arr, 1)
        dst.update_tags(1, meaning="cropland area / valid block area of the final map")
    return width, height


def write_af_png(dest: Path, geotiff: Path, *, title: str) -> None:
    """The area-fraction GeoTIFF as a figure: a green colour ramp, a colour bar and lon/lat
    axes (matplotlib, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with rasterio.open(geotiff) as ds:
        arr = ds.read(1)
        w, s, e, n = ds.bounds
    aspect = 1 / max(math.cos(math.radians((s + n) / 2)), 0.1)
    fig, ax = plt.subplots(figsize=(8, 6), dpi=120)
    try:
        img = ax.imshow(
            np.ma.masked_invalid(arr),
            extent=(w, e, s, n),
            cmap="YlGn",
            vmin=0,
            vmax=1,
            interpolation="nearest",
            aspect=aspect,
        )
        fig.colorbar(img, ax=ax, label="cropland area fraction", shrink=0.8)
        ax.set_xlabel("longitude (°)")
        ax.set_ylabel("latitude (°)")
        ax.set_title(title)
        with atomic_path(Path(dest)) as tmp:
            fig.savefig(tmp, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)


def read_block_mask(path: Path) -> tuple[npt.NDArray[np.uint8], Affine]:
    """Band 1 (the 0/1 cropland mask) of a prediction GeoTIFF and its transform."""
    with rasterio.open(path) as ds:
        return ds.read(1).astype(np.uint8, copy=False), ds.transform
