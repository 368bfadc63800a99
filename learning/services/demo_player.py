"""The demo's interpreters, played from its synthetic ground truth, round after round.

``manage.py demo_play`` (and the admin's button on the demo's rounds page) runs
:func:`demo_play`: for each round it labels the blocks the app selected last time (the
seeded queue before any round) the way an interpreter would — cropland polygons traced from
the ground truth with realistic errors, a coverage type per source from the synthetic
scenario, a verdict per source on the current prediction (TP/FP/Noise/Artifact, by comparing
the prediction with the truth), an integration decision naming the cleaner source — all
through the services the REST API calls (``polygon_create``, ``verdict_label_set``, ...) and
recorded under the ``demo-player`` user; then it starts the round and waits for it. Once a
province converges it integrates the two sources and exports its products (COG,
GeoPackage, county shapefiles) and the national area-fraction map.

Only the demo campaign (synthetic imagery with ``write_truth``) can be played: elsewhere
there is no ground truth to play from.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
from django.conf import settings
from django.contrib.auth.models import Group, User
from shapely import affinity

from annotation.models import CoverageType, IntegrationDecision, Sample, SampleSplit, Verdict
from annotation.selectors import PredictionMissing, block_prediction_current
from annotation.services import (
    coverage_label_set,
    integration_label_set,
    polygon_create,
    sample_mark_negative,
    verdict_label_set,
)
from croplayer_site.roles import LEAD, roles_ensure
from learning.models import (
    BlockSelection,
    ProvinceDecision,
    ProvinceRoundResult,
    ProvinceStatus,
    Round,
    RoundState,
    SystematicSampleBlock,
)
from learning.product.models import ExportKind
from learning.services.config import ROUND_PRESETS, round_config_parse
from learning.services.data import data_path, read_prediction, reviewed
from learning.services.round.lifecycle import RoundConflict, round_active, round_start
from learning.services.validation import systematic_sample_create, validation_split_ensure
from mapping.geo.grid import BlockId
from mapping.models import (
    AdminUnit,
    Block,
    BlockImage,
    BlockImageStatus,
    Campaign,
    ImagerySource,
    JobStatus,
)
from mapping.services.members import campaign_members_add

log = logging.getLogger(__name__)

PLAYER = "demo-player"
# Round settings for played rounds, on top of the rounds page's preset of that name. At least
# four held-out blocks per province and an IoU unknown on fewer: one block cannot decide.
PRESET = "demo"
PLAY_CONFIG: dict[str, Any] = {
    "validation_min_blocks": 4,
    "stopping": {"min_iou_samples": 4},
    "select_per_province": 6,
}
LABELS_PER_PROVINCE = 6  # blocks the player labels per province and round after the first
# A cold start, so that the rounds show what labels and training add: before the first round
# the player labels a small initial set (2 blocks per province to train on, beside the
# held-out validation blocks), and each round trains in proportion to the blocks it trains
# on: 15 steps of 8 crops of 128 px per block, about five passes over its pixels, as a fixed
# number of epochs would (the demo preset's 90 CPU-s still caps it). With 90 CPU-s from the start,
# two blocks per province already scored 0.83-0.88 on the synthetic imagery (measured
# offline): round 1 left the later rounds nothing to show. See the README's demo section.
FIRST_LABELS_PER_PROVINCE = 2
TRAIN_STEPS_PER_BLOCK = 15
TRAIN_STEPS_MIN = 100  # the U-Net's warm-up is 50 steps
SYSTEMATIC_SPACING_DEG = 0.1  # 16 judged blocks per demo window (0.4 degree)
ROUND_TIMEOUT_S = 3600.0
EXPORT_TIMEOUT_S = 900.0
# Coverage types of the synthetic scenarios.
COVERAGE = {
    "planting": CoverageType.PLANTING,
    "non_planting": CoverageType.NON_PLANTING,
    "cloudy": CoverageType.CLOUDY,
    "snow": CoverageType.SNOW_ICE,
    "nodata": CoverageType.NODATA,
}


class DemoPlayError(Exception):
    """The campaign cannot be played (not the synthetic demo, no worker...)."""


@dataclass
class PlayReport:
    campaign: str
    rounds: list[dict[str, Any]] = field(default_factory=list)
    converged: list[str] = field(default_factory=list)
    exports: list[dict[str, Any]] = field(default_factory=list)
    labels: dict[str, int] = field(default_factory=dict)
    wall_seconds: float = 0.0
    baseline: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "rounds": self.rounds,
            "converged": self.converged,
            "exports": self.exports,
            "labels": self.labels,
            "baseline": self.baseline,
            "wall_seconds": round(self.wall_seconds, 1),
        }


def player_ensure(*, campaign: Campaign) -> User:
    """The ``demo-player`` user: a lead and member of the campaign (its labels, integration
    decisions and rounds are recorded under it)."""
    groups = roles_ensure()
    user, created = User.objects.get_or_create(username=PLAYER)
    if created:
        user.set_unusable_password()  # nobody logs in as the player
        user.save()
    user.groups.add(groups[LEAD] if LEAD in groups else Group.objects.get(name=LEAD))
    campaign_members_add(campaign=campaign, users=[user])
    return user


# --- the ground truth -------------------------------------------------------------------------


def _truth(block: Block, source: ImagerySource) -> tuple[np.ndarray, Any] | None:
    """The block's ground-truth mask and transform (written beside its synthetic image)."""
    image = BlockImage.objects.filter(block=block, source=source,
                                      status=BlockImageStatus.OK).first()
    if image is None or not image.path:
        from mapping.services.imagery import block_image_fetch

        image = block_image_fetch(block=block, source=source)
        if image.status != BlockImageStatus.OK:
            return None
    path = data_path(image.path.replace(".tif", ".truth.tif"))
    if not path.is_file():
        return None
    with rasterio.open(path) as src:
        return src.read(1), src.transform


# Gaps an interpreter draws across: ridges, ditches and farm tracks between neighbouring
# fields are 1-2 pixels wide at the demo's zoom 14 (about 10 m pixels).
FIELD_GAP_PX = 2
# A traced outline stays well under the workspace's vertex limit (annotation.geometry).
TRACED_MAX_VERTICES = 1500


def _traced_polygons(truth: np.ndarray, transform: Any, rng: np.random.Generator
                     ) -> list[shapely.Polygon]:
    """What an interpreter draws: fields, not pixels. Neighbouring fields parted by a ridge,
    ditch or track narrower than :data:`FIELD_GAP_PX` are outlined as one polygon (a closing of
    the truth), as people draw a group of fields at this resolution; each outline is a little
    off (edges moved by up to a pixel, vertices simplified), and some very small fields are
    missed. About 20 polygons per demo block instead of the truth's ~270 separate fields."""
    import cv2
    from rasterio.features import shapes

    px = abs(transform.a)
    size = 2 * FIELD_GAP_PX - 1
    drawn = cv2.morphologyEx((truth == 1).astype(np.uint8), cv2.MORPH_CLOSE,
                             np.ones((size, size), np.uint8))
    out = []
    for geom, value in shapes(drawn, mask=drawn == 1, transform=transform, connectivity=4):
        if value != 1:
            continue
        p = shapely.geometry.shape(geom)
        if p.area < 12 * px * px or (p.area < 40 * px * px and rng.random() < 0.3):
            continue  # a tiny field overlooked
        q = p.buffer(float(rng.normal(0.0, 0.4)) * px, join_style="mitre")
        q = affinity.translate(q, float(rng.normal(0, 0.3)) * px, float(rng.normal(0, 0.3)) * px)
        q = shapely.make_valid(q.simplify(px * 0.8))
        for g in getattr(q, "geoms", [q]):
            if g.geom_type == "Polygon" and not g.is_empty and g.area > 4 * px * px:
                out.extend(_drawable(g, px=px))
    return out


def _drawable(poly: shapely.Polygon, *, px: float, depth: int = 0) -> list[shapely.Polygon]:
    """A big field group as an interpreter draws it: in pieces of at most
    :data:`TRACED_MAX_VERTICES` vertices (halves of its extent, as many as it takes), never
    one outline the workspace would refuse. Simplifying alone cannot get there: it keeps every
    hole (a pond, a hamlet), and a large group has hundreds."""
    if shapely.get_num_coordinates(poly) <= TRACED_MAX_VERTICES:
        return [poly]
    if depth >= 12:  # pieces of a few pixels: nothing real is that intricate
        return []
    x0, y0, x1, y1 = poly.bounds
    if x1 - x0 >= y1 - y0:
        xm = (x0 + x1) / 2
        halves = (shapely.box(x0, y0, xm, y1), shapely.box(xm, y0, x1, y1))
    else:
        ym = (y0 + y1) / 2
        halves = (shapely.box(x0, y0, x1, ym), shapely.box(x0, ym, x1, y1))
    out = []
    for half in halves:
        piece = shapely.make_valid(poly.intersection(half))
        for g in getattr(piece, "geoms", [piece]):
            if g.geom_type == "Polygon" and not g.is_empty and g.area > 4 * px * px:
                out.extend(_drawable(g, px=px, depth=depth + 1))
    return out


def _verdict(pred: np.ndarray, truth: np.ndarray, coverage: str) -> str:
    """The paper's verdicts from the prediction against the truth (how a careful interpreter
    would judge): hidden ground is an imagery artifact; a prediction that mostly matches is TP;
    one that adds much non-cropland is FP; small scattered errors are noise."""
    if pred.shape != truth.shape:
        import cv2

        pred = cv2.resize(pred, (truth.shape[1], truth.shape[0]),
                          interpolation=cv2.INTER_NEAREST)
    p, t = pred.astype(bool), truth.astype(bool)
    tp = int((p & t).sum())
    fp = int((p & ~t).sum())
    fn = int((~p & t).sum())
    union = tp + fp + fn
    iou = 1.0 if union == 0 else tp / union
    if coverage in (CoverageType.CLOUDY, CoverageType.SNOW_ICE, CoverageType.NODATA) and iou < 0.6:
        return Verdict.ARTIFACT
    if iou >= 0.6:
        return Verdict.TP
    if fp > max(fn, 1) and fp > 0.2 * max(int(t.sum()), 1):
        return Verdict.FP
    return Verdict.NOISE


# --- one block --------------------------------------------------------------------------------


def _label_block(*, user: User, block: Block, sources: list[ImagerySource],
                 scenarios: dict[str, Callable[[BlockId], str]], counts: dict[str, int]) -> None:
    """Trace the block on its first source with a usable image; coverage types on both.

    What the interpreter sees and draws (images, truth, traced polygons) is worked out first,
    then recorded through the services, each call its own transaction as from the browser.
    Not one transaction per block: on SQLite a transaction holds the write lock from its
    start, and on a busy machine a block's calls took longer than a worker's busy timeout
    (the workers' image fetches failed with "database is locked").
    """
    rng = np.random.default_rng(block.pk)
    plan: list[tuple[ImagerySource, str, list[shapely.Polygon] | None]] = []
    traced = False
    for source in sources:
        coverage = COVERAGE.get(scenarios[source.slug](BlockId(block.row, block.col)),
                                CoverageType.PLANTING)
        truth = _truth(block, source)
        if truth is None:
            continue
        polygons = None
        if not traced and coverage not in (CoverageType.CLOUDY, CoverageType.NODATA,
                                           CoverageType.SNOW_ICE):
            # an interpreter draws on the first clear image only
            polygons = _traced_polygons(truth[0], truth[1], rng)
            traced = True
        plan.append((source, coverage, polygons))
    from annotation.geometry import GeometryRejected

    for source, coverage, polygons in plan:
        coverage_label_set(user=user, block=block, source=source, coverage_type=coverage)
        counts["coverage_types"] = counts.get("coverage_types", 0) + 1
        if polygons is None:
            continue
        sample = Sample.objects.filter(block=block, source=source).first()
        version = sample.version if sample else 0
        if not polygons:
            version = sample_mark_negative(user=user, block=block, source=source,
                                           expected_version=version,
                                           op_id=uuid.uuid4()).version
        for poly in polygons:
            try:
                version = polygon_create(
                    user=user, block=block, source=source,
                    geometry=shapely.geometry.mapping(poly), expected_version=version,
                    op_id=uuid.uuid4(),
                ).version
                counts["polygons"] = counts.get("polygons", 0) + 1
            except GeometryRejected:
                continue  # a sliver the workspace would refuse too
        counts["blocks"] = counts.get("blocks", 0) + 1


def _judge_block(*, user: User, block: Block, sources: list[ImagerySource],
                 scenarios: dict[str, Callable[[BlockId], str]], counts: dict[str, int]) -> None:
    """Verdicts on the current predictions, and the integration decision (the cleaner source);
    judged first, then recorded (see :func:`_label_block`)."""
    quality: dict[str, float] = {}
    verdicts: list[tuple[ImagerySource, str]] = []
    for source in sources:
        try:
            current = block_prediction_current(block=block, source=source)
        except PredictionMissing:
            continue
        truth = _truth(block, source)
        if truth is None:
            continue
        mask, _, _ = read_prediction(current.prediction.mask_path)
        coverage = COVERAGE.get(scenarios[source.slug](BlockId(block.row, block.col)),
                                CoverageType.PLANTING)
        verdicts.append((source, _verdict(mask, truth[0], coverage)))
        t = truth[0].astype(bool)
        p = mask.astype(bool) if mask.shape == t.shape else None
        if p is not None:
            union = int((p | t).sum())
            quality[source.slug] = 1.0 if union == 0 else int((p & t).sum()) / union
    decision = None
    if len(quality) == 2:
        m, g = quality.get("mapbox", 0.0), quality.get("google", 0.0)
        if max(m, g) < 0.3:
            decision = IntegrationDecision.NEITHER
        elif abs(m - g) < 0.05:
            decision = IntegrationDecision.MERGE_BOTH
        else:
            decision = IntegrationDecision.ONLY_MAPBOX if m > g else IntegrationDecision.ONLY_GOOGLE
    for source, verdict in verdicts:
        verdict_label_set(user=user, block=block, source=source, verdict=verdict)
        counts["verdicts"] = counts.get("verdicts", 0) + 1
    if decision is not None:
        integration_label_set(user=user, block=block, decision=decision)
        counts["integration_labels"] = counts.get("integration_labels", 0) + 1


# --- the play ---------------------------------------------------------------------------------


def _blocks_to_label(*, campaign: Campaign, provinces: list[AdminUnit],
                     validation_min_blocks: int = 0) -> list[Block]:
    """The app's choice: the latest round's selection, else the seeded queue order.

    Before a campaign's first round only a small initial set: :data:`FIRST_LABELS_PER_PROVINCE`
    blocks to train on, plus as many as the province lacks for ``validation_min_blocks``
    held-out blocks of finished work (load_demo's labelled blocks include the annotator's
    queue, whose work is not finished: in the demo's Jiangxi 7 of 8)."""
    labelled = set(Sample.objects.filter(block__campaign=campaign).values_list("block_id",
                                                                               flat=True))
    last = (Round.objects.filter(campaign=campaign, state=RoundState.DONE,
                                 selections__isnull=False).order_by("-number").first())
    first = not Round.objects.filter(campaign=campaign).exists()
    out: list[Block] = []
    for province in provinces:
        per_province = LABELS_PER_PROVINCE
        if first:
            finished = (reviewed(Sample.objects.filter(block__campaign=campaign,
                                                       block__province=province))
                        .values("block_id").distinct().count())
            per_province = FIRST_LABELS_PER_PROVINCE + max(0, validation_min_blocks - finished)
        chosen: list[Block] = []
        if last is not None:
            chosen = [s.block for s in BlockSelection.objects.filter(
                round=last, province=province).select_related("block", "block__campaign")
                .order_by("rank") if s.block_id not in labelled]
        if len(chosen) < per_province:
            more = (Block.objects.filter(campaign=campaign, province=province)
                    .exclude(pk__in=labelled | {b.pk for b in chosen})
                    .select_related("campaign").order_by("seed_order", "pk"))
            chosen += list(more[: per_province - len(chosen)])
        out += chosen[:per_province]
    return out


def train_epochs(*, campaign: Campaign, config: dict[str, Any]) -> tuple[int, int]:
    """Epochs of training for the next round, and the labelled blocks it will train on:
    :data:`TRAIN_STEPS_PER_BLOCK` steps per block (at least :data:`TRAIN_STEPS_MIN`) in
    epochs of the config's ``steps_per_epoch``, at most the config's ``epochs``.

    The blocks are counted after holding out this round's validation blocks the way the round
    itself does when it starts (``validation_split_ensure``, same share and minimum; the
    round's own call then finds nothing to move), so a held-out block buys no training."""
    cfg = round_config_parse(config)
    validation_split_ensure(campaign=campaign, share=cfg.validation_share,
                            min_blocks=cfg.validation_min_blocks)
    blocks = (reviewed(Sample.objects.filter(block__campaign=campaign, split=SampleSplit.TRAIN))
              .values("block_id").distinct().count())
    steps = max(TRAIN_STEPS_MIN, TRAIN_STEPS_PER_BLOCK * blocks)
    return min(cfg.epochs, -(-steps // cfg.steps_per_epoch)), blocks


def _round_row(rnd: Round) -> dict[str, Any]:
    from learning.dashboard import result_numbers

    provinces = {}
    for r in (ProvinceRoundResult.objects.filter(round=rnd).select_related("province", "round")
              .order_by("province__adcode")):
        n = result_numbers(r)
        provinces[r.province.name_en or r.province.name_zh] = {
            "adcode": r.province.adcode,
            "decision": r.decision,
            "iou": n["iou"],
            "iou_ci": [n["iou_ci_low"], n["iou_ci_high"]] if n["iou_ci_low"] is not None
            else None,
            "iou_samples": n["iou_samples"],
            "correctness": n["correctness"],
            "correctness_ci": [n["correctness_ci_low"], n["correctness_ci_high"]]
            if n["correctness_ci_low"] is not None else None,
            "area_ratio": n["area_ratio"],
            "area_scope": n["area_scope"],
            "official_status": n["official_status"],
        }
    elapsed = ((rnd.finished_at - rnd.started_at).total_seconds()
               if rnd.finished_at and rnd.started_at else None)
    return {"number": rnd.number, "state": rnd.state, "seconds": elapsed,
            "timings": rnd.timings, "failure_reason": rnd.failure_reason,
            "provinces": provinces}


def _wait_round(rnd: Round, *, timeout: float, say: Callable[[str], None]) -> Round:
    from croplayer_site.liveness import workers_alive

    t0 = time.monotonic()
    last = ""
    while True:
        rnd.refresh_from_db()
        line = f"round {rnd.number}: {rnd.state} {rnd.stage_done}/{rnd.stage_total}"
        if line != last:
            say(line)
            last = line
        if not rnd.is_active:
            return rnd
        if time.monotonic() - t0 > timeout:
            raise DemoPlayError(f"round {rnd.number} still {rnd.state} after {timeout:.0f} s")
        if rnd.state == RoundState.QUEUED and time.monotonic() - t0 > 30 and not \
                workers_alive()["workers"]:
            raise DemoPlayError(
                f"round {rnd.number} waits with no live worker: start one "
                "(make demo starts it; or celery -A croplayer_site worker -Q cpu,gpu)")
        time.sleep(2.0)


def _export(*, campaign: Campaign, provinces: list[AdminUnit], user: User,
            say: Callable[[str], None]) -> list[dict[str, Any]]:
    """Integrate the converged provinces and export their products (and the national map)."""
    from learning.product.services.exports import ProductExportError, product_export_start
    from learning.product.services.integration import IntegrationError, integration_run

    try:
        run = integration_run(campaign=campaign, province_adcodes=[p.adcode for p in provinces])
        say(f"integration: {run.as_dict()}")
    except IntegrationError as e:
        say(f"integration: {e}")
        return [{"kind": "error", "path": "", "reason": f"integration: {e}"}]
    jobs = []
    try:
        for p in provinces:
            jobs.append(product_export_start(campaign=campaign, kind=ExportKind.PROVINCE,
                                             province=p, user=user))
        jobs.append(product_export_start(campaign=campaign, kind=ExportKind.NATIONAL_AF,
                                         user=user))
    except ProductExportError as e:
        return [{"kind": "error", "path": "", "reason": str(e)}]
    out = []
    for job in jobs:
        t0 = time.monotonic()
        while True:
            job.refresh_from_db()
            if job.status in (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED):
                break
            if time.monotonic() - t0 > EXPORT_TIMEOUT_S:
                raise DemoPlayError(f"export {job.pk} still {job.status} after "
                                    f"{EXPORT_TIMEOUT_S:.0f} s")
            time.sleep(1.0)
        if job.status != JobStatus.DONE:
            out.append({"kind": "error", "path": "", "reason": job.failure_reason})
            continue
        for name in sorted(job.files or {}):
            out.append({"kind": _file_kind(name), "path": str(Path(settings.DATA_DIR)
                                                                / job.folder / name),
                        "province": job.province.adcode if job.province else None})
    return out


def _file_kind(name: str) -> str:
    if name.endswith(".tar.gz"):
        return "county_shapefiles"
    if name.endswith(".gpkg"):
        return "geopackage"
    if "af" in name.lower() or "fraction" in name.lower():
        return "area_fraction"
    if name.endswith(".tif"):
        return "cog"
    return Path(name).suffix.lstrip(".") or "file"


def demo_playable(*, campaign: Campaign) -> str:
    """Why the campaign cannot be played ("" when it can): only the synthetic demo has a
    ground truth."""
    sources = list(ImagerySource.objects.filter(enabled=True, slug__in=("mapbox", "google")))
    if not sources or any(s.kind != "synthetic" or not (s.config or {}).get("write_truth")
                          for s in sources):
        return "only the synthetic demo (load_demo) has a ground truth to play from"
    if not campaign.blocks.exists():
        return "the campaign has no blocks"
    return ""


def demo_play(*, campaign: Campaign, rounds: int, config: dict[str, Any] | None = None,
              say: Callable[[str], None] = lambda _m: None,
              round_timeout: float = ROUND_TIMEOUT_S) -> PlayReport:
    """Play ``rounds`` rounds of the demo (see the module); stops early when every province
    has converged or been excluded. Returns what each round measured and what was exported."""
    from mapping.services.imagery import _source_for

    if rounds < 1:
        raise DemoPlayError("rounds must be at least 1")
    reason = demo_playable(campaign=campaign)
    if reason:
        raise DemoPlayError(reason)
    sources = list(ImagerySource.objects.filter(enabled=True, slug__in=("mapbox", "google"))
                   .order_by("slug").reverse())  # mapbox first: the demo samples are on it
    if round_active(campaign=campaign) is not None:
        raise DemoPlayError("the campaign has a round running: wait for it or cancel it")
    # The imagery service's own built sources: the same scenarios the images were drawn with.
    scenarios = {s.slug: _source_for(s).scenario for s in sources}
    user = player_ensure(campaign=campaign)
    cfg = {**ROUND_PRESETS.get(PRESET, {}), **PLAY_CONFIG, **(config or {})}
    report = PlayReport(campaign=campaign.slug)
    t_start = time.monotonic()
    if not SystematicSampleBlock.objects.filter(campaign=campaign).exists():
        systematic_sample_create(campaign=campaign, spacing_deg=SYSTEMATIC_SPACING_DEG, user=user)
    exported: set[int] = set()
    counts: dict[str, int] = {}
    for _ in range(rounds):
        open_provinces = list(
            AdminUnit.objects.filter(pk__in=campaign.provinces.values("pk")).exclude(
                pk__in=ProvinceStatus.objects.filter(campaign=campaign).exclude(
                    decision=ProvinceDecision.CONTINUE).values("province_id")
            ).order_by("adcode")
        )
        if not open_provinces:
            say("every province has converged or been excluded")
            break
        to_label = _blocks_to_label(campaign=campaign, provinces=open_provinces,
                                    validation_min_blocks=int(cfg.get("validation_min_blocks", 0)))
        say(f"labelling {len(to_label)} block(s) in {len(open_provinces)} province(s)")
        for block in to_label:
            _label_block(user=user, block=block, sources=sources, scenarios=scenarios,
                         counts=counts)
        judged = {b.pk: b for b in to_label}
        judged.update({s.block_id: s.block for s in SystematicSampleBlock.objects.filter(
            campaign=campaign, block__province__in=open_provinces).select_related(
            "block", "block__campaign")})
        labelled_before = Sample.objects.filter(block__campaign=campaign).values("block_id")
        judged.update({b.pk: b for b in Block.objects.filter(
            pk__in=labelled_before, province__in=open_provinces).select_related("campaign")})
        for block in judged.values():
            _judge_block(user=user, block=block, sources=sources, scenarios=scenarios,
                         counts=counts)
        round_cfg = cfg
        if not {"epochs", "steps_per_epoch"} & set(config or {}):
            epochs, blocks = train_epochs(campaign=campaign, config=cfg)
            round_cfg = {**cfg, "epochs": epochs}
            say(f"training: {epochs} x {cfg.get('steps_per_epoch', 'default')} steps "
                f"for {blocks} labelled block(s)")
        try:
            rnd = round_start(campaign=campaign, provinces=[p.adcode for p in open_provinces],
                              user=user, config=round_cfg)
        except RoundConflict as e:
            raise DemoPlayError(str(e)) from e
        rnd = _wait_round(rnd, timeout=round_timeout, say=say)
        row = _round_row(rnd)
        report.rounds.append(row)
        for name, p in row["provinces"].items():
            say(f"round {rnd.number} {name}: {p['decision']} IoU {p['iou']} "
                f"correctness {p['correctness']} area {p['area_ratio']}")
        if rnd.state != RoundState.DONE:
            say(f"round {rnd.number} ended {rnd.state}: {rnd.failure_reason}")
            break
        newly = list(AdminUnit.objects.filter(
            pk__in=ProvinceStatus.objects.filter(
                campaign=campaign, decision=ProvinceDecision.CONVERGED).values("province_id")
        ).exclude(pk__in=exported).order_by("adcode"))
        if newly:
            say(f"converged: {', '.join(p.name_en or p.name_zh for p in newly)}: exporting")
            report.exports += _export(campaign=campaign, provinces=newly, user=user, say=say)
            exported |= {p.pk for p in newly}
    report.converged = [
        p.name_en or p.name_zh for p in AdminUnit.objects.filter(
            pk__in=ProvinceStatus.objects.filter(
                campaign=campaign, decision=ProvinceDecision.CONVERGED).values("province_id")
        ).order_by("adcode")
    ]
    report.labels = counts
    report.baseline = _baseline(campaign=campaign)
    report.wall_seconds = time.monotonic() - t_start
    return report


def _baseline(*, campaign: Campaign) -> dict[str, Any]:
    """The trivial baseline of the same validation blocks: IoU of calling everything cropland
    (the project's rule: learned numbers are shown beside one)."""
    from learning.services.data import validation_samples

    out: dict[str, Any] = {}
    for province in campaign.provinces.all().order_by("adcode"):
        tp = union = 0
        for sample in validation_samples(campaign_id=campaign.pk, province_id=province.pk):
            truth = _truth(sample.block, sample.source)
            if truth is None:
                continue
            t = truth[0].astype(bool)
            tp += int(t.sum())
            union += int(t.size)
        out[province.name_en or province.name_zh] = {
            "all_cropland_iou": tp / union if union else None,
        }
    return out
