"""HTML pages of the annotation app: the workspace where interpreters draw a block's cropland."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import get_language, gettext
from rest_framework.exceptions import NotFound

from annotation.models import CroplandSubtype
from mapping.models import ImagerySource
from mapping.selectors import block_get_for_user

CONFLICT = (
    "Theirs: version %(v)s with %(n)s polygon(s). Yours: %(m)s polygon(s) on screen, "
    "%(k)s change(s) not saved."
)
CONFIRM_NEGATIVE = "Mark this block negative on this source? Its polygons are deleted."

# Chinese for the workspace's own words, used until a compiled zh-hans catalogue translates them
# (gettext then wins): interpreters must be able to work in Chinese today.
ZH = {
    "Paddy": "水田",
    "Irrigated and dry cropland": "水浇地和旱地",
    "Terraces": "梯田",
    "Fallow land": "休耕地",
    "Greenhouse": "大棚",
    "Cropland with scattered trees": "零星林木耕地",
    "saving…": "保存中…",
    "saved v%(v)s": "已保存 v%(v)s",
    "not saved yet": "尚未保存",
    "offline: %(n)s change(s) waiting": "离线：%(n)s 项修改待发送",
    "error: %(reason)s": "错误：%(reason)s",
    "Someone else changed this block.": "其他人修改了此图块。",
    CONFLICT: "对方：版本 %(v)s，%(n)s 个多边形。您：屏幕上 %(m)s 个多边形，%(k)s 项修改未保存。",
    CONFIRM_NEGATIVE: "将此图块在该影像源上标为负样本？其多边形将被删除。",
    "negative sample (no cropland)": "负样本（无耕地）",
    "positive sample": "正样本",
    "no sample yet": "尚无样本",
    "nothing to undo": "没有可撤销的操作",
}


def _t(text: str) -> str:
    translated = gettext(text)
    if translated == text and (get_language() or "").startswith("zh"):
        return ZH.get(text, text)
    return translated


@login_required
def block_workspace(request: HttpRequest, block_id: int) -> HttpResponse:
    try:
        block = block_get_for_user(user=request.user, block_id=block_id)
    except NotFound as e:
        raise Http404(str(e)) from e
    with_imagery = ImagerySource.objects.filter(images__block=block, images__status="ok").distinct()
    # Without any fetched image the block can still be labelled (e.g. from a QGIS session).
    sources = list(with_imagery.order_by("pk")) or list(ImagerySource.objects.order_by("pk"))
    subtypes = [
        {"value": value, "label": _t(str(label)), "key": str(i + 1)}
        for i, (value, label) in enumerate(CroplandSubtype.choices)
    ]
    messages = {
        key: _t(key)
        for key in (
            "saving…",
            "saved v%(v)s",
            "not saved yet",
            "offline: %(n)s change(s) waiting",
            "error: %(reason)s",
            CONFLICT,
            CONFIRM_NEGATIVE,
            "negative sample (no cropland)",
            "positive sample",
            "no sample yet",
            "nothing to undo",
        )
    }
    west, south, east, north = block.geometry.extent
    config = {
        "block": block.pk,
        "bounds": [west, south, east, north],
        "zoom": block.campaign.zoom,
        "sources": [{"slug": s.slug, "name": s.name} for s in sources],
        "subtypes": subtypes,
        "defaultSubtype": CroplandSubtype.IRRIGATED_DRY.value,
        "messages": messages,
        "zh": (get_language() or "").startswith("zh"),
    }
    context = {
        "blk": block,
        "sources": sources,
        "subtypes": subtypes,
        "config": config,
        "conflict_title": _t("Someone else changed this block."),
        "zh": (get_language() or "").startswith("zh"),
    }
    return render(request, "annotation/workspace.html", context)
