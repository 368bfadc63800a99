"""HTML pages of the annotation app: the workspace where interpreters draw and label a block.

Every word the page shows goes through Django's gettext: the template uses ``{% translate %}``
and the scripts get their strings already translated in the page's JSON config (no separate
JavaScript catalogue to load, nothing to fetch before the page works offline).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import get_language, gettext, gettext_lazy, gettext_noop
from django.views.decorators.http import require_POST

from annotation.access import campaign_get_for_worker
from annotation.apis.assignments import AssignmentListApi
from annotation.models import (
    Assignment,
    AssignmentStatus,
    AuditAction,
    CoverageType,
    CroplandSubtype,
    IntegrationDecision,
    Verdict,
)
from annotation.selectors import PredictionMissing, block_prediction_current
from annotation.services import block_next_for_user
from croplayer_site.roles import ADMIN, ANNOTATOR, LEAD, has_role
from learning.models import BlockPrediction, ModelKind
from mapping.access import block_get_for_user
from mapping.models import Block, ImagerySource

# workspace.js looks its strings up by their English text: marked here for makemessages
# (gettext_noop) and translated per request.
CONFLICT = gettext_noop(
    "Theirs: version %(v)s with %(n)s polygon(s). Yours: %(m)s polygon(s) on screen, "
    "%(k)s change(s) not saved."
)
WORKSPACE_MESSAGES = [
    gettext_noop("Their version is outlined in orange dashes."),
    gettext_noop("saving…"),
    gettext_noop("saved v%(v)s"),
    gettext_noop("not saved yet"),
    gettext_noop("offline: %(n)s change(s) waiting"),
    gettext_noop(
        "your session has ended: log in again (e.g. in another tab); "
        "%(n)s change(s) are kept and sent then"
    ),
    gettext_noop(
        "%(n)s change(s) made by %(user)s are kept: log in as %(user)s (e.g. in another tab) "
        "to send them"
    ),
    gettext_noop("error: %(reason)s"),
    CONFLICT,
    gettext_noop("Mark this block negative on this source? Its polygons are deleted."),
    gettext_noop("negative sample (no cropland)"),
    gettext_noop("positive sample"),
    gettext_noop("no sample yet"),
    gettext_noop("nothing to undo"),
    gettext_noop("%(n)s polygon(s)"),
]

# The labelling panel's strings (panel.js); keys are short names, values translated.
PANEL_MESSAGES = {
    "none": gettext_lazy("not labelled yet"),
    "saving": gettext_lazy("saving…"),
    "saved": gettext_lazy("saved"),
    "queued": gettext_lazy("offline: saved when the network returns"),
    "error": gettext_lazy("error: %(reason)s"),
    "by": gettext_lazy("%(user)s · %(when)s · %(source)s"),
    "noneOthers": gettext_lazy("not labelled by you yet; %(others)s"),
    "model": gettext_lazy("model %(model)s, round %(round)s"),
    "noModel": gettext_lazy("no model prediction yet"),
    "noAssignment": gettext_lazy("This block is not assigned to you."),
    "assignedTo": gettext_lazy("%(user)s: %(status)s"),
    "rejected": gettext_lazy("Rejected by %(user)s: %(comment)s"),
    "accepted": gettext_lazy("Accepted by %(user)s"),
    "rejectPrompt": gettext_lazy("What should be fixed? (the annotator sees this comment)"),
    "commentNeeded": gettext_lazy("A rejection needs a comment."),
    "nothingLeft": gettext_lazy("No block left for you in this campaign."),
    "nextIsThis": gettext_lazy("This block is your next one: finish and submit it first."),
    "loading": gettext_lazy("loading…"),
    "noAudit": gettext_lazy("No changes yet."),
    "before": gettext_lazy("before"),
    "after": gettext_lazy("after"),
    "geometry": gettext_lazy("geometry: %(n)s vertices"),
    "more": gettext_lazy("older entries not shown: %(n)s"),
}

STATUS_WORDS = {
    AssignmentStatus.TODO: gettext_lazy("to do"),
    AssignmentStatus.IN_PROGRESS: gettext_lazy("in progress"),
    AssignmentStatus.SUBMITTED: gettext_lazy("submitted, waiting for review"),
    AssignmentStatus.ACCEPTED: gettext_lazy("accepted"),
    AssignmentStatus.REJECTED: gettext_lazy("rejected"),
}

# Keys of the panel: chosen not to clash with workspace.js (plain letters, 1-6, Ctrl+Z/Y, Del,
# Esc): shifted letters and digits, Alt+digits. ``code`` is KeyboardEvent.code, which does not
# depend on the keyboard layout (Shift+1 is "!" on one keyboard and "+" on another).
VERDICT_KEYS = {
    Verdict.TP: ("KeyT", "Shift+T"),
    Verdict.FP: ("KeyF", "Shift+F"),
    Verdict.NOISE: ("KeyO", "Shift+O"),
    Verdict.ARTIFACT: ("KeyA", "Shift+A"),
}
VERDICT_SHORT = {
    Verdict.TP: gettext_lazy("TP"),
    Verdict.FP: gettext_lazy("FP"),
    Verdict.NOISE: gettext_lazy("Noise"),
    Verdict.ARTIFACT: gettext_lazy("Artifact"),
}
NEXT_BLOCK_KEY = ("KeyN", "Shift+N")


def _choices(choices: list[tuple[str, Any]], keys: dict[str, tuple[str, str]]) -> list[dict]:
    return [
        {"value": value, "label": str(label), "code": keys[value][0], "key": keys[value][1]}
        for value, label in choices
    ]


def _digit_keys(values: list[str], modifier: str) -> dict[str, tuple[str, str]]:
    return {v: (f"Digit{i + 1}", f"{modifier}+{i + 1}") for i, v in enumerate(values)}


def current_predictions(*, block: Block) -> dict[str, dict[str, Any]]:
    """Per source slug: the current segmenter version and round whose prediction the labels of
    this block judge. A verdict means nothing without the prediction it was given on, so each
    label and polygon records them; empty before the first learning round."""
    rows = (
        BlockPrediction.objects.filter(
            block=block, model_version__kind=ModelKind.SEGMENTER, model_version__is_current=True
        )
        .select_related("source", "model_version", "round")
        .order_by("pk")
    )
    return {
        p.source.slug: {
            "model_version": p.model_version.name,
            "round_number": p.round.number if p.round is not None else None,
        }
        for p in rows
    }


def _assignments(*, block: Block, user: Any, lead: bool) -> list[dict[str, Any]]:
    """Annotators see their own assignment on the block; leads and admins every one of it."""
    qs = Assignment.objects.filter(block=block).select_related(
        "block", "block__campaign", "user", "assigned_by", "reviewed_by"
    )
    if not lead:
        qs = qs.filter(user=user)
    data = AssignmentListApi.AssignmentListOutputSerializer(qs.order_by("pk"), many=True).data
    return [dict(row) for row in data]


def panel_config(*, block: Block, user: Any) -> dict[str, Any]:
    """What panel.js needs: choices with their keys, the user's role, the current prediction's
    provenance, the assignments and the translated words."""
    lead = has_role(user, LEAD, ADMIN)
    return {
        "campaign": block.campaign.slug,
        "lang": get_language() or "en",  # dates in the page's language, e.g. 2026/11/22 08:13
        "user": user.get_username(),
        "lead": lead,
        "worker": has_role(user, ANNOTATOR, LEAD, ADMIN),
        "verdicts": [
            {**c, "short": str(VERDICT_SHORT[c["value"]])}
            for c in _choices(Verdict.choices, VERDICT_KEYS)
        ],
        "coverage": _choices(CoverageType.choices, _digit_keys(CoverageType.values, "Shift")),
        # Everyone reads the integration decision; only leads and admins get keys to make it.
        "integration": _choices(
            IntegrationDecision.choices,
            _digit_keys(IntegrationDecision.values, "Alt")
            if lead
            else {v: ("", "") for v in IntegrationDecision.values},
        ),
        "nextKey": {"code": NEXT_BLOCK_KEY[0], "key": NEXT_BLOCK_KEY[1]},
        "predictions": current_predictions(block=block),
        "assignments": _assignments(block=block, user=user, lead=lead),
        "statuses": {k: str(v) for k, v in STATUS_WORDS.items()},
        "actions": {value: str(label) for value, label in AuditAction.choices},
        "messages": {k: str(v) for k, v in PANEL_MESSAGES.items()},
    }


@login_required
def block_workspace(request: HttpRequest, block_id: int) -> HttpResponse:
    block = block_get_for_user(user=request.user, block_id=block_id)
    with_imagery = ImagerySource.objects.filter(images__block=block, images__status="ok").distinct()
    # Without any fetched image the block can still be labelled (e.g. from a QGIS session).
    sources = list(with_imagery.order_by("pk")) or list(ImagerySource.objects.order_by("pk"))
    subtypes = [
        {"value": value, "label": str(label), "key": str(i + 1)}
        for i, (value, label) in enumerate(CroplandSubtype.choices)
    ]
    messages = {m: gettext(m) for m in WORKSPACE_MESSAGES}
    west, south, east, north = block.geometry.extent
    zh = (get_language() or "").startswith("zh")
    panel = panel_config(block=block, user=request.user)
    # Why a source has no prediction to show, known now: the page does not ask the prediction
    # endpoint for one it would answer 404 (a console error on every block before round 1).
    missing: dict[str, str] = {}
    for s in sources:
        try:
            block_prediction_current(block=block, source=s)
        except PredictionMissing as e:
            missing[s.slug] = str(e)
    config = {
        "predictionMissing": missing,
        "block": block.pk,
        "bounds": [west, south, east, north],
        "zoom": block.campaign.zoom,
        "sources": [{"slug": s.slug, "name": s.name} for s in sources],
        "subtypes": subtypes,
        "defaultSubtype": CroplandSubtype.IRRIGATED_DRY.value,
        "messages": messages,
        "zh": zh,
        "panel": panel,
    }
    context = {
        "blk": block,
        "sources": sources,
        "subtypes": subtypes,
        "config": config,
        "panel": panel,
        "conflict_title": gettext("Someone else changed this block."),
    }
    return render(request, "annotation/workspace.html", context)


@login_required
@require_POST
def campaign_next_block(request: HttpRequest, slug: str) -> HttpResponse:
    """The home page's "start annotating" button: take the next block of the queue (claiming one
    if the campaign allows it) and open it. A POST, because claiming writes."""
    campaign = campaign_get_for_worker(user=request.user, slug=slug)
    found = block_next_for_user(user=request.user, campaign=campaign)
    if found is None:
        return redirect(f"{reverse('home')}?nothing_left={campaign.slug}")
    assignment, _claimed = found
    return redirect("block-workspace", block_id=assignment.block_id)
