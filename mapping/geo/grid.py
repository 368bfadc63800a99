"""Block grid math: lon/lat <-> block (row, col), block bounds, z16 XYZ tile ranges, pixel size.

Pure Python (no Django). The grid is global and anchored at (-180, -90) so that a block id
means the same cell in every campaign: row counts north from the south pole, col counts east
from the antimeridian. Cells are half-open: [west, east) x [south, north).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

ORIGIN_LON = -180.0
ORIGIN_LAT = -90.0
WEB_MERCATOR_MAX_LAT = 85.0511287798066
EARTH_RADIUS_M = 6378137.0
TILE_SIZE = 256


@dataclass(frozen=True)
class Grid:
    """A regular lon/lat grid of square cells of ``size_deg`` degrees."""

    size_deg: float = 0.05

    def __post_init__(self) -> None:
        if not (0 < self.size_deg <= 10):
            raise ValueError(f"block size must be in (0, 10] degrees, got {self.size_deg}")
        # The cell count per degree must be a whole number so cell edges fall on exact
        # decimal degrees (0.05 -> 20 per degree) and rounding cannot move a cell.
        per_degree = 1 / self.size_deg
        if abs(per_degree - round(per_degree)) > 1e-9:
            raise ValueError(f"1 / block size must be a whole number, got {self.size_deg}")

    @property
    def per_degree(self) -> int:
        return round(1 / self.size_deg)

    @property
    def n_rows(self) -> int:
        return 180 * self.per_degree

    @property
    def n_cols(self) -> int:
        return 360 * self.per_degree

    def block_at(self, lon: float, lat: float) -> BlockId:
        """The block holding a point (half-open cells; lat 90 and lon 180 fold into the last)."""
        if not (-180 <= lon <= 180) or not (-90 <= lat <= 90) or math.isnan(lon + lat):
            raise ValueError(f"not a lon/lat position: ({lon}, {lat})")
        # Multiply by the whole-number cells-per-degree rather than dividing by 0.05, which
        # is not exact in binary floating point and misplaces points on cell edges.
        row = min(math.floor((lat - ORIGIN_LAT) * self.per_degree), self.n_rows - 1)
        col = min(math.floor((lon - ORIGIN_LON) * self.per_degree), self.n_cols - 1)
        # (lat + 90) * n can round across an edge (1.9 -> row 1838 whose south edge is
        # 1.9000000000000001); settle the cell against the very edges bounds() reports.
        row = self._settle(row, lat, self.n_rows, ORIGIN_LAT)
        col = self._settle(col, lon, self.n_cols, ORIGIN_LON)
        return BlockId(row=row, col=col)

    def _edge(self, k: int, origin: float) -> float:
        # Integer numerator over integer denominator: one correctly rounded division, so an
        # edge is the double nearest its exact decimal value (-90 + 1838/20 is not).
        n = self.per_degree
        return (k + round(origin) * n) / n

    def _settle(self, k: int, v: float, count: int, origin: float) -> int:
        while k > 0 and v < self._edge(k, origin):
            k -= 1
        while k < count - 1 and v >= self._edge(k + 1, origin):
            k += 1
        return k

    def bounds(self, block: BlockId) -> tuple[float, float, float, float]:
        """(west, south, east, north) in degrees."""
        self.check(block)
        return (
            self._edge(block.col, ORIGIN_LON),
            self._edge(block.row, ORIGIN_LAT),
            self._edge(block.col + 1, ORIGIN_LON),
            self._edge(block.row + 1, ORIGIN_LAT),
        )

    def check(self, block: BlockId) -> None:
        if not (0 <= block.row < self.n_rows and 0 <= block.col < self.n_cols):
            raise ValueError(f"block {block} is outside the grid")

    def blocks_in_bounds(
        self, west: float, south: float, east: float, north: float
    ) -> tuple[range, range]:
        """Row and column ranges of every block that overlaps the box (with positive area)."""
        n = self.per_degree
        r0 = max(math.floor((south - ORIGIN_LAT) * n), 0)
        r1 = min(math.ceil((north - ORIGIN_LAT) * n), self.n_rows)
        c0 = max(math.floor((west - ORIGIN_LON) * n), 0)
        c1 = min(math.ceil((east - ORIGIN_LON) * n), self.n_cols)
        return range(r0, max(r1, r0)), range(c0, max(c1, c0))


@dataclass(frozen=True, order=True)
class BlockId:
    row: int
    col: int

    def __str__(self) -> str:
        return f"R{self.row:04d}C{self.col:04d}"

    @classmethod
    def parse(cls, text: str) -> BlockId:
        t = text.strip().upper()
        if not (t.startswith("R") and "C" in t):
            raise ValueError(f"not a block id: {text!r} (expected like R2180C5060)")
        r, c = t[1:].split("C", 1)
        if not (r.isdigit() and c.isdigit()):
            raise ValueError(f"not a block id: {text!r} (expected like R2180C5060)")
        return cls(row=int(r), col=int(c))


def grid_for(size_deg: float | Decimal) -> Grid:
    return Grid(size_deg=float(size_deg))


# --- Web Mercator / XYZ tiles ---------------------------------------------------------------


def lonlat_to_tile_fraction(lon: float, lat: float, zoom: int) -> tuple[float, float]:
    """Fractional XYZ tile coordinates of a point (x east, y south), clamped to Web Mercator."""
    lat = max(min(lat, WEB_MERCATOR_MAX_LAT), -WEB_MERCATOR_MAX_LAT)
    n = 2**zoom
    x = (lon + 180.0) / 360.0 * n
    lat_r = math.radians(lat)
    y = (1.0 - math.asinh(math.tan(lat_r)) / math.pi) / 2.0 * n
    return x, y


def tile_bounds_lonlat(x: int, y: int, zoom: int) -> tuple[float, float, float, float]:
    """(west, south, east, north) of an XYZ tile in degrees."""
    n = 2**zoom

    def lat_of(yy: float) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * yy / n))))

    return (x / n * 360.0 - 180.0, lat_of(y + 1), (x + 1) / n * 360.0 - 180.0, lat_of(y))


def tile_bounds_mercator(x: int, y: int, zoom: int) -> tuple[float, float, float, float]:
    """(left, bottom, right, top) of an XYZ tile in EPSG:3857 metres."""
    half = math.pi * EARTH_RADIUS_M
    size = 2 * half / 2**zoom
    left = -half + x * size
    top = half - y * size
    return (left, top - size, left + size, top)


@dataclass(frozen=True)
class TileRange:
    zoom: int
    x_min: int
    x_max: int  # inclusive
    y_min: int
    y_max: int  # inclusive

    @property
    def count(self) -> int:
        return (self.x_max - self.x_min + 1) * (self.y_max - self.y_min + 1)

    def tiles(self) -> list[tuple[int, int]]:
        return [
            (x, y)
            for y in range(self.y_min, self.y_max + 1)
            for x in range(self.x_min, self.x_max + 1)
        ]


def tile_range(bounds: tuple[float, float, float, float], zoom: int) -> TileRange:
    """Every XYZ tile at ``zoom`` that overlaps the lon/lat box with positive area."""
    west, south, east, north = bounds
    if not (west < east and south < north):
        raise ValueError(f"empty bounds {bounds}")
    n = 2**zoom
    fx0, fy0 = lonlat_to_tile_fraction(west, north, zoom)
    fx1, fy1 = lonlat_to_tile_fraction(east, south, zoom)
    # An edge that falls exactly on a tile boundary does not pull in the next tile.
    x_max = math.ceil(fx1) - 1
    y_max = math.ceil(fy1) - 1
    x0, y0 = min(max(math.floor(fx0), 0), n - 1), min(max(math.floor(fy0), 0), n - 1)
    x1, y1 = min(max(x_max, x0), n - 1), min(max(y_max, y0), n - 1)
    return TileRange(zoom=zoom, x_min=x0, x_max=x1, y_min=y0, y_max=y1)


def ground_resolution_m(lat: float, zoom: int) -> float:
    """Metres per pixel of a 256-px XYZ tile at ``zoom`` on the ground at latitude ``lat``."""
    tiles_across: int = 2**zoom  # zoom >= 0; typeshed types int ** int as Any (could be float)
    return 2 * math.pi * EARTH_RADIUS_M * math.cos(math.radians(lat)) / (TILE_SIZE * tiles_across)


@dataclass(frozen=True)
class BlockRaster:
    """The pixel grid of a block image: lon/lat, square pixels in degrees, north-up."""

    west: float
    south: float
    east: float
    north: float
    width: int
    height: int

    @property
    def pixel_deg(self) -> tuple[float, float]:
        return ((self.east - self.west) / self.width, (self.north - self.south) / self.height)

    def transform(self) -> tuple[float, float, float, float, float, float]:
        """GDAL-order affine (a, b, c, d, e, f) as rasterio's ``Affine`` takes it."""
        dx, dy = self.pixel_deg
        return (dx, 0.0, self.west, 0.0, -dy, self.north)


def block_raster(bounds: tuple[float, float, float, float], zoom: int = 16) -> BlockRaster:
    """The block's lon/lat pixel grid at the native resolution of XYZ ``zoom``.

    Pixel counts follow the tiles' ground resolution at the block's centre latitude, so a
    0.05 degree block at z16 is about 2,300 px wide near 30N (about 2.4 m pixels) and has
    fewer columns than rows further north, where a degree of longitude is shorter.
    """
    west, south, east, north = bounds
    lat_c = (south + north) / 2
    res = ground_resolution_m(lat_c, zoom)
    m_per_deg_lat = math.pi * EARTH_RADIUS_M / 180
    m_per_deg_lon = m_per_deg_lat * math.cos(math.radians(lat_c))
    # XYZ pixels are square in Mercator: in metres they are res x res, so a degree of
    # latitude holds m_per_deg_lat / res pixels (near enough over 0.05 degrees).
    height = max(1, round((north - south) * m_per_deg_lat / res))
    width = max(1, round((east - west) * m_per_deg_lon / res))
    return BlockRaster(west=west, south=south, east=east, north=north, width=width, height=height)
