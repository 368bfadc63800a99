"""The final cropland map as the comparison sees it: one 0/1 mask per block on a pixel grid.

The interface (:class:`FinalMap`) is what the integration step must provide; two adapters
cover its two output forms:

- :class:`BlockMaskFinalMap`: one mask GeoTIFF per block (uint8, 1 = cropland, 0 = other,
  anything else or the file's nodata = no data), e.g. the final mask written per block from the
  integration decision. The block's grid is the file's own pixel grid when it is lon/lat,
  otherwise the block's grid at the campaign zoom.
- :class:`RasterFinalMap`: one or more rasters (e.g. a Cloud-Optimized GeoTIFF per province)
  with the same 0/1 convention; each block is cut from the first raster that covers it, onto
  the block's grid at the campaign zoom (nearest neighbour, which is the identity when the
  raster was written on that grid).

A block the final map does not cover returns None and is left out of the comparison; a block
the final map covers with no cropland must return an all-zero mask, not None.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol

import numpy as np
import numpy.typing as npt
from rasterio.io import DatasetReader
from rasterio.warp import transform_bounds

from learning.product.core.compare.grids import LONLAT, Bounds, open_raster, read_on_grid
from mapping.geo.grid import BlockRaster, block_raster


@dataclass(frozen=True)
class FinalBlock:
    """The final map over one block: cropland, where it has data, and its pixel grid."""

    cropland: npt.NDArray[np.bool_]
    valid: npt.NDArray[np.bool_]
    raster: BlockRaster


class FinalMap(Protocol):
    def block(self, *, key: int, bounds: Bounds) -> FinalBlock | None:
        """The final mask of block ``key`` (bounds in lon/lat), or None if not covered."""
        ...


def _from_values(values: npt.NDArray[np.generic], valid: npt.NDArray[np.bool_],
                 raster: BlockRaster) -> FinalBlock:
    ok = valid & ((values == 0) | (values == 1))
    return FinalBlock(cropland=ok & (values == 1), valid=ok, raster=raster)


class BlockMaskFinalMap:
    """Per-block mask files: ``paths[key]`` is the mask of block ``key``."""

    def __init__(self, paths: Mapping[int, Path], *, zoom: int) -> None:
        self.paths = dict(paths)
        self.zoom = zoom

    def block(self, *, key: int, bounds: Bounds) -> FinalBlock | None:
        path = self.paths.get(key)
        if path is None:
            return None
        with open_raster(path) as ds:
            if ds.crs == LONLAT:
                w, s, e, n = ds.bounds
                raster = BlockRaster(west=w, south=s, east=e, north=n, width=ds.width,
                                     height=ds.height)
                values = ds.read(1)
                valid = ds.read_masks(1) > 0
                return _from_values(values, valid, raster)
            raster = block_raster(bounds, self.zoom)
            on = read_on_grid(ds, raster)
            return _from_values(on.values, on.valid, raster)


class RasterFinalMap:
    """Final-map rasters (any CRS); open them once with ``with RasterFinalMap(...) as fm``."""

    def __init__(self, paths: Sequence[Path], *, zoom: int) -> None:
        self.paths = list(paths)
        self.zoom = zoom
        self._open: list[tuple[DatasetReader, Bounds]] = []

    def __enter__(self) -> RasterFinalMap:
        for p in self.paths:
            ds = open_raster(p)
            b = transform_bounds(ds.crs, LONLAT, *ds.bounds, densify_pts=21)
            self._open.append((ds, (b[0], b[1], b[2], b[3])))
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        for ds, _ in self._open:
            ds.close()
        self._open = []

    @property
    def bounds(self) -> Bounds:
        """Lon/lat box around every open raster."""
        if not self._open:
            raise RuntimeError("use RasterFinalMap as a context manager")
        boxes = [b for _, b in self._open]
        return (min(b[0] for b in boxes), min(b[1] for b in boxes),
                max(b[2] for b in boxes), max(b[3] for b in boxes))

    def block(self, *, key: int, bounds: Bounds) -> FinalBlock | None:
        if not self._open:
            raise RuntimeError("use RasterFinalMap as a context manager")
        w, s, e, n = bounds
        for ds, (rw, rs, re_, rn) in self._open:
            if rw < e and re_ > w and rs < n and rn > s:
                raster = block_raster(bounds, self.zoom)
                on = read_on_grid(ds, raster)
                if on.valid.any():
                    return _from_values(on.values, on.valid, raster)
        return None
