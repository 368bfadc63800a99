"""The comparison report: pages, plots, CSV, API and who may see them; failures leave no files."""

from __future__ import annotations

import csv
import io
import json
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
import rasterio
from django.contrib.gis.geos import MultiPolygon, Polygon
from django.core.management import CommandError, call_command
from rasterio.transform import Affine, from_origin
from rasterio.warp import transform_bounds

from learning.product.models import ProductComparison
from learning.product.services.compare import comparison_create, comparison_execute
from mapping.geo.grid import block_raster
from mapping.models import AdminLevel, AdminUnit, Block, Campaign, JobStatus, OfficialStatistic
from mapping.services.members import campaign_members_add

pytestmark = pytest.mark.django_db
BOUNDS = [(119.0, 32.0, 119.05, 32.05), (119.05, 32.0, 119.1, 32.05)]


@pytest.fixture
def scenario(tmp_path: Path, settings, users) -> dict:
    """Two blocks; final map: west half of each block cropland; product (Web Mercator, 40 m):
    cropland west of 119.02 E and 119.07 E, i.e. less cropland than the final map."""
    settings.DATA_DIR = tmp_path / "data"
    c = Campaign.objects.create(slug="rep", name="Report", region="China", year=2020, zoom=12)
    campaign_members_add(campaign=c, users=[users["lead"]])
    unit = AdminUnit.objects.create(
        level=AdminLevel.PROVINCE, adcode=320000, name_zh="江苏", name_en="Jiangsu",
        geometry=MultiPolygon(Polygon.from_bbox((119.0, 32.0, 119.1, 32.05)), srid=4326))
    c.provinces.set([unit])
    finals = []
    for i, b in enumerate(BOUNDS):
        Block.objects.create(campaign=c, row=2440, col=5980 + i, province=unit,
                             geometry=Polygon.from_bbox(b))
        r = block_raster(b, 12)
        m = np.zeros((r.height, r.width), np.uint8)
        m[:, : r.width // 2] = 1
        path = tmp_path / f"final{i}.tif"
        with rasterio.open(path, "w", driver="GTiff", width=r.width, height=r.height, count=1,
                           dtype="uint8", crs="EPSG:4326", transform=Affine(*r.transform()),
                           nodata=255) as ds:
            ds.write(m, 1)
        finals.append(str(path))
    x0, y0, x1, y1 = transform_bounds("EPSG:4326", "EPSG:3857", 118.99, 31.99, 119.11, 32.06)
    w, h = int((x1 - x0) / 40) + 1, int((y1 - y0) / 40) + 1
    xs = x0 + (np.arange(w) + 0.5) * 40
    lon = xs / 6378137.0 * 180 / np.pi
    data = np.where(((lon < 119.02)) | ((lon >= 119.05) & (lon < 119.07)), 40, 10)
    data = np.repeat(data[None, :], h, axis=0).astype(np.uint8)
    prod = tmp_path / "merc.tif"
    with rasterio.open(prod, "w", driver="GTiff", width=w, height=h, count=1, dtype="uint8",
                       crs="EPSG:3857", transform=from_origin(x0, y1, 40, 40)) as ds:
        ds.write(data, 1)
    call_command("product_import", str(prod), "--campaign", "rep", "--name", "merc",
                 "--cropland-classes", "40", stdout=StringIO())
    OfficialStatistic.objects.create(campaign=c, province=unit, value="0.2000",
                                     status="UNVERIFIED", source="test")
    out = StringIO()
    call_command("compare_product", "--campaign", "rep", "--product", "merc", "--final-raster",
                 *finals, "--json", stdout=out)
    return {"campaign": c, "report": json.loads(out.getvalue()), "finals": finals}


def test_report_numbers_are_those_of_the_geometry(scenario: dict) -> None:
    r = scenario["report"]
    # Final map: west half of each block (119.000-119.025, 119.050-119.075); product: 119.00-
    # 119.02 and 119.05-119.07, so the product holds 0.020 / 0.025 = 80 % of the final map's
    # cropland and nothing else: IoU ≈ 0.8, AF deviation ≈ -0.2, ED equal (one edge each).
    assert r["blocks_compared"] == 2
    assert r["pixel"]["fp"] == 0
    assert r["pixel"]["iou"] == pytest.approx(0.8, abs=0.02)
    assert r["block"]["dev_af_median"] == pytest.approx(-0.2, abs=0.02)
    assert r["block"]["dev_ed_median"] == pytest.approx(0.0, abs=0.02)
    prov = r["provinces"][0]
    assert prov["official_ha"] == pytest.approx(2000.0) and prov["official_status"] == "UNVERIFIED"
    # Two half blocks of 0.025° x 0.05° near 32 N: about 2 x 2.36 km x 5.55 km = 2,620 ha.
    assert prov["final_ha"] == pytest.approx(2620, rel=0.02)
    assert prov["final_within"] is False and r["final_within_10pct"] == 0
    assert r["notes"] == ["no median slope: the campaign has no DEM over the compared blocks"]
    assert r["slope_af"]["n_no_slope"] == 2


def test_pages_plots_and_csv(scenario: dict, users, client) -> None:
    run_id = scenario["report"]["id"]
    base = f"/campaigns/rep/comparisons/{run_id}/"
    assert client.get(base).status_code == 302  # login first
    client.force_login(users["outsider"])
    assert client.get(base).status_code == 404
    assert client.get(base + "slope.png").status_code == 404
    client.force_login(users["annotator"])
    page = client.get(base)
    assert page.status_code == 200
    html = page.content.decode()
    assert f"{scenario['report']['pixel']['iou']:.4f}" in html
    prov = scenario["report"]["provinces"][0]
    assert "2 blocks have no median slope" in html
    assert 'class="status-unverified">UNVERIFIED' in html  # the statistic's status is shown
    assert f"{prov['final_vs_official'] * 100:+.1f} %" in html  # ≈ +31 %: 2,620 vs 2,000 ha
    for plot in ("slope", "blocks", "provinces"):
        assert f"{plot}.png" in html
        resp = client.get(base + f"{plot}.png")
        assert resp.status_code == 200 and resp["Content-Type"] == "image/png"
        assert b"".join(resp.streaming_content)[:4] == b"\x89PNG"
    assert client.get(base + "nope.png").status_code == 404
    resp = client.get(base + "blocks.csv")
    assert resp.status_code == 200 and "attachment" in resp["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(resp.streaming_content).decode())))
    assert [row["code"] for row in rows] == ["R2440C5980", "R2440C5981"]
    assert all(float(row["dev_af"]) == pytest.approx(-0.2, abs=0.03) for row in rows)
    index = client.get("/campaigns/rep/comparisons/").content.decode()
    assert f"#{run_id}" in index and "merc" in index
    api = client.get(f"/api/campaigns/rep/comparisons/{run_id}/").json()
    assert api["status"] == "done" and api["results"]["pixel"] == scenario["report"]["pixel"]
    assert len(client.get("/api/campaigns/rep/comparisons/").json()) == 1
    assert client.get("/api/campaigns/rep/comparisons/999/").status_code == 404


def test_failed_run_keeps_no_files_and_shows_reason(scenario: dict, users, client,
                                                    settings) -> None:
    c = scenario["campaign"]
    product = c.products.get()
    run = comparison_create(campaign=c, product=product,
                            final_map={"kind": "raster", "paths": scenario["finals"]})
    (Path(settings.DATA_DIR) / product.path).unlink()  # the product file vanished
    run = comparison_execute(comparison_id=run.pk)
    # The safe opener names the missing file (never its server path).
    assert run.status == JobStatus.FAILED and "no such file" in run.failure_reason
    assert str(settings.DATA_DIR) not in run.failure_reason
    assert run.folder == ""
    assert not (Path(settings.DATA_DIR) / "comparisons" / "rep" / str(run.pk)).exists()
    assert not list((Path(settings.DATA_DIR) / "comparisons" / "rep").glob(".*tmp"))
    # A second execution of a finished row does nothing (claimed by a conditional update).
    assert comparison_execute(comparison_id=run.pk).status == JobStatus.FAILED
    client.force_login(users["lead"])
    html = client.get(f"/campaigns/rep/comparisons/{run.pk}/").content.decode()
    assert "no such file" in html
    assert client.get(f"/campaigns/rep/comparisons/{run.pk}/blocks.csv").status_code == 404
    assert ProductComparison.objects.filter(status=JobStatus.DONE).count() == 1


def test_a_comparison_whose_worker_died_is_failed_and_a_lost_one_sent_again(
    scenario: dict, settings, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    """Beat's ``product.jobs_reconcile``: a running comparison without a heartbeat for
    ``STALE_AFTER_S`` is failed with the reason (it never ends otherwise), a queued one that
    old is sent again; a late finish of the failed one writes nothing, and its folder goes."""
    import datetime as dt

    from croplayer_site.celery import app
    from learning.product import dispatch
    from learning.product.services import compare as compare_service
    from learning.product.tasks import product_jobs_reconcile

    c = scenario["campaign"]
    product = c.products.get()
    spec = {"kind": "raster", "paths": scenario["finals"]}
    quiet = comparison_create(campaign=c, product=product, final_map=spec)
    lost = comparison_create(campaign=c, product=product, final_map=spec)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=compare_service.STALE_AFTER_S + 60)
    ProductComparison.objects.filter(pk=quiet.pk).update(
        status=JobStatus.RUNNING, started_at=old, heartbeat_at=old)
    ProductComparison.objects.filter(pk=lost.pk).update(created_at=old)
    sent = []
    monkeypatch.setattr(app, "send_task", lambda name, args=(), **kw: sent.append((name, args)))
    with django_capture_on_commit_callbacks(execute=True):
        out = product_jobs_reconcile()
    assert out["compare"] == {"failed": [quiet.pk], "requeued": [lost.pk]}
    assert sent == [(dispatch.COMPARISON_EXECUTE, [lost.pk])]
    quiet.refresh_from_db()
    assert quiet.status == JobStatus.FAILED and "start the comparison again" in quiet.failure_reason
    # The worker that was thought dead comes back and finishes: the row stays failed and no
    # folder is left where a finished comparison's would be.
    beat = compare_service.Heartbeat(kind=compare_service.job_kind("compare"), pk=quiet.pk)
    compare_service._execute(quiet, None, beat)
    quiet.refresh_from_db()
    assert quiet.status == JobStatus.FAILED and quiet.folder == ""
    assert not (Path(settings.DATA_DIR) / "comparisons" / "rep" / str(quiet.pk)).exists()
    # The lost one runs when its message arrives.
    assert comparison_execute(comparison_id=lost.pk).status == JobStatus.DONE


def test_compare_command_errors(scenario: dict) -> None:
    with pytest.raises(CommandError, match="MODEL_VERSION_ID:SOURCE"):
        call_command("compare_product", "--campaign", "rep", "--product", "merc",
                     "--final-predictions", "mapbox")
    with pytest.raises(CommandError, match="covers no block"):
        call_command("compare_product", "--campaign", "rep", "--product", "merc",
                     "--final-raster", *scenario["finals"], "--provinces", "110000")
    with pytest.raises(CommandError, match="no campaign"):
        call_command("compare_product", "--campaign", "x", "--product", "merc",
                     "--final-raster", *scenario["finals"])


def test_progress_is_broadcast_to_the_job_group(scenario: dict) -> None:
    """Like the fetch runs: ``job.progress`` events on the run's group (ws/jobs/compare-N/)."""
    import asyncio

    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    c = scenario["campaign"]
    run = comparison_create(campaign=c, product=c.products.get(),
                            final_map={"kind": "raster", "paths": scenario["finals"]})
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(run.group, channel)
    comparison_execute(comparison_id=run.pk)

    async def drain() -> list[dict]:
        events = []
        while True:
            try:
                events.append(await asyncio.wait_for(layer.receive(channel), timeout=1.0))
            except TimeoutError:
                return events

    events = async_to_sync(drain)()
    assert events and all(e["job"] == f"compare-{run.pk}" for e in events)
    assert events[-1]["status"] == "done" and events[-1]["done"] == events[-1]["total"] == 2


def test_lead_starts_a_comparison_with_a_models_predictions(scenario: dict, users, client,
                                                             settings,
                                                             django_capture_on_commit_callbacks):
    """From the index page's form (and the API): the worker's task is queued after commit;
    the run compares the product with one segmenter's masks on one source."""
    import shutil

    from learning.models import BlockPrediction, ModelKind, ModelVersion
    from mapping.models import ImagerySource

    c = scenario["campaign"]
    src = ImagerySource.objects.create(slug="mapbox", name="Mapbox", kind="synthetic",
                                       config={"look": "mapbox"})
    seg = ModelVersion.objects.create(campaign=c, kind=ModelKind.SEGMENTER, name="seg-r1",
                                      bundle_path="x", is_current=True)
    for blk, final in zip(c.blocks.order_by("col"), scenario["finals"], strict=True):
        rel = Path("predictions") / f"{blk.code}.tif"
        (Path(settings.DATA_DIR) / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(final, Path(settings.DATA_DIR) / rel)
        BlockPrediction.objects.create(block=blk, source=src, model_version=seg,
                                       mask_path=str(rel))
    product = c.products.get()
    client.force_login(users["annotator"])
    api = "/api/campaigns/rep/comparisons/"
    assert client.post(api, {"product": product.pk}, "application/json").status_code == 403
    client.force_login(users["lead"])
    index = client.get("/campaigns/rep/comparisons/").content.decode()
    assert 'id="comparison-start"' in index and "seg-r1" in index
    bad = client.post(api, {"product": product.pk, "final": "predictions"}, "application/json")
    assert bad.status_code == 400 and "needs a model version and a source" in bad.json()["detail"]
    assert client.post(api, {"product": 999}, "application/json").status_code == 400
    before = ProductComparison.objects.count()
    with django_capture_on_commit_callbacks() as queued:
        r = client.post("/campaigns/rep/comparisons/start/",
                        {"product": product.pk, "final": "predictions",
                         "model_version": seg.pk, "source": "mapbox"}, follow=True)
    assert r.status_code == 200 and "queued" in r.content.decode()
    assert len(queued) == 1 and ProductComparison.objects.count() == before + 1
    run = ProductComparison.objects.latest("pk")
    assert run.final_map == {"kind": "predictions", "model_version": seg.pk, "source": "mapbox"}
    run = comparison_execute(comparison_id=run.pk)  # what the worker's task does
    assert run.status == JobStatus.DONE, run.failure_reason
    assert run.results["pixel"] == scenario["report"]["pixel"]  # the same masks as the files
    html = client.post("/campaigns/rep/comparisons/start/", {"product": "x"},
                       follow=True).content.decode()
    assert "product" in html and "valid integer" in html
