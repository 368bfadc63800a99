"""What the stages share: a block's image that may be unreadable, model bundles loaded once
per worker process.
"""

from __future__ import annotations

from typing import Any

from learning.core.segmentation import load_segmenter
from learning.core.tabular.correctness import CorrectnessModel
from learning.models import ModelKind, Round
from learning.services.data import block_image_read, block_image_row, data_path
from learning.services.round.progress import round_log
from mapping.models import Block, BlockImage


def block_image_or_none(*, rnd: Round, block: Block, source: Any) -> Any:
    """The block's image, or None (logged) when its file cannot be read: one corrupt image
    must not stop a round over thousands of blocks."""
    return block_image_read_or_none(
        rnd=rnd, block=block, source=source, image=block_image_row(block=block, source=source)
    )


def block_image_read_or_none(
    *, rnd: Round, block: Block, source: Any, image: BlockImage | None
) -> Any:
    """``block_image_or_none`` for the row already at hand (``block_image_row``)."""
    try:
        return block_image_read(image=image)
    except (ValueError, OSError) as e:
        round_log(rnd=rnd.pk, message=f"{block.code} / {source.slug}: image unreadable, "
                  f"skipped ({e})")
        return None


_BUNDLES: dict[str, Any] = {}


def bundle_load(kind: str, rel: str) -> Any:
    """Load a model bundle once per worker process."""
    key = f"{kind}:{rel}"
    if key not in _BUNDLES:
        if kind == ModelKind.SEGMENTER:
            _BUNDLES[key] = load_segmenter(data_path(rel))
        elif kind == ModelKind.IQA:
            from learning.core.iqa.classifier import IQAClassifier  # torch: on first use

            _BUNDLES[key] = IQAClassifier.load(data_path(rel), device="cpu")
        else:
            _BUNDLES[key] = CorrectnessModel.load(data_path(rel))
    return _BUNDLES[key]
