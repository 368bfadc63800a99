"""Block features of the paper's Table 5: terrain, image quality, region properties, consistency.

Modules: ``terrain`` (DEM windows, gdaldem-equivalent slope/TRI/roughness), ``region`` (mask
region properties), ``consistency`` (IoU between sources), ``block`` (the 16-feature record).
Image-quality features live in ``learning.core.iqa.quality``.
"""

from learning.core.features.block import (
    COVERAGE_TYPES,
    FEATURE_NAMES,
    BlockFeatures,
    block_features_compute,
    coverage_code,
)

__all__ = [
    "COVERAGE_TYPES",
    "FEATURE_NAMES",
    "BlockFeatures",
    "block_features_compute",
    "coverage_code",
]
