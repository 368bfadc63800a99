"""A current segmenter prediction for blocks in tests: verdicts judge a prediction, so a test
that labels verdicts needs one (the server refuses a verdict on a block without)."""

from __future__ import annotations

from collections.abc import Iterable


def current_prediction_make(
    *, blocks: Iterable, sources: Iterable, name: str = "seg-r1", round_number: int = 1
):
    """The campaign's current segmenter ``name`` (made in round ``round_number``, done) with an
    empty prediction of each block on each source; the ModelVersion."""
    from learning.models import BlockPrediction, ModelKind, ModelVersion, Round

    blocks = list(blocks)
    campaign = blocks[0].campaign
    rnd, _ = Round.objects.get_or_create(
        campaign=campaign, number=round_number, defaults={"state": "done"}
    )
    ModelVersion.objects.filter(
        campaign=campaign, kind=ModelKind.SEGMENTER, is_current=True
    ).exclude(name=name).update(is_current=False)
    seg, _ = ModelVersion.objects.get_or_create(
        campaign=campaign,
        kind=ModelKind.SEGMENTER,
        name=name,
        defaults={"bundle_path": f"models/{name}", "round": rnd, "is_current": True},
    )
    for block in blocks:
        for source in sources:
            BlockPrediction.objects.get_or_create(
                block=block,
                source=source,
                model_version=seg,
                defaults={"round": rnd, "mask_path": "m.tif", "cropland_fraction": 0.0},
            )
    return seg
