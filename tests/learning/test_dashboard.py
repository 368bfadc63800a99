"""The stopping dashboard: its numbers, CSV/JSON export, province map data and who may see it.

Rounds and their per-province results are real rows built here (the reasons made by the real
stopping rules), so every asserted number can be checked by hand.
"""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.gis.geos import MultiPolygon, Polygon
from django.urls import reverse
from django.utils import timezone

from learning.core.stopping import ProvinceMeasurements, StoppingRules, province_stop_check
from learning.dashboard import (
    CSV_COLUMNS,
    _criteria,
    decision_log,
    labelled_share,
    province_history,
    province_rows,
)
from learning.models import ProvinceRoundResult, ProvinceStatus, Round, RoundState
from mapping.models import AdminLevel, AdminUnit, Block, Campaign, ImagerySource, OfficialStatistic
from mapping.services.members import campaign_members_add

RULES = StoppingRules()


def _province(adcode: int, zh: str, en: str, x: float) -> AdminUnit:
    # A wiggly outline with many vertices, so that simplification has something to remove.
    ring = [(x + i * 0.01, 30 + (0.001 if i % 2 else 0)) for i in range(101)]
    ring += [(x + 1, 31), (x, 31), ring[0]]
    return AdminUnit.objects.create(
        level=AdminLevel.PROVINCE, adcode=adcode, name_zh=zh, name_en=en,
        geometry=MultiPolygon(Polygon(ring), srid=4326),
    )


def _result(rnd, province, *, iou, iou_n, corr, corr_n, mapbox, google, official, status,
            used, shape="decision"):
    m = ProvinceMeasurements(
        province=str(province.adcode), iou=iou, iou_samples=iou_n, correctness=corr,
        correctness_samples=corr_n, area_mapbox_ha=mapbox, area_google_ha=google,
        official_area_ha=official, official_status=status, supplementary_rounds=used,
    )
    d = province_stop_check(m, RULES)
    decision = {"exhausted": "excluded"}.get(d.decision.value, d.decision.value)
    if shape == "decision":  # StopDecision.to_dict()
        reasons = d.to_dict()
    else:  # keyed by criterion
        reasons = {c.name: {"outcome": c.outcome.value, "reason": c.reason, "value": c.value,
                            "threshold": c.threshold} for c in d.criteria}
        reasons["reason"] = d.reason
    return ProvinceRoundResult.objects.create(
        round=rnd, province=province, iou=iou, iou_samples=iou_n, correctness=corr,
        correctness_samples=corr_n, area_mapbox_ha=mapbox, area_google_ha=google,
        official_ha=official, official_status=status or "", supplementary_rounds=used,
        decision=decision, reasons=reasons, thresholds=RULES.model_dump(mode="json"),
    )


@pytest.fixture
def camp(db, users):
    hubei = _province(420000, "湖北省", "Hubei", 112.0)
    hunan = _province(430000, "湖南省", "Hunan", 114.0)
    jiangxi = _province(360000, "江西省", "Jiangxi", 116.0)
    c = Campaign.objects.create(slug="dash", name="Dash", region="test", year=2020, zoom=12)
    campaign_members_add(campaign=c, users=[users["lead"]])
    c.provinces.set([hubei, hunan, jiangxi])
    for i in range(8):
        Block.objects.create(campaign=c, row=i, col=0, province=hubei,
                             geometry=Polygon.from_bbox((112 + i * 0.05, 30.2, 112.05 + i * 0.05,
                                                         30.25)))
    OfficialStatistic.objects.create(campaign=c, province=hubei, value=1000, unit="ha",
                                     status="VERIFIED", source="test")
    OfficialStatistic.objects.create(campaign=c, province=hunan, value=2000, unit="ha",
                                     status="UNVERIFIED", source="test")
    now = timezone.now()
    r1 = Round.objects.create(campaign=c, number=1, state=RoundState.DONE, finished_at=now)
    r2 = Round.objects.create(campaign=c, number=2, state=RoundState.DONE, finished_at=now)
    _result(r1, hubei, iou=0.70, iou_n=4, corr=0.80, corr_n=10, mapbox=700, google=900,
            official=1000, status="VERIFIED", used=0)
    a2 = _result(r2, hubei, iou=0.88, iou_n=6, corr=0.90, corr_n=12, mapbox=850, google=950,
                 official=1000, status="VERIFIED", used=1)
    b2 = _result(r2, hunan, iou=None, iou_n=0, corr=0.5, corr_n=4, mapbox=500, google=None,
                 official=2000, status="UNVERIFIED", used=1, shape="criteria")
    ProvinceStatus.objects.create(campaign=c, province=hubei, decision="converged",
                                  supplementary_rounds=1, reason=a2.reasons["reason"],
                                  last_result=a2)
    ProvinceStatus.objects.create(campaign=c, province=hunan, decision="continue",
                                  supplementary_rounds=1, reason=b2.reasons["reason"],
                                  last_result=b2)
    return c


def _by_adcode(rows):
    return {r["adcode"]: r for r in rows}


def test_rows_carry_each_provinces_numbers_and_decision(camp):
    rows = _by_adcode(province_rows(campaign=camp))
    assert list(rows) == [360000, 420000, 430000]

    a = rows[420000]
    assert (a["round"], a["decision"], a["supplementary_rounds"]) == (2, "converged", 1)
    assert (a["iou"], a["iou_samples"]) == (0.88, 6)
    assert (a["correctness"], a["correctness_samples"]) == (0.90, 12)
    assert a["area_mapbox_pct"] == pytest.approx(85.0)
    assert a["area_google_pct"] == pytest.approx(95.0)
    assert a["area_ratio"] == pytest.approx(0.95)
    assert a["official_status"] == "VERIFIED" and a["official_verified"] is True
    assert a["iou_outcome"] == "passed" and "0.880 >= 0.85 on 6 blocks" in a["iou_reason"]
    assert a["area_outcome"] == "passed"
    assert (a["iou_min"], a["correctness_min"], a["area_ratio_min"]) == (0.85, 0.85, 0.8)
    assert a["max_supplementary_rounds"] == 3
    assert a["reason"] == "all criteria passed"

    b = rows[430000]  # reasons stored keyed by criterion
    assert b["decision"] == "continue" and b["supplementary_rounds"] == 1
    assert b["iou"] is None and b["iou_samples"] == 0
    assert b["iou_outcome"] == "unknown" and "no validation samples" in b["iou_reason"]
    assert b["correctness_outcome"] == "failed" and "0.500 < 0.85 on 4 blocks" in \
        b["correctness_reason"]
    assert b["area_mapbox_pct"] == pytest.approx(25.0) and b["area_google_pct"] is None
    assert b["official_status"] == "UNVERIFIED" and b["official_verified"] is False
    assert "UNVERIFIED" in b["area_reason"] and b["area_outcome"] == "failed"
    assert "1 of 3 supplementary" in b["reason"]

    c = rows[360000]  # in the campaign, never evaluated, no official figure
    assert (c["decision"], c["evaluated"], c["reason"]) == ("continue", False, "not evaluated yet")
    assert c["round"] is None and c["official_ha"] is None and c["official_verified"] is None
    # The keys ``stop_status --json`` uses for the same numbers are there too.
    assert (a["province"], a["province_zh"], a["official_unverified"]) == ("Hubei", "湖北省", False)
    assert b["official_unverified"] is True


def test_history_and_decision_log(camp):
    hist = province_history(campaign=camp)
    assert [p["iou"] for p in hist[420000]] == [0.70, 0.88]
    assert [p["area_google_pct"] for p in hist[420000]] == pytest.approx([90.0, 95.0])
    assert [p["decision"] for p in hist[420000]] == ["continue", "converged"]
    assert 360000 not in hist

    log = decision_log(campaign=camp)
    assert [(e["round"], e["adcode"], e["decision"], e["previous"], e["changed"]) for e in log] \
        == [(2, 430000, "continue", "", True), (2, 420000, "converged", "continue", True),
            (1, 420000, "continue", "", True)]
    assert log[1]["reason"] == "all criteria passed"


def test_labelled_share(camp, users):
    from annotation.models import Sample

    src = ImagerySource.objects.create(slug="mapbox", name="M", kind="synthetic")
    block = Block.objects.filter(campaign=camp).first()
    Sample.objects.create(block=block, source=src, kind="negative", created_by=users["lead"])
    share = labelled_share(campaign=camp)
    assert (share["labelled_blocks"], share["total_blocks"]) == (1, 8)
    assert share["labelled_percent"] == pytest.approx(12.5)
    assert share["paper_labelled_percent"] == 0.14


def test_json_export_has_the_same_numbers(camp, users, login):
    c = login("lead")
    r = c.get(reverse("api-learning-dashboard", args=[camp.slug]))
    assert r.status_code == 200
    data = r.json()
    rows = _by_adcode(data["provinces"])
    assert rows[420000]["iou"] == 0.88 and rows[420000]["area_mapbox_pct"] == pytest.approx(85.0)
    assert rows[430000]["official_verified"] is False
    assert data["counts"] == {"converged": 1, "continue": 1, "not_evaluated": 1}
    assert data["thresholds"]["iou_min"] == 0.85
    assert [p["round"] for p in data["history"]["420000"]] == [1, 2]
    assert data["savings"]["labelled_blocks"] == 0 and data["savings"]["total_blocks"] == 8
    # No labelled blocks: the simulation says why instead of inventing numbers.
    assert "needs labelled training and validation blocks" in data["savings"]["simulation"]["error"]


def test_stop_status_command_prints_the_dashboards_numbers(camp, users, login):
    import json

    from django.core.management import call_command

    out = io.StringIO()
    call_command("stop_status", campaign=camp.slug, json=True, stdout=out)
    cli = json.loads(out.getvalue())
    page = login("lead").get(
        reverse("api-learning-dashboard", args=[camp.slug])
    ).json()
    assert cli["thresholds"] == page["thresholds"]
    assert _by_adcode(cli["provinces"]) == _by_adcode(page["provinces"])
    text = io.StringIO()
    call_command("stop_status", campaign=camp.slug, stdout=text)
    line = next(ln for ln in text.getvalue().splitlines() if ln.startswith("420000"))
    assert "IoU 0.880" in line and "mapbox 85.0%" in line and "converged" in line


def test_csv_export(camp, users, login):
    c = login("admin")
    r = c.get(reverse("api-learning-province-status", args=[camp.slug]) + "?format=csv")
    assert r.status_code == 200
    assert r["Content-Type"].startswith("text/csv")
    assert r["Content-Disposition"] == 'attachment; filename="dash-province-status.csv"'
    table = list(csv.DictReader(io.StringIO(r.content.decode())))
    assert tuple(table[0].keys()) == CSV_COLUMNS
    rows = {int(t["adcode"]): t for t in table}
    assert rows[420000]["iou"] == "0.88" and rows[420000]["iou_samples"] == "6"
    assert float(rows[420000]["area_mapbox_pct"]) == pytest.approx(85.0)
    assert rows[420000]["decision"] == "converged"
    assert rows[430000]["official_status"] == "UNVERIFIED"
    assert rows[430000]["official_verified"] == "False"
    assert rows[430000]["iou"] == "" and rows[430000]["supplementary_rounds"] == "1"
    # The JSON form of the same endpoint has the same numbers.
    j = c.get(reverse("api-learning-province-status", args=[camp.slug])).json()
    assert _by_adcode(j)[420000]["correctness"] == 0.9


@pytest.mark.parametrize(
    ("who", "status", "reason"),
    # The annotator sees the campaign (403, with why); the outsider does not (404).
    [("annotator", 403, b"leads and admins only"), ("outsider", 404, b"no campaign")],
)
def test_only_leads_and_admins_see_the_dashboard(camp, users, who, status, reason, login):
    c = login(who)
    assert c.get(reverse("learning-dashboard", args=[camp.slug])).status_code == status
    assert c.get(reverse("api-learning-dashboard", args=[camp.slug])).status_code == status
    r = c.get(reverse("api-learning-province-status", args=[camp.slug]) + "?format=csv")
    assert r.status_code == status and reason in r.content


def test_anonymous_is_refused(camp, client):
    assert client.get(reverse("api-learning-dashboard", args=[camp.slug])).status_code == 403
    r = client.get(reverse("learning-dashboard", args=[camp.slug]))
    assert r.status_code == 302 and "/accounts/login/" in r["Location"]


def test_unknown_campaign_is_404(users, login):
    c = login("lead")
    assert c.get(reverse("api-learning-dashboard", args=["nope"])).status_code == 404


def test_dashboard_page_shows_numbers_decisions_and_marks(camp, users, login):
    c = login("lead")
    r = c.get(reverse("learning-dashboard", args=[camp.slug]))
    assert r.status_code == 200
    html = r.content.decode()
    assert 'data-adcode="420000" data-decision="converged"' in html
    assert 'data-adcode="430000" data-decision="continue"' in html
    assert 'data-adcode="360000" data-decision=""' in html and "not evaluated yet" in html
    assert "0.880 (6)" in html and "0.900 (12)" in html
    assert "85.0 %" in html and "95.0 %" in html and "25.0 %" in html
    assert "⚠ UNVERIFIED" in html
    assert "1 / 3" in html
    assert "all criteria passed" in html
    assert 'id="decision-log"' in html and "Continue → Converged" in html
    assert "0 of 8 blocks labelled" in html
    assert "vendor/chartjs/chart.umd.js" in html


def test_province_geojson_is_simplified(camp, users, login):
    c = login("lead")
    url = reverse("api-learning-provinces-geojson", args=[camp.slug])
    fc = c.get(url).json()
    assert [f["id"] for f in fc["features"]] == [360000, 420000, 430000]
    ring = fc["features"][1]["geometry"]["coordinates"][0][0]
    full = AdminUnit.objects.get(adcode=420000).geometry.num_coords
    assert 4 <= len(ring) < full / 10  # the 0.001° wiggles are gone at 0.02°
    detailed = c.get(url + "?tolerance=0.0001").status_code
    assert detailed == 400  # below the allowed minimum: a clear 400, not a huge answer
    assert "tolerance" in c.get(url + "?tolerance=abc").json()


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted():
    from learning.views import _csv_cell

    assert _csv_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert _csv_cell("@x") == "'@x" and _csv_cell("plain") == "plain"
    assert _csv_cell(-0.5) == -0.5 and _csv_cell(None) == ""


def test_lead_creates_the_systematic_sample_from_the_dashboard(camp, users, login):
    from learning.models import SystematicSampleBlock
    from mapping.geo.grid import grid_for

    grid = grid_for(0.05)
    for b in Block.objects.filter(campaign=camp):  # the fixture's rows/cols are not the grid's
        x0, y0, x1, y1 = b.geometry.extent
        at = grid.block_at((x0 + x1) / 2, (y0 + y1) / 2)
        Block.objects.filter(pk=b.pk).update(row=at.row, col=at.col)
    url = reverse("learning-systematic-sample", args=[camp.slug])
    annotator = login("annotator")
    assert annotator.post(url, {"spacing_deg": "0.05"}).status_code == 403
    lead = login("lead")
    assert lead.get(url).status_code == 405
    r = lead.post(url, {"spacing_deg": "0.05"}, follow=True)
    assert r.status_code == 200
    assert SystematicSampleBlock.objects.filter(campaign=camp).count() == 8  # one per block
    page = r.content.decode()
    assert "Systematic sample: 8 blocks" in page and "8 blocks, 0 verdicts" in page
    bad = lead.post(url, {"spacing_deg": "0"}, follow=True)
    assert "No systematic sample: spacing must be more than 0" in bad.content.decode()
    assert SystematicSampleBlock.objects.filter(campaign=camp).count() == 8


def test_correctness_comes_from_systematic_verdicts_when_there_are_enough(camp, users):
    from annotation.models import VerdictLabel
    from learning.models import SystematicSampleBlock
    from learning.services.round import evaluate as pipeline

    rnd = Round.objects.get(campaign=camp, number=2)
    hubei = AdminUnit.objects.get(adcode=420000)
    src = ImagerySource.objects.create(slug="mapbox", name="Mapbox", kind="synthetic",
                                       config={"look": "mapbox"})
    blocks = list(Block.objects.filter(campaign=camp).order_by("pk"))
    # Verdicts on blocks chosen for labelling, outside the systematic sample: all wrong.
    for b in blocks[:2]:
        VerdictLabel.objects.create(block=b, source=src, verdict="fp", user=users["annotator"])
    assert pipeline._correctness(rnd=rnd, province_id=hubei.pk, segmenter="seg-r2") == (
        0.0, 2, "verdicts", [{"round": None, "model": "", "n": 2}])
    src2 = ImagerySource.objects.create(slug="google", name="Google", kind="synthetic",
                                        config={"look": "google"})
    for b in blocks[2:8]:
        SystematicSampleBlock.objects.create(campaign=camp, block=b, spacing_deg=0.5)
        for s, v in ((src, "tp"), (src2, "tp" if b != blocks[7] else "noise")):
            # Given before round 2 started: they judged round 1's predictions.
            VerdictLabel.objects.create(block=b, source=s, verdict=v, user=users["annotator"],
                                        model_version="seg-r1", round_number=1)
    # 12 systematic verdicts (>= 10): 11 TP -> 11/12, and the biased ones are left out.
    rate, n, basis, judged = pipeline._correctness(rnd=rnd, province_id=hubei.pk,
                                                   segmenter="seg-r2")
    assert (n, basis) == (12, "systematic sample verdicts") and rate == pytest.approx(11 / 12)
    assert judged == [{"round": 1, "model": "seg-r1", "n": 12}]


def test_criterion_basis_label():
    """A criterion nothing measured shows no basis (the reason already says why); the
    systematic sample's verdicts and the model's prediction each have their own label."""

    def label(basis: str) -> str:
        return _criteria({"correctness": {"outcome": "unknown", "basis": basis}})[
            "correctness"]["basis_label"]

    assert label("none") == ""
    assert label("systematic sample verdicts") == (
        "from the interpreters' verdicts on the systematic sample")
    assert label("predicted") == "predicted by the correctness model"


def test_the_dashboard_says_which_model_the_correctness_verdicts_judged(camp, users, login):
    """Verdicts are given before round N starts, so round N's correctness judged round N-1's
    predictions: the page, the JSON and stop_status say which round's and which model's."""
    import json

    from django.core.management import call_command

    hubei = AdminUnit.objects.get(adcode=420000)
    result = ProvinceRoundResult.objects.get(round__number=2, province=hubei)
    reasons = dict(result.reasons)
    criteria = [dict(c) for c in reasons["criteria"]]
    for c in criteria:
        if c["name"] == "correctness":
            c["basis"] = "systematic sample verdicts"
            c["judged"] = [{"round": 1, "model": "seg-r1", "n": 12}]
    reasons["criteria"] = criteria
    reasons["correctness"] = next(c for c in criteria if c["name"] == "correctness")
    ProvinceRoundResult.objects.filter(pk=result.pk).update(reasons=reasons)
    text = "verdicts on round 1's predictions (model seg-r1)"
    c = login("lead")
    html = c.get(reverse("learning-dashboard", args=[camp.slug])).content.decode()
    assert f'data-k="correctness_judged">{text}</span>' in html.replace("&#x27;", "'")
    out = io.StringIO()
    call_command("stop_status", campaign=camp.slug, json=True, stdout=out)
    row = _by_adcode(json.loads(out.getvalue())["provinces"])[420000]
    assert row["round"] == 2 and row["correctness_judged_text"] == text
    assert row["correctness_judged"] == [{"round": 1, "model": "seg-r1", "n": 12}]
    lines = io.StringIO()
    call_command("stop_status", campaign=camp.slug, stdout=lines)
    assert f"({text})" in next(ln for ln in lines.getvalue().splitlines()
                               if ln.startswith("420000"))
    # Another round's: several rounds' verdicts, and the correctness model's prediction.
    from learning.dashboard import judged_text

    assert judged_text([{"round": 2, "model": "seg-r2", "n": 3},
                        {"round": 3, "model": "seg-r3", "n": 9}], "systematic sample verdicts"
                       ) == "verdicts on the predictions of rounds 2, 3 (models seg-r2, seg-r3)"
    assert judged_text([{"round": 4, "model": "seg-r4", "n": 90}], "predicted") == (
        "predicted on round 4's predictions (model seg-r4)")
    assert judged_text([], "verdicts") == "" and judged_text(None, "none") == ""
    zh = c.get(reverse("learning-dashboard", args=[camp.slug]),
               HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "对第 1 轮预测的判定（模型 seg-r1）" in zh
