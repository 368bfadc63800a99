"""The dashboard in Chinese: the stopping rules' reasons, the criteria, the decision counts and
the decision log read in the reader's language (the rules keep each reason's parts apart, as
phrases stored with the round's result), with nothing English left in them."""

from __future__ import annotations

import html as htmllib
import re

import pytest
from django.urls import reverse

from learning.core.stopping import ProvinceMeasurements, province_stop_check
from learning.models import ProvinceRoundResult
from tests.learning.test_dashboard import RULES, camp  # noqa: F401 (the fixture)


@pytest.fixture
def rounds_as_stored(camp):  # noqa: F811
    """Hunan's result as a round stores it now (criteria by name, each with its phrase); the
    fixture's own is the older shape, English text only, which is shown as it was stored."""
    r = ProvinceRoundResult.objects.get(province__adcode=430000)
    d = province_stop_check(
        ProvinceMeasurements(
            province="430000",
            iou=None,
            iou_samples=0,
            correctness=0.5,
            correctness_samples=4,
            area_mapbox_ha=500,
            official_area_ha=2000,
            official_status="UNVERIFIED",
            supplementary_rounds=1,
        ),
        RULES,
    )
    r.reasons = {c["name"]: c for c in d.to_dict()["criteria"]}
    r.save()
    return camp


def _page(client, users, slug: str, language: str) -> str:
    client.force_login(users["lead"])
    r = client.get(reverse("learning-dashboard", args=[slug]), HTTP_ACCEPT_LANGUAGE=language)
    assert r.status_code == 200
    return r.content.decode()


def _cells(html: str, table: str, key: str) -> list[str]:
    body = re.search(rf'<table class="grid" id="{table}">(.*?)</table>', html, re.S).group(1)
    cells = re.findall(rf'<td[^>]*data-k="{key}"[^>]*>(.*?)</td>', body, re.S)
    return [htmllib.unescape(re.sub(r"<[^>]+>", " ", c)) for c in cells]


def test_reasons_criteria_counts_and_log_in_chinese(rounds_as_stored, users, client):
    html = _page(client, users, rounds_as_stored.slug, "zh-hans")
    reasons = " | ".join(_cells(html, "province-table", "reasons"))
    # Hubei converged; Hunan: IoU without samples, correctness and area below the thresholds.
    assert "所有标准均已通过" in reasons
    assert "IoU 未知：没有验证样本" in reasons
    assert "正确率 0.500 < 0.85（4 个图块）" in reasons
    assert "IoU未知、正确率未通过、面积未通过；已用 1 / 3 轮补充" in reasons
    for english in ("unknown", "failed", "passed", "blocks", "supplementary", "official"):
        assert english not in reasons, english
    counts = re.search(r'<p id="counts">(.*?)</p>', html, re.S).group(1)
    assert "已收敛: 1" in counts and "继续: 1" in counts and "尚未评估: 1" in counts
    assert "not_evaluated" not in re.sub(r'(class|data-k)="[^"]*"', "", counts)
    log = htmllib.unescape(
        re.search(r'<table class="grid" id="decision-log">(.*?)</table>', html, re.S).group(1)
    )
    assert "继续 → 已收敛" in log
    assert "IoU未通过、正确率未通过；已用 0 / 3 轮补充" in log  # Hubei, round 1


def test_the_same_page_in_english_has_no_doubled_outcome(rounds_as_stored, users, client):
    html = _page(client, users, rounds_as_stored.slug, "en")
    reasons = " | ".join(_cells(html, "province-table", "reasons"))
    assert "IoU unknown: no validation samples" in reasons
    assert "correctness 0.500 < 0.85 on 4 blocks" in reasons
    # Not "correctness unknown: correctness unknown …": the outcome is a mark, said once.
    assert not re.search(r"(\w+) (unknown|failed|passed): \1", reasons)
    assert "IoU unknown, correctness failed, area failed; 1 of 3 supplementary" in reasons
