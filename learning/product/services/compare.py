"""Existing cropland products: import with validation, and comparison runs against the final map.

The numbers come from the pure core :mod:`learning.product.core.compare`; this module turns
campaign rows (blocks, provinces, official statistics, DEM files, block masks) into its inputs,
owns the database writes and the files under DATA_DIR, and reports progress like the fetch runs
do.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.gis.geos import Polygon
from django.db import transaction
from django.db.models import Count, QuerySet
from django.utils.text import slugify

from croplayer_site.jobs import (
    Heartbeat,
    JobProgress,
    job_broadcast,
    job_claim,
    job_fail,
    job_finish,
    job_kind,
)
from learning.core.features.terrain import terrain_features
from learning.models import BlockPrediction
from learning.product import dispatch
from learning.product.core.compare.classes import ClassMapping
from learning.product.core.compare.finalmap import (
    BlockMaskFinalMap,
    FinalBlock,
    FinalMap,
    RasterFinalMap,
)
from learning.product.core.compare.grids import RasterFileError, inspect_raster, open_raster
from learning.product.core.compare.report import (
    BlockRef,
    BlockResult,
    ProvinceInput,
    build_report,
    compare_block,
    write_blocks_csv,
    write_provinces_csv,
)
from learning.product.models import BlockIntegration, CroplandProduct, ProductComparison
from learning.product.services.exports import export_decisions, final_blocks
from mapping.geo.grid import BlockRaster
from mapping.geo.raster import atomic_path, sha256_file
from mapping.models import (
    AdminLevel,
    AdminUnit,
    Block,
    Campaign,
    CampaignDem,
    OfficialStatistic,
)
from mapping.services.terrain import DemError, block_dem_window

log = logging.getLogger(__name__)
ProgressFn = Callable[[str, int, int], None]


class ProductImportError(Exception):
    """The product was not imported; the message says why. Nothing was stored."""


class ComparisonError(Exception):
    """A comparison cannot start or failed; the message says why."""


# --- import ------------------------------------------------------------------------------------


def _region_overlaps(*, campaign: Campaign, bounds: tuple[float, float, float, float]) -> bool:
    """Whether lon/lat ``bounds`` meet the campaign's blocks (or, before the grid, provinces)."""
    w, s, e, n = bounds
    box = Polygon.from_bbox((max(w, -180.0), max(s, -90.0), min(e, 180.0), min(n, 90.0)))
    box.srid = 4326
    blocks = Block.objects.filter(campaign=campaign)
    if blocks.exists():
        return blocks.filter(geometry__intersects=box).exists()
    provinces = campaign.provinces.all()
    if not provinces.exists():
        provinces = AdminUnit.objects.filter(level=AdminLevel.PROVINCE)
    if not provinces.exists():
        raise ProductImportError(
            f"campaign {campaign.slug} has no region yet (no blocks and no provinces)"
        )
    return provinces.filter(geometry__intersects=box).exists()


def _product_relpath(*, campaign: Campaign, name: str, suffix: str) -> Path:
    # Not under products/, which holds the campaign's own exports.
    return Path("reference_products") / campaign.slug / f"{name}-{uuid.uuid4().hex[:8]}{suffix}"


def product_import(
    *,
    campaign: Campaign,
    name: str,
    path: Path,
    cropland_classes: str,
    description: str = "",
    original_name: str = "",
    user: AbstractBaseUser | None = None,
) -> CroplandProduct:
    """Validate a product raster and store a copy with its cropland classes; all or nothing.

    Refused with the reason: a bad name or one already used in the campaign, a class list that
    does not parse, a file that is not a georeferenced raster or has no CRS, a raster that does
    not overlap the campaign's region, class values the raster's data type cannot hold, and
    cropland classes none of which occurs in the raster (the values found are listed).
    """
    slug = slugify(name)
    if not slug or slug != name:
        raise ProductImportError(
            f"name {name!r} must be a slug (letters, digits, '-', '_'), e.g. {slug or 'esa-2020'!r}"
        )
    if CroplandProduct.objects.filter(campaign=campaign, name=name).exists():
        raise ProductImportError(f"campaign {campaign.slug} already has a product {name!r}")
    try:
        classes = ClassMapping.parse(cropland_classes)
    except ValueError as e:
        raise ProductImportError(f"cropland classes: {e}") from e
    path = Path(path)
    if not path.is_file():
        raise ProductImportError(f"file not found: {path}")
    try:
        info = inspect_raster(path)
    except RasterFileError as e:
        raise ProductImportError(str(e)) from e
    problems = classes.problems_for_dtype(np.dtype(info.dtype))
    if problems:
        raise ProductImportError("unknown cropland classes: " + "; ".join(problems))
    if not _region_overlaps(campaign=campaign, bounds=info.bounds_lonlat):
        w, s, e, n = info.bounds_lonlat
        raise ProductImportError(
            f"the raster (lon {w:.4f}..{e:.4f}, lat {s:.4f}..{n:.4f}) does not overlap the "
            f"region of campaign {campaign.slug}"
        )
    found = classes.found_in(np.asarray(info.sample_values))
    if not found:
        shown = ", ".join(f"{v:g}" for v in info.sample_values[:30])
        more = " …" if len(info.sample_values) > 30 else ""
        raise ProductImportError(
            f"unknown cropland classes: none of {classes} occurs in the raster "
            f"(values found: {shown or 'none, every pixel is no data'}{more})"
        )
    # Stored as what it was checked to be, whatever the upload was called.
    rel = _product_relpath(campaign=campaign, name=name, suffix=".tif")
    dest = Path(settings.DATA_DIR) / rel
    # The row and the file appear together: the copy is renamed into place only when the row
    # was written, and the transaction rolls back when the rename fails.
    with transaction.atomic(), atomic_path(dest) as tmp:
        shutil.copyfile(path, tmp)
        product = CroplandProduct.objects.create(
            campaign=campaign,
            name=name,
            description=description,
            path=str(rel),
            original_name=original_name or path.name,
            checksum=sha256_file(tmp),
            cropland_classes=classes.to_json(),
            crs=info.crs_name if len(info.crs_name) < 200 else info.crs_wkt,
            width=info.width,
            height=info.height,
            dtype=info.dtype,
            resolution_x=info.resolution[0],
            resolution_y=info.resolution[1],
            bounds=list(info.bounds_lonlat),
            nodata=info.nodata,
            sample_values=list(info.sample_values[:200]),
            uploaded_by=user,
        )
    return product


def product_file(product: CroplandProduct) -> Path:
    return Path(settings.DATA_DIR) / product.path


# --- final map ---------------------------------------------------------------------------------


@dataclass
class ResolvedFinalMap:
    """A final map ready to read, and the campaign blocks it may cover."""

    final: FinalMap
    blocks: Any  # QuerySet[Block]
    close: Callable[[], None]


def _data_path(p: str) -> Path:
    path = Path(p)
    return path if path.is_absolute() else Path(settings.DATA_DIR) / path


def final_map_resolve(*, campaign: Campaign, spec: dict[str, Any]) -> ResolvedFinalMap:
    """Turn a stored final-map description into a :class:`FinalMap` and its candidate blocks.

    Kinds: ``{"kind": "integration"}`` (the campaign's final map: every integrated block of
    the converged provinces, its mask following the integration decision);
    ``{"kind": "raster", "paths": [...]}`` (GeoTIFF/COG files, e.g. the province COGs);
    ``{"kind": "predictions", "model_version": ID, "source": SLUG}`` (per-block masks of one
    segmenter version on one source).
    """
    kind = spec.get("kind")
    blocks = Block.objects.filter(campaign=campaign)
    if kind == "integration":
        decided = export_decisions(campaign=campaign, province=None).values("block_id")
        return ResolvedFinalMap(
            final=IntegrationFinalMap(campaign=campaign),
            blocks=blocks.filter(pk__in=decided),
            close=lambda: None,
        )
    if kind == "raster":
        paths = [_data_path(p) for p in spec.get("paths", [])]
        if not paths:
            raise ComparisonError("a raster final map needs at least one file")
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise ComparisonError(f"final map file(s) not found: {', '.join(missing)}")
        fm = RasterFinalMap(paths, zoom=campaign.zoom)
        try:
            fm.__enter__()
        except RasterFileError as e:
            raise ComparisonError(f"final map: {e}") from e
        box = Polygon.from_bbox(fm.bounds)
        box.srid = 4326
        return ResolvedFinalMap(
            final=fm,
            blocks=blocks.filter(geometry__intersects=box),
            close=lambda: fm.__exit__(None, None, None),
        )
    if kind == "predictions":
        preds = BlockPrediction.objects.filter(
            block__campaign=campaign,
            model_version_id=spec.get("model_version"),
            source__slug=spec.get("source"),
        )
        paths = {bid: _data_path(p) for bid, p in preds.values_list("block_id", "mask_path")}
        if not paths:
            raise ComparisonError(
                f"no block masks of model version {spec.get('model_version')} on source "
                f"{spec.get('source')!r} in campaign {campaign.slug}"
            )
        return ResolvedFinalMap(
            final=BlockMaskFinalMap(paths, zoom=campaign.zoom),
            blocks=blocks.filter(pk__in=list(paths)),
            close=lambda: None,
        )
    raise ComparisonError(f"unknown final map kind {kind!r} (integration, raster or predictions)")


class IntegrationFinalMap:
    """The final map as the integration step defines it: per block, the mask its decision
    selects (``learning.product.services.exports.final_blocks``: 1 cropland, 0 other, 255 no
    data)."""

    def __init__(self, *, campaign: Campaign) -> None:
        self.campaign = campaign

    def block(self, *, key: int, bounds: tuple[float, float, float, float]) -> FinalBlock | None:
        rows = BlockIntegration.objects.filter(block_id=key).select_related(
            "block",
            "mapbox_prediction__model_version__round",
            "mapbox_prediction__round",
            "google_prediction__model_version__round",
            "google_prediction__round",
        )
        for fb in final_blocks(rows, zoom=self.campaign.zoom):
            mask = np.asarray(fb.mask)
            t = fb.transform
            h, w = mask.shape
            raster = BlockRaster(
                west=t.c, south=t.f + t.e * h, east=t.c + t.a * w, north=t.f, width=w, height=h
            )
            valid = (mask == 0) | (mask == 1)
            return FinalBlock(cropland=mask == 1, valid=valid, raster=raster)
        return None


# --- comparison runs ---------------------------------------------------------------------------


def comparison_create(
    *,
    campaign: Campaign,
    product: CroplandProduct,
    final_map: dict[str, Any],
    province_adcodes: list[int] | None = None,
    user: AbstractBaseUser | None = None,
) -> ProductComparison:
    """Check the final map can be read and queue a comparison row (run it with
    :func:`comparison_execute`, in the command or a worker)."""
    if product.campaign_id != campaign.pk:
        raise ComparisonError(f"product {product.name} belongs to another campaign")
    resolved = final_map_resolve(campaign=campaign, spec=final_map)
    try:
        blocks = resolved.blocks
        if province_adcodes:
            blocks = blocks.filter(province__adcode__in=province_adcodes)
        total = blocks.count()
    finally:
        resolved.close()
    if not total:
        raise ComparisonError("the final map covers no block of the campaign (or provinces)")
    return ProductComparison.objects.create(
        campaign=campaign,
        product=product,
        final_map=final_map,
        provinces=province_adcodes or [],
        total=total,
        requested_by=user,
    )


def comparison_start(
    *,
    campaign: Campaign,
    product_id: int,
    final: str,
    model_version_id: int | None = None,
    source: str | None = None,
    province_adcodes: list[int] | None = None,
    user: AbstractBaseUser | None = None,
) -> ProductComparison:
    """A comparison asked for in the browser, run by a worker. The final map is the campaign's
    integration (``final="integration"``) or one model's predictions on one source; files on
    the server (``--final-raster``) stay the command line's, so no path comes from a request."""
    product = CroplandProduct.objects.filter(campaign=campaign, pk=product_id).first()
    if product is None:
        raise ComparisonError(f"campaign {campaign.slug} has no product #{product_id}")
    if final == "integration":
        spec: dict[str, Any] = {"kind": "integration"}
    elif final == "predictions":
        if model_version_id is None or not source:
            raise ComparisonError(
                "a comparison with predictions needs a model version and a source"
            )
        spec = {"kind": "predictions", "model_version": model_version_id, "source": source}
    else:
        raise ComparisonError(f"unknown final map {final!r}; expected integration or predictions")
    with transaction.atomic():
        run = comparison_create(
            campaign=campaign,
            product=product,
            final_map=spec,
            province_adcodes=province_adcodes,
            user=user if user is not None and user.is_authenticated else None,
        )
        transaction.on_commit(lambda pk=run.pk: dispatch.comparison_execute_enqueue(pk))
    return run


def _block_slope(*, block: Block, has_dem: bool) -> float:
    """Median slope (degrees, gdaldem's Horn method) of a block from the campaign's DEM; NaN
    without a DEM over it."""
    if not has_dem:
        return math.nan
    try:
        return terrain_features(block_dem_window(block=block), nan_policy="omit").slope
    except (DemError, ValueError) as e:
        log.info("no slope for %s: %s", block.code, e)
        return math.nan


def _province_inputs(*, campaign: Campaign, adcodes: set[int]) -> list[ProvinceInput]:
    units = AdminUnit.objects.filter(level=AdminLevel.PROVINCE, adcode__in=adcodes)
    totals = dict(
        Block.objects.filter(campaign=campaign, province__adcode__in=adcodes)
        .values_list("province__adcode")
        .annotate(n=Count("id"))
    )
    stats = {
        s.province.adcode: s
        for s in OfficialStatistic.objects.filter(
            campaign=campaign, province__adcode__in=adcodes
        ).select_related("province")
    }
    out = []
    for u in units.order_by("adcode"):
        st = stats.get(u.adcode)
        out.append(
            ProvinceInput(
                adcode=u.adcode,
                name=u.name_en or u.name_zh,
                blocks_total=int(totals.get(u.adcode, 0)),
                official_ha=float(st.hectares) if st else None,
                official_status=st.status if st else "",
            )
        )
    return out


@contextmanager
def _atomic_folder(dest: Path) -> Iterator[Path]:
    """A temporary sibling folder renamed onto ``dest`` on success, removed on failure."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
    tmp.mkdir()
    try:
        yield tmp
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def comparison_folder(comparison: ProductComparison) -> Path:
    return Path(settings.DATA_DIR) / comparison.folder


# The reconciler fails a running comparison whose heartbeat is older than this (its worker
# died), and sends a queued one of that age again; the thread beats every minute.
STALE_AFTER_S = 15 * 60
HEARTBEAT_EVERY_S = 60.0

def comparison_execute(
    *, comparison_id: int, progress: ProgressFn | None = None
) -> ProductComparison:
    """Run a queued comparison: claim it, compare every block, write CSV/PNG, store results.

    Claimed with a conditional update, so a second worker (or a re-delivered task) does
    nothing. On an error the row is FAILED with the reason and no output folder is left. A
    heartbeat thread keeps the row alive through long quiet steps; finishing and failing are
    conditional on the row still running, so one the reconciler failed (its worker looked
    dead) stays failed.
    """
    kind = job_kind("compare")
    claimed = job_claim(kind=kind, pk=comparison_id)
    comparison = ProductComparison.objects.select_related("campaign", "product").get(
        pk=comparison_id
    )
    if not claimed:
        return comparison
    beat = Heartbeat(kind=kind, pk=comparison_id, every_s=HEARTBEAT_EVERY_S)
    beat.start()
    try:
        _execute(comparison, progress, beat)
    except Exception as e:
        log.exception("comparison %s failed", comparison_id)
        reason = (
            str(e)
            if isinstance(e, ComparisonError | RasterFileError)
            else (f"internal error: {type(e).__name__}: {e}")
        )
        job_fail(kind=kind, pk=comparison_id, reason=reason[:2000])
    finally:
        beat.end()
    comparison.refresh_from_db()
    job_broadcast(kind=kind, row=comparison)
    return comparison


def _execute(comparison: ProductComparison, progress: ProgressFn | None, beat: Heartbeat) -> None:
    from learning.product.core.compare import plots

    campaign = comparison.campaign
    classes = ClassMapping.from_json(comparison.product.cropland_classes)
    resolved = final_map_resolve(campaign=campaign, spec=comparison.final_map)
    results: list[BlockResult] = []
    not_covered = 0
    try:
        qs = resolved.blocks.select_related("province", "campaign").order_by("row", "col")
        if comparison.provinces:
            qs = qs.filter(province__adcode__in=comparison.provinces)
        blocks = list(qs)
        total = len(blocks)
        ProductComparison.objects.filter(pk=comparison.pk).update(total=total)
        has_dem = CampaignDem.objects.filter(campaign=campaign).exists()
        comparison.total = total
        # every 2 s, the first one 2 s in, and at the end
        track = JobProgress(
            kind=job_kind("compare"), row=comparison, every_s=2.0, last=time.monotonic()
        )
        with open_raster(product_file(comparison.product)) as product_ds:
            for i, b in enumerate(blocks, start=1):
                bounds = b.geometry.extent
                final = resolved.final.block(key=b.pk, bounds=bounds)
                ref = BlockRef(
                    key=b.pk,
                    code=b.code,
                    province=b.province.adcode if b.province else None,
                    bounds=bounds,
                    slope=_block_slope(block=b, has_dem=has_dem),
                )
                result = None
                if final is not None:
                    result = compare_block(
                        ref=ref, final=final, product=product_ds, classes=classes
                    )
                if result is None or result.n_common == 0:
                    not_covered += 1
                else:
                    results.append(result)
                if progress:
                    progress("compare", i, total)
                track(done=i, total=total)
    finally:
        resolved.close()
    adcodes = {r.province for r in results if r.province is not None}
    report = build_report(
        results,
        _province_inputs(campaign=campaign, adcodes=adcodes),
        blocks_not_covered=not_covered,
    )
    summary = report.to_json()
    summary["product"] = {
        "name": comparison.product.name,
        "cropland_classes": str(classes),
    }
    summary["final_map"] = comparison.final_map
    rel = Path("comparisons") / campaign.slug / str(comparison.pk)
    title = f"{comparison.product.name} vs final map"
    dest = Path(settings.DATA_DIR) / rel
    with _atomic_folder(dest) as tmp:
        write_blocks_csv(results, tmp / "blocks.csv")
        write_provinces_csv(report.provinces, tmp / "provinces.csv")
        (tmp / "report.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2))
        (tmp / "slope.png").write_bytes(
            plots.slope_png(report.slope_af, report.slope_ed, title=title)
        )
        (tmp / "blocks.png").write_bytes(plots.blocks_png(results, title=title))
        (tmp / "provinces.png").write_bytes(plots.provinces_png(report.provinces, title=title))
    # DONE only once the folder is in place: a DONE row always has its CSV and plots. Only a
    # comparison still running may finish; the folder of one failed meanwhile goes.
    beat.end()
    if not job_finish(
        kind=job_kind("compare"), pk=comparison.pk, results=summary, folder=str(rel)
    ):
        shutil.rmtree(dest, ignore_errors=True)


# --- reads (the access gate for comparison runs is learning.product.access) -------------------


def product_list(*, campaign: Campaign) -> QuerySet[CroplandProduct]:
    return CroplandProduct.objects.filter(campaign=campaign).order_by("name")


def comparison_list(*, campaign: Campaign) -> QuerySet[ProductComparison]:
    return (
        ProductComparison.objects.filter(campaign=campaign)
        .select_related("product")
        .order_by("-created_at")
    )
