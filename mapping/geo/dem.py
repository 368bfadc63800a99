"""A block's DEM window: the elevations over lon/lat bounds plus a margin, from a GeoTIFF.

:mod:`learning.core.features.terrain` turns a window into the block's terrain features; the
margin gives every block pixel the 3x3 neighbourhood ``gdaldem`` needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class DemWindow:
    """Elevations around one block: ``elevation`` includes a ``margin``-pixel frame."""

    elevation: FloatArray  # metres, NaN = no data
    xres: float  # pixel width in the DEM's horizontal units (> 0)
    yres: float  # pixel height in the DEM's horizontal units (> 0)
    geographic: bool  # True when the units are degrees
    center_lat: float  # latitude of the window centre (degrees), for geographic scaling
    margin: int = 1

    def __post_init__(self) -> None:
        if self.elevation.ndim != 2:
            raise ValueError(f"DEM window must be 2-D, got shape {self.elevation.shape}")
        m = self.margin
        if m < 1 or self.elevation.shape[0] <= 2 * m or self.elevation.shape[1] <= 2 * m:
            raise ValueError(
                f"DEM window {self.elevation.shape} needs a margin >= 1 and block pixels inside"
            )
        if not (self.xres > 0 and self.yres > 0):
            raise ValueError(f"DEM pixel size must be positive, got {self.xres}, {self.yres}")

    @property
    def core(self) -> tuple[slice, slice]:
        m = self.margin
        return slice(m, self.elevation.shape[0] - m), slice(m, self.elevation.shape[1] - m)



def read_dem_window(path: str | Path, bounds_lonlat: tuple[float, float, float, float], *,
                    margin: int = 1) -> DemWindow:
    """Read the DEM pixels covering (west, south, east, north) in lon/lat, plus a margin.

    Pixels partly inside the bounds count as block pixels (the window is rounded outward).
    Cells outside the raster, NaN cells and cells equal to the band's nodata value are NaN.
    """
    import rasterio
    from rasterio.warp import transform_bounds
    from rasterio.windows import Window, from_bounds

    west, south, east, north = bounds_lonlat
    if not (west < east and south < north):
        raise ValueError(f"bounds must be (west, south, east, north), got {bounds_lonlat}")
    with rasterio.open(path) as ds:
        if ds.crs is None:
            raise ValueError(f"DEM {path} has no CRS")
        t = ds.transform
        if t.b != 0 or t.d != 0 or t.e >= 0:
            raise ValueError(f"DEM {path} must be north-up without rotation")
        geographic = bool(ds.crs.is_geographic)
        bounds = (west, south, east, north)
        if not (geographic and ds.crs.to_epsg() == 4326):
            bounds = transform_bounds("EPSG:4326", ds.crs, *bounds, densify_pts=21)
        fw = from_bounds(*bounds, transform=t)
        # Round outward, but absorb float noise so a bound on a pixel edge adds no pixel.
        r0 = math.floor(round(fw.row_off, 6)) - margin
        c0 = math.floor(round(fw.col_off, 6)) - margin
        r1 = math.ceil(round(fw.row_off + fw.height, 6)) + margin
        c1 = math.ceil(round(fw.col_off + fw.width, 6)) + margin
        out = np.full((r1 - r0, c1 - c0), np.nan)
        rr0, cc0 = max(r0, 0), max(c0, 0)
        rr1, cc1 = min(r1, ds.height), min(c1, ds.width)
        if rr0 < rr1 and cc0 < cc1:
            data = ds.read(1, window=Window(cc0, rr0, cc1 - cc0, rr1 - rr0)).astype(np.float64)
            nodata = ds.nodata
            if nodata is not None and not math.isnan(nodata):
                data[data == nodata] = np.nan
            out[rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0] = data
        else:
            raise ValueError(f"bounds {bounds_lonlat} do not overlap DEM {path}")
        cy = t.f + t.e * (r0 + r1) / 2.0
        if not geographic:
            # Latitude only matters for geographic scaling; keep the block's own.
            cy = (south + north) / 2.0
        return DemWindow(elevation=out, xres=abs(t.a), yres=abs(t.e), geographic=geographic,
                         center_lat=cy, margin=margin)
