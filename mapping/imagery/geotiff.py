"""Local GeoTIFF/COG sources: warp a block window out of a folder or list of rasters (any CRS)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import rasterio
from pydantic import BaseModel, ConfigDict, Field, model_validator
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds

from mapping.geo.grid import BlockId, BlockRaster
from mapping.geo.mosaic import RESAMPLING
from mapping.geo.raster import LONLAT, affine_of
from mapping.imagery.base import BlockImageResult, finish_block

RASTER_SUFFIXES = (".tif", ".tiff", ".vrt")


class GeoTiffConfig(BaseModel):
    """Rasters on disk. ``paths`` are files or folders (searched recursively for .tif/.tiff/.vrt);
    where rasters overlap, the earlier one in sorted order wins."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["geotiff"] = "geotiff"
    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    paths: tuple[str, ...] = Field(min_length=1)
    bands: tuple[int, int, int] = (1, 2, 3)
    value_range: tuple[float, float] | None = Field(
        None, description="linear stretch of non-uint8 data to 0..255, e.g. (0, 10000)"
    )
    resampling: Literal["bilinear", "cubic", "nearest"] = "bilinear"

    @model_validator(mode="after")
    def _check(self) -> GeoTiffConfig:
        if min(self.bands) < 1:
            raise ValueError("band numbers start at 1")
        if self.value_range is not None and not self.value_range[0] < self.value_range[1]:
            raise ValueError("value_range must be (low, high) with low < high")
        return self


class GeoTiffSource:
    kind = "geotiff"

    def __init__(self, config: GeoTiffConfig) -> None:
        self.config = config
        self.slug = config.slug
        self._footprints: dict[Path, tuple[float, float, float, float, float]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        pass

    def files(self) -> list[Path]:
        out: list[Path] = []
        for p in map(Path, self.config.paths):
            if p.is_dir():
                out.extend(f for f in p.rglob("*") if f.suffix.lower() in RASTER_SUFFIXES)
            elif p.is_file():
                out.append(p)
        return sorted(set(out))

    def _footprint(self, path: Path) -> tuple[float, float, float, float] | None:
        """Lon/lat bounds of a raster, cached by modification time."""
        mtime = path.stat().st_mtime
        with self._lock:
            hit = self._footprints.get(path)
        if hit is not None and hit[4] == mtime:
            return hit[:4]
        with rasterio.open(path) as src:
            if src.crs is None:
                return None
            b: tuple[float, float, float, float] = transform_bounds(
                src.crs, LONLAT, *src.bounds, densify_pts=21
            )
        with self._lock:
            self._footprints[path] = (*b, mtime)
        return b

    def fetch_block(self, block: BlockId, raster: BlockRaster, dest: Path) -> BlockImageResult:
        rgb = np.zeros((3, raster.height, raster.width), np.uint8)
        valid = np.zeros((raster.height, raster.width), bool)
        used, problems = 0, []
        files = self.files()
        for path in files:
            try:
                fp = self._footprint(path)
                if fp is None:
                    problems.append(f"{path.name}: no CRS")
                    continue
                w, s, e, n = fp
                if e <= raster.west or w >= raster.east or n <= raster.south or s >= raster.north:
                    continue
                part, ok = self._warp_one(path, raster)
            except (RasterioError, OSError, ValueError) as exc:
                problems.append(f"{path.name}: {type(exc).__name__}: {str(exc)[:120]}")
                continue
            fill = ok & ~valid
            if fill.any():
                rgb[:, fill] = part[:, fill]
                valid |= fill
                used += 1
            if valid.all():
                break
        if problems and not valid.any():
            return BlockImageResult(
                status="failed",
                reason="; ".join(problems),
                width=raster.width,
                height=raster.height,
            )
        notes = [f"{used} raster(s) used"] + [f"skipped {p}" for p in problems]
        return finish_block(
            rgb=rgb,
            valid=valid,
            raster=raster,
            dest=dest,
            notes=notes,
            missing_reason=f"none of {len(files)} raster(s) covers the block",
        )

    def _warp_one(
        self, path: Path, raster: BlockRaster
    ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_]]:
        cfg = self.config
        with rasterio.open(path) as src:
            if max(cfg.bands) > src.count:
                # Single-band (panchromatic) rasters are shown as grey.
                if src.count == 1:
                    bands = [1, 1, 1]
                else:
                    raise ValueError(f"has {src.count} bands, config asks for {cfg.bands}")
            else:
                bands = list(cfg.bands)
            with WarpedVRT(
                src,
                crs=LONLAT,
                transform=affine_of(raster),
                width=raster.width,
                height=raster.height,
                resampling=RESAMPLING[cfg.resampling],
                add_alpha=True,
            ) as vrt:
                data = vrt.read(indexes=[*bands, vrt.count])
        ok = data[3] >= 128
        vals = data[:3]
        if vals.dtype != np.uint8:
            if cfg.value_range is None:
                raise ValueError(f"data type {vals.dtype} needs value_range in the config")
            lo, hi = cfg.value_range
            vals = np.clip((vals.astype(np.float32) - lo) * (255.0 / (hi - lo)), 0, 255)
            vals = np.rint(vals).astype(np.uint8)
        return vals, ok


def build_geotiff(config: GeoTiffConfig, secrets: Mapping[str, str]) -> GeoTiffSource:
    return GeoTiffSource(config)
