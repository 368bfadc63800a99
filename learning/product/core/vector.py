"""Cropland polygons of a final block mask, and their areas in an equal-area projection."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import Transformer
from rasterio.features import shapes
from rasterio.transform import Affine
from shapely.geometry import Polygon, shape

# Albers equal-area conic for China (standard parallels 25°N and 47°N, central meridian 105°E).
# An equal-area projection keeps areas exact wherever the polygon is; the parameters only
# decide where shapes are least distorted, which areas do not depend on.
CHINA_ALBERS = (
    "+proj=aea +lat_0=0 +lon_0=105 +lat_1=25 +lat_2=47 +x_0=0 +y_0=0 +ellps=WGS84 +units=m +no_defs"
)


def mask_polygons(mask: npt.NDArray[np.generic], transform: Affine) -> list[Polygon]:
    """The cropland (value 1) of a block mask as polygons in the mask's CRS.

    4-connected regions, so every polygon is valid (8-connected pixels touching at a corner
    would make self-touching rings).
    """
    crop = np.asarray(mask) == 1
    if not crop.any():
        return []
    out: list[Polygon] = []
    for geom, _value in shapes(
        crop.astype(np.uint8), mask=crop, connectivity=4, transform=transform
    ):
        poly = shape(geom)
        if isinstance(poly, Polygon) and not poly.is_empty:
            out.append(poly)
    return out


@lru_cache(maxsize=4)
def _to_equal_area(crs: str) -> Transformer:
    return Transformer.from_crs("EPSG:4326", crs, always_xy=True)


def equal_area_m2(
    geoms: list[Polygon] | npt.NDArray[np.object_], *, crs: str = CHINA_ALBERS
) -> npt.NDArray[np.float64]:
    """Areas in m² of lon/lat polygons, computed after projecting to ``crs`` (equal-area)."""
    if len(geoms) == 0:
        return np.zeros(0)
    tr = _to_equal_area(crs)

    def project(xy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        x, y = tr.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    projected = shapely.transform(np.asarray(geoms, dtype=object), project)
    return np.asarray(shapely.area(projected), dtype=np.float64)
