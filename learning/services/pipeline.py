"""The round pipeline, stage by stage, as the worker runs it.

    queued -> training (IQA classifier if new coverage labels, Mask2Former, warm start)
           -> predicting (batches of blocks x sources, gpu queue: mask GeoTIFF + polygons,
                          coverage type)
           -> scoring (batches of predictions, cpu queue: the 16 features; then the correctness
                       model, retrained when new verdicts exist, gives p_incorrect)
           -> evaluating (per province: IoU on held-out samples, correctness, area vs official,
                          stopping rules) -> selecting (next blocks) -> done

Every step works out what is left from the database (the round row, its checkpoint, the batch
table, existing predictions), so a task delivered twice or re-queued by the reconciler redoes
nothing that is finished. Long single-flight steps (training, scoring) hold the round's lease
and heartbeat from a thread; a cancel or a lost lease stops them at the next training step.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from django.contrib.gis.geos import GEOSGeometry, MultiPolygon
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone
from rasterio.features import shapes as raster_shapes

from annotation.models import Assignment, CoverageLabel, Sample, VerdictLabel
from learning.models import (
    ACTIVE_ROUND_STATES,
    BlockPrediction,
    BlockScore,
    BlockSelection,
    ModelKind,
    ModelVersion,
    ProvinceDecision,
    ProvinceRoundResult,
    ProvinceStatus,
    Round,
    RoundBatch,
    RoundState,
    SystematicSampleBlock,
)
from learning.selection import Candidate, priority, select_spread
from learning.services.config import RoundConfig, round_config_parse
from learning.services.data import (
    block_image_get,
    data_path,
    json_safe,
    labels_fingerprint,
    pixel_size_m,
    read_prediction,
    round_block_ids,
    round_sources,
    sample_pair,
    training_samples,
    validation_samples,
)
from learning.services.registry import (
    ModelVersionError,
    bundle_relpath,
    model_version_current,
    model_version_register,
    model_version_set_current,
)
from learning.services.rounds import (
    lease_claim,
    lease_heartbeat,
    lease_release,
    round_broadcast,
    round_fail,
    round_heartbeat,
    round_log,
    round_timing_add,
    round_transition,
)
from learning.services.selection_prerank import Ranked, prerank_agrees, selection_prerank
from learning.services.validation import validation_split_ensure
from mapping.geo.grid import grid_for
from mapping.models import Block
from mapping.services.area_reference import area_reference

log = logging.getLogger(__name__)


# Fewer verdicts than this on a province's systematic blocks say too little on their own.
SYSTEMATIC_MIN_VERDICTS = 10


class RoundStopped(Exception):
    """The round was cancelled or failed, or this task lost its lease: stop quietly."""


# --- small helpers ----------------------------------------------------------------------------


def _round(round_id: int) -> Round:
    return Round.objects.select_related("campaign").get(pk=round_id)


def checkpoint_set(*, round_id: int, **values: Any) -> dict[str, Any]:
    """Merge ``values`` into the round's checkpoint (under a row lock)."""
    with transaction.atomic():
        rnd = Round.objects.select_for_update().get(pk=round_id)
        ck = dict(rnd.checkpoint or {})
        ck.update(values)
        Round.objects.filter(pk=round_id).update(checkpoint=ck)
    return ck


def _enter(
    *, round_id: int, from_state: str, to_state: str, total: int, message: str, **fields: Any
) -> bool:
    """Move to the next stage with fresh progress counters; False if already moved."""
    rnd = Round.objects.get(pk=round_id)
    ck = dict(rnd.checkpoint or {})
    ck["stage_started"] = time.time()
    moved = round_transition(
        round_id=round_id,
        from_state=from_state,
        to_state=to_state,
        stage_done=0,
        stage_total=total,
        checkpoint=ck,
        **fields,
    )
    if moved:
        round_log(rnd=round_id, message=message)
        round_broadcast(rnd=Round.objects.get(pk=round_id))
    return moved


def _check_active(round_id: int, state: str) -> Round:
    rnd = _round(round_id)
    if rnd.state != state:
        raise RoundStopped(f"round is {rnd.state}, not {state}")
    return rnd


class _Heartbeat(threading.Thread):
    """Beats the round's lease while a long step runs; reports training progress; notices a
    cancel (or a lost lease) and sets ``stop`` so the training loop can end at the next step."""

    def __init__(self, *, round_id: int, token: str, every: float) -> None:
        super().__init__(daemon=True, name=f"round-{round_id}-heartbeat")
        self.round_id, self.token, self.every = round_id, token, every
        self.stop = threading.Event()
        self.finished = threading.Event()
        self.progress: Callable[[], int | None] = lambda: None

    def run(self) -> None:
        try:
            while not self.finished.wait(self.every):
                done = self.progress()
                fields = {} if done is None else {"stage_done": done}
                if not lease_heartbeat(round_id=self.round_id, token=self.token, **fields):
                    self.stop.set()
                    return
                round_broadcast(rnd=Round.objects.get(pk=self.round_id))
        except Exception:  # a DB hiccup must not kill the worker; the reconciler takes over
            log.exception("heartbeat of round %s failed", self.round_id)
        finally:
            connection.close()

    def end(self) -> None:
        self.finished.set()
        self.join(timeout=30)


# --- round driver -----------------------------------------------------------------------------


def round_advance_run(*, round_id: int) -> dict[str, Any]:
    """Look at the round's state and start (or re-start) what that state needs."""
    from learning import tasks

    rnd = _round(round_id)
    if not rnd.is_active:
        return {"state": rnd.state}
    cfg = round_config_parse(rnd.config)
    if rnd.started_at and (timezone.now() - rnd.started_at).total_seconds() > cfg.max_duration_s:
        round_fail(
            round_id=round_id,
            reason=f"time limit of {cfg.max_duration_s:.0f} s exceeded while {rnd.state}",
        )
        return {"state": "failed"}
    state = rnd.state
    if state == RoundState.QUEUED:
        if cfg.validation_min_blocks:
            # Before training sees the samples: held-out blocks must never have been trained on.
            moved = validation_split_ensure(
                campaign=rnd.campaign, share=cfg.validation_share,
                min_blocks=cfg.validation_min_blocks,
            )
            if moved:
                round_log(rnd=round_id, message=f"{moved} sample(s) held out for validation "
                          f"(at least {cfg.validation_min_blocks} block(s) per province)")
        total = cfg.epochs * cfg.steps_per_epoch
        if _enter(
            round_id=round_id,
            from_state=RoundState.QUEUED,
            to_state=RoundState.TRAINING,
            total=total,
            message="training started",
            started_at=timezone.now(),
        ):
            tasks.round_train.delay(round_id)
    elif state == RoundState.TRAINING:
        tasks.round_train.delay(round_id)
    elif state == RoundState.PREDICTING:
        _dispatch_batches(rnd, RoundState.PREDICTING, tasks.round_predict_batch)
    elif state == RoundState.SCORING:
        if RoundBatch.objects.filter(round=rnd, stage=RoundState.SCORING, done_at=None).exists():
            _dispatch_batches(rnd, RoundState.SCORING, tasks.round_features_batch)
        else:
            tasks.round_score.delay(round_id)
    elif state in (RoundState.EVALUATING, RoundState.SELECTING):
        # Inline and single-flight: a second delivery of this task (or the reconciler's
        # re-drive) finds the lease taken and leaves the writing to the first.
        token = lease_claim(round_id=round_id, state=state, stale_after_s=cfg.stale_after_s)
        if token is None:
            return {"state": state, "busy": True}
        try:
            if state == RoundState.EVALUATING:
                round_evaluate_run(round_id=round_id)
            round_select_run(round_id=round_id)
        finally:
            lease_release(round_id=round_id, token=token)
    return {"state": Round.objects.get(pk=round_id).state}


def _dispatch_batches(rnd: Round, stage: str, task: Any) -> int:
    pending = list(
        RoundBatch.objects.filter(round=rnd, stage=stage, done_at=None)
        .order_by("index")
        .values_list("index", flat=True)
    )
    for index in pending:
        task.delay(rnd.pk, index)
    if not pending:
        _stage_complete(round_id=rnd.pk, stage=stage)
    return len(pending)


def _make_batches(*, rnd: Round, stage: str, items: list[int], size: int, weight: int) -> int:
    """Create the stage's batch rows once; returns the total progress units."""
    if not RoundBatch.objects.filter(round=rnd, stage=stage).exists():
        try:
            with transaction.atomic():
                RoundBatch.objects.bulk_create(
                    [
                        RoundBatch(
                            round=rnd,
                            stage=stage,
                            index=i // size,
                            items=items[i : i + size],
                            weight=len(items[i : i + size]) * weight,
                        )
                        for i in range(0, len(items), size)
                    ]
                )
        except IntegrityError:
            pass  # another task made them
    return sum(RoundBatch.objects.filter(round=rnd, stage=stage).values_list("weight", flat=True))


def predict_seconds_per_image(*, rnd: Round) -> float | None:
    """Seconds one block image took in the predict stage (model, windows, writing the mask,
    polygons; imagery fetched on the way included) in the campaign's latest earlier round that
    predicted with the same engine; None when none has."""
    engine = (rnd.config or {}).get("segmenter_engine", "auto")
    earlier = (
        Round.objects.filter(campaign_id=rnd.campaign_id, pk__lt=rnd.pk)
        .exclude(timings={})
        .order_by("-pk")
        .only("pk", "timings", "config")[:20]
    )
    for other in earlier:
        seconds = float((other.timings or {}).get(RoundState.PREDICTING, 0.0))
        if seconds <= 0 or (other.config or {}).get("segmenter_engine", "auto") != engine:
            continue
        images = BlockPrediction.objects.filter(round=other).count()
        if images:
            return seconds / images
    return None


def predict_batch_blocks(*, rnd: Round, cfg: RoundConfig, n_sources: int) -> int:
    """Blocks per predict task: about ``cfg.batch_seconds`` of work each (a long task holds a
    gpu worker's lease and redelivers a lot when it dies; a short one pays the queue's cost per
    task), else ``cfg.batch_blocks``."""
    if cfg.batch_seconds is None:
        return cfg.batch_blocks
    per_image = predict_seconds_per_image(rnd=rnd)
    if per_image is None:
        return cfg.batch_blocks
    return max(1, min(1000, round(cfg.batch_seconds / (per_image * max(1, n_sources)))))


def _stage_complete(*, round_id: int, stage: str) -> None:
    """All batches of a stage are done: move on (once, whoever finishes last)."""
    from learning import tasks

    rnd = _round(round_id)
    if stage == RoundState.PREDICTING:
        pred_ids = list(
            BlockPrediction.objects.filter(round=rnd).order_by("pk").values_list("pk", flat=True)
        )
        if not pred_ids:
            round_fail(
                round_id=round_id,
                reason="no block of the target provinces has an "
                "image to predict on (fetch imagery first)",
            )
            return
        cfg = round_config_parse(rnd.config)
        total = _make_batches(
            rnd=rnd, stage=RoundState.SCORING, items=pred_ids, size=cfg.batch_blocks * 2, weight=1
        )
        if _enter(
            round_id=round_id,
            from_state=RoundState.PREDICTING,
            to_state=RoundState.SCORING,
            total=total,
            message=f"computing features of {len(pred_ids)} predictions",
        ):
            tasks.round_advance.delay(round_id)
    elif stage == RoundState.SCORING:
        tasks.round_score.delay(round_id)


def round_batch_run(*, round_id: int, stage: str, index: int) -> dict[str, Any]:
    """Run one batch of a fanned-out stage; safe to deliver twice."""
    rnd = _round(round_id)
    if rnd.state != stage:
        return {"skipped": rnd.state}
    batch = RoundBatch.objects.filter(round=rnd, stage=stage, index=index).first()
    if batch is None or batch.done_at is not None:
        return {"skipped": "done"}
    RoundBatch.objects.filter(pk=batch.pk).update(attempts=F("attempts") + 1)
    cfg = round_config_parse(rnd.config)
    t0 = time.monotonic()
    work = _predict_items if stage == RoundState.PREDICTING else _feature_items
    try:
        done = work(rnd=rnd, cfg=cfg, items=list(batch.items))
    except RoundStopped:
        return {"stopped": True}
    except Exception as e:
        # Not one bad image (those are skipped and logged): the model or the storage is broken,
        # and every other batch would fail the same way.
        log.exception("%s batch %s of round %s failed", stage, index, round_id)
        round_fail(round_id=round_id, reason=f"{stage} batch {index} failed: "
                   f"{type(e).__name__}: {e}")
        return {"failed": True}
    if RoundBatch.objects.filter(pk=batch.pk, done_at=None).update(done_at=timezone.now()):
        Round.objects.filter(pk=round_id, state=stage).update(
            stage_done=F("stage_done") + batch.weight, heartbeat_at=timezone.now()
        )
        round_timing_add(round_id=round_id, stage=stage, seconds=time.monotonic() - t0)
    round_broadcast(rnd=Round.objects.get(pk=round_id))
    if not RoundBatch.objects.filter(round_id=round_id, stage=stage, done_at=None).exists():
        _stage_complete(round_id=round_id, stage=stage)
    return {"done": done}


# --- training ---------------------------------------------------------------------------------


def round_train_run(*, round_id: int) -> dict[str, Any]:
    """Train what the round needs (single flight under the lease), then start predicting."""
    from learning import tasks

    rnd = _round(round_id)
    if rnd.state != RoundState.TRAINING:
        return {"skipped": rnd.state}
    cfg = round_config_parse(rnd.config)
    token = lease_claim(
        round_id=round_id, state=RoundState.TRAINING, stale_after_s=cfg.stale_after_s
    )
    if token is None:
        return {"busy": True}
    rnd.refresh_from_db()
    attempts = int((rnd.checkpoint or {}).get("train_attempts", 0)) + 1
    checkpoint_set(round_id=round_id, train_attempts=attempts)
    if attempts > cfg.max_resumes + 1:
        round_fail(
            round_id=round_id,
            reason=f"training was interrupted {attempts - 1} times "
            f"(limit {cfg.max_resumes} resumes); see the worker logs",
        )
        return {"failed": True}
    if attempts > 1:
        round_log(rnd=round_id, message=f"training resumed (attempt {attempts})")
    beat = _Heartbeat(round_id=round_id, token=token, every=cfg.heartbeat_every_s)
    beat.start()
    t0 = time.monotonic()
    try:
        ck = dict(rnd.checkpoint or {})
        if "iqa" not in ck:
            iqa = _train_iqa(rnd=rnd, cfg=cfg, beat=beat)
            checkpoint_set(round_id=round_id, iqa=iqa)
        if "segmenter" not in ck:
            seg = _train_segmenter(rnd=rnd, cfg=cfg, beat=beat, fresh=attempts == 1)
            checkpoint_set(round_id=round_id, segmenter=seg)
    except RoundStopped:
        return {"stopped": True}
    except Exception as e:
        log.exception("training of round %s failed", round_id)
        round_fail(round_id=round_id, reason=f"training failed: {type(e).__name__}: {e}")
        return {"failed": True}
    finally:
        beat.end()
        lease_release(round_id=round_id, token=token)
    round_timing_add(round_id=round_id, stage=RoundState.TRAINING, seconds=time.monotonic() - t0)
    rnd = _round(round_id)
    block_ids = round_block_ids(rnd=rnd, limit=cfg.blocks_per_province_limit)
    n_sources = len(round_sources(rnd=rnd))
    if not block_ids or not n_sources:
        round_fail(
            round_id=round_id,
            reason="the target provinces have no blocks"
            if not block_ids
            else "no enabled imagery source to predict on",
        )
        return {"failed": True}
    total = _make_batches(
        rnd=rnd,
        stage=RoundState.PREDICTING,
        items=block_ids,
        size=predict_batch_blocks(rnd=rnd, cfg=cfg, n_sources=n_sources),
        weight=n_sources,
    )
    if _enter(
        round_id=round_id,
        from_state=RoundState.TRAINING,
        to_state=RoundState.PREDICTING,
        total=total,
        message=f"predicting {len(block_ids)} blocks x {n_sources} sources",
    ):
        tasks.round_advance.delay(round_id)
    return {"trained": True}


def _train_iqa(*, rnd: Round, cfg: RoundConfig, beat: _Heartbeat) -> int | None:
    """Retrain the coverage-type classifier when coverage labels changed since the current
    one; returns the id of the classifier the round uses (None: there is none)."""
    from learning.core.iqa.classifier import IQAClassifier, IQAConfig

    current = model_version_current(campaign=rnd.campaign_id, kind=ModelKind.IQA)
    latest: dict[tuple[int, int], CoverageLabel] = {}
    for label in (
        CoverageLabel.objects.filter(block__campaign_id=rnd.campaign_id)
        .select_related("block", "source")
        .order_by("updated_at", "pk")
    ):
        latest[(label.block_id, label.source_id)] = label  # the latest label per image wins
    labels = sorted(latest.values(), key=lambda lb: lb.pk)
    fp = labels_fingerprint([(lb.pk, lb.coverage_type, lb.updated_at) for lb in labels])
    if current is not None and current.config.get("labels_fingerprint") == fp:
        round_log(rnd=rnd.pk, message=f"coverage classifier {current.name}: no new labels")
        return current.pk
    images, types, used = [], [], []
    for lb in labels:
        img = _image(rnd=rnd, block=lb.block, source=lb.source)
        if img is not None:
            images.append(img.image)
            types.append(lb.coverage_type)
            used.append(lb.pk)
    if len(images) < cfg.iqa_min_labels:
        round_log(
            rnd=rnd.pk,
            message=f"coverage classifier not trained: {len(images)} labelled "
            f"images (< {cfg.iqa_min_labels})",
        )
        return current.pk if current else None
    preset = IQAConfig.tiny if cfg.iqa_preset == "tiny" else IQAConfig
    iqa_cfg = preset(seed=cfg.seed, **({"epochs": cfg.iqa_epochs} if cfg.iqa_epochs else {}))
    name = f"iqa-r{rnd.number}"
    rel = bundle_relpath(campaign=rnd.campaign, kind=ModelKind.IQA, name=name)
    t0 = time.monotonic()
    clf = IQAClassifier(iqa_cfg, device="cpu" if not _cuda() else None)
    history = clf.train(images, types)
    if beat.stop.is_set():
        raise RoundStopped("cancelled")
    metrics = {
        "final_loss": history["epoch_losses"][-1],
        "n_labels": len(images),
        "train_accuracy": clf.evaluate(images, types).accuracy,
    }
    clf.save(data_path(rel), metrics=metrics, overwrite=True)
    mv = model_version_register(
        campaign=rnd.campaign,
        kind=ModelKind.IQA,
        name=name,
        bundle_path=rel,
        rnd=rnd,
        config={**iqa_cfg.model_dump(mode="json"), "labels_fingerprint": fp},
        metrics=metrics,
        training_samples=used,
        train_seconds=round(time.monotonic() - t0, 2),
    )
    round_log(rnd=rnd.pk, message=f"coverage classifier {name} trained on {len(images)} labels")
    return mv.pk


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def segmenter_engine_name(cfg: RoundConfig) -> str:
    """The engine a round trains: the configured one, or on "auto" the one that learns best on
    this worker (Mask2Former with CUDA, the U-Net on a CPU)."""
    from learning.core.segmentation.engine import default_engine_name

    if cfg.segmenter_engine != "auto":
        return cfg.segmenter_engine
    return default_engine_name(cuda=_cuda())


def _train_segmenter(*, rnd: Round, cfg: RoundConfig, beat: _Heartbeat, fresh: bool) -> int:
    """The round's segmentation engine on the accepted training samples, warm-started from the
    current segmenter when it is the same engine; budgeted by ``train_seconds``; resumable from
    its per-epoch checkpoint; registered only once its bundle is complete."""
    import torch

    from learning.core.segmentation.data import CropSampler
    from learning.core.segmentation.engine import (
        engine_config,
        engine_train_defaults,
        get_engine,
    )
    from learning.core.segmentation.training import CHECKPOINT, TrainOptions, fit

    name = f"seg-r{rnd.number}"
    existing = ModelVersion.objects.filter(
        campaign=rnd.campaign, kind=ModelKind.SEGMENTER, name=name
    ).first()
    if existing is not None:
        return existing.pk
    # A resumed training must see exactly what the first attempt saw (the epoch checkpoint is
    # refused otherwise), even if samples were accepted or a model made current meanwhile.
    frozen = None if fresh else Round.objects.get(pk=rnd.pk).checkpoint.get("seg_inputs")
    if frozen is None:
        moved = validation_split_ensure(campaign=rnd.campaign, share=cfg.validation_share)
        if moved:
            round_log(rnd=rnd.pk, message=f"{moved} sample(s) held out for validation")
        samples = training_samples(campaign_id=rnd.campaign_id)
    else:
        samples = list(Sample.objects.filter(pk__in=frozen["samples"])
                       .select_related("block", "source").prefetch_related("polygons")
                       .order_by("pk"))
    pairs, used = [], []
    for s in samples:
        try:
            pair = sample_pair(sample=s)
        except (ValueError, OSError) as e:
            round_log(rnd=rnd.pk, message=f"sample {s.pk}: image unreadable, skipped ({e})")
            continue
        if pair is not None:
            pairs.append(pair)
            used.append(s.pk)
    if not pairs:
        raise ValueError(
            "no accepted training sample with an image (label some blocks, or "
            "accept submitted work, before starting a round)"
        )
    engine_name = segmenter_engine_name(cfg)
    warm = model_version_current(campaign=rnd.campaign_id, kind=ModelKind.SEGMENTER)
    if frozen is not None:
        warm = ModelVersion.objects.filter(pk=frozen["warm"]).first() if frozen["warm"] else None
    else:
        checkpoint_set(round_id=rnd.pk,
                       seg_inputs={"samples": used, "warm": warm.pk if warm else None})
    overrides: dict[str, Any] = {**cfg.segmenter_model.get(engine_name, {}), "init_seed": cfg.seed}
    # Warm start only from the same engine (a U-Net cannot start from Mask2Former weights);
    # versions from before engines were recorded are Mask2Former.
    if cfg.warm_start and warm is not None and (warm.config or {}).get(
        "engine", "mask2former"
    ) == engine_name:
        weights = data_path(warm.bundle_path) / "weights.safetensors"
        if weights.is_file():
            overrides["pretrained_path"] = str(weights)
    seg_cfg = engine_config(engine_name, preset=cfg.segmenter_preset, **overrides)
    train = {"batch_size": 8, "crop_size": 256, "lr": 1e-4, "warmup_steps": 50}
    train |= engine_train_defaults(engine_name)
    train |= {k: getattr(cfg, k) for k in ("batch_size", "crop_size", "lr", "warmup_steps")
              if getattr(cfg, k) is not None}
    crop = min(int(train.pop("crop_size")), min(min(img.shape[:2]) for img, _ in pairs))
    crop = max(32, crop - crop % 32)
    options = TrainOptions(
        **train,
        epochs=cfg.epochs,
        steps_per_epoch=cfg.steps_per_epoch,
        crop_size=crop,
        seed=cfg.seed,
        time_budget_s=cfg.train_seconds,
        budget_clock=cfg.train_clock,
    )
    engine = get_engine(engine_name)(seg_cfg, device="cuda" if _cuda() else "cpu")
    work_dir = data_path(Path("learning") / rnd.campaign.slug / f"round-{rnd.number}" / name)
    if fresh and work_dir.exists():
        # Left by another round of the same number (a campaign deleted and made again): a
        # first attempt never continues someone else's training.
        shutil.rmtree(work_dir)
    resumed_epoch = 0
    ckpt = work_dir / CHECKPOINT
    if ckpt.is_file():
        try:
            resumed_epoch = (
                int(torch.load(ckpt, map_location="cpu", weights_only=False)["epoch"]) + 1
            )
        except Exception:  # a torn checkpoint: fit() will refuse or restart; not fatal here
            resumed_epoch = 0
    if resumed_epoch:
        round_log(rnd=rnd.pk, message=f"segmenter {name}: resuming from epoch {resumed_epoch}")

    class _Sampler(CropSampler):
        draws = 0

        def draw(self, rng: np.random.Generator, n: int) -> Any:
            if beat.stop.is_set():
                raise RoundStopped("cancelled or lease lost during training")
            _Sampler.draws += 1
            return super().draw(rng, n)

    sampler = _Sampler(
        pairs, crop_size=options.crop_size, balance=options.balance, jitter=options.jitter
    )
    base = resumed_epoch * options.steps_per_epoch
    total_steps = options.epochs * options.steps_per_epoch
    t_train = time.monotonic()

    def _progress() -> int:
        # A time-budgeted training ends long before its step cap: report the larger of the
        # steps done and the share of the budget spent, so the bar and its ETA move.
        done = base + _Sampler.draws
        if cfg.train_seconds:
            spent = (time.monotonic() - t_train) / cfg.train_seconds
            done = max(done, int(total_steps * min(0.99, spent)))
        return done

    beat.progress = _progress
    identity = {"engine": engine.name, "config": seg_cfg.model_dump(mode="json"), "samples": used}
    round_log(
        rnd=rnd.pk,
        message=f"segmenter {name} ({engine_name}): {len(pairs)} training samples, "
        f"{options.epochs} x {options.steps_per_epoch} steps"
        + (f" or {cfg.train_seconds:.0f} s" if cfg.train_seconds else "")
        + f", crop {crop}"
        + (f", warm start from {warm.name}" if "pretrained_path" in overrides and warm else ""),
    )
    t0 = time.monotonic()
    history = fit(
        engine.model,
        loss_fn=engine.loss,
        sampler=sampler,
        options=options,
        device=engine.device,
        work_dir=work_dir,
        identity=identity,
    )
    if beat.stop.is_set():
        raise RoundStopped("cancelled")
    Round.objects.filter(pk=rnd.pk).update(stage_done=options.epochs * options.steps_per_epoch)
    metrics = {
        "engine": engine_name,
        "epoch_losses": history["epoch_losses"],
        "resumed_from_epoch": history["resumed_from_epoch"],
        "n_train_samples": len(pairs),
        "steps": len(history["step_losses"]),
        "stopped": history["stopped"],
    }
    rel = bundle_relpath(campaign=rnd.campaign, kind=ModelKind.SEGMENTER, name=name)
    engine.save(data_path(rel), metrics=metrics, overwrite=True)
    mv = model_version_register(
        campaign=rnd.campaign,
        kind=ModelKind.SEGMENTER,
        name=name,
        bundle_path=rel,
        rnd=rnd,
        config={
            "engine": engine_name,
            "preset": cfg.segmenter_preset,
            "model": seg_cfg.model_dump(mode="json"),
            "train": options.model_dump(mode="json"),
            "warm_start": warm.name if "pretrained_path" in overrides and warm else None,
        },
        metrics=metrics,
        training_samples=used,
        train_seconds=round(time.monotonic() - t0, 2),
    )
    round_log(
        rnd=rnd.pk,
        message=f"segmenter {name} ({engine_name}) trained {len(history['step_losses'])} steps "
        f"in {history['seconds']:.0f} s: loss "
        + " -> ".join(f"{v:.3f}" for v in history["epoch_losses"][-3:]),
    )
    return mv.pk


def _image(*, rnd: Round, block: Block, source: Any) -> Any:
    """The block's image, or None (logged) when its file cannot be read: one corrupt image
    must not stop a round over thousands of blocks."""
    try:
        return block_image_get(block=block, source=source)
    except (ValueError, OSError) as e:
        round_log(rnd=rnd.pk, message=f"{block.code} / {source.slug}: image unreadable, "
                  f"skipped ({e})")
        return None


# --- prediction -------------------------------------------------------------------------------

_ENGINES: dict[str, Any] = {}


def _engine(kind: str, rel: str) -> Any:
    """Load a model bundle once per worker process."""
    key = f"{kind}:{rel}"
    if key not in _ENGINES:
        if kind == ModelKind.SEGMENTER:
            from learning.core.segmentation import load_segmenter

            _ENGINES[key] = load_segmenter(data_path(rel))
        elif kind == ModelKind.IQA:
            from learning.core.iqa.classifier import IQAClassifier

            _ENGINES[key] = IQAClassifier.load(data_path(rel), device="cpu")
        else:
            from learning.core.tabular.correctness import CorrectnessModel

            _ENGINES[key] = CorrectnessModel.load(data_path(rel))
    return _ENGINES[key]


def mask_geometry(mask: np.ndarray, transform: Any) -> MultiPolygon | None:
    """The mask's cropland as a WGS 84 MultiPolygon (slightly simplified), None when empty."""
    polys = []
    tol = abs(transform.a) * 0.5
    for geom, value in raster_shapes(mask, mask=mask == 1, transform=transform, connectivity=4):
        if value != 1:
            continue
        poly = shapely.make_valid(shapely.geometry.shape(geom).simplify(tol))
        polys += [
            p for p in getattr(poly, "geoms", [poly]) if p.geom_type == "Polygon" and not p.is_empty
        ]
    if not polys:
        return None
    multi = GEOSGeometry(memoryview(shapely.to_wkb(shapely.MultiPolygon(polys))), srid=4326)
    return multi if isinstance(multi, MultiPolygon) else MultiPolygon(multi, srid=4326)


def _predict_items(*, rnd: Round, cfg: RoundConfig, items: list[int]) -> int:
    from learning.core.segmentation.inference import write_prediction
    from mapping.services.imagery import block_image_fetch

    ck = rnd.checkpoint or {}
    seg_mv = ModelVersion.objects.get(pk=ck["segmenter"])
    engine = _engine(ModelKind.SEGMENTER, seg_mv.bundle_path)
    iqa_mv = ModelVersion.objects.filter(pk=ck.get("iqa")).first() if ck.get("iqa") else None
    iqa = _engine(ModelKind.IQA, iqa_mv.bundle_path) if iqa_mv else None
    sources = round_sources(rnd=rnd)
    done = 0
    for block in Block.objects.filter(pk__in=items).select_related("campaign").order_by("pk"):
        _check_active(rnd.pk, RoundState.PREDICTING)
        round_heartbeat(round_id=rnd.pk)
        for source in sources:
            if BlockPrediction.objects.filter(
                block=block, source=source, model_version=seg_mv
            ).exists():
                continue
            img = _image(rnd=rnd, block=block, source=source)
            if img is None and cfg.fetch_missing_images:
                block_image_fetch(block=block, source=source)
                img = _image(rnd=rnd, block=block, source=source)
            if img is None:
                continue  # no imagery upstream: nothing to predict, counted as done
            batch = {} if cfg.predict_batch_windows is None else {
                "batch_size": cfg.predict_batch_windows}
            mask, prob = engine.predict_block(
                img.image, window=cfg.window, overlap=min(cfg.overlap, cfg.window // 2), **batch
            )
            rel = (
                Path("predictions")
                / rnd.campaign.slug
                / seg_mv.name
                / source.slug
                / f"{block.code}.tif"
            )
            write_prediction(
                data_path(rel), mask=mask, confidence=prob, crs=img.crs, transform=img.transform
            )
            px, py = pixel_size_m(block=block, shape=mask.shape)
            coverage = iqa.predict([img.image]).labels[0].value if iqa is not None else ""
            try:
                with transaction.atomic():
                    pred = BlockPrediction.objects.create(
                        block=block,
                        source=source,
                        model_version=seg_mv,
                        round=rnd,
                        mask_path=str(rel),
                        geometry=mask_geometry(mask, img.transform),
                        cropland_fraction=float(mask.mean()),
                        cropland_area_ha=float(mask.sum()) * px * py / 10_000.0,
                        mean_confidence=float(np.mean(np.abs(2.0 * prob - 1.0))),
                    )
                    BlockScore.objects.create(prediction=pred, round=rnd, coverage_type=coverage)
            except IntegrityError:
                continue  # the same block delivered twice: the other copy won
            done += 1
    return done


# --- features and scoring ---------------------------------------------------------------------


def _feature_items(*, rnd: Round, cfg: RoundConfig, items: list[int]) -> int:
    import cv2

    from learning.core.features.block import block_features_compute
    from mapping.services.terrain import DemError, block_dem_window

    done = 0
    dem_cache: dict[int, Any] = {}
    for pred in (
        BlockPrediction.objects.filter(pk__in=items)
        .select_related("block", "source", "score")
        .order_by("pk")
    ):
        _check_active(rnd.pk, RoundState.SCORING)
        score = getattr(pred, "score", None) or BlockScore.objects.create(
            prediction=pred, round=rnd
        )
        if score.features:
            continue
        img = _image(rnd=rnd, block=pred.block, source=pred.source)
        if img is None:
            continue
        mask, _, _ = read_prediction(pred.mask_path)
        other = (
            BlockPrediction.objects.filter(block=pred.block, model_version=pred.model_version)
            .exclude(source=pred.source)
            .order_by("source__slug")
            .first()
        )
        other_mask = None
        if other is not None:
            other_mask = read_prediction(other.mask_path)[0]
            if other_mask.shape != mask.shape:
                other_mask = cv2.resize(
                    other_mask, (mask.shape[1], mask.shape[0]), interpolation=cv2.INTER_NEAREST
                )
        if pred.block_id not in dem_cache:
            try:
                dem_cache[pred.block_id] = block_dem_window(block=pred.block)
            except DemError:
                dem_cache[pred.block_id] = None
        feats = block_features_compute(
            image=img.image,
            mask=mask,
            pixel_size_m=pixel_size_m(block=pred.block, shape=mask.shape),
            dem=dem_cache[pred.block_id],
            coverage_type=score.coverage_type or None,
            other_mask=other_mask,
            dem_nan_policy="omit",
        )
        BlockScore.objects.filter(pk=score.pk).update(features=json_safe(feats.to_dict()))
        done += 1
    round_heartbeat(round_id=rnd.pk)
    return done


def _features_of(score: BlockScore) -> Any:
    from learning.core.features.block import BlockFeatures

    row = {
        k: (float("nan") if v is None and k != "coverage_type" else v)
        for k, v in score.features.items()
    }
    return BlockFeatures.from_mapping(row)


def round_score_run(*, round_id: int) -> dict[str, Any]:
    """Retrain the correctness model when verdicts changed; p_incorrect for every prediction."""
    from learning import tasks

    rnd = _round(round_id)
    if rnd.state != RoundState.SCORING:
        return {"skipped": rnd.state}
    if RoundBatch.objects.filter(round=rnd, stage=RoundState.SCORING, done_at=None).exists():
        return {"skipped": "features not finished"}
    cfg = round_config_parse(rnd.config)
    token = lease_claim(
        round_id=round_id, state=RoundState.SCORING, stale_after_s=cfg.stale_after_s
    )
    if token is None:
        return {"busy": True}
    beat = _Heartbeat(round_id=round_id, token=token, every=cfg.heartbeat_every_s)
    beat.start()
    t0 = time.monotonic()
    try:
        mv = _train_correctness(rnd=rnd, cfg=cfg)
        scored = 0
        if mv is not None:
            from learning.core.tabular.correctness import VERDICTS

            model = _engine(ModelKind.CORRECTNESS, mv.bundle_path)
            scores = list(
                BlockScore.objects.filter(prediction__round=rnd).exclude(features={}).order_by("pk")
            )
            if scores:
                probs = model.predict_proba([_features_of(s) for s in scores])
                classes = list(VERDICTS)
                for s, p in zip(scores, probs, strict=True):
                    s.verdict_probs = {
                        c: round(float(v), 6) for c, v in zip(classes, p, strict=True)
                    }
                    s.p_incorrect = round(1.0 - float(s.verdict_probs.get("tp", 0.0)), 6)
                    s.correctness_model = mv
                BlockScore.objects.bulk_update(
                    scores, ["verdict_probs", "p_incorrect", "correctness_model"], batch_size=500
                )
                scored = len(scores)
        round_log(
            rnd=round_id,
            message=f"correctness predicted for {scored} predictions"
            if mv
            else "no correctness model yet (too few verdicts): p_incorrect unknown",
        )
        # The integration model reads P(TP), so it trains after the correctness scores; its
        # labels are the leads' integration decisions, overrides on the review map included.
        from learning.services.integration_training import integration_model_train

        trained = integration_model_train(
            campaign=rnd.campaign,
            name=f"integration-r{rnd.number}",
            rnd=rnd,
            seed=cfg.seed,
            min_labels=cfg.integration_min_labels,
        )
        round_log(rnd=round_id, message=trained.message)
    except Exception as e:
        log.exception("scoring of round %s failed", round_id)
        round_fail(round_id=round_id, reason=f"scoring failed: {type(e).__name__}: {e}")
        return {"failed": True}
    finally:
        beat.end()
        lease_release(round_id=round_id, token=token)
    round_timing_add(round_id=round_id, stage="correctness", seconds=time.monotonic() - t0)
    n_prov = rnd.provinces.count()
    if _enter(
        round_id=round_id,
        from_state=RoundState.SCORING,
        to_state=RoundState.EVALUATING,
        total=n_prov,
        message=f"evaluating {n_prov} province(s)",
    ):
        tasks.round_advance.delay(round_id)
    return {"scored": True}


def _train_correctness(*, rnd: Round, cfg: RoundConfig) -> ModelVersion | None:
    from learning.core.tabular.correctness import correctness_train

    current = model_version_current(campaign=rnd.campaign_id, kind=ModelKind.CORRECTNESS)
    latest: dict[tuple[int, int], VerdictLabel] = {}
    for v in VerdictLabel.objects.filter(block__campaign_id=rnd.campaign_id).order_by(
        "updated_at", "pk"
    ):
        latest[(v.block_id, v.source_id)] = v
    labels = sorted(latest.values(), key=lambda v: v.pk)
    fp = labels_fingerprint([(v.pk, v.verdict, v.updated_at) for v in labels])
    if current is not None and current.config.get("labels_fingerprint") == fp:
        round_log(rnd=rnd.pk, message=f"correctness model {current.name}: no new verdicts")
        return current
    name = f"correctness-r{rnd.number}"
    existing = ModelVersion.objects.filter(
        campaign=rnd.campaign, kind=ModelKind.CORRECTNESS, name=name
    ).first()
    if existing is not None:
        return existing
    rows, verdicts, used = [], [], []
    for v in labels:
        score = (
            BlockScore.objects.filter(
                prediction__block_id=v.block_id, prediction__source_id=v.source_id
            )
            .exclude(features={})
            .order_by("-prediction__round_id", "-pk")
            .first()
        )
        if score is not None:
            rows.append(_features_of(score))
            verdicts.append(v.verdict)
            used.append(v.pk)
    if len(rows) < cfg.correctness_min_verdicts:
        round_log(
            rnd=rnd.pk,
            message=f"correctness model not retrained: {len(rows)} verdicts "
            f"with features (< {cfg.correctness_min_verdicts})",
        )
        return current
    t0 = time.monotonic()
    try:
        model = correctness_train(rows, verdicts, seed=cfg.seed)
    except ValueError as e:  # e.g. one verdict class only
        round_log(rnd=rnd.pk, message=f"correctness model not retrained: {e}")
        return current
    rel = bundle_relpath(campaign=rnd.campaign, kind=ModelKind.CORRECTNESS, name=name)
    model.save(data_path(rel), overwrite=True)
    mv = model_version_register(
        campaign=rnd.campaign,
        kind=ModelKind.CORRECTNESS,
        name=name,
        bundle_path=rel,
        rnd=rnd,
        config={"labels_fingerprint": fp, "seed": cfg.seed},
        metrics=json_safe(model.metrics),
        training_samples=used,
        train_seconds=round(time.monotonic() - t0, 2),
    )
    round_log(
        rnd=rnd.pk,
        message=f"correctness model {name} trained on {len(rows)} verdicts "
        f"(accuracy {model.metrics.get('accuracy', float('nan')):.3f})",
    )
    return mv


# --- evaluation -------------------------------------------------------------------------------


def _source_area(slug: str) -> str | None:
    s = slug.lower()
    return "mapbox" if "mapbox" in s else "google" if "google" in s else None


def round_evaluate_run(*, round_id: int) -> None:
    """Per province: pixel IoU on held-out samples, correctness, area per source vs official,
    the stopping rules; writes ProvinceRoundResult and ProvinceStatus (idempotent)."""
    from learning.core.intervals import bootstrap_iou_interval, wilson_interval
    from learning.core.segmentation.data import rasterize_polygons
    from learning.core.segmentation.metrics import IoUCounts, iou_counts
    from learning.core.stopping import Decision, ProvinceMeasurements, province_stop_check

    rnd = _round(round_id)
    if rnd.state != RoundState.EVALUATING:
        return
    cfg = round_config_parse(rnd.config)
    rules = cfg.rules
    seg_mv = ModelVersion.objects.get(pk=rnd.checkpoint["segmenter"])
    t0 = time.monotonic()
    per_province_iou: dict[str, Any] = {}
    overall = IoUCounts(0, 0, 0, 0)
    for i, province in enumerate(rnd.provinces.all().order_by("adcode")):
        counts = IoUCounts(0, 0, 0, 0)
        n_iou = 0
        per_block: dict[int, IoUCounts] = defaultdict(lambda: IoUCounts(0, 0, 0, 0))
        for sample in validation_samples(campaign_id=rnd.campaign_id, province_id=province.pk):
            pred = BlockPrediction.objects.filter(
                block=sample.block, source=sample.source, model_version=seg_mv
            ).first()
            if pred is None:
                continue
            mask, _, transform = read_prediction(pred.mask_path)
            polys = [shapely.from_wkb(bytes(p.geometry.wkb)) for p in sample.polygons.all()]
            truth = rasterize_polygons(polys, transform=transform, shape=mask.shape)
            c = iou_counts(mask, truth)
            counts = counts + c
            per_block[sample.block_id] = per_block[sample.block_id] + c
            n_iou += 1
        overall = overall + counts
        iou = None if n_iou == 0 or np.isnan(counts.iou) else float(counts.iou)
        if n_iou and iou is None:
            iou = 1.0  # no cropland in truth or prediction on any held-out block: all correct
        correctness, n_corr, corr_how, judged = _correctness(
            rnd=rnd, province_id=province.pk, segmenter=seg_mv.name
        )
        # The official figure for the land the campaign covers, and the mapped area of the
        # same land (mapping/services/area_reference.py).
        ref = area_reference(campaign=rnd.campaign, province=province)
        areas, has = _province_areas(rnd=rnd, seg=seg_mv, province=province, ref=ref)
        used = ProvinceRoundResult.objects.filter(
            province=province, round__campaign_id=rnd.campaign_id, round__number__lt=rnd.number
        ).count()
        m = ProvinceMeasurements(
            province=str(province.adcode),
            iou=iou,
            iou_samples=n_iou,
            correctness=correctness,
            correctness_samples=n_corr,
            area_mapbox_ha=areas["mapbox"] if "mapbox" in has else None,
            area_google_ha=areas["google"] if "google" in has else None,
            official_area_ha=ref.official_ha if ref.official_ha else None,
            official_status=ref.status or None,
            official_scope=ref.scope,
            coverage_share=ref.coverage_share,
            supplementary_rounds=used,
        )
        decision = province_stop_check(m, rules)
        outcome = {
            Decision.CONVERGED: ProvinceDecision.CONVERGED,
            Decision.EXHAUSTED: ProvinceDecision.EXCLUDED,
            Decision.CONTINUE: ProvinceDecision.CONTINUE,
        }[decision.decision]
        reasons = {c["name"]: c for c in decision.to_dict()["criteria"]}  # type: ignore[union-attr]
        reasons["correctness"]["basis"] = corr_how
        reasons["correctness"]["judged"] = judged
        reasons["area"]["reference"] = ref.as_dict()
        # 95 % intervals beside the numbers: blocks resampled for IoU, Wilson for correctness.
        iou_ci = bootstrap_iou_interval(
            [(b.tp, b.fp, b.fn) for _, b in sorted(per_block.items())], seed=cfg.seed
        )
        corr_ci = (
            wilson_interval(int(round(correctness * n_corr)), n_corr)
            if correctness is not None and n_corr
            else None
        )
        reasons["iou"]["ci"] = list(iou_ci) if iou_ci else None
        reasons["iou"]["blocks"] = len(per_block)
        reasons["correctness"]["ci"] = list(corr_ci) if corr_ci else None
        result, _ = ProvinceRoundResult.objects.update_or_create(
            round=rnd,
            province=province,
            defaults=dict(
                iou=iou,
                iou_samples=n_iou,
                correctness=correctness,
                correctness_samples=n_corr,
                area_mapbox_ha=m.area_mapbox_ha,
                area_google_ha=m.area_google_ha,
                official_ha=m.official_area_ha,
                official_status=ref.status,
                supplementary_rounds=used,
                decision=outcome,
                reasons=json_safe(reasons),
                thresholds=json_safe(json.loads(rules.model_dump_json())),
            ),
        )
        ProvinceStatus.objects.update_or_create(
            campaign_id=rnd.campaign_id,
            province=province,
            defaults=dict(
                decision=outcome,
                supplementary_rounds=used,
                reason=decision.reason,
                last_result=result,
            ),
        )
        per_province_iou[str(province.adcode)] = {"iou": iou, "samples": n_iou, **counts.as_dict()}
        Round.objects.filter(pk=round_id).update(stage_done=i + 1, heartbeat_at=timezone.now())
        round_log(
            rnd=round_id,
            message=f"{province.name_en or province.name_zh}: {outcome} ({decision.reason})",
        )
    metrics = dict(seg_mv.metrics)
    metrics["iou_per_province"] = json_safe(per_province_iou)
    scored_any = overall.tp + overall.fp + overall.fn > 0
    metrics["iou_overall"] = json_safe(overall.iou) if scored_any else None
    ModelVersion.objects.filter(pk=seg_mv.pk).update(metrics=metrics)
    round_timing_add(round_id=round_id, stage=RoundState.EVALUATING, seconds=time.monotonic() - t0)
    _enter(
        round_id=round_id,
        from_state=RoundState.EVALUATING,
        to_state=RoundState.SELECTING,
        total=rnd.provinces.count(),
        message="selecting the next blocks",
    )


def _province_areas(
    *, rnd: Round, seg: ModelVersion, province: Any, ref: Any
) -> tuple[dict[str, float], set[str]]:
    """The round's mapped cropland area of the province per source kind (mapbox, google), over
    the land its official figure counts: one SQL sum per source, not a loop over blocks."""
    from django.db.models import Sum

    mapped = BlockPrediction.objects.filter(round=rnd, model_version=seg, block__province=province)
    if ref.county_ids is not None:
        mapped = mapped.filter(block__county_id__in=ref.county_ids)
    areas: dict[str, float] = defaultdict(float)
    has: set[str] = set()
    for slug, area in (
        mapped.values_list("source__slug").annotate(area=Sum("cropland_area_ha")).order_by()
    ):
        key = _source_area(slug)
        if key:
            areas[key] += float(area)
            has.add(key)
    return areas, has


def _share(qs: Any, hit: Any) -> tuple[int, int]:
    """How many rows of ``qs`` there are and how many match ``hit`` (one SQL aggregate)."""
    from django.db.models import Count, Q

    agg = qs.aggregate(n=Count("id"), hit=Count("id", filter=Q(hit)))
    return int(agg["n"]), int(agg["hit"])


def _judged(verdicts: Any) -> list[dict[str, Any]]:
    """Which predictions the verdicts judged: per round and model version of the judged
    prediction (each verdict records them), with the number of verdicts on each."""
    from django.db.models import Count

    rows = (
        verdicts.order_by()
        .values("round_number", "model_version")
        .annotate(n=Count("id"))
        .order_by("round_number", "model_version")
    )
    return [{"round": r["round_number"], "model": r["model_version"], "n": r["n"]} for r in rows]


def _correctness(
    *, rnd: Round, province_id: int, segmenter: str
) -> tuple[float | None, int, str, list[dict[str, Any]]]:
    """Share of the province's predictions judged correct, how it was measured, and which
    predictions it judged (round, model version, count).

    First choice: the interpreters' verdicts on the province's blocks of the systematic
    validation sample (an unbiased sample, judged by people: the paper's measure), once it has
    ``SYSTEMATIC_MIN_VERDICTS``; then the correctness model over every predicted block; then
    the verdicts on any of the province's blocks (biased towards the blocks chosen to label).
    Verdicts are given before a round starts, so they judge an earlier round's predictions
    (round N's correctness is round N-1's model's, as the dashboard says); the correctness
    model judges this round's predictions (``segmenter``).
    """
    from django.db.models import Q

    sample = VerdictLabel.objects.filter(
        block__campaign_id=rnd.campaign_id,
        block__province_id=province_id,
        block__in=SystematicSampleBlock.objects.filter(campaign_id=rnd.campaign_id).values(
            "block_id"
        ),
    )
    n, tp = _share(sample, Q(verdict="tp"))
    if n >= SYSTEMATIC_MIN_VERDICTS:
        return tp / n, n, "systematic sample verdicts", _judged(sample)
    n, right = _share(
        BlockScore.objects.filter(
            prediction__round=rnd, prediction__block__province_id=province_id
        ).exclude(p_incorrect=None),
        Q(p_incorrect__lt=0.5),
    )
    if n:
        return right / n, n, "predicted", [{"round": rnd.number, "model": segmenter, "n": n}]
    anywhere = VerdictLabel.objects.filter(
        block__campaign_id=rnd.campaign_id, block__province_id=province_id
    )
    n, tp = _share(anywhere, Q(verdict="tp"))
    if n:
        return tp / n, n, "verdicts", _judged(anywhere)
    return None, 0, "none", []


# --- selection --------------------------------------------------------------------------------


ScoredBlocks = dict[int, tuple[float, float, list[tuple[Any, ...]]]]


def _plain_rows(qs: Any, chunk: int = 5000) -> Iterator[tuple[Any, ...]]:
    """The rows of a ``values_list`` query of plain numbers (no converters to apply) through
    a client-side cursor. ``iterator()`` declares a server-side cursor on PostgreSQL, which
    PostgreSQL never runs with parallel workers: the 780,540 scores of a national round took
    20 s to read that way and 9 s so (load ~8 on 2 cores), for ~80 MB held by the client
    library while they are read. A query that can match nothing (``__in=[]``: every province
    converged) has no SQL: no rows, as ``iterator()`` gives."""
    from django.core.exceptions import EmptyResultSet

    try:
        sql, params = qs.query.sql_with_params()
    except EmptyResultSet:
        return
    with connection.cursor() as cur:
        cur.execute(sql, params)
        while rows := cur.fetchmany(chunk):
            yield from rows


def _selection_scores(
    *, rnd: Round, province_ids: list[int], labelled: set[int], block_ids: list[int] | None = None
) -> Iterator[tuple[int, ScoredBlocks]]:
    """Per province of ``province_ids`` (in id order), its unlabelled blocks the round scored:
    each block's centroid and, per scored prediction, (p_incorrect, mean confidence, the
    sources' IoU feature, cropland fraction). One pass over the round's scores as plain
    values, a province at a time (a national round has ~800,000 scores: no model instances,
    and no query per province, which would read every prediction of the round again).
    ``block_ids``: only these blocks."""
    from django.db.models import F, FloatField, Func, Value
    from django.db.models.fields.json import KeyTextTransform
    from django.db.models.functions import Cast, NullIf

    # A block's centre from the bounding box stored with its geometry (blocks are the grid's
    # rectangles, whose centroid it is): ST_Centroid of every block was a third of the read.
    names = {"postgresql": ("ST_XMin", "ST_XMax", "ST_YMin", "ST_YMax")}
    x0, x1, y0, y1 = names.get(connection.vendor, ("ST_MinX", "ST_MaxX", "ST_MinY", "ST_MaxY"))

    def centre(low: str, high: str) -> Any:
        def edge(name: str) -> Func:
            return Func(F("prediction__block__geometry"), function=name,
                        output_field=FloatField())  # fmt: skip

        return (edge(low) + edge(high)) / Value(2.0)

    scores = BlockScore.objects.filter(
        prediction__round=rnd, prediction__block__province_id__in=province_ids
    )
    if block_ids is not None:
        scores = scores.filter(prediction__block_id__in=block_ids)
    rows = (
        scores
        # The IoU feature as a number from the database: read as a JSON key, each of a
        # national round's 780,000 values went through json.loads (a third of the selection).
        # SQLite's text of a JSON null is 'null' (it would cast to 0.0), PostgreSQL's is NULL.
        .annotate(
            lon=centre(x0, x1), lat=centre(y0, y1),
            iou=Cast(NullIf(KeyTextTransform("iou_sources", "features"), Value("null")),
                     FloatField()),
        )  # fmt: skip
        .order_by("prediction__block__province_id")
        .values_list(
            "prediction__block__province_id", "prediction__block_id", "lon", "lat",
            "p_incorrect", "prediction__mean_confidence", "iou",
            "prediction__cropland_fraction",
        )  # fmt: skip
    )
    found: dict[int, ScoredBlocks] = {}
    current: int | None = None
    for province_id, block_id, lon, lat, *values in _plain_rows(rows):
        if province_id != current:
            current = province_id
            found[province_id] = {}
        if block_id in labelled:
            continue
        by_block = found[province_id]
        if block_id not in by_block:
            by_block[block_id] = (lon, lat, [])
        by_block[block_id][2].append(tuple(values))
        if len(found) > 1:  # the previous province is complete: hand it over
            done = next(iter(found))
            yield done, found.pop(done)
    for province_id in province_ids:
        if province_id in found:
            yield province_id, found.pop(province_id)


def _candidates(by_block: ScoredBlocks) -> tuple[list[Candidate], dict[int, dict[str, Any]]]:
    """A block's candidate from its scores: the highest p_incorrect, one minus the mean
    confidence, and one minus the mean IoU feature of its sources (or, without it, how far
    the sources' cropland fractions are apart)."""
    cands, signals = [], {}
    for block_id, (lon, lat, scores) in by_block.items():
        p_inc = [s[0] for s in scores if s[0] is not None]
        conf = [s[1] for s in scores if s[1] is not None]
        ious = [s[2] for s in scores if s[2] is not None]
        fr = [s[3] for s in scores]
        # Plain means of one or two values: np.mean costs ~10 us a call, 8 s for the
        # 390,000 blocks of a national round.
        disagreement = (
            (1.0 - sum(ious) / len(ious))
            if ious
            else (float(max(fr) - min(fr)) if len(fr) > 1 else None)
        )
        cand = Candidate(
            block_id=block_id,
            lon=lon,
            lat=lat,
            p_incorrect=max(p_inc) if p_inc else None,
            low_confidence=1.0 - sum(conf) / len(conf) if conf else None,
            disagreement=disagreement,
        )
        cands.append(cand)
        signals[block_id] = {
            "p_incorrect": cand.p_incorrect,
            "low_confidence": cand.low_confidence,
            "disagreement": cand.disagreement,
        }
    return cands, signals


def _labelled(rnd: Round) -> set[int]:

    labelled = set(
        Sample.objects.filter(block__campaign_id=rnd.campaign_id).values_list("block_id", flat=True)
    )
    return labelled | set(
        Assignment.objects.filter(block__campaign_id=rnd.campaign_id).values_list(
            "block_id", flat=True
        )
    )


def _prerank_holds(cands: list[Candidate], ranked: dict[int, Ranked], cfg: RoundConfig) -> bool:
    """Whether every candidate read back has the priority and spread cell the database ranked
    it by (so the walk over them picks what it would pick over every block)."""
    weights = cfg.weights.model_dump()
    d = cfg.spread_cell_deg
    return len(cands) == len(ranked) and all(
        c.block_id in ranked
        and prerank_agrees(
            ranked[c.block_id],
            priority=priority(c, weights),
            cell=(math.floor(c.lon / d), math.floor(c.lat / d)) if d > 0 else None,
        )
        for c in cands
    )


def round_select_run(*, round_id: int) -> None:
    """Pick the next blocks per province still to do, spread out; then finish the round.

    The database pre-ranks every unlabelled block (``selection_prerank``) and only the blocks
    the spread walk can reach are read with their scores; a province whose read-back disagrees
    with the pre-rank is read whole, as before."""
    rnd = _round(round_id)
    if rnd.state != RoundState.SELECTING:
        return
    cfg = round_config_parse(rnd.config)
    t0 = time.monotonic()
    continuing = list(
        ProvinceRoundResult.objects.filter(
            round=rnd, decision=ProvinceDecision.CONTINUE
        ).values_list("province_id", flat=True)
    )
    weights = cfg.weights.model_dump()
    prerank = selection_prerank(
        round_id=rnd.pk, province_ids=sorted(continuing), n=cfg.select_per_province,
        cell_deg=cfg.spread_cell_deg, per_degree=grid_for(rnd.campaign.block_size_deg).per_degree,
        weights=weights,
    )  # fmt: skip
    reachable = sorted(b for by_block in prerank.values() for b in by_block)
    read: dict[int, ScoredBlocks] = {}
    for i in range(0, len(reachable), 5000):
        for province_id, by_block in _selection_scores(
            rnd=rnd, province_ids=sorted(prerank), labelled=set(),
            block_ids=reachable[i : i + 5000],
        ):  # fmt: skip
            read.setdefault(province_id, {}).update(by_block)
    labelled: set[int] | None = None
    picks: list[tuple[float, int, int, dict[str, Any]]] = []
    for province_id in sorted(prerank):
        cands, signals = _candidates(read.get(province_id, {}))
        if not _prerank_holds(cands, prerank[province_id], cfg):
            log.warning("selection pre-rank disagrees in province %s: read whole", province_id)
            labelled = _labelled(rnd) if labelled is None else labelled
            whole = dict(_selection_scores(rnd=rnd, province_ids=[province_id], labelled=labelled))
            cands, signals = _candidates(whole.get(province_id, {}))
        for pick in select_spread(
            cands,
            n=cfg.select_per_province,
            cell_deg=cfg.spread_cell_deg,
            weights=weights,
        ):
            picks.append((pick.score, pick.block_id, province_id, signals[pick.block_id]))
    picks.sort(key=lambda p: (-p[0], p[1]))
    with transaction.atomic():
        BlockSelection.objects.filter(round=rnd).delete()
        BlockSelection.objects.bulk_create(
            [
                BlockSelection(
                    round=rnd,
                    block_id=block_id,
                    province_id=province_id,
                    rank=i + 1,
                    score=score,
                    scores=json_safe(sig),
                )
                for i, (score, block_id, province_id, sig) in enumerate(picks)
            ]
        )
    round_log(
        rnd=round_id,
        message=f"{len(picks)} block(s) selected for labelling in "
        f"{len(continuing)} province(s) still to do",
    )
    round_timing_add(round_id=round_id, stage=RoundState.SELECTING, seconds=time.monotonic() - t0)
    round_finish(round_id=round_id)


def round_finish(*, round_id: int) -> None:
    rnd = _round(round_id)
    if rnd.state != RoundState.SELECTING:
        return
    cfg = round_config_parse(rnd.config)
    # The round's models become current before the round says done, so whoever sees "done"
    # sees its models in use (marking is idempotent: a second delivery marks them again).
    if cfg.make_current:
        ids = [v for k, v in (rnd.checkpoint or {}).items() if k in ("iqa", "segmenter") and v]
        ids += list(
            ModelVersion.objects.filter(
                round=rnd, kind__in=(ModelKind.CORRECTNESS, ModelKind.INTEGRATION)
            ).values_list("pk", flat=True)
        )
        try:
            for mv in ModelVersion.objects.filter(pk__in=ids, round=rnd):
                model_version_set_current(model_version=mv)
        except ModelVersionError as e:
            round_fail(round_id=round_id, reason=f"the round's models cannot be used: {e}")
            return
    if not round_transition(
        round_id=round_id,
        from_state=RoundState.SELECTING,
        to_state=RoundState.DONE,
        finished_at=timezone.now(),
        stage_done=rnd.stage_total,
    ):
        return
    rnd.refresh_from_db()
    total = (rnd.finished_at - rnd.started_at).total_seconds() if rnd.started_at else 0.0
    round_log(rnd=round_id, message=f"round {rnd.number} done in {total:.1f} s")
    round_broadcast(rnd=Round.objects.get(pk=round_id))


# --- reconciler -------------------------------------------------------------------------------


def rounds_reconcile_run() -> dict[str, Any]:
    """Resume rounds whose worker went quiet, fail those past their time limit.

    A round whose heartbeat is older than its ``stale_after_s`` is re-driven from its state
    (batches not done are queued again, training resumes from its epoch checkpoint); after
    ``max_resumes`` resumes without finishing it fails with the reason. Returns what it did.
    """
    from learning import tasks

    now = timezone.now()
    out: dict[str, Any] = {"active": 0, "resumed": [], "failed": [], "next_check_s": None}
    for rnd in Round.objects.filter(state__in=ACTIVE_ROUND_STATES):
        out["active"] += 1
        cfg = round_config_parse(rnd.config)
        check = cfg.stale_after_s / 2
        out["next_check_s"] = min(out["next_check_s"] or check, check)
        if rnd.started_at and (now - rnd.started_at).total_seconds() > cfg.max_duration_s:
            if round_fail(
                round_id=rnd.pk,
                reason=f"time limit of {cfg.max_duration_s:.0f} s exceeded while {rnd.state}",
            ):
                out["failed"].append(rnd.pk)
            continue
        last = rnd.heartbeat_at or rnd.created_at
        quiet = (now - last).total_seconds()
        if quiet <= cfg.stale_after_s:
            continue
        # Claim the resume: only one reconciler moves the heartbeat from this value.
        if not Round.objects.filter(
            pk=rnd.pk, heartbeat_at=rnd.heartbeat_at, state=rnd.state
        ).update(heartbeat_at=now, lease=""):
            continue
        resumes = int((rnd.checkpoint or {}).get("resumes", 0)) + 1
        checkpoint_set(round_id=rnd.pk, resumes=resumes)
        if resumes > cfg.max_resumes:
            round_fail(
                round_id=rnd.pk,
                reason=f"no progress for {quiet:.0f} s while {rnd.state} "
                f"and already resumed {resumes - 1} time(s): the workers keep dying "
                "(see their logs)",
            )
            out["failed"].append(rnd.pk)
            continue
        round_log(
            rnd=rnd.pk,
            message=f"no heartbeat for {quiet:.0f} s: resuming from "
            f"{rnd.state} (resume {resumes} of {cfg.max_resumes})",
        )
        tasks.round_advance.delay(rnd.pk)
        out["resumed"].append(rnd.pk)
    return out
