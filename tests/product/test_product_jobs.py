"""Product exports through a real Celery worker on a tiny synthetic campaign: four blocks in two
counties, one per integration decision, with real prediction GeoTIFFs; and a failed export."""

from __future__ import annotations

import json
import math
import tarfile
import time
import uuid
from io import StringIO
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
from django.conf import settings
from django.contrib.gis.geos import Polygon
from django.core.management import CommandError, call_command
from django.test import Client

from learning.core.features.block import FEATURE_NAMES
from learning.core.tabular.integration import INTEGRATION_FEATURE_NAMES, integration_train
from learning.models import (
    BlockPrediction,
    BlockScore,
    ModelKind,
    ModelVersion,
    ProvinceDecision,
    ProvinceStatus,
    Round,
    RoundState,
)
from learning.product.core.raster import cog_check
from learning.product.models import BlockIntegration, IntegrationSource, ProductExport
from mapping.geo.grid import BlockId, block_raster, grid_for
from mapping.geo.raster import write_single_band
from mapping.models import AdminLevel, AdminUnit, Block, Campaign, ImagerySource, JobStatus
from mapping.services.members import campaign_members_add
from tests.factories import multipolygon

ZOOM = 12
ROW, COL0 = 2494, 5872  # 34.70-34.75 N, 113.60-113.80 E (Zhengzhou)
DECISIONS = ("only_mapbox", "only_google", "merge_both", "neither")


def half_masks(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Mapbox: the left half is cropland; Google: the top half."""
    m = np.zeros((h, w), np.uint8)
    m[:, : w // 2] = 1
    g = np.zeros((h, w), np.uint8)
    g[: h // 2, :] = 1
    return m, g


_MODEL: list = []


def _integration_model():
    """A real XGBoost integration model on random rows (trained once per test process: the
    training with its permutation importance takes seconds)."""
    if not _MODEL:
        rng = np.random.default_rng(1)
        x = rng.normal(size=(48, len(INTEGRATION_FEATURE_NAMES)))
        y = [("neither", "mapbox", "google", "merge")[i % 4] for i in range(48)]
        _MODEL.append(integration_train(x, y, seed=0, params={"n_estimators": 10}))
    return _MODEL[0]


def build_campaign(*, converged: bool = True, lead=None) -> dict:
    """A campaign with a converged province, 4 blocks, predictions and scores on both sources,
    a current segmenter and a current integration model trained on random rows; ``lead``, if
    given, is a member."""
    slug = f"prod-{uuid.uuid4().hex[:8]}"
    camp = Campaign.objects.create(
        slug=slug, name="Product test", region="Henan", year=2020, zoom=ZOOM
    )
    if lead is not None:
        campaign_members_add(campaign=camp, users=[lead])
    prov = AdminUnit.objects.create(
        level=AdminLevel.PROVINCE,
        adcode=410000,
        name_zh="河南省",
        name_en="Henan",
        geometry=multipolygon((110, 31, 117, 37)),
    )
    city = AdminUnit.objects.create(
        level=AdminLevel.CITY,
        adcode=410100,
        name_zh="郑州市",
        name_en="Zhengzhou Shi",
        parent=prov,
        geometry=multipolygon((112.7, 34.2, 114.2, 34.95)),
    )
    c1 = AdminUnit.objects.create(
        level=AdminLevel.COUNTY,
        adcode=410102,
        name_zh="中原区",
        name_en="Zhongyuan Qu",
        parent=city,
        geometry=multipolygon((113.6, 34.7, 113.7, 34.75)),
    )
    c2 = AdminUnit.objects.create(
        level=AdminLevel.COUNTY,
        adcode=410103,
        name_zh="二七区",
        name_en="",
        parent=city,
        geometry=multipolygon((113.7, 34.7, 113.8, 34.75)),
    )
    grid = grid_for(0.05)
    blocks = []
    for i in range(4):
        b = grid.bounds(BlockId(ROW, COL0 + i))
        blocks.append(
            Block.objects.create(
                campaign=camp,
                row=ROW,
                col=COL0 + i,
                geometry=Polygon.from_bbox(b),
                province=prov,
                county=c1 if i < 2 else c2,
            )
        )
    sources = {
        s: ImagerySource.objects.get_or_create(
            slug=s, defaults={"name": s, "kind": "synthetic", "config": {"look": s, "seed": 1}}
        )[0]
        for s in ("mapbox", "google")
    }
    rnd = Round.objects.create(campaign=camp, number=1, state=RoundState.DONE)
    seg = ModelVersion.objects.create(
        campaign=camp,
        kind=ModelKind.SEGMENTER,
        name="seg-r1",
        bundle_path="models/none",
        round=rnd,
        is_current=True,
    )
    rng = np.random.default_rng(0)
    model = _integration_model()
    bundle = Path(settings.DATA_DIR) / "models" / slug / "int-r1"
    model.save(bundle)
    integ = ModelVersion.objects.create(
        campaign=camp,
        kind=ModelKind.INTEGRATION,
        name="int-r1",
        round=rnd,
        is_current=True,
        bundle_path=str(bundle.relative_to(settings.DATA_DIR)),
    )
    preds = {}
    for blk in blocks:
        bounds = blk.geometry.extent
        r = block_raster(bounds, ZOOM)
        m, g = half_masks(r.height, r.width)
        for s, mask in (("mapbox", m), ("google", g)):
            rel = Path("predictions") / slug / s / f"{blk.code}.tif"
            write_single_band(Path(settings.DATA_DIR) / rel, mask, r)
            p = BlockPrediction.objects.create(
                block=blk,
                source=sources[s],
                model_version=seg,
                round=rnd,
                mask_path=str(rel),
                cropland_fraction=float(mask.mean()),
            )
            feats = {n: float(v) for n, v in zip(FEATURE_NAMES, rng.normal(size=16), strict=True)}
            feats["coverage_type"] = "planting"
            BlockScore.objects.create(
                prediction=p,
                round=rnd,
                features=feats,
                verdict_probs={"tp": 0.7, "fp": 0.1, "noise": 0.1, "artifact": 0.1},
                p_incorrect=0.3,
            )
            preds[(blk.pk, s)] = p
    ProvinceStatus.objects.create(
        campaign=camp,
        province=prov,
        decision=ProvinceDecision.CONVERGED if converged else ProvinceDecision.CONTINUE,
    )
    return {
        "campaign": camp,
        "province": prov,
        "blocks": blocks,
        "counties": (c1, c2),
        "segmenter": seg,
        "integration": integ,
        "model": model,
        "predictions": preds,
        "round": rnd,
    }


def set_decisions(ctx: dict, user) -> None:
    from learning.product.services.integration import integration_override

    for blk, d in zip(ctx["blocks"], DECISIONS, strict=True):
        integration_override(user=user, block=blk, decision=d)


def _run_export(ctx, *args: str) -> dict:
    out = StringIO()
    call_command(
        "product_export",
        "--campaign",
        ctx["campaign"].slug,
        "--json",
        "--timeout",
        "120",
        *args,
        stdout=out,
    )
    return json.loads(out.getvalue())


@pytest.mark.django_db(transaction=True)
def test_province_and_national_export_through_worker(users, celery_worker_proc, tmp_path, login):
    ctx = build_campaign(lead=users["lead"])
    lead = login("lead")
    # The integration model decides every block in the worker, queued from the review page.
    r = lead.post(f"/api/campaigns/{ctx['campaign'].slug}/integration/run/", {}, "application/json")
    assert r.status_code == 202 and r.json() == {"queued": True, "blocks": 4}
    deadline = time.monotonic() + 60
    while BlockIntegration.objects.filter(source="model").count() < 4:
        assert time.monotonic() < deadline, "the worker did not run the integration"
        time.sleep(0.3)
    set_decisions(ctx, users["lead"])  # the lead's decisions, one of each, replace the model's
    res = _run_export(ctx, "--province", "410000", "--national")
    province, national = res["exports"]
    assert province["status"] == "done", province["failure_reason"]
    assert national["status"] == "done", national["failure_reason"]
    folder = Path(settings.DATA_DIR) / province["folder"]
    assert sorted(p.name for p in folder.iterdir()) == [
        "cf_410000_henan.tar.gz",
        "cropland_410000.gpkg",
        "cropland_410000.tif",
    ]
    assert not any(p.name.startswith(".") for p in folder.parent.iterdir())
    row = ProductExport.objects.get(pk=province["id"])
    assert row.done == row.total == 4 and row.heartbeat_at is not None
    assert set(row.files) == {p.name for p in folder.iterdir()}

    # The COG: valid, with overviews, and each block's pixels follow its decision.
    cog = folder / "cropland_410000.tif"
    rep = cog_check(cog)
    assert rep.is_cog, rep.problems
    r = block_raster(ctx["blocks"][0].geometry.extent, ZOOM)
    m, g = half_masks(r.height, r.width)
    with rasterio.open(cog) as ds:
        assert (ds.width, ds.height) == (4 * r.width, r.height)
        arr = ds.read(1)
    w = r.width
    assert (arr[:, 0:w] == m).all()  # only Mapbox
    assert (arr[:, w : 2 * w] == g).all()  # only Google
    assert (arr[:, 2 * w : 3 * w] == (m | g)).all()  # merge = union
    assert (arr[:, 3 * w :] == 0).all()  # neither = empty
    summary = province["summary"]
    assert summary["decisions"] == {d: 1 for d in DECISIONS}
    assert summary["coverage"] == {"converged_blocks": 4, "decided_blocks": 4,
                                   "stale_decisions": 0, "warnings": []}
    assert summary["cog"]["cropland_pixels"] == int(m.sum() + g.sum() + (m | g).sum())

    # The GeoPackage: one polygon per cropland region; areas in m² (equal-area) add up to the
    # cropland pixels' ground area (about w x h pixels of ~33 m at zoom 12).
    meta, _f, geoms, fields = pyogrio.raw.read(folder / "cropland_410000.gpkg")
    cols = dict(zip(meta["fields"], fields, strict=True))
    assert sorted(cols["decision"]) == ["merge_both", "only_google", "only_mapbox"]
    assert set(cols["model_ver"]) == {"seg-r1"} and set(cols["round"]) == {1}
    by_block = dict(zip(cols["block_id"], cols["area_m2"], strict=True))
    block_m2 = 0.05 * 111_320 * 0.05 * 111_320 * math.cos(math.radians(34.725))
    assert by_block[ctx["blocks"][0].code] == pytest.approx(block_m2 * (w // 2) / w, rel=0.01)
    assert by_block[ctx["blocks"][2].code] == pytest.approx(block_m2 * (m | g).mean(), rel=0.01)
    assert summary["cropland_area_m2"] == pytest.approx(float(sum(cols["area_m2"])))

    # The county shapefiles in the tar.gz, named cf_<city>_<county>, UTF-8 with Chinese values.
    tar_path = folder / "cf_410000_henan.tar.gz"
    with tarfile.open(tar_path) as tar:
        names = sorted(tar.getnames())
        assert names == sorted(
            f"cf_henan/cf_zhengzhoushi_{c}{ext}"
            for c in ("zhongyuanqu", "erqiqu")
            for ext in (".shp", ".shx", ".dbf", ".prj", ".cpg")
        )
        tar.extractall(tmp_path)  # members checked above: plain relative names
    shp = tmp_path / "cf_henan" / "cf_zhengzhoushi_erqiqu.shp"
    meta, _f, _g, fields = pyogrio.raw.read(shp)
    cols = dict(zip(meta["fields"], fields, strict=True))
    assert set(cols["county"]) == {"二七区"} and set(cols["city"]) == {"郑州市"}
    assert list(cols["decision"]) == ["merge_both"]  # the neither block has no polygon

    # The national area-fraction map: one pixel per block.
    nfolder = Path(settings.DATA_DIR) / national["folder"]
    with rasterio.open(nfolder / "area_fraction.tif") as ds:
        af = ds.read(1)
        assert ds.res == pytest.approx((0.05, 0.05)) and af.shape == (1, 4)
    assert af[0].tolist() == pytest.approx([m.mean(), g.mean(), (m | g).mean(), 0.0], abs=1e-6)
    assert (nfolder / "area_fraction.png").read_bytes()[:4] == b"\x89PNG"

    # The API lists the files with authenticated download links; the download streams them.
    detail = lead.get(f"/api/exports/{province['id']}/").json()
    assert detail["status"] == "done" and detail["done"] == detail["total"] == 4
    link = next(f for f in detail["files"] if f["name"] == "cropland_410000.gpkg")
    resp = lead.get(link["url"])
    assert resp.status_code == 200 and "attachment" in resp["Content-Disposition"]
    assert b"".join(resp.streaming_content) == (folder / "cropland_410000.gpkg").read_bytes()
    annotator = login("annotator")
    assert annotator.get(link["url"]).status_code == 200
    outsider = login("outsider")
    assert outsider.get(link["url"]).status_code == 404
    assert lead.get(link["url"].replace("gpkg", "shp")).status_code == 404
    assert Client().get(link["url"]).status_code == 302  # to the login page


@pytest.mark.django_db(transaction=True)
def test_export_failing_midway_leaves_no_files_and_keeps_the_finished_one(
    users, celery_worker_proc
):
    ctx = build_campaign()
    set_decisions(ctx, users["lead"])
    first = _run_export(ctx, "--province", "410000")["exports"][0]
    assert first["status"] == "done"
    done_folder = Path(settings.DATA_DIR) / first["folder"]
    before = {p.name: p.stat().st_size for p in done_folder.iterdir()}
    # The third block's Google mask disappears: the export fails after two blocks are written.
    lost = ctx["predictions"][(ctx["blocks"][2].pk, "google")]
    (Path(settings.DATA_DIR) / lost.mask_path).unlink()
    with pytest.raises(CommandError, match="an export failed"):
        _run_export(ctx, "--province", "410000")
    failed = ProductExport.objects.order_by("-pk").first()
    assert failed.status == JobStatus.FAILED and failed.folder == "" and failed.files == {}
    assert lost.mask_path.split("/")[-1] in failed.failure_reason
    root = done_folder.parent
    assert sorted(p.name for p in root.iterdir()) == [done_folder.name]  # no partial folder
    assert {p.name: p.stat().st_size for p in done_folder.iterdir()} == before


@pytest.mark.django_db
def test_export_start_refuses_without_decisions(users):
    from learning.product.services.exports import ProductExportError, product_export_start

    ctx = build_campaign(converged=False)
    with pytest.raises(ProductExportError, match="no integrated blocks in converged"):
        product_export_start(campaign=ctx["campaign"], kind="province", province=ctx["province"])
    with pytest.raises(CommandError, match="no integrated blocks"):
        _run_export(ctx, "--province", "410000")
    with pytest.raises(CommandError, match="no province with adcode"):
        _run_export(ctx, "--province", "999999")
    assert not BlockIntegration.objects.filter(source=IntegrationSource.MODEL).exists()


@pytest.mark.django_db
def test_reconciler_fails_a_quiet_running_export_and_removes_its_staging(users):
    from django.utils import timezone

    from learning.product.services.exports import export_root, product_exports_reconcile

    ctx = build_campaign()
    old = timezone.now() - timezone.timedelta(hours=1)
    quiet = ProductExport.objects.create(
        campaign=ctx["campaign"],
        kind="province",
        province=ctx["province"],
        status="running",
        heartbeat_at=old,
        total=4,
    )
    fresh = ProductExport.objects.create(
        campaign=ctx["campaign"],
        kind="province",
        province=ctx["province"],
        status="running",
        heartbeat_at=timezone.now(),
        total=4,
    )
    staging = export_root(quiet) / f".export-{quiet.pk}.partial"
    staging.mkdir(parents=True)
    (staging / "cropland_410000.tif").write_bytes(b"half")
    assert product_exports_reconcile() == {"failed": [quiet.pk], "requeued": []}
    quiet.refresh_from_db()
    fresh.refresh_from_db()
    assert quiet.status == "failed" and "stopped reporting" in quiet.failure_reason
    assert fresh.status == "running" and not staging.exists()
    assert product_exports_reconcile() == {"failed": [], "requeued": []}


@pytest.mark.django_db
def test_an_export_failed_by_the_reconciler_stays_failed_when_its_worker_finishes(
    users, monkeypatch
):
    """The worker looked dead (no heartbeat), the reconciler failed the job, then the worker
    finished after all: the job stays failed and no files appear where a finished one would."""
    from learning.product.services import exports as product
    from learning.product.services.exports import export_root, product_export_run

    ctx = build_campaign()
    export = ProductExport.objects.create(
        campaign=ctx["campaign"], kind="province", province=ctx["province"], total=4
    )

    def slow_files(exp, stage, track):
        (stage / "cropland_410000.tif").write_bytes(b"complete but too late")
        ProductExport.objects.filter(pk=exp.pk).update(
            status=JobStatus.FAILED, failure_reason="the worker stopped reporting"
        )
        return {"blocks": 4}

    monkeypatch.setattr(product, "_province_files", slow_files)
    out = product_export_run(export_id=export.pk)
    assert out.status == "failed" and out.failure_reason == "the worker stopped reporting"
    assert out.folder == "" and out.files in ({}, None)
    root = export_root(export)
    assert not (root / f"export-{export.pk}").exists()
    assert not (root / f".export-{export.pk}.partial").exists()


@pytest.mark.django_db
def test_reconciler_sends_a_lost_queued_export_again(django_capture_on_commit_callbacks):
    from django.utils import timezone

    from learning.product.services.exports import product_exports_reconcile

    ctx = build_campaign()
    lost = ProductExport.objects.create(
        campaign=ctx["campaign"], kind="province", province=ctx["province"]
    )
    ProductExport.objects.create(
        campaign=ctx["campaign"], kind="province", province=ctx["province"]
    )  # just queued: left alone
    ProductExport.objects.filter(pk=lost.pk).update(
        created_at=timezone.now() - timezone.timedelta(hours=1)
    )
    with django_capture_on_commit_callbacks() as sent:
        assert product_exports_reconcile() == {"failed": [], "requeued": [lost.pk]}
    assert len(sent) == 1


@pytest.mark.django_db
def test_export_coverage_warns_of_undecided_blocks_and_old_predictions(users):
    from learning.product.services.exports import export_coverage

    ctx = build_campaign()
    set_decisions(ctx, users["lead"])
    BlockIntegration.objects.filter(block=ctx["blocks"][3]).delete()
    newer = ModelVersion.objects.create(
        campaign=ctx["campaign"], kind=ModelKind.SEGMENTER, name="seg-r2", bundle_path="x"
    )
    ModelVersion.objects.filter(pk=ctx["segmenter"].pk).update(is_current=False)
    ModelVersion.objects.filter(pk=newer.pk).update(is_current=True)
    cov = export_coverage(campaign=ctx["campaign"], province=ctx["province"])
    assert (cov["converged_blocks"], cov["decided_blocks"], cov["stale_decisions"]) == (4, 3, 3)
    assert cov["warnings"][0].startswith("1 of 4 converged blocks have no integration decision")
    assert "older than the current segmenter seg-r2" in cov["warnings"][1]


@pytest.mark.django_db(transaction=True)
def test_progress_while_streaming_blocks_survives_another_writer(users):
    """An export streams its blocks through an open cursor and writes its progress between
    them. On SQLite (WAL) that connection's read snapshot cannot become a write once another
    connection has committed ("database is locked" at once, whatever the busy timeout): the
    demo's national export failed so while a province export wrote beside it. Progress is
    advisory: the export goes on, and the next progress write gets through."""
    import threading

    from django.db import connection

    from croplayer_site.jobs import JobProgress, job_kind

    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL has no read snapshot that a write must upgrade")
    ctx = build_campaign()
    export = ProductExport.objects.create(campaign=ctx["campaign"], kind="national_af",
                                          status=JobStatus.RUNNING)
    track = JobProgress(kind=job_kind("export"), row=export)
    streamed = Block.objects.filter(campaign=ctx["campaign"]).iterator(chunk_size=1)
    next(streamed)  # the cursor stays open: this connection now reads a snapshot

    def other_writer() -> None:
        Campaign.objects.filter(pk=ctx["campaign"].pk).update(name="renamed meanwhile")
        connection.close()

    t = threading.Thread(target=other_writer)
    t.start()
    t.join()
    track(stage="blocks", done=1, total=4, force=True)  # skipped, not raised
    rest = list(streamed)  # the stream goes on
    assert len(rest) == len(ctx["blocks"]) - 1
    track(stage="blocks", done=4, total=4, force=True)  # the cursor is done: written
    export.refresh_from_db()
    assert (export.stage, export.done, export.total) == ("blocks", 4, 4)
