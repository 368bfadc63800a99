"""Product exports: start a job, and run it in a worker (province COG, GeoPackage, county
shapefiles in a tar.gz; or the national area-fraction map).

The job's row is its state machine: a worker claims it with a conditional update (a second
delivery of the task does nothing), writes every file into a hidden staging folder beside the
final one, and renames the whole folder into place at the end; a failure removes the staging
folder and records the reason, so a finished export's folder never holds a half-written file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from croplayer_site.jobs import (
    Heartbeat,
    JobProgress,
    job_broadcast,
    job_claim,
    job_fail,
    job_finish,
    job_kind,
    job_stale_reason,
    jobs_reconcile,
)
from learning.models import BlockPrediction, ModelKind, ModelVersion
from learning.product import dispatch
from learning.product.core.decision import area_fraction, final_block_mask, needed_sources
from learning.product.core.export import (
    SHAPEFILE_PARTS,
    County,
    CroplandPolygon,
    append_geopackage,
    latin_slug,
    shapefile_stems,
    tar_gz,
    write_county_shapefile,
    write_geopackage,
)
from learning.product.core.raster import (
    mosaic_grid,
    read_block_mask,
    write_af_geotiff,
    write_af_png,
    write_mask_cog,
)
from learning.product.core.vector import equal_area_m2, mask_polygons
from learning.product.models import BlockIntegration, ExportKind, ProductExport
from learning.product.services.integration import converged_blocks
from mapping.geo.grid import block_raster
from mapping.geo.raster import affine_of
from mapping.models import AdminUnit, Campaign

log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 1.0
HEARTBEAT_EVERY_S = 60.0


class ProductExportError(Exception):
    """A reason an export cannot start (shown to the user as a 400)."""


def export_decisions(
    *, campaign: Campaign, province: AdminUnit | None
) -> QuerySet[BlockIntegration]:
    """The decided blocks an export covers: a province's, or every converged province's."""
    blocks = converged_blocks(campaign=campaign)
    if province is not None:
        blocks = blocks.filter(province=province)
    return (
        BlockIntegration.objects.filter(block__in=blocks)
        .select_related(
            "block",
            "block__county",
            "block__county__parent",
            "mapbox_prediction__model_version__round",
            "mapbox_prediction__round",
            "google_prediction__model_version__round",
            "google_prediction__round",
        )
        .order_by("block__row", "block__col")
    )


def export_coverage(*, campaign: Campaign, province: AdminUnit | None) -> dict[str, Any]:
    """What an export leaves out or builds on old work, said in its summary: converged blocks
    without an integration decision (not in the export), and decisions resting on predictions
    of an older segmenter than the current one (exported, but worth re-running)."""
    blocks = converged_blocks(campaign=campaign)
    if province is not None:
        blocks = blocks.filter(province=province)
    n = blocks.count()
    decided = BlockIntegration.objects.filter(block__in=blocks)
    n_decided = decided.count()
    seg = ModelVersion.objects.filter(
        campaign=campaign, kind=ModelKind.SEGMENTER, is_current=True
    ).first()
    stale = 0
    if seg is not None:
        stale = decided.filter(
            (Q(mapbox_prediction__isnull=False) & ~Q(mapbox_prediction__model_version=seg))
            | (Q(google_prediction__isnull=False) & ~Q(google_prediction__model_version=seg))
        ).count()
    warnings = []
    if n_decided < n:
        warnings.append(
            f"{n - n_decided} of {n} converged blocks have no integration decision and are not "
            "in the export (run the integration, or decide them on the review map)"
        )
    if stale:
        warnings.append(
            f"{stale} block decision(s) rest on predictions older than the current segmenter "
            f"{seg.name if seg else ''}; run the integration again to use the new predictions"
        )
    return {
        "converged_blocks": n,
        "decided_blocks": n_decided,
        "stale_decisions": stale,
        "warnings": warnings,
    }


def product_export_start(
    *,
    campaign: Campaign,
    kind: str,
    province: AdminUnit | None = None,
    user: AbstractBaseUser | None = None,
) -> ProductExport:
    """Create the job row and queue its task after the transaction commits."""
    if kind not in ExportKind.values:
        raise ProductExportError(
            f"unknown export kind {kind!r}; expected one of {', '.join(ExportKind.values)}"
        )
    if kind == ExportKind.PROVINCE and province is None:
        raise ProductExportError("a province export needs a province")
    if kind == ExportKind.NATIONAL_AF:
        province = None
    total = export_decisions(campaign=campaign, province=province).count()
    if total == 0:
        where = f"province {province.adcode}" if province else "the campaign"
        raise ProductExportError(
            f"{where} has no integrated blocks in converged provinces; run the integration first"
        )
    with transaction.atomic():
        export = ProductExport.objects.create(
            campaign=campaign,
            kind=kind,
            province=province,
            total=total,
            requested_by=user if user is not None and user.is_authenticated else None,
        )
        transaction.on_commit(lambda pk=export.pk: dispatch.product_export_enqueue(pk))
    return export


def export_root(export: ProductExport) -> Path:
    where = str(export.province.adcode) if export.province is not None else "national"
    return Path(settings.DATA_DIR) / "products" / export.campaign.slug / where


def product_export_run(*, export_id: int) -> ProductExport:
    """Worker side: claim the queued row, write the files, rename them into place."""
    kind = job_kind("export")
    claimed = job_claim(kind=kind, pk=export_id)
    export = ProductExport.objects.select_related("campaign", "province").get(pk=export_id)
    if not claimed:  # delivered twice, or cancelled: nothing to do
        return export
    root = export_root(export)
    final = root / f"export-{export.pk}"
    stage = root / f".export-{export.pk}.partial"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    tracker = JobProgress(kind=kind, row=export, every_s=PROGRESS_EVERY_S)
    beat = Heartbeat(kind=kind, pk=export.pk, every_s=HEARTBEAT_EVERY_S)
    beat.start()
    try:
        if export.kind == ExportKind.PROVINCE:
            summary = _province_files(export, stage, tracker)
        else:
            summary = _national_files(export, stage, tracker)
        summary["coverage"] = export_coverage(campaign=export.campaign, province=export.province)
        files = {
            p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)}
            for p in sorted(stage.iterdir())
            if p.is_file()
        }
        beat.end()
        # Only a job still running may finish: one the reconciler failed meanwhile (its worker
        # looked dead) stays failed, and its files never appear where a finished one would.
        with transaction.atomic():
            finished = job_finish(
                kind=kind,
                pk=export.pk,
                stage="done",
                done=export.total,
                files=files,
                summary=summary,
                folder=str(final.relative_to(settings.DATA_DIR)),
            )
            if finished:
                shutil.rmtree(final, ignore_errors=True)
                os.replace(stage, final)
        if not finished:
            shutil.rmtree(stage, ignore_errors=True)
    except Exception as e:
        log.exception("export %s failed", export.pk)
        shutil.rmtree(stage, ignore_errors=True)
        job_fail(
            kind=kind, pk=export.pk, reason=f"{type(e).__name__}: {e}", heartbeat_at=timezone.now()
        )
    finally:
        beat.end()
    export.refresh_from_db()
    job_broadcast(kind=kind, row=export)
    return export


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


# --- one block's final mask ------------------------------------------------------------------


@dataclass(frozen=True)
class FinalBlock:
    row: BlockIntegration
    mask: np.ndarray
    transform: Any
    model_version: str
    round_number: int


def _prediction_meta(p: BlockPrediction | None) -> tuple[str, int]:
    if p is None:
        return "", 0
    rnd = p.round or p.model_version.round
    return p.model_version.name, rnd.number if rnd is not None else 0


def final_blocks(rows: QuerySet[BlockIntegration], *, zoom: int) -> Iterator[FinalBlock]:
    """Each decided block's final mask, read from the predictions its decision needs."""
    data_dir = Path(settings.DATA_DIR)
    for row in rows.iterator(chunk_size=200):
        preds = {"mapbox": row.mapbox_prediction, "google": row.google_prediction}
        masks: dict[str, np.ndarray | None] = {"mapbox": None, "google": None}
        transform = None
        for src in needed_sources(row.decision):
            p = preds[src]
            if p is None:
                raise ValueError(
                    f"block {row.block.code} ({row.decision}) has no {src} "
                    "prediction; run the integration again"
                )
            masks[src], transform = read_block_mask(data_dir / p.mask_path)
        raster = block_raster(row.block.geometry.extent, zoom)
        if transform is None:
            transform = affine_of(raster)
        mask = final_block_mask(
            decision=row.decision,
            mapbox=masks["mapbox"],
            google=masks["google"],
            shape=(raster.height, raster.width),
        )
        used = (
            next((preds[s] for s in needed_sources(row.decision)), None)
            or preds["mapbox"]
            or preds["google"]
        )
        name, rnd = _prediction_meta(used)
        yield FinalBlock(
            row=row, mask=mask, transform=transform, model_version=name, round_number=rnd
        )


# --- province files --------------------------------------------------------------------------


def _county_of(unit: AdminUnit | None, province: AdminUnit) -> County:
    if unit is None:  # a block outside every county keeps the province's name
        return County(
            province.adcode, province.name_zh, province.name_en, province.name_zh, province.name_en
        )
    city = unit.parent if unit.parent is not None else province
    return County(unit.adcode, unit.name_zh, unit.name_en, city.name_zh, city.name_en)


def _province_files(export: ProductExport, stage: Path, track: JobProgress) -> dict[str, Any]:
    """COG, GeoPackage and county shapefiles, written block by block: polygons are appended
    to their files as each block is read, so a province never has to fit in memory."""
    campaign, province = export.campaign, export.province
    assert province is not None  # checked by the row's constraint
    rows = export_decisions(campaign=campaign, province=province)
    total = rows.count()
    bounds = [g.extent for g in rows.values_list("block__geometry", flat=True)]
    grid = mosaic_grid(bounds, block_deg=float(campaign.block_size_deg), zoom=campaign.zoom)
    county_ids = set(rows.values_list("block__county_id", flat=True))
    units = {
        u.pk: u
        for u in AdminUnit.objects.filter(pk__in=county_ids - {None}).select_related("parent")
    }
    counties = {cid: _county_of(units.get(cid) if cid else None, province) for cid in county_ids}
    stems = shapefile_stems(set(counties.values()))
    shp_dir = stage / "shp"
    gpkg = stage / f"cropland_{province.adcode}.gpkg"
    written: set[int] = set()
    decisions: dict[str, int] = defaultdict(int)
    versions: set[str] = set()
    totals = {"polygons": 0, "area": 0.0}
    track(stage="blocks", done=0, total=total, force=True)

    def masks() -> Iterator[tuple[tuple[float, float, float, float], np.ndarray]]:
        for i, fb in enumerate(final_blocks(rows, zoom=campaign.zoom), start=1):
            county = counties[fb.row.block.county_id]
            polys = mask_polygons(fb.mask, fb.transform)
            recs = [
                CroplandPolygon(
                    geometry=poly,
                    area_m2=float(area),
                    block_id=fb.row.block.code,
                    decision=fb.row.decision,
                    model_version=fb.model_version,
                    round_number=fb.round_number,
                )
                for poly, area in zip(polys, equal_area_m2(polys), strict=True)
            ]
            if recs:
                write_county_shapefile(
                    shp_dir, stems[county.adcode], county, recs, append=county.adcode in written
                )
                written.add(county.adcode)
                append_geopackage(gpkg, county, recs, layer="cropland")
                totals["polygons"] += len(recs)
                totals["area"] += sum(r.area_m2 for r in recs)
            decisions[fb.row.decision] += 1
            if fb.model_version:
                versions.add(fb.model_version)
            track(stage="blocks", done=i, total=total)
            yield fb.row.block.geometry.extent, fb.mask

    cog = write_mask_cog(stage / f"cropland_{province.adcode}.tif", grid, masks(), total=total)
    track(stage="packing", done=total, total=total, force=True)
    ordered = sorted(set(counties.values()), key=lambda c: c.adcode)
    files: list[Path] = []
    for county in ordered:
        stem = stems[county.adcode]
        if county.adcode not in written:  # every county has its file, cropland or not
            write_county_shapefile(shp_dir, stem, county, [])
        files += [shp_dir / f"{stem}{ext}" for ext in SHAPEFILE_PARTS]
    if not gpkg.exists():
        write_geopackage(gpkg, [], layer="cropland")
    slug = latin_slug(province.name_en, province.name_zh) or str(province.adcode)
    members = tar_gz(stage / f"cf_{province.adcode}_{slug}.tar.gz", files, arcdir=f"cf_{slug}")
    shutil.rmtree(shp_dir)
    return {
        "province": province.adcode,
        "blocks": cog.blocks,
        "decisions": dict(decisions),
        "polygons": totals["polygons"],
        "counties": len(ordered),
        "cropland_area_m2": totals["area"],
        "cropland_area_ha": totals["area"] / 10_000,
        "cog": {
            "width": cog.width,
            "height": cog.height,
            "overviews": cog.overviews,
            "pixel_deg": [grid.transform.a, -grid.transform.e],
            "cropland_pixels": cog.cropland_pixels,
            "valid_pixels": cog.valid_pixels,
        },
        "shapefiles": [stems[c.adcode] for c in ordered],
        "tar_members": len(members),
        "model_versions": sorted(versions),
    }


def _national_files(export: ProductExport, stage: Path, track: JobProgress) -> dict[str, Any]:
    campaign = export.campaign
    rows = export_decisions(campaign=campaign, province=None)
    total = rows.count()
    fractions: dict[tuple[int, int], float] = {}
    track(stage="blocks", done=0, total=total, force=True)
    for i, fb in enumerate(final_blocks(rows, zoom=campaign.zoom), start=1):
        fractions[(fb.row.block.row, fb.row.block.col)] = area_fraction(fb.mask)
        track(stage="blocks", done=i, total=total)
    tif = stage / "area_fraction.tif"
    width, height = write_af_geotiff(tif, fractions, block_deg=float(campaign.block_size_deg))
    write_af_png(
        stage / "area_fraction.png", tif, title=f"{campaign.name}: cropland area fraction per block"
    )
    values = np.array([v for v in fractions.values() if not np.isnan(v)])
    return {
        "blocks": len(fractions),
        "width": width,
        "height": height,
        "mean_area_fraction": float(values.mean()) if values.size else None,
    }


STALE_AFTER_S = 15 * 60  # the longest quiet step (GDAL's COG copy of a big province) is shorter


def product_exports_reconcile(*, stale_after_s: float = STALE_AFTER_S) -> dict[str, list[int]]:
    """Fail running exports whose worker went quiet (killed, machine lost) and remove their
    staging folders, so the page shows the reason instead of a job that never ends; the lead
    starts a new export. A job still queued after ``stale_after_s`` (its message lost with a
    broker or a worker) is sent again: the worker's claim makes a second delivery harmless."""
    return jobs_reconcile(names=["export"], stale_after_s=stale_after_s)["export"]


def product_export_stale(*, row: ProductExport, cutoff: datetime) -> bool:
    """The export kind's ``on_stale``: fail the quiet job, remove its staging folder, tell its
    watchers."""
    kind = job_kind("export")
    if not job_fail(
        kind=kind,
        pk=row.pk,
        reason=job_stale_reason(kind=kind, row=row),
        where=Q(heartbeat_at__lt=cutoff),
    ):
        return False
    shutil.rmtree(export_root(row) / f".export-{row.pk}.partial", ignore_errors=True)
    row.refresh_from_db()
    job_broadcast(kind=kind, row=row)
    return True
