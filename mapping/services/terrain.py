"""A block's DEM window from its campaign's DEM (one GeoTIFF or tiles on one grid)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from django.conf import settings

from mapping.geo.dem import DemWindow, read_dem_window
from mapping.models import Block, CampaignDem


class DemError(Exception):
    pass


def _dem_paths(block: Block) -> list[Path]:
    paths = []
    for dem in CampaignDem.objects.filter(campaign_id=block.campaign_id).order_by("pk"):
        p = Path(dem.path)
        paths.append(p if p.is_absolute() else Path(settings.DATA_DIR) / p)
    return paths


def _overlaps(path: Path, bounds: tuple[float, float, float, float]) -> bool:
    from rasterio.warp import transform_bounds

    with rasterio.open(path) as ds:
        w, s, e, n = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds) if ds.crs else ds.bounds
    return w < bounds[2] and e > bounds[0] and s < bounds[3] and n > bounds[1]


def block_dem_window(*, block: Block, margin: int = 1) -> DemWindow:
    """Elevations over the block (plus ``margin`` pixels) from the campaign's DEM files.

    Tiles must share one pixel grid (as SRTM tiles do); where tiles overlap the first one
    listed wins; cells no tile covers are NaN.
    """
    paths = _dem_paths(block)
    if not paths:
        raise DemError(f"campaign {block.campaign.slug} has no DEM")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DemError(f"DEM file(s) not found: {', '.join(missing)}")
    bounds = block.geometry.extent
    covering = [p for p in paths if _overlaps(p, bounds)]
    if not covering:
        raise DemError(f"no DEM file covers block {block.code}")
    windows = [read_dem_window(p, bounds, margin=margin) for p in covering]
    first = windows[0]
    elevation = first.elevation.copy()
    for other, path in zip(windows[1:], covering[1:], strict=True):
        same_grid = (
            other.elevation.shape == elevation.shape
            and np.isclose(other.xres, first.xres)
            and np.isclose(other.yres, first.yres)
        )
        if not same_grid:
            raise DemError(f"DEM tile {path} is not on the same pixel grid as {covering[0]}")
        holes = np.isnan(elevation)
        elevation[holes] = other.elevation[holes]
    return DemWindow(elevation=elevation, xres=first.xres, yres=first.yres,
                     geographic=first.geographic, center_lat=first.center_lat, margin=margin)
