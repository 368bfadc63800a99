"""The validation design: a systematic grid of blocks, and held-out validation samples."""

from __future__ import annotations

import hashlib
import math
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.contrib.gis.db.models import Extent
from django.db import transaction

from annotation.models import Sample, SampleSplit
from learning.models import ModelVersion, SystematicSampleBlock
from mapping.geo.grid import grid_for
from mapping.models import Block, Campaign


def systematic_sample_create(
    *, campaign: Campaign, spacing_deg: float = 0.5, user: AbstractBaseUser | None = None
) -> list[SystematicSampleBlock]:
    """Put a block on the systematic grid at every ``spacing_deg`` (the paper's 0.5° points).

    Points sit at cell centres ((k + 0.5) × spacing), so none falls on a block edge; the block
    that contains a point joins the sample (points over sea or outside the campaign have no
    block). Safe to repeat: blocks already in the sample are kept.
    """
    if not 0 < spacing_deg <= 10:
        raise ValueError(f"spacing must be more than 0 and at most 10 degrees, got {spacing_deg}")
    ext = Block.objects.filter(campaign=campaign).aggregate(e=Extent("geometry"))["e"]
    if ext is None:
        return []
    w, s, e, n = ext
    grid = grid_for(campaign.block_size_deg)
    wanted = set()
    for i in range(math.floor(w / spacing_deg), math.ceil(e / spacing_deg)):
        for j in range(math.floor(s / spacing_deg), math.ceil(n / spacing_deg)):
            lon, lat = (i + 0.5) * spacing_deg, (j + 0.5) * spacing_deg
            if w <= lon < e and s <= lat < n:
                b = grid.block_at(lon, lat)
                wanted.add((b.row, b.col))
    rows = {r for r, _ in wanted}
    found = [
        pk
        for pk, r, c in Block.objects.filter(campaign=campaign, row__in=rows).values_list(
            "pk", "row", "col"
        )
        if (r, c) in wanted
    ]
    with transaction.atomic():
        have = set(
            SystematicSampleBlock.objects.filter(campaign=campaign).values_list(
                "block_id", flat=True
            )
        )
        SystematicSampleBlock.objects.bulk_create(
            [
                SystematicSampleBlock(
                    campaign=campaign, block_id=pk, spacing_deg=spacing_deg, created_by=user
                )
                for pk in sorted(found)
                if pk not in have
            ]
        )
    return list(
        SystematicSampleBlock.objects.filter(campaign=campaign, block_id__in=found).select_related(
            "block"
        )
    )


def _stable_key(block_id: int) -> str:
    return hashlib.sha256(f"block:{block_id}".encode()).hexdigest()


def validation_split_ensure(*, campaign: Campaign, share: float, min_blocks: int = 0) -> int:
    """Hold out ``share`` of each province's annotated blocks for validation, and at least
    ``min_blocks`` of them (as far as there are blocks free to hold out), so that a province's
    IoU never rests on one or two blocks.

    The unit is the block: all its samples (one per source) are held out together, because the
    two sources show the same fields and a block trained on Mapbox and validated on Google
    would leak. Only finished work (reviewed, as training takes it) is held out, and only
    blocks none of whose samples a model has trained on (a held-out sample must never have been
    seen). Which blocks is decided by a hash of the block, so the choice is repeatable and not
    biased towards early or late work. Returns how many samples moved.
    """
    from learning.services.data import reviewed

    if share <= 0 and min_blocks <= 0:
        return 0
    trained: set[int] = set()
    for ids in ModelVersion.objects.filter(campaign=campaign, kind="segmenter").values_list(
        "training_samples", flat=True
    ):
        trained.update(int(i) for i in ids or [])
    finished = set(
        reviewed(Sample.objects.filter(block__campaign=campaign)).values_list("pk", flat=True)
    )
    blocks: dict[int, dict[str, Any]] = {}
    for pk, block_id, province_id, split in Sample.objects.filter(
        block__campaign=campaign
    ).values_list("pk", "block_id", "block__province_id", "split"):
        b = blocks.setdefault(block_id, {"province": province_id, "samples": [], "splits": set()})
        b["samples"].append(pk)
        b["splits"].add(split)
    by_province: dict[int | None, list[int]] = {}
    for block_id, b in blocks.items():
        by_province.setdefault(b["province"], []).append(block_id)
    moved = 0
    for block_ids in by_province.values():
        want = max(math.floor(len(block_ids) * share + 0.5), min_blocks)
        # Held out and finished: a held-out block still with its annotator is not validated
        # on (``validation_samples`` takes reviewed work only), so it cannot count towards the
        # minimum either (the demo's first held-out blocks include the annotator's).
        have = sum(1 for k in block_ids if SampleSplit.VALIDATION in blocks[k]["splits"]
                   and any(pk in finished for pk in blocks[k]["samples"]))
        if have >= want:
            continue
        free = sorted(
            (
                k
                for k in block_ids
                if blocks[k]["splits"] == {SampleSplit.TRAIN}
                and all(pk in finished and pk not in trained for pk in blocks[k]["samples"])
            ),
            key=_stable_key,
        )
        chosen = [pk for k in free[: want - have] for pk in blocks[k]["samples"]]
        moved += Sample.objects.filter(pk__in=chosen, split=SampleSplit.TRAIN).update(
            split=SampleSplit.VALIDATION
        )
    return moved
