"""Import and export of sample polygons as GeoPackage, zipped Shapefile or GeoJSON files: the
Django side. Reading a file and planning its import is ``annotation.sample_files`` (no Django);
here uploads are stored, previewed, claimed and written, and samples exported.

A preview lives as two files under ``VAR_DIR/imports``: the upload
(``<import id>.upload<suffix>``) and ``<import id>.json``
(owner, campaign, source, expiry). Committing reads the upload again, so the rows written are
checked against the blocks as they are at commit time.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
import zipfile
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import IO, Any

import geopandas as gpd
import pandas as pd
import pyogrio
import shapely
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.gis.geos import GEOSGeometry
from django.contrib.gis.geos import Polygon as GeosPolygon
from django.db import connection, transaction
from django.db.models import F
from rest_framework.exceptions import NotFound
from shapely.geometry import Polygon

from annotation.models import (
    AuditAction,
    AuditEntry,
    CroplandSubtype,
    Sample,
    SampleKind,
    SamplePolygon,
    SampleSplit,
)
from annotation.sample_files import (
    COLUMNS,
    EXPORT_LAYER,
    GPKG,
    MAX_UPLOAD_BYTES,
    SHAPEFILE,
    BlockCell,
    FileRejected,
    ImportPlan,
    PlannedPolygon,
    SampleVocabulary,
    upload_driver,
    upload_read,
)
from annotation.sample_files import features_plan as _features_plan
from annotation.selectors import polygon_feature
from mapping.models import Block, Campaign, ImagerySource

IMPORT_TTL = timedelta(hours=2)
EXPORT_FORMATS = ("gpkg", "shp")

# A file's subtype and split attributes take the models' values.
VOCABULARY = SampleVocabulary(
    subtypes=frozenset(CroplandSubtype.values),
    splits=frozenset(SampleSplit.values),
    default_subtype=CroplandSubtype.IRRIGATED_DRY.value,
)


class ImportRefused(ValueError):
    """The commit was refused (features rejected, or nothing to import); nothing was written."""

    def __init__(self, reason: str, rejected: list[dict[str, Any]] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.rejected = rejected or []



def features_plan(
    df: gpd.GeoDataFrame, *, blocks: Iterable[BlockCell], source: str, sources: set[str]
) -> ImportPlan:
    """``annotation.sample_files.features_plan`` with the models' subtypes and splits."""
    return _features_plan(df, blocks=blocks, source=source, sources=sources, vocabulary=VOCABULARY)


# --- Sources (the campaign gate is annotation.access.campaign_get_for_transfer) ----------------


def source_get(*, slug: str) -> ImagerySource:
    try:
        return ImagerySource.objects.get(slug=slug)
    except ImagerySource.DoesNotExist as e:
        raise NotFound(f"no imagery source {slug!r}") from e


# --- Import service ---------------------------------------------------------------------------


def _blocks_under(campaign: Campaign, df: gpd.GeoDataFrame) -> list[BlockCell]:
    geoms = df.geometry.values
    valid = geoms[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))]
    if not len(valid):
        return []
    x0, y0, x1, y1 = (float(v) for v in shapely.total_bounds(valid))
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        # NaN coordinates: those features are rejected by the rules; the rest need all blocks.
        qs = Block.objects.filter(campaign=campaign)
    else:
        box = GeosPolygon.from_bbox((max(x0, -180), max(y0, -90), min(x1, 180), min(y1, 90)))
        box.srid = 4326
        qs = Block.objects.filter(campaign=campaign, geometry__intersects=box)
    return [
        BlockCell(id=b.pk, code=b.code, bounds=b.geometry.extent)
        for b in qs.only("id", "row", "col", "geometry")
    ]


def import_plan(
    *, campaign: Campaign, source: ImagerySource, path: Path, suffix: str
) -> ImportPlan:
    df = upload_read(path, suffix=suffix)
    if not len(df):
        raise FileRejected("the file has no features")
    sources = set(ImagerySource.objects.values_list("slug", flat=True))
    return features_plan(
        df, blocks=_blocks_under(campaign, df), source=source.slug, sources=sources
    )


def _imports_dir() -> Path:
    d = Path(settings.VAR_DIR) / "imports"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _imports_expire(now: datetime) -> None:
    """Remove expired previews, and commits that died half-way (claimed long after expiry)."""
    metas = [(m, now) for m in _imports_dir().glob("*.json") if ".upload." not in m.name]
    metas += [(m, now - IMPORT_TTL) for m in _imports_dir().glob("*.claimed")]
    for meta, limit in metas:
        try:
            expires = datetime.fromisoformat(json.loads(meta.read_text())["expires_at"])
        except (OSError, ValueError, KeyError):
            continue
        if expires < limit:
            _import_delete(meta.stem)


def _upload_path(import_id: uuid.UUID | str, suffix: str) -> Path:
    # Not "<id><suffix>": a .json upload would then be overwritten by the preview's meta file.
    return _imports_dir() / f"{import_id}.upload{suffix}"


def _import_delete(import_id: str) -> None:
    for p in _imports_dir().glob(f"{import_id}.*"):
        p.unlink(missing_ok=True)


def _upload_store(file: IO[bytes], target: Path) -> None:
    n = 0
    with target.open("xb") as out:
        while chunk := file.read(2**20):
            n += len(chunk)
            if n > MAX_UPLOAD_BYTES:
                raise FileRejected(f"the file is larger than {MAX_UPLOAD_BYTES // 2**20} MB")
            out.write(chunk)


def preview_json(plan: ImportPlan) -> dict[str, Any]:
    return {
        "features": plan.n_features,
        "polygons": len(plan.polygons),
        "blocks": plan.summary(),
        "rejected": [r.as_json() for r in plan.rejected],
    }


def samples_import_preview(
    *,
    user: AbstractBaseUser,
    campaign: Campaign,
    source: ImagerySource,
    file: IO[bytes],
    filename: str,
) -> dict[str, Any]:
    """Store the upload, check and plan it; the preview with its ``import_id``.

    Raises FileRejected (and keeps nothing) when the file itself cannot be imported.
    """
    now = datetime.now(UTC)
    _imports_expire(now)
    suffix, _driver = upload_driver(filename)
    import_id = uuid.uuid4()
    upload = _upload_path(import_id, suffix)
    try:
        _upload_store(file, upload)
        plan = import_plan(campaign=campaign, source=source, path=upload, suffix=suffix)
    except BaseException:
        upload.unlink(missing_ok=True)
        raise
    preview = {
        "import_id": str(import_id),
        "campaign": campaign.slug,
        "source": source.slug,
        "filename": PurePosixPath(filename.replace("\\", "/")).name[:200],
        "expires_at": (now + IMPORT_TTL).isoformat(),
        **preview_json(plan),
    }
    meta = {**preview, "user_id": user.pk, "suffix": suffix, "created_at": now.isoformat()}
    tmp = _imports_dir() / f"{import_id}.json.tmp"
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, _imports_dir() / f"{import_id}.json")
    return preview


def samples_import_preview_get(
    *, user: AbstractBaseUser, campaign: Campaign, import_id: uuid.UUID
) -> dict[str, Any]:
    """A stored preview as ``samples_import_preview`` returned it (for the lead's page, which
    shows it again after the upload); NotFound if it is missing, expired, someone else's or for
    another campaign."""
    try:
        data = json.loads((_imports_dir() / f"{import_id}.json").read_text())
    except (OSError, ValueError) as e:
        raise NotFound("no such import (it was committed, expired or never previewed)") from e
    if data.get("user_id") != user.pk or data.get("campaign") != campaign.slug:
        raise NotFound("no such import (it was committed, expired or never previewed)")
    if datetime.fromisoformat(data["expires_at"]) < datetime.now(UTC):
        raise NotFound("the import expired: upload the file again")
    return {k: v for k, v in data.items() if k not in ("user_id", "suffix", "created_at")}


def _import_claim(*, user: AbstractBaseUser, campaign: Campaign, import_id: uuid.UUID) -> Path:
    """Move the preview's meta file aside so that no second commit can run; NotFound if it is
    missing, expired, someone else's or for another campaign."""
    meta = _imports_dir() / f"{import_id}.json"
    claimed = _imports_dir() / f"{import_id}.claimed"
    try:
        data = json.loads(meta.read_text())
    except (OSError, ValueError) as e:
        raise NotFound("no such import (it was committed, expired or never previewed)") from e
    if data.get("user_id") != user.pk or data.get("campaign") != campaign.slug:
        raise NotFound("no such import (it was committed, expired or never previewed)")
    if datetime.fromisoformat(data["expires_at"]) < datetime.now(UTC):
        _import_delete(str(import_id))
        raise NotFound("the import expired: upload the file again")
    try:
        os.rename(meta, claimed)
    except FileNotFoundError as e:
        raise NotFound("the import is being committed already") from e
    return claimed


def samples_import_commit(
    *,
    user: AbstractBaseUser,
    campaign: Campaign,
    import_id: uuid.UUID,
    skip_rejected: bool = False,
) -> dict[str, Any]:
    """Write a previewed import, all or nothing; the files are removed once it is written."""
    claimed = _import_claim(user=user, campaign=campaign, import_id=import_id)
    meta = json.loads(claimed.read_text())
    try:
        source = source_get(slug=meta["source"])
        upload = _upload_path(import_id, meta["suffix"])
        plan = import_plan(campaign=campaign, source=source, path=upload, suffix=meta["suffix"])
        result = import_write(
            user=user,
            plan=plan,
            import_id=import_id,
            filename=meta["filename"],
            skip_rejected=skip_rejected,
        )
    except BaseException:
        # Refused or failed: the preview stays, so the lead can commit with skip_rejected.
        os.rename(claimed, _imports_dir() / f"{import_id}.json")
        raise
    _import_delete(str(import_id))
    return result


def samples_import_file(
    *,
    user: AbstractBaseUser | None,
    campaign: Campaign,
    source: ImagerySource,
    path: Path,
    skip_rejected: bool = False,
) -> dict[str, Any]:
    """Check, plan and write a file in one go (the management command)."""
    suffix, _driver = upload_driver(path.name)
    plan = import_plan(campaign=campaign, source=source, path=path, suffix=suffix)
    return import_write(
        user=user,
        plan=plan,
        import_id=uuid.uuid4(),
        filename=path.name,
        skip_rejected=skip_rejected,
    )


COMMAND_USERNAME = "manage.py samples_import"


def _audit(
    *,
    user: AbstractBaseUser | None,
    sample: Sample,
    action: str,
    object_type: str,
    object_id: int,
    import_id: uuid.UUID,
    before: Any,
    after: Any,
) -> None:
    """Like the sample services' audit entries (the import id is the op_id), but an import run
    from the command line without --user is logged too, under the command's name."""
    AuditEntry.objects.create(
        block_id=sample.block_id,
        source_id=sample.source_id,
        user=user,
        username=user.get_username() if user is not None else COMMAND_USERNAME,
        action=action,
        object_type=object_type,
        object_id=object_id,
        version=sample.version,
        op_id=import_id,
        before=before,
        after=after,
    )


def _geos(poly: Polygon) -> GEOSGeometry:
    return GEOSGeometry(memoryview(shapely.to_wkb(poly)), srid=4326)


def import_write(
    *,
    user: AbstractBaseUser | None,
    plan: ImportPlan,
    import_id: uuid.UUID,
    filename: str,
    skip_rejected: bool,
) -> dict[str, Any]:
    """One transaction: per (block, source) the sample is created or its version bumped (so an
    open browser page gets 412 and reloads), negative samples turn positive, the polygons are
    added with the importing user as creator, each with an audit entry whose op_id is the import
    id and whose ``after`` keeps the file's own attributes."""
    if plan.rejected and not skip_rejected:
        raise ImportRefused(
            f"{len(plan.rejected)} feature(s) were rejected; fix the file or import without "
            "them (skip_rejected)",
            [r.as_json() for r in plan.rejected],
        )
    if not plan.polygons:
        raise ImportRefused("nothing to import: no feature was accepted")
    groups: dict[tuple[int, str], list[PlannedPolygon]] = defaultdict(list)
    for p in plan.polygons:
        groups[(p.block_id, p.source)].append(p)
    sources = {s.slug: s for s in ImagerySource.objects.filter(slug__in={k[1] for k in groups})}
    created_samples = 0
    with transaction.atomic():
        for (block_id, slug), planned in groups.items():
            source = sources[slug]
            split = planned[0].split
            sample = (
                Sample.objects.select_for_update().filter(block_id=block_id, source=source).first()
            )
            if sample is None:
                sample = Sample.objects.create(
                    block_id=block_id,
                    source=source,
                    kind=SampleKind.POSITIVE,
                    split=split or SampleSplit.TRAIN,
                    created_by=user,
                    version=1,
                )
                created_samples += 1
            else:
                Sample.objects.filter(pk=sample.pk).update(version=F("version") + 1)
                sample.refresh_from_db()
                before = {"kind": sample.kind, "split": sample.split}
                changed = []
                if sample.kind != SampleKind.POSITIVE:
                    sample.kind = SampleKind.POSITIVE
                    changed.append("kind")
                if split and sample.split != split:
                    sample.split = split
                    changed.append("split")
                if changed:
                    sample.save(update_fields=changed)
                    if "kind" in changed:
                        _audit(
                            user=user,
                            sample=sample,
                            action=AuditAction.SAMPLE_MARK_POSITIVE,
                            object_type="sample",
                            object_id=sample.pk,
                            import_id=import_id,
                            before=before,
                            after={"kind": sample.kind, "split": sample.split},
                        )
            objs = [
                SamplePolygon(
                    sample=sample,
                    geometry=_geos(p.polygon),
                    subtype=p.subtype,
                    created_by=user,
                    model_version="",
                    round_number=None,
                )
                for p in planned
            ]
            if connection.features.can_return_rows_from_bulk_insert:
                rows = SamplePolygon.objects.bulk_create(objs)
            else:
                for o in objs:
                    o.save()
                rows = objs
            for row, p in zip(rows, planned, strict=True):
                after = polygon_feature(polygon=row, source=source)
                after["import"] = {
                    "id": str(import_id),
                    "file": filename,
                    "feature": p.feature,
                    "attributes": p.attributes,
                }
                _audit(
                    user=user,
                    sample=sample,
                    action=AuditAction.POLYGON_CREATE,
                    object_type="sample_polygon",
                    object_id=row.pk,
                    import_id=import_id,
                    before=None,
                    after=after,
                )
    return {
        "import_id": str(import_id),
        "polygons": len(plan.polygons),
        "samples_created": created_samples,
        "samples_updated": len(groups) - created_samples,
        "skipped": [r.as_json() for r in plan.rejected],
        "blocks": plan.summary(),
    }


# --- Export -----------------------------------------------------------------------------------


def samples_frame(*, campaign: Campaign) -> gpd.GeoDataFrame:
    """Every sample polygon of the campaign with its attributes (full column names)."""
    qs = (
        SamplePolygon.objects.filter(sample__block__campaign=campaign)
        .select_related(
            "sample__block__province", "sample__block__county", "sample__source", "created_by"
        )
        .order_by("sample__block__row", "sample__block__col", "sample__source__slug", "pk")
    )
    records = []
    geoms = []
    for p in qs.iterator(chunk_size=2000):
        s, b = p.sample, p.sample.block
        geoms.append(shapely.from_wkb(bytes(p.geometry.wkb)))
        records.append(
            {
                "block": b.code,
                "source": s.source.slug,
                "subtype": p.subtype,
                "kind": s.kind,
                "split": s.split,
                "created_by": p.created_by.get_username() if p.created_by else "",
                "created_at": p.created_at.astimezone(UTC).isoformat(),
                "model_version": p.model_version,
                "round_number": p.round_number,
                "province": b.province.name_zh if b.province else "",
                "county": b.county.name_zh if b.county else "",
            }
        )
    df = pd.DataFrame.from_records(records, columns=list(COLUMNS))
    df["round_number"] = df["round_number"].astype("Int64")
    return gpd.GeoDataFrame(df, geometry=geoms, crs="EPSG:4326")


def samples_export(*, campaign: Campaign, fmt: str, dest: Path) -> tuple[Path, int]:
    """Write the campaign's sample polygons to ``dest`` (a directory): a GeoPackage or a zipped
    Shapefile (UTF-8 with a .cpg, WGS 84 .prj); the file and the number of polygons."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {', '.join(EXPORT_FORMATS)}")
    df = samples_frame(campaign=campaign)
    name = f"{campaign.slug}-samples"
    if fmt == "gpkg":
        out = dest / f"{name}.gpkg"
        pyogrio.write_dataframe(df, out, layer=EXPORT_LAYER, driver=GPKG, geometry_type="Polygon")
        return out, len(df)
    shp_dir = dest / name
    shp_dir.mkdir()
    df = df.rename(columns=COLUMNS)
    pyogrio.write_dataframe(
        df,
        shp_dir / f"{name}.shp",
        driver=SHAPEFILE,
        encoding="UTF-8",
        geometry_type="Polygon",
        promote_to_multi=False,
    )
    cpg = shp_dir / f"{name}.cpg"
    if not cpg.exists():
        cpg.write_text("UTF-8")
    out = dest / f"{name}.zip"
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for part in sorted(shp_dir.iterdir()):
            zf.write(part, arcname=part.name)
    shutil.rmtree(shp_dir)
    return out, len(df)
