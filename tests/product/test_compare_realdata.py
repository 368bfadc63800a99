"""Comparison against a product made from REAL labels (LoveDA), checked against hand numbers.

Four 0.05° blocks near Nanjing (two provinces, zoom 12: about 146 x 172 px of ≈32 m) get a
final map from four LoveDA cropland masks. The product is the LoveDA multi-class labels of
the same tiles, reprojected by GDAL to UTM 50N at 25 m, with two known perturbations (a
rectangle turned to agriculture, class 7, and one turned to forest, class 6); its cropland
class is 7 and 0 is no data. The test then recomputes every number with plain numpy and
loops: pyproj for the pixel centres, floor() for nearest neighbour, a Python loop for edges.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
import rasterio
from django.contrib.gis.geos import MultiPolygon, Polygon
from django.core.management import CommandError, call_command
from PIL import Image
from pyproj import Geod, Transformer
from rasterio.transform import Affine, from_origin
from rasterio.warp import Resampling, reproject, transform_bounds

from learning.core.features.terrain import terrain_features
from learning.product.models import CroplandProduct, ProductComparison
from mapping.geo.dem import read_dem_window
from mapping.geo.grid import BlockId, block_raster, grid_for
from mapping.models import AdminLevel, AdminUnit, Block, Campaign, CampaignDem, OfficialStatistic

pytestmark = pytest.mark.django_db

ROW0, COL0 = 2440, 5980  # the block at (119.00 E, 32.00 N)
TILES = {(1, 0): 3, (1, 1): 18, (0, 0): 9, (0, 1): 17}  # (row offset, col offset) -> LoveDA id
ZOOM = 12
UTM = "EPSG:32650"
GEOD = Geod(ellps="WGS84")


def _png(folder: Path, tile: int) -> np.ndarray:
    return np.array(Image.open(folder / f"loveda_train_rural_{tile:04d}.png"))


def _mosaic(folder: Path) -> np.ndarray:
    """The 2048² label mosaic over the 2 x 2 blocks (north-up: row offset 1 is the top)."""
    out = np.zeros((2048, 2048), np.uint8)
    for (dr, dc), tile in TILES.items():
        r = 0 if dr == 1 else 1024
        out[r : r + 1024, dc * 1024 : dc * 1024 + 1024] = _png(folder, tile)
    return out


def _bounds(dr: int, dc: int) -> tuple[float, float, float, float]:
    return grid_for(0.05).bounds(BlockId(ROW0 + dr, COL0 + dc))


class World:
    """Files and rows of the scenario, plus what the test computed by hand."""

    def __init__(self, shared: Path, tmp: Path) -> None:
        self.shared, self.tmp = shared, tmp
        west, south, _, _ = _bounds(0, 0)
        _, _, east, north = _bounds(1, 1)
        self.box = (west, south, east, north)
        self.labels = _mosaic(shared / "real" / "loveda" / "masks")
        self.cropland = _mosaic(shared / "real" / "loveda" / "masks_cropland")
        self.final_paths: dict[tuple[int, int], Path] = {}
        self.final: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._write_final()
        self._write_product()

    # -- final map: LoveDA cropland masks, nearest onto each block's zoom-12 grid -----------
    def _write_final(self) -> None:
        west, south, east, north = self.box
        for dr in (0, 1):
            for dc in (0, 1):
                b = _bounds(dr, dc)
                r = block_raster(b, ZOOM)
                pdx, pdy = r.pixel_deg
                lon = r.west + (np.arange(r.width) + 0.5) * pdx
                lat = r.north - (np.arange(r.height) + 0.5) * pdy
                ci = np.floor((lon - west) / (east - west) * 2048).astype(int)
                ri = np.floor((north - lat) / (north - south) * 2048).astype(int)
                m = self.cropland[np.ix_(ri, ci)]
                self.final[(dr, dc)] = (m == 1, m != 255)
                path = self.tmp / f"final_{dr}{dc}.tif"
                with rasterio.open(path, "w", driver="GTiff", width=r.width, height=r.height,
                                   count=1, dtype="uint8", crs="EPSG:4326",
                                   transform=Affine(*r.transform()), nodata=255) as ds:
                    ds.write(m, 1)
                self.final_paths[(dr, dc)] = path

    # -- product: the multi-class labels, reprojected to UTM 25 m, perturbed -----------------
    def _write_product(self) -> None:
        west, south, east, north = self.box
        x0, y0, x1, y1 = transform_bounds("EPSG:4326", UTM, *self.box)
        res = 25.0
        # An origin off the 25 m lattice so that few block pixel centres tie on an edge.
        ox, oy = math.floor(x0 / res) * res - 7.3, math.ceil(y1 / res) * res + 4.1
        w, h = math.ceil((x1 - ox) / res) + 1, math.ceil((oy - y0) / res) + 1
        product = np.zeros((h, w), np.uint8)
        reproject(self.labels, product,
                  src_transform=from_origin(west, north, (east - west) / 2048,
                                            (north - south) / 2048),
                  src_crs="EPSG:4326", dst_transform=from_origin(ox, oy, res, res),
                  dst_crs=UTM, resampling=Resampling.nearest, src_nodata=0, dst_nodata=0)
        self.added = (slice(100, 160), slice(50, 200))
        self.removed = (slice(300, 340), slice(200, 260))
        product[self.added] = 7
        product[self.removed] = 6
        self.product, self.origin, self.res = product, (ox, oy), res
        self.product_path = self.tmp / "loveda_utm25.tif"
        with rasterio.open(self.product_path, "w", driver="GTiff", width=w, height=h, count=1,
                           dtype="uint8", crs=UTM, transform=from_origin(ox, oy, res, res),
                           nodata=0) as ds:
            ds.write(product, 1)

    # -- the hand computation ---------------------------------------------------------------
    def hand_block(self, dr: int, dc: int) -> dict[str, float]:
        b = _bounds(dr, dc)
        r = block_raster(b, ZOOM)
        pdx, pdy = r.pixel_deg
        lon = r.west + (np.arange(r.width) + 0.5) * pdx
        lat = r.north - (np.arange(r.height) + 0.5) * pdy
        xx, yy = Transformer.from_crs("EPSG:4326", UTM, always_xy=True).transform(
            *np.meshgrid(lon, lat))
        fc = (xx - self.origin[0]) / self.res
        fr = (self.origin[1] - yy) / self.res
        ci, ri = np.floor(fc).astype(int), np.floor(fr).astype(int)
        h, w = self.product.shape
        inside = (ri >= 0) & (ri < h) & (ci >= 0) & (ci < w)
        cls = np.zeros(ri.shape, np.uint8)
        cls[inside] = self.product[ri[inside], ci[inside]]
        p_valid = cls != 0
        p_crop = cls == 7
        f_crop, f_valid = self.final[(dr, dc)]
        common = f_valid & p_valid
        ties = int(np.count_nonzero(
            (np.abs(fc - np.rint(fc)) < 1e-4) | (np.abs(fr - np.rint(fr)) < 1e-4)))
        lat_c, lon_c = (b[1] + b[3]) / 2, (b[0] + b[2]) / 2
        dx = GEOD.inv(b[0], lat_c, b[2], lat_c)[2] / r.width
        dy = GEOD.inv(lon_c, b[1], lon_c, b[3])[2] / r.height

        tp = fp = fn = tn = 0
        edges_f = edges_p = 0.0
        n = int(common.sum())
        for i in range(r.height):
            for j in range(r.width):
                if not common[i, j]:
                    continue
                pc, fcrop = bool(p_crop[i, j]), bool(f_crop[i, j])
                tp += pc and fcrop
                fp += pc and not fcrop
                fn += fcrop and not pc
                tn += not pc and not fcrop
                if j + 1 < r.width and common[i, j + 1]:  # shared edge is dy long
                    edges_f += dy * (f_crop[i, j] != f_crop[i, j + 1])
                    edges_p += dy * (p_crop[i, j] != p_crop[i, j + 1])
                if i + 1 < r.height and common[i + 1, j]:  # shared edge is dx long
                    edges_f += dx * (f_crop[i, j] != f_crop[i + 1, j])
                    edges_p += dx * (p_crop[i, j] != p_crop[i + 1, j])
        area_ha = n * dx * dy / 10_000
        af_f = (f_crop & common).sum() / n
        af_p = (p_crop & common).sum() / n
        ed_f, ed_p = edges_f / area_ha, edges_p / area_ha
        return {
            "tp": tp, "fp": fp, "fn": fn, "tn": tn, "ties": ties, "n": n,
            "af_final": af_f, "af_product": af_p, "ed_final": ed_f, "ed_product": ed_p,
            "dev_af": (af_p - af_f) / af_f, "dev_ed": (ed_p - ed_f) / ed_f,
            "final_ha": (f_crop & f_valid).sum() * dx * dy / 10_000,
            "product_ha": (p_crop & p_valid).sum() * dx * dy / 10_000,
        }


@pytest.fixture
def world(shared_data: Path, tmp_path: Path, settings) -> World:
    settings.DATA_DIR = tmp_path / "data"
    return World(shared_data, tmp_path)


@pytest.fixture
def campaign(world: World) -> Campaign:
    c = Campaign.objects.create(slug="cmp", name="Comparison", region="China", year=2020,
                                zoom=ZOOM)
    west, south, east, north = world.box
    mid = (west + east) / 2
    provinces = {}
    for adcode, name, x0, x1 in ((320000, "Jiangsu", west, mid), (340000, "Anhui", mid, east)):
        geom = MultiPolygon(Polygon.from_bbox((x0, south, x1, north)), srid=4326)
        provinces[adcode] = AdminUnit.objects.create(
            level=AdminLevel.PROVINCE, adcode=adcode, name_zh=name, name_en=name, geometry=geom)
    c.provinces.set(provinces.values())
    for dr in (0, 1):
        for dc in (0, 1):
            Block.objects.create(
                campaign=c, row=ROW0 + dr, col=COL0 + dc,
                geometry=Polygon.from_bbox(_bounds(dr, dc)),
                province=provinces[320000 if dc == 0 else 340000])
    CampaignDem.objects.create(campaign=c, path=str(world.shared / "dem" / "china_dem_0.2deg.tif"))
    return c


def _import(world: World, campaign: Campaign) -> CroplandProduct:
    out = StringIO()
    call_command("product_import", str(world.product_path), "--campaign", campaign.slug,
                 "--name", "loveda-utm", "--cropland-classes", "7", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["crs"] == UTM and data["resolution"] == [25.0, 25.0]
    return CroplandProduct.objects.get(pk=data["id"])


def _run(campaign: Campaign, *args: str) -> dict:
    out = StringIO()
    call_command("compare_product", "--campaign", campaign.slug, "--product", "loveda-utm",
                 *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def test_compare_product_matches_hand_computation(world: World, campaign: Campaign,
                                                  shared_data: Path, settings) -> None:
    _import(world, campaign)
    hand = {(dr, dc): world.hand_block(dr, dc) for dr in (0, 1) for dc in (0, 1)}
    # Official statistics: Jiangsu's final map 8 % under the figure, Anhui's 15 % under.
    ha = {ad: sum(hand[(dr, dc)]["final_ha"] for dr in (0, 1)) for ad, dc in
          ((320000, 0), (340000, 1))}
    official = {320000: Decimal(ha[320000] * 1.08 / 1e4).quantize(Decimal("0.0001")),
                340000: Decimal(ha[340000] / 0.85 / 1e4).quantize(Decimal("0.0001"))}
    for adcode, value in official.items():
        OfficialStatistic.objects.create(
            campaign=campaign, province=AdminUnit.objects.get(adcode=adcode), value=value,
            status="VERIFIED", source="test")

    finals = [str(world.final_paths[k]) for k in sorted(world.final_paths)]
    report = _run(campaign, "--final-raster", *finals)

    ties = sum(h["ties"] for h in hand.values())
    assert ties < 150  # of ≈100,000 pixel centres, a few sit on a product pixel edge
    assert report["blocks_compared"] == 4 and report["blocks_not_covered"] == 0
    tot = {k: sum(h[k] for h in hand.values()) for k in ("tp", "fp", "fn", "tn")}
    for k in ("tp", "fp", "fn", "tn"):
        assert abs(report["pixel"][k] - tot[k]) <= ties, k
    iou = tot["tp"] / (tot["tp"] + tot["fp"] + tot["fn"])
    assert report["pixel"]["iou"] == pytest.approx(iou, abs=2e-4)
    assert 0.5 < iou < 0.99  # real labels after reprojection and perturbation: close, not equal

    rows = {}
    for line in (Path(settings.DATA_DIR) / "comparisons" / "cmp" / str(report["id"])
                 / "blocks.csv").read_text().splitlines()[1:]:
        cells = line.split(",")
        rows[cells[1]] = cells
    cols = (Path(settings.DATA_DIR) / "comparisons" / "cmp" / str(report["id"])
            / "blocks.csv").read_text().splitlines()[0].split(",")
    assert len(rows) == 4
    for (dr, dc), h in hand.items():
        row = dict(zip(cols, rows[f"R{ROW0 + dr:04d}C{COL0 + dc:04d}"], strict=True))
        rel = max(h["ties"], 1) / h["n"] * 4  # a tie flips one pixel and at most 4 edges
        for k in ("af_final", "af_product", "ed_final", "ed_product", "final_ha", "product_ha"):
            assert float(row[k]) == pytest.approx(h[k], rel=rel, abs=1e-9), (dr, dc, k)
        for k in ("dev_af", "dev_ed"):
            assert float(row[k]) == pytest.approx(h[k], abs=5 * rel), (dr, dc, k)
        assert int(row["n_common"]) == h["n"]
    # Tile 18 (north-east block) is a quarter no-data: fewer common pixels than the others.
    assert hand[(1, 1)]["n"] < 0.8 * hand[(0, 0)]["n"]

    # Block level: deviation against slope from the real DEM.
    dem = shared_data / "dem" / "china_dem_0.2deg.tif"
    slopes = {k: terrain_features(read_dem_window(dem, _bounds(*k)), nan_policy="omit").slope
              for k in hand}
    edges = report["slope_af"]["slope_edges"]
    expected_n = [0] * (len(edges) - 1)
    for s in slopes.values():
        i = min(int(np.searchsorted(edges, s, side="right")) - 1, len(edges) - 2)
        expected_n[i] += 1
    assert [b["n"] for b in report["slope_af"]["bins"]] == expected_n
    devs = sorted(h["dev_af"] for h in hand.values())
    busiest = max(report["slope_af"]["bins"], key=lambda b: b["n"])
    if busiest["n"] == 4:
        assert busiest["median"] == pytest.approx((devs[1] + devs[2]) / 2, abs=1e-3)
    assert report["block"]["dev_ed_median"] == pytest.approx(
        float(np.median([h["dev_ed"] for h in hand.values()])), abs=1e-3)

    # Province level: areas against the official statistics, within ±10 %.
    prov = {p["adcode"]: p for p in report["provinces"]}
    for adcode, dc in ((320000, 0), (340000, 1)):
        f = sum(hand[(dr, dc)]["final_ha"] for dr in (0, 1))
        p = sum(hand[(dr, dc)]["product_ha"] for dr in (0, 1))
        off = float(official[adcode]) * 1e4
        assert prov[adcode]["complete"] and prov[adcode]["official_ha"] == pytest.approx(off)
        assert prov[adcode]["final_ha"] == pytest.approx(f, rel=1e-3)
        assert prov[adcode]["product_ha"] == pytest.approx(p, rel=1e-3)
        assert prov[adcode]["final_vs_official"] == pytest.approx((f - off) / off, abs=1e-3)
        assert prov[adcode]["product_vs_official"] == pytest.approx((p - off) / off, abs=1e-3)
        assert prov[adcode]["official_status"] == "VERIFIED"
    assert prov[320000]["final_within"] is True and prov[340000]["final_within"] is False
    assert report["provinces_judged"] == 2 and report["final_within_10pct"] == 1
    expected_product = sum(
        abs((sum(hand[(dr, dc)]["product_ha"] for dr in (0, 1)) - float(official[a]) * 1e4)
            / (float(official[a]) * 1e4)) <= 0.10
        for a, dc in ((320000, 0), (340000, 1)))
    assert report["product_within_10pct"] == expected_product

    # The run is stored with its files; the plots are real PNGs.
    run = ProductComparison.objects.get(pk=report["id"])
    assert run.status == "done" and run.done == run.total == 4
    folder = Path(settings.DATA_DIR) / run.folder
    for name in ("slope.png", "blocks.png", "provinces.png"):
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((folder / "report.json").read_text())["pixel"] == report["pixel"]


def test_per_block_masks_give_the_same_numbers_as_rasters(world: World, campaign: Campaign
                                                          ) -> None:
    """The two final-map adapters (rasters, per-block masks) agree on the same masks."""
    from learning.models import BlockPrediction, ModelKind, ModelVersion
    from mapping.models import ImagerySource

    _import(world, campaign)
    finals = [str(world.final_paths[k]) for k in sorted(world.final_paths)]
    by_raster = _run(campaign, "--final-raster", *finals)
    mv = ModelVersion.objects.create(campaign=campaign, kind=ModelKind.SEGMENTER, name="seg-1",
                                     bundle_path="x")
    src = ImagerySource.objects.create(slug="mapbox", name="Mapbox", kind="synthetic")
    for (dr, dc), path in world.final_paths.items():
        BlockPrediction.objects.create(
            block=Block.objects.get(campaign=campaign, row=ROW0 + dr, col=COL0 + dc),
            source=src, model_version=mv, mask_path=str(path))
    by_masks = _run(campaign, "--final-predictions", f"{mv.pk}:mapbox", "--provinces", "340000")
    assert by_masks["blocks_compared"] == 2  # only Anhui's two blocks
    prov_r = {p["adcode"]: p for p in by_raster["provinces"]}
    prov_m = {p["adcode"]: p for p in by_masks["provinces"]}
    assert set(prov_m) == {340000}
    for k in ("final_ha", "product_ha", "iou", "blocks_compared"):
        assert prov_m[340000][k] == prov_r[340000][k], k

    # The campaign's own final map: integration decisions of a converged province.
    from learning.models import ProvinceDecision, ProvinceStatus
    from learning.product.models import BlockIntegration

    anhui = AdminUnit.objects.get(adcode=340000)
    ProvinceStatus.objects.create(campaign=campaign, province=anhui,
                                  decision=ProvinceDecision.CONVERGED)
    for pred in BlockPrediction.objects.filter(block__province=anhui):
        BlockIntegration.objects.create(block=pred.block, decision="only_mapbox",
                                        mapbox_prediction=pred)
    by_decision = _run(campaign)  # no --final-…: the campaign's final map
    assert by_decision["final_map"] == {"kind": "integration"}
    assert [p["adcode"] for p in by_decision["provinces"]] == [340000]
    for k in ("final_ha", "product_ha", "iou", "blocks_compared"):
        assert by_decision["provinces"][0][k] == prov_r[340000][k], k

    with pytest.raises(CommandError, match="no block masks of model version"):
        _run(campaign, "--final-predictions", f"{mv.pk}:google")
    with pytest.raises(CommandError, match="has no product"):
        call_command("compare_product", "--campaign", "cmp", "--product", "nope",
                     "--final-raster", finals[0])
    with pytest.raises(CommandError, match="not found"):
        _run(campaign, "--final-raster", str(world.tmp / "missing.tif"))
