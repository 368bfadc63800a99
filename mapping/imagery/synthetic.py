"""Synthetic agricultural landscapes for the demo: block images, two source "looks", truth masks.

Everything is a deterministic function of (seed, lon/lat), so neighbouring blocks join up and a
block renders the same every time. The landscape (fields, terraces, paddies, roads, villages,
woodland, water) is shared by both looks; a look ("mapbox", "google") adds a season, colour
balance, sharpness and a per-block scenario (planting, non-planting, cloudy, snow, nodata) drawn
with the coverage-type shares of the paper by default. Terrain comes from
:func:`mapping.imagery.dem.elevation`, the function the synthetic DEM is written from.

Ground truth (:func:`truth_mask`): 1 for cropland in the TNLS sense (dry and irrigated fields,
paddies, terraces, greenhouses, fallow), 0 for orchards, grassland, woodland, water, fish
ponds, roads, tracks and villages. It ignores clouds, snow and no-data (they hide, not change,
the land).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, field_validator

from mapping.geo.grid import BlockId, BlockRaster
from mapping.geo.raster import write_single_band
from mapping.imagery.base import BlockImageResult, finish_block
from mapping.imagery.dem import KY, elevation_xy, fbm, hash_unit, kx_for_lat, slope_deg, value_noise

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]

# Land-cover classes of the generator.
CROP, PADDY, TERRACE, GREENHOUSE, FALLOW = 0, 1, 2, 3, 4
ORCHARD, GRASS, WOODLAND, WATER, POND, ROAD, TRACK, VILLAGE, BUILDING = range(5, 14)
N_CLASSES = 14
CROPLAND_CLASSES = (CROP, PADDY, TERRACE, GREENHOUSE, FALLOW)

SCENARIOS = ("planting", "non_planting", "cloudy", "snow", "nodata")
# Coverage-type shares per source from the paper (Mapbox, Google), in percent.
PAPER_SHARES: dict[str, dict[str, float]] = {
    "mapbox": {"planting": 50.7, "non_planting": 32.2, "cloudy": 8.5, "snow": 8.3, "nodata": 0.4},
    "google": {"planting": 41.3, "non_planting": 40.8, "cloudy": 1.9, "snow": 13.4, "nodata": 2.6},
}
Look = Literal["mapbox", "google"]
_LOOK_ID = {"mapbox": 1, "google": 2}


# --- landscape --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Landscape:
    cls: U8  # (H, W) land-cover class
    variant: F32  # (H, W) per-parcel random in [0, 1): colour choice
    rows: F32  # (H, W) crop-row / greenhouse stripe phase in [-1, 1]
    elev: F32  # (H, W) metres
    slope: F32  # (H, W) degrees

    @property
    def truth(self) -> U8:
        return np.isin(self.cls, CROPLAND_CLASSES).astype(np.uint8)


def _axes(raster: BlockRaster) -> tuple[F64, F64, float, float]:
    """World-metre x of each column, y of each row, and the pixel size in metres."""
    kx = kx_for_lat((raster.south + raster.north) / 2)
    dx, dy = raster.pixel_deg
    x = (raster.west + (np.arange(raster.width, dtype=np.float64) + 0.5) * dx) * kx
    y = (raster.north - (np.arange(raster.height, dtype=np.float64) + 0.5) * dy) * KY
    return x, y, dx * kx, dy * KY


def _upsample(
    a: npt.NDArray[np.floating], step: int, h: int, w: int, *, nearest: bool = False
) -> F32:
    """Interpolate a grid sampled every ``step`` pixels (sample k at pixel k*step) to (h, w)."""
    src = np.ascontiguousarray(a, dtype=np.float32)
    if step == 1:
        return src[:h, :w].copy()
    m = np.array([[1 / step, 0, 0], [0, 1 / step, 0]], np.float64)
    flags = (cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR) | cv2.WARP_INVERSE_MAP
    return np.asarray(
        cv2.warpAffine(src, m, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE),
        dtype=np.float32,
    )


def _key_unit(key: npt.NDArray[np.int64], seed: int) -> tuple[F32, F32]:
    """Two independent uniforms in [0, 1) from one int64 key per pixel (cheap 64-bit mix)."""
    with np.errstate(over="ignore"):
        h = key.astype(np.uint64)
        h ^= np.uint64((seed * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(31)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(29)
    a = (h >> np.uint64(40)).astype(np.float32) * np.float32(1 / (1 << 24))
    b = (h & np.uint64(0xFFFFFF)).astype(np.float32) * np.float32(1 / (1 << 24))
    return a, b


def _voronoi(
    x: F64, y: F64, cell: float, seed: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], F32]:
    """Jittered-lattice Voronoi: nearest seed's lattice (iy, ix) and distance to the cell edge."""
    cx = np.floor(x / cell).astype(np.int64)
    cy = np.floor(y / cell).astype(np.int64)
    ix0, iy0 = int(cx.min()) - 1, int(cy.min()) - 1
    lx = np.arange(ix0, cx.max() + 2)
    ly = np.arange(iy0, cy.max() + 2)
    gx, gy = np.meshgrid(lx, ly)
    # Distances relative to the first lattice cell keep float32 precise enough.
    sxl = ((gx - ix0 + 0.15 + 0.7 * hash_unit(gx, gy, seed=seed)) * cell).astype(np.float32)
    syl = ((gy - iy0 + 0.15 + 0.7 * hash_unit(gx, gy, seed=seed + 1)) * cell).astype(np.float32)
    xl = (x - ix0 * cell).astype(np.float32)
    yl = (y - iy0 * cell).astype(np.float32)
    h, w = len(y), len(x)
    d1 = np.full((h, w), np.inf, np.float32)
    d2 = np.full((h, w), np.inf, np.float32)
    best = np.zeros((h, w), np.uint8)
    k = 0
    for oy in (-1, 0, 1):
        ri = cy + oy - iy0
        for ox in (-1, 0, 1):
            cj = cx + ox - ix0
            dxx = xl[None, :] - sxl[ri][:, cj]
            dyy = yl[:, None] - syl[ri][:, cj]
            d = dxx * dxx
            d += dyy * dyy
            closer = d < d1
            np.minimum(d2, d, out=d2)
            d2[closer] = d1[closer]
            d1[closer] = d[closer]
            best[closer] = k
            k += 1
    oy_b = best // 3 - 1
    ox_b = best % 3 - 1
    edge = (np.sqrt(d2) - np.sqrt(d1)) / 2
    return cy[:, None] + oy_b, cx[None, :] + ox_b, edge.astype(np.float32)


def _road_distance(x: F64, y: F64, spacing: float, seed: int, along_x: bool) -> F32:
    """Distance to meandering roads that run north-south (along_x=False) or east-west."""
    a, b = (y, x) if along_x else (x, y)  # a: across-road coordinate, b: along-road
    best = np.full((len(y), len(x)), np.inf, np.float32)
    k0 = math.floor(min(a.min(), a.max()) / spacing) - 1
    k1 = math.floor(max(a.min(), a.max()) / spacing) + 1
    for k in range(k0, k1 + 1):
        if hash_unit(k, seed=seed) > 0.6:
            continue
        phase = 6.283 * hash_unit(k, seed=seed + 1)
        pos = (k + 0.5 + 0.5 * (hash_unit(k, seed=seed + 2) - 0.5)) * spacing
        line = pos + 80 * np.sin(b / 900 + phase) + 30 * np.sin(b / 230 + 2 * phase)
        d = np.abs(a[:, None] - line[None, :]) if along_x else np.abs(a[None, :] - line[:, None])
        best = np.minimum(best, d.astype(np.float32))
    return best


def generate_landscape(raster: BlockRaster, *, seed: int) -> Landscape:
    """The land cover of a raster's area (independent of look and scenario)."""
    h, w = raster.height, raster.width
    x, y, px, py = _axes(raster)
    # Smooth fields (terrain, regions) on a coarse grid of ~16 m, then interpolated.
    step = max(1, round(16 / max(px, 1e-9)))
    xc = x[0] + np.arange((w - 1) // step + 2) * step * px
    yc = y[0] - np.arange((h - 1) // step + 2) * step * py
    XC, YC = xc[None, :], yc[:, None]
    elev_c = elevation_xy(XC, YC, seed)
    slope_c = slope_deg(elev_c, step * px, step * py)
    wet_c = value_noise(XC, YC, 9_000, seed + 21) * 0.7 + 0.3 * value_noise(
        XC, YC, 2_000, seed + 22
    )
    forest_c = fbm(XC, YC, 1_800, seed + 23, octaves=3)
    river_c = fbm(XC, YC, 4_000, seed + 24, octaves=2)
    relief_c = value_noise(XC, YC, 25_000, seed + 7)  # the hill/plain split of elevation_xy
    elev = _upsample(elev_c, step, h, w)
    slope = _upsample(slope_c, step, h, w)
    wet = _upsample(wet_c, step, h, w)
    forest = _upsample(forest_c, step, h, w)
    river = _upsample(river_c, step, h, w)
    hill_region = _upsample(relief_c, step, h, w) > 0.5

    # Farm blocks: Voronoi cells bounded by tracks; fields are strips inside them. The cell
    # search runs on a ~5 m grid; cell ids are then taken nearest, edge distances linearly.
    vs = max(1, round(5 / max(px, 1e-9)))
    vx = x[0] + np.arange((w - 1) // vs + 2) * vs * px
    vy = y[0] - np.arange((h - 1) // vs + 2) * vs * py
    ci_c, cj_c, edge_c = _voronoi(vx, vy, 420.0, seed + 31)
    ci0, cj0 = int(ci_c.min()), int(cj_c.min())
    cell_idx = (ci_c - ci0) * 4096 + (cj_c - cj0)
    cell = _upsample(cell_idx.astype(np.float32), vs, h, w, nearest=True).astype(np.int64)
    edge = _upsample(edge_c, vs, h, w)
    ci, cj = cell // 4096 + ci0, cell % 4096 + cj0
    lci = np.arange(int(ci_c.max()) - ci0 + 1) + ci0
    lcj = np.arange(int(cj_c.max()) - cj0 + 1) + cj0
    LI, LJ = np.meshgrid(lci, lcj, indexing="ij")
    li, lj = ci - ci0, cj - cj0

    def table(k: int) -> F32:
        return np.asarray(hash_unit(LI, LJ, seed=seed + k)[li, lj], dtype=np.float32)

    cell_h = table(32)
    theta = table(33) * np.float32(math.pi)
    # Field sizes are constant per farm block (a pixel-varying width would bend the strips
    # into contour-like swirls): small fields where the block's centre is hilly.
    cxm = np.asarray((LJ + 0.5) * 420.0, dtype=np.float64)
    cym = np.asarray((LI + 0.5) * 420.0, dtype=np.float64)
    e0 = elevation_xy(cxm, cym, seed)
    grad = np.hypot(elevation_xy(cxm + 40, cym, seed) - e0, elevation_xy(cxm, cym + 40, seed) - e0)
    hilly = np.clip(np.degrees(np.arctan(grad / 40)) / 8.0, 0, 1).astype(np.float32)[li, lj]
    width_m = (18 + 70 * table(34)) * (1 - 0.55 * hilly)
    length_m = (60 + 260 * table(35)) * (1 - 0.5 * hilly)
    xl = (x - x[0]).astype(np.float32)[None, :]
    yl = (y - y[0]).astype(np.float32)[:, None]
    # float32 keeps ~1 m precision only near the origin: measure from a world anchor a few
    # tens of km away (a multiple of 100 km), which is continuous across neighbouring blocks.
    xo = np.float32(x[0] % 100_000.0)
    yo = np.float32(y[0] % 100_000.0)
    cos_t, sin_t = np.cos(theta), np.sin(theta)
    u = (xl + xo) * cos_t + (yl + yo) * sin_t
    v = -(xl + xo) * sin_t + (yl + yo) * cos_t
    strip = np.floor(u / width_m).astype(np.int64)
    shift, _ = _key_unit(strip, seed + 36)
    cut = np.floor(v / length_m + shift).astype(np.int64)
    # Keys use global lattice ids so a parcel keeps its land use in every block it touches.
    gcell = ci * 65_536 + cj
    key = (gcell * 8191 + strip) * 131_071 + cut
    pid, variant = _key_unit(key, seed + 37)
    row_period = 3.5 + 4 * (variant % 0.25)
    rows = np.sin(u * np.float32(2 * math.pi) / row_period).astype(np.float32)
    # Crop rows finer than ~3 pixels would alias on small demo rasters: fade them out.
    rows *= np.float32(np.clip(3.0 - px / 2.0, 0, 1))
    del u, v, strip, cut, key

    cls = np.full((h, w), CROP, np.uint8)
    # Paddies on wet plains and on the flat floors of valleys between hills.
    paddy_zone = (slope < 2.0) & ((wet > 0.52) | hill_region)
    cls[pid < 0.06] = FALLOW
    plains = slope < 4
    cls[(pid >= 0.06) & (pid < 0.11) & plains] = GREENHOUSE
    cls[(pid >= 0.11) & (pid < 0.18)] = ORCHARD
    cls[(pid >= 0.18) & (pid < 0.22)] = GRASS
    cls[(pid >= 0.22) & (pid < 0.25)] = WOODLAND
    paddy = paddy_zone & (pid >= 0.11)
    cls[paddy] = PADDY
    cls[paddy_zone & (pid >= 0.94)] = POND

    # Terraces follow contours on cultivated slopes; steep or uncultivated hills are wooded.
    terrace_h = np.float32(2.5)
    terr = (slope >= 5) & (slope < 28) & (cell_h < 0.7) & (forest < 0.62)
    phase = (elev / terrace_h) % 1.0
    band = np.floor(elev / terrace_h).astype(np.int64)
    cls[terr] = TERRACE
    tvar, _ = _key_unit(band * 1_000_000_007 + gcell, seed + 39)
    variant = np.where(terr, tvar, variant)
    rows = np.where(terr, np.where(phase < 0.18, -1.0, 0.35), rows).astype(np.float32)
    wood = (slope >= 28) | ((slope >= 5) & ~terr) | (forest > 0.72)
    cls[wood] = WOODLAND
    cls[(cls == WOODLAND) & (forest < 0.45) & (slope < 12)] = GRASS

    # Water: lakes in wet lowlands, rivers along a noise contour in gentle terrain.
    cls[(wet > 0.8) & (slope < 1.5)] = WATER
    river_half = np.abs(river - 0.5)
    cls[(river_half < 0.006 + 0.004 * (wet > 0.5)) & (slope < 6)] = WATER

    # Tracks on farm-block edges, main roads across everything but water and cliffs.
    tracks = (edge < max(2.0, 0.55 * px)) & (cls <= GRASS)
    cls[tracks] = TRACK
    road_d = np.minimum(
        _road_distance(x, y, 2_300, seed + 41, along_x=False),
        _road_distance(x, y, 2_900, seed + 42, along_x=True),
    )
    cls[(road_d < max(3.5, 0.6 * px)) & (slope < 22) & (cls != WATER)] = ROAD
    _paint_villages(cls, variant, raster, x, y, px, py, seed, slope)
    return Landscape(cls=cls, variant=variant, rows=rows, elev=elev, slope=slope)


def _paint_villages(
    cls: U8,
    variant: F32,
    raster: BlockRaster,
    x: F64,
    y: F64,
    px: float,
    py: float,
    seed: int,
    slope: F32,
) -> None:
    """Villages: irregular clusters of houses with courtyards, on gentle ground."""
    cell = 1_300.0
    kx0, kx1 = math.floor(x.min() / cell) - 1, math.floor(x.max() / cell) + 1
    ky0, ky1 = math.floor(y.min() / cell) - 1, math.floor(y.max() / cell) + 1
    for ky in range(ky0, ky1 + 1):
        for kx in range(kx0, kx1 + 1):
            if hash_unit(kx, ky, seed=seed + 51) > 0.55:
                continue
            cxm = (kx + 0.2 + 0.6 * hash_unit(kx, ky, seed=seed + 52)) * cell
            cym = (ky + 0.2 + 0.6 * hash_unit(kx, ky, seed=seed + 53)) * cell
            e0 = elevation_xy(np.array([cxm, cxm + 30, cxm]), np.array([cym, cym, cym + 30]), seed)
            if math.degrees(math.atan(math.hypot(e0[1] - e0[0], e0[2] - e0[0]) / 30)) > 7:
                continue
            radius = 90 + 170 * float(hash_unit(kx, ky, seed=seed + 54))
            j0 = int(np.searchsorted(x, cxm - 1.4 * radius))
            j1 = int(np.searchsorted(x, cxm + 1.4 * radius))
            i0 = int(np.searchsorted(-y, -(cym + 1.4 * radius)))
            i1 = int(np.searchsorted(-y, -(cym - 1.4 * radius)))
            if j1 <= j0 or i1 <= i0:
                continue
            ax = (x[j0:j1] - cxm)[None, :]
            ay = (y[i0:i1] - cym)[:, None]
            blob = value_noise(x[j0:j1][None, :], y[i0:i1][:, None], 160, seed + 55)
            inside = np.hypot(ax, ay) < radius * (0.6 + 0.8 * blob)
            sub = cls[i0:i1, j0:j1]
            inside &= (sub != WATER) & (slope[i0:i1, j0:j1] < 12)
            th = math.pi * float(hash_unit(kx, ky, seed=seed + 56))
            a = ax * math.cos(th) + ay * math.sin(th)
            b = -ax * math.sin(th) + ay * math.cos(th)
            la, lb = np.floor(a / 15), np.floor(b / 19)
            lot = hash_unit(la.astype(np.int64), lb.astype(np.int64), kx, ky, seed=seed + 57)
            fa, fb = a - la * 15, b - lb * 19
            house = (fa > 2.5) & (fa < 12) & (fb > 4) & (fb < 14.5) & (lot < 0.8)
            sub[inside] = VILLAGE
            sub[inside & house] = BUILDING
            var = variant[i0:i1, j0:j1]
            var[inside] = lot[inside].astype(np.float32)


def truth_mask(block: BlockId, raster: BlockRaster, *, seed: int) -> U8:
    """Ground-truth cropland (1) / other (0) for a block's raster, (H, W) uint8."""
    return generate_landscape(raster, seed=seed).truth


def write_truth_mask(dest: Path, raster: BlockRaster, *, seed: int) -> str:
    """Write the truth mask as a uint8 GeoTIFF on the block grid; return its sha256."""
    return write_single_band(dest, generate_landscape(raster, seed=seed).truth, raster)


# --- rendering ---------------------------------------------------------------------------------

_C = dict[int, list[tuple[int, int, int]]]
_BASE: _C = {
    PADDY: [(62, 104, 66), (72, 112, 62), (56, 96, 72), (84, 118, 66)],
    TERRACE: [(88, 112, 62), (104, 118, 70), (122, 116, 84), (76, 100, 56), (136, 126, 96)],
    GREENHOUSE: [(206, 210, 214), (190, 198, 206), (214, 214, 206)],
    FALLOW: [(146, 128, 104), (128, 114, 96), (158, 142, 116)],
    ORCHARD: [(128, 118, 96), (118, 112, 90)],
    GRASS: [(118, 126, 82), (128, 132, 92), (108, 118, 76)],
    WOODLAND: [(40, 62, 40), (46, 68, 42), (36, 56, 38)],
    WATER: [(48, 66, 74)],
    POND: [(58, 84, 80), (66, 92, 84), (50, 74, 78)],
    ROAD: [(150, 148, 142), (138, 136, 132)],
    TRACK: [(164, 150, 124), (150, 138, 116)],
    VILLAGE: [(128, 122, 112), (112, 108, 100), (70, 84, 56)],
    BUILDING: [(156, 78, 62), (168, 168, 170), (74, 102, 140), (120, 112, 108), (186, 180, 172)],
}
_CROP_PLANTING = [
    (74, 104, 52),
    (92, 120, 60),
    (62, 92, 48),
    (106, 128, 70),
    (82, 112, 46),
    (120, 134, 80),
    (150, 136, 100),
    (172, 158, 108),
]
_CROP_OFF = [
    (150, 130, 104),
    (136, 118, 96),
    (166, 148, 118),
    (122, 104, 86),
    (176, 162, 134),
    (142, 126, 98),
    (92, 116, 62),
    (170, 152, 104),
]
_PADDY_OFF = [
    (132, 118, 92),
    (120, 108, 86),
    (142, 128, 100),
    (72, 86, 92),
    (126, 116, 96),
    (112, 104, 84),
    (138, 122, 94),
    (84, 94, 100),
]


def _palette(season: str) -> npt.NDArray[np.float32]:
    pal = np.zeros((N_CLASSES, 8, 3), np.float32)
    table = dict(_BASE)
    table[CROP] = _CROP_PLANTING if season == "planting" else _CROP_OFF
    if season != "planting":
        table[PADDY] = _PADDY_OFF
        table[TERRACE] = [(140, 124, 98), (126, 112, 92), (150, 136, 106), (96, 108, 70)]
    for c, colours in table.items():
        for k in range(8):
            pal[c, k] = colours[k % len(colours)]
    return pal


@dataclass(frozen=True)
class LookStyle:
    gain: tuple[float, float, float]
    gamma: float
    saturation: float
    haze: float
    blur_sigma: float
    sharpen: float


STYLES = {
    # Mapbox: warm, saturated, crisp. Google: cooler, a little hazy and soft.
    "mapbox": LookStyle(
        gain=(1.06, 1.02, 0.94), gamma=0.95, saturation=1.15, haze=0.0, blur_sigma=0.0, sharpen=0.6
    ),
    "google": LookStyle(
        gain=(0.94, 0.99, 1.07), gamma=1.05, saturation=0.85, haze=0.08, blur_sigma=0.8, sharpen=0.0
    ),
}


def block_scenario(
    block: BlockId, *, seed: int, look: Look, shares: Mapping[str, float] | None = None
) -> str:
    """The block's coverage scenario for a look, drawn by ``shares`` (default: the paper's)."""
    sh = dict(shares or PAPER_SHARES[look])
    total = sum(sh.get(s, 0.0) for s in SCENARIOS)
    r = float(hash_unit(block.row, block.col, _LOOK_ID[look], seed=seed + 61)) * total
    acc = 0.0
    for s in SCENARIOS:
        acc += sh.get(s, 0.0)
        if r < acc:
            return s
    return "planting"


def render_block(
    block: BlockId,
    raster: BlockRaster,
    *,
    seed: int,
    look: Look,
    shares: Mapping[str, float] | None = None,
    landscape: Landscape | None = None,
) -> tuple[U8, npt.NDArray[np.bool_], str]:
    """Render (3, H, W) RGB, the validity mask and the scenario of a block in a look."""
    land = landscape or generate_landscape(raster, seed=seed)
    scenario = block_scenario(block, seed=seed, look=look, shares=shares)
    h, w = raster.height, raster.width

    def bh(k: int) -> float:
        return float(hash_unit(block.row, block.col, _LOOK_ID[look], k, seed=seed + 71))

    season = (
        scenario
        if scenario in ("planting", "non_planting")
        else ("planting" if bh(1) < 0.5 else "non_planting")
    )
    # Google's season differs from Mapbox's more often than not, as the two archives do.
    pal = _palette(season)
    var_idx = np.minimum((land.variant * 8).astype(np.int64), 7)
    img = pal[land.cls, var_idx]  # (H, W, 3) float32
    rng = np.random.default_rng([seed, block.row, block.col, _LOOK_ID[look]])
    x, y, px, _ = _axes(raster)

    # Textures: crop rows, terrace risers, greenhouse ridges, tree canopies.
    rows = land.rows[..., None]
    field = np.isin(land.cls, (CROP, FALLOW, PADDY))[..., None]
    img = img + np.where(field, 7.0 * rows, 0.0)
    img = img + np.where((land.cls == TERRACE)[..., None], 14.0 * rows, 0.0)
    img = img + np.where((land.cls == GREENHOUSE)[..., None], 22.0 * np.minimum(rows, 0), 0.0)
    canopy = np.asarray(
        cv2.GaussianBlur(
            rng.standard_normal((h, w), dtype=np.float32), (0, 0), max(0.8, 2.0 / max(px, 0.5))
        ),
        dtype=np.float32,
    )
    canopy *= 1.0 / max(float(canopy.std()), 1e-6)
    treeish = np.isin(land.cls, (WOODLAND, ORCHARD, VILLAGE))[..., None]
    trees = np.where(treeish, canopy[..., None], 0.0)
    tree_col = np.array([44, 66, 40], np.float32)
    tree_cover = np.where(
        (land.cls == WOODLAND)[..., None], 0.0, np.clip(trees - 0.6, 0, 1)
    )  # orchards/villages: scattered crowns
    img = img * (1 - tree_cover) + tree_col * tree_cover
    img = img + np.where((land.cls == WOODLAND)[..., None], 10.0 * trees, 0.0)
    # Large-scale brightness drift within fields, and sensor noise.
    drift = _upsample(value_noise(x[None, ::16], y[::16, None], 250, seed + 81), 16, h, w)
    img = img * (0.92 + 0.16 * drift[..., None])
    img = img + rng.normal(0, 3.0, (h, w, 1)).astype(np.float32)

    # Building shadows to the north-west of roofs (sun from the south-east).
    shift = max(1, round(3 / max(px, 0.5)))
    b = land.cls == BUILDING
    shadow = np.zeros_like(b)
    shadow[shift:, :-shift] = b[:-shift, shift:]
    shadow &= ~b
    img[shadow] *= 0.55

    img = _apply_weather(img, land, scenario, raster, seed, look, bh)
    img = _apply_style(img, STYLES[look], px, bh)
    rgb = np.clip(img, 0, 255).astype(np.uint8).transpose(2, 0, 1)
    valid = np.ones((h, w), bool)
    if scenario == "nodata":
        valid = _nodata_mask(h, w, bh)
    return np.ascontiguousarray(rgb), valid, scenario


def _apply_weather(
    img: npt.NDArray[np.floating],
    land: Landscape,
    scenario: str,
    raster: BlockRaster,
    seed: int,
    look: str,
    bh: Callable[[int], float],
) -> npt.NDArray[np.floating]:
    """Clouds or snow over the image; the snow mask is float64, so the result may be too."""
    h, w = land.cls.shape
    x, y, px, py = _axes(raster)
    if scenario == "cloudy":
        step = max(1, round(20 / px))
        nz = fbm(x[None, ::step], y[::step, None], 1_400, seed + 91 + _LOOK_ID[look], octaves=5)
        cover = 0.25 + 0.75 * bh(2)
        thr = float(np.quantile(nz, 1 - cover))
        alpha = _upsample(np.clip((nz - thr) / 0.08, 0, 1), step, h, w)
        haze = _upsample(np.clip((nz - thr + 0.08) / 0.2, 0, 1), step, h, w) * 0.35
        a = np.maximum(alpha, haze)[..., None]
        off = max(1, round(60 / px))
        shadow = np.zeros((h, w), np.float32)
        shadow[off:, off:] = alpha[:-off, :-off]
        img = img * (1 - 0.45 * shadow[..., None] * (1 - a))
        cloud = np.array([236, 238, 242], np.float32)
        img = img * (1 - a) + cloud * a
    elif scenario == "snow":
        step = max(1, round(20 / px))
        snow_nz = _upsample(
            fbm(x[None, ::step], y[::step, None], 900, seed + 95, octaves=3), step, h, w
        )
        cover = 0.55 + 0.45 * bh(3)
        base = np.clip((snow_nz - (1 - cover)) / 0.15, 0, 1)
        k = np.ones(N_CLASSES, np.float32)
        k[[WOODLAND, ORCHARD]] = 0.35
        k[[ROAD, WATER]] = 0.5
        k[BUILDING] = 0.9
        a = (base * k[land.cls] * np.where(land.rows < -0.5, 0.6, 1.0))[..., None]
        snow = np.array([232, 236, 244], np.float32)
        img = img * (1 - a) + snow * a
    return img


def _apply_style(
    img: npt.NDArray[np.floating], st: LookStyle, px: float, bh: Callable[[int], float]
) -> F32:
    jitter = 1 + 0.06 * (bh(4) - 0.5)
    img = img * np.array(st.gain, np.float32) * np.float32(jitter)
    img = 255.0 * (np.clip(img, 0, 255) / 255.0) ** st.gamma
    lum = img.mean(axis=2, keepdims=True)
    img = lum + (img - lum) * st.saturation
    if st.haze:
        img = img * (1 - st.haze) + np.float32(190) * st.haze
    if st.blur_sigma:
        img = np.asarray(cv2.GaussianBlur(img, (0, 0), st.blur_sigma), dtype=img.dtype)
    if st.sharpen:
        img = img + st.sharpen * (img - cv2.GaussianBlur(img, (0, 0), 1.0))
    return np.asarray(img, dtype=np.float32)


def _nodata_mask(h: int, w: int, bh: Callable[[int], float]) -> npt.NDArray[np.bool_]:
    """A straight imagery edge across the block; a few blocks have no imagery at all."""
    keep = 0.7 * bh(5)
    if keep < 0.1:
        return np.zeros((h, w), bool)
    ang = 2 * math.pi * bh(6)
    yy, xx = np.mgrid[0:h, 0:w]
    proj = (xx / w - 0.5) * math.cos(ang) + (yy / h - 0.5) * math.sin(ang)
    return np.asarray(proj < np.quantile(proj, keep), dtype=bool)


# --- the source ----------------------------------------------------------------------------------


class SyntheticConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["synthetic"] = "synthetic"
    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    look: Look
    seed: int = Field(0, ge=0, le=2**31 - 1)
    scenario_shares: dict[str, float] | None = Field(
        None,
        description="relative weights of planting/non_planting/cloudy/snow/nodata; "
        "default: the paper's coverage-type shares for the look",
    )
    write_truth: bool = Field(False, description="also write <dest stem>.truth.tif")

    @field_validator("scenario_shares")
    @classmethod
    def _shares(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if v is None:
            return v
        unknown = set(v) - set(SCENARIOS)
        if unknown:
            raise ValueError(f"unknown scenarios {sorted(unknown)}; known: {SCENARIOS}")
        if any(s < 0 for s in v.values()) or sum(v.values()) <= 0:
            raise ValueError("shares must be non-negative with a positive sum")
        return v


def truth_path_for(dest: Path) -> Path:
    return dest.with_name(dest.name.removesuffix(".tif") + ".truth.tif")


class SyntheticSource:
    kind = "synthetic"

    def __init__(self, config: SyntheticConfig) -> None:
        self.config = config
        self.slug = config.slug

    def close(self) -> None:
        pass

    def scenario(self, block: BlockId) -> str:
        c = self.config
        return block_scenario(block, seed=c.seed, look=c.look, shares=c.scenario_shares)

    def fetch_block(self, block: BlockId, raster: BlockRaster, dest: Path) -> BlockImageResult:
        c = self.config
        land = generate_landscape(raster, seed=c.seed)
        rgb, valid, scenario = render_block(
            block, raster, seed=c.seed, look=c.look, shares=c.scenario_shares, landscape=land
        )
        if c.write_truth:
            write_single_band(truth_path_for(Path(dest)), land.truth, raster)
        return finish_block(
            rgb=rgb,
            valid=valid,
            raster=raster,
            dest=dest,
            notes=[f"synthetic {c.look}, scenario {scenario}"],
            missing_reason=f"synthetic {c.look}: no imagery (scenario nodata)",
        )


def build_synthetic(config: SyntheticConfig, secrets: Mapping[str, str]) -> SyntheticSource:
    return SyntheticSource(config)
