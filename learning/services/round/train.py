"""The training stage: the coverage-type classifier when coverage labels changed, then the
segmenter (warm start, time budget, per-epoch checkpoints), single flight under the round's
lease; then the predict batches.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from annotation.models import CoverageLabel, Sample
from learning.core.segmentation.data import CropSampler
from learning.core.segmentation.engine import (
    default_engine_name,
    engine_config,
    engine_train_defaults,
    get_engine,
)
from learning.models import ModelKind, ModelVersion, Round, RoundState
from learning.services.config import RoundConfig, round_config_parse
from learning.services.data import (
    data_path,
    labels_fingerprint,
    round_block_ids,
    round_sources,
    sample_pair,
    training_samples,
)
from learning.services.registry import bundle_relpath, model_version_current, model_version_register
from learning.services.round import dispatch
from learning.services.round.batches import batches_make
from learning.services.round.common import block_image_or_none
from learning.services.round.machine import RoundStopped, round_fail, round_get, stage_enter
from learning.services.round.predict import predict_batch_blocks
from learning.services.round.progress import (
    Heartbeat,
    checkpoint_set,
    lease_claim,
    lease_release,
    round_log,
    round_timing_add,
)
from learning.services.validation import validation_split_ensure

log = logging.getLogger(__name__)


def round_train_run(*, round_id: int) -> dict[str, Any]:
    """Train what the round needs (single flight under the lease), then start predicting."""
    rnd = round_get(round_id)
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
    beat = Heartbeat(round_id=round_id, token=token, every=cfg.heartbeat_every_s)
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
    rnd = round_get(round_id)
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
    total = batches_make(
        rnd=rnd,
        stage=RoundState.PREDICTING,
        items=block_ids,
        size=predict_batch_blocks(rnd=rnd, cfg=cfg, n_sources=n_sources),
        weight=n_sources,
    )
    if stage_enter(
        round_id=round_id,
        from_state=RoundState.TRAINING,
        total=total,
        message=f"predicting {len(block_ids)} blocks x {n_sources} sources",
    ):
        dispatch.round_advance_enqueue(round_id)
    return {"trained": True}


def _train_iqa(*, rnd: Round, cfg: RoundConfig, beat: Heartbeat) -> int | None:
    """Retrain the coverage-type classifier when coverage labels changed since the current
    one; returns the id of the classifier the round uses (None: there is none)."""
    from learning.core.iqa.classifier import IQAClassifier, IQAConfig  # torch: on first use

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
        img = block_image_or_none(rnd=rnd, block=lb.block, source=lb.source)
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
    history = clf.train(images, types, should_stop=beat.stop.is_set)
    if history["stopped"] or beat.stop.is_set():
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
    import torch  # on first use

    return bool(torch.cuda.is_available())


def segmenter_engine_name(cfg: RoundConfig) -> str:
    """The engine a round trains: the configured one, or on "auto" the one that learns best on
    this worker (Mask2Former with CUDA, the U-Net on a CPU)."""
    if cfg.segmenter_engine != "auto":
        return cfg.segmenter_engine
    return default_engine_name(cuda=_cuda())


def _train_segmenter(*, rnd: Round, cfg: RoundConfig, beat: Heartbeat, fresh: bool) -> int:
    """The round's segmentation engine on the accepted training samples, warm-started from the
    current segmenter when it is the same engine; budgeted by ``train_seconds``; resumable from
    its per-epoch checkpoint; registered only once its bundle is complete."""
    from learning.core.segmentation.training import (  # torch: on first use
        TrainOptions,
        checkpoint_epoch,
        fit,
    )

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
    resumed_epoch = checkpoint_epoch(work_dir)
    if resumed_epoch:
        round_log(rnd=rnd.pk, message=f"segmenter {name}: resuming from epoch {resumed_epoch}")
    sampler = CropSampler(
        pairs, crop_size=options.crop_size, balance=options.balance, jitter=options.jitter
    )
    steps = {"done": resumed_epoch * options.steps_per_epoch}
    total_steps = options.epochs * options.steps_per_epoch
    t_train = time.monotonic()

    def _stepped(done: int) -> None:
        steps["done"] = done

    def _progress() -> int:
        # A time-budgeted training ends long before its step cap: report the larger of the
        # steps done and the share of the budget spent, so the bar and its ETA move.
        done = steps["done"]
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
        # A cancel or a lost lease ends the training at its next step.
        should_stop=beat.stop.is_set,
        on_step=_stepped,
    )
    if beat.stop.is_set():
        raise RoundStopped("cancelled or lease lost during training")
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
