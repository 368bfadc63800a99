"""Cropland segmentation: engine protocol and registry, data, sliding-window inference, IoU."""

from learning.core.segmentation.engine import (
    SegmentationEngine,
    engine_names,
    get_engine,
    load_segmenter,
)
from learning.core.segmentation.engine_registry import register_engine
from learning.core.segmentation.metrics import IoUCounts, pixel_iou

__all__ = [
    "IoUCounts",
    "SegmentationEngine",
    "engine_names",
    "get_engine",
    "load_segmenter",
    "pixel_iou",
    "register_engine",
]
