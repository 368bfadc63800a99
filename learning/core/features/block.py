"""The 16 features of one block and one imagery source (the paper's Table 5), in a fixed order.

Feature order of :meth:`BlockFeatures.to_vector` and :data:`FEATURE_NAMES`:

====  =====================  ===========================================================
 #    name                   meaning (module with the exact definition)
====  =====================  ===========================================================
 0    elevation_median       median elevation, m (``terrain``)
 1    slope_median           median slope, degrees (``terrain``)
 2    tri_median             median terrain ruggedness index (Riley), m (``terrain``)
 3    roughness_median       median roughness (3x3 max - min), m (``terrain``)
 4    coverage_type          index into :data:`COVERAGE_TYPES`, NaN when unknown
 5    sharpness              median Sobel gradient magnitude (``iqa.quality``)
 6    hue_median             median hue, degrees 0-360 (``iqa.quality``)
 7    saturation_median      median HSL saturation 0-1 (``iqa.quality``)
 8    lightness_median       median HSL lightness 0-1 (``iqa.quality``)
 9    area_m2                cropland area, m2 (``region``)
10    area_fraction          cropland / valid block area (``region``)
11    solidity_mean          mean solidity of components (``region``)
12    solidity_total         total area / total hull area (``region``)
13    euler_mean             mean Euler number of components (``region``)
14    euler_total            components - holes (``region``)
15    iou_sources            IoU with the other source's mask (``consistency``)
====  =====================  ===========================================================

``edge_density`` (ED = N / Nt) is kept as an extra field outside the vector: the paper uses it to
validate against other products, not as a model input. Missing values are NaN, which XGBoost
treats as missing.

The coverage type is encoded as its position in :data:`COVERAGE_TYPES` (the order of the
coverage-type classifier's ``CoverageType`` enum). Trees split on it like an ordinal code, which
is enough to single out any class in a few splits.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

import numpy as np
import numpy.typing as npt

from learning.core.features.consistency import iou_of_checked
from learning.core.features.region import check_mask, region_features_of_checked
from learning.core.features.terrain import DemWindow, NanPolicy, TerrainFeatures, terrain_features
from learning.core.iqa.quality import QualityFeatures, quality_features

COVERAGE_TYPES: tuple[str, ...] = ("planting", "non_planting", "cloudy", "snow_ice", "nodata")

FEATURE_NAMES: tuple[str, ...] = (
    "elevation_median",
    "slope_median",
    "tri_median",
    "roughness_median",
    "coverage_type",
    "sharpness",
    "hue_median",
    "saturation_median",
    "lightness_median",
    "area_m2",
    "area_fraction",
    "solidity_mean",
    "solidity_total",
    "euler_mean",
    "euler_total",
    "iou_sources",
)
TERRAIN_NAMES: tuple[str, ...] = FEATURE_NAMES[:4]
SOURCE_NAMES: tuple[str, ...] = FEATURE_NAMES[4:15]  # per-source, non-terrain, without IoU
EXTRA_NAMES: tuple[str, ...] = ("edge_density",)


def coverage_code(value: str | enum.Enum | float | None) -> float:
    """Position of a coverage type in :data:`COVERAGE_TYPES`; NaN for None/NaN/empty."""
    if value is None:
        return math.nan
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if math.isnan(value):
            return math.nan
        if float(value).is_integer() and 0 <= value < len(COVERAGE_TYPES):
            return float(value)
        raise ValueError(f"coverage type code must be 0..{len(COVERAGE_TYPES) - 1}, got {value}")
    text = str(value).strip().lower()
    if text in ("", "nan", "none"):
        return math.nan
    try:
        return coverage_code(float(text))  # a code written as text, e.g. "2" or "2.0"
    except ValueError as e:
        if "code must be" in str(e):
            raise
    # not a number: a coverage type name
    if text not in COVERAGE_TYPES:
        raise ValueError(f"unknown coverage type {value!r}; expected one of {COVERAGE_TYPES}")
    return float(COVERAGE_TYPES.index(text))


@dataclass(frozen=True)
class BlockFeatures:
    """Table 5 features of one block from one source (definitions in the module docstring)."""

    elevation_median: float
    slope_median: float
    tri_median: float
    roughness_median: float
    coverage_type: str | None
    sharpness: float
    hue_median: float
    saturation_median: float
    lightness_median: float
    area_m2: float
    area_fraction: float
    solidity_mean: float
    solidity_total: float
    euler_mean: float
    euler_total: float
    iou_sources: float
    edge_density: float = math.nan

    def __post_init__(self) -> None:
        if self.coverage_type is not None and self.coverage_type not in COVERAGE_TYPES:
            raise ValueError(
                f"unknown coverage type {self.coverage_type!r}; expected one of {COVERAGE_TYPES}"
            )

    @staticmethod
    def names() -> tuple[str, ...]:
        """The 16 model feature names, in vector order."""
        return FEATURE_NAMES

    def to_vector(self) -> npt.NDArray[np.float64]:
        """The 16 features as float64 in :data:`FEATURE_NAMES` order."""
        out = np.empty(len(FEATURE_NAMES))
        for i, name in enumerate(FEATURE_NAMES):
            v = getattr(self, name)
            out[i] = coverage_code(v) if name == "coverage_type" else float(v)
        return out

    def to_dict(self) -> dict[str, float | str | None]:
        """All fields (the 16 features plus extras) by name, coverage type as its string."""
        return dict(asdict(self))

    @classmethod
    def from_mapping(cls, row: Mapping[str, object]) -> BlockFeatures:
        """Parse a table row (strings or numbers); missing extras become NaN."""
        missing = [n for n in FEATURE_NAMES if n not in row]
        if missing:
            raise ValueError(f"missing feature column(s): {', '.join(missing)}")
        kwargs: dict[str, object] = {}
        for f in fields(cls):
            raw = row.get(f.name)
            if f.name == "coverage_type":
                code = coverage_code(raw)  # type: ignore[arg-type]  # validated inside
                kwargs[f.name] = None if math.isnan(code) else COVERAGE_TYPES[int(code)]
            else:
                kwargs[f.name] = _to_float(raw, f.name)
        return cls(**kwargs)  # type: ignore[arg-type]  # keys are exactly the fields


def _to_float(raw: object, name: str) -> float:
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        return math.nan
    try:
        return float(raw)  # type: ignore[arg-type]  # str or number from a table
    except (TypeError, ValueError) as e:
        raise ValueError(f"feature {name!r}: not a number: {raw!r}") from e


def block_features_compute(
    *,
    image: npt.NDArray[np.uint8] | QualityFeatures,
    mask: npt.NDArray[np.generic],
    pixel_size_m: float | tuple[float, float],
    dem: DemWindow | TerrainFeatures | None = None,
    coverage_type: str | enum.Enum | None = None,
    other_mask: npt.NDArray[np.generic] | None = None,
    dem_nan_policy: NanPolicy = "raise",
) -> BlockFeatures:
    """All features of one block and source.

    ``image`` is the source's RGB block (H, W, 3) uint8 or its precomputed
    :class:`QualityFeatures` (they depend on the image alone: a round stores them once per
    block image, and later rounds need not read the image again), ``mask`` its predicted
    cropland mask (H, W) on the image's grid, ``other_mask`` the other source's mask on that
    grid (IoU is NaN without it), ``dem`` a DEM window or precomputed terrain features (NaN
    without).
    """
    if isinstance(image, QualityFeatures):
        quality = image
    elif image.ndim != 3 or mask.shape != image.shape[:2]:
        raise ValueError(f"mask {mask.shape} must match the image's rows and columns "
                         f"{image.shape[:2]}")
    else:
        quality = quality_features(image)
    if dem is None:
        terrain = TerrainFeatures(math.nan, math.nan, math.nan, math.nan, 0.0)
    elif isinstance(dem, TerrainFeatures):
        terrain = dem
    else:
        terrain = terrain_features(dem, nan_policy=dem_nan_policy)
    checked = check_mask(mask)
    region = region_features_of_checked(checked, pixel_size_m)
    iou = math.nan if other_mask is None else iou_of_checked(
        checked, check_mask(other_mask, "other source's mask"))
    cov = coverage_code(coverage_type)
    return BlockFeatures(
        elevation_median=terrain.elevation,
        slope_median=terrain.slope,
        tri_median=terrain.tri,
        roughness_median=terrain.roughness,
        coverage_type=None if math.isnan(cov) else COVERAGE_TYPES[int(cov)],
        sharpness=quality.sharpness,
        hue_median=quality.hue_deg,
        saturation_median=quality.saturation,
        lightness_median=quality.lightness,
        area_m2=region.area_m2,
        area_fraction=region.area_fraction,
        solidity_mean=region.solidity_mean,
        solidity_total=region.solidity_total,
        euler_mean=region.euler_mean,
        euler_total=region.euler_total,
        iou_sources=iou,
        edge_density=region.edge_density,
    )
