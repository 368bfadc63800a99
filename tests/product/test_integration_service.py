"""Integration decisions per block: the model's (checked against the model's own output on
hand-assembled inputs) and leads' overrides, which become integration labels."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from annotation.models import AuditEntry, IntegrationLabel
from learning.core.features.block import COVERAGE_TYPES
from learning.core.tabular.integration import DECISIONS as CORE_DECISIONS
from learning.core.tabular.integration import INTEGRATION_FEATURE_NAMES
from learning.models import BlockPrediction, ModelVersion, ProvinceStatus
from learning.product.models import BlockIntegration, IntegrationSource
from learning.product.services.integration import (
    IntegrationError,
    integration_override,
    integration_run,
)
from tests.product.test_product_jobs import build_campaign


def _inputs(ctx, blk) -> list[float]:
    """The 29 inputs written out by name from the stored features (independent of the code
    under test, which goes through BlockFeatures and integration_vector)."""
    f = {s: ctx["predictions"][(blk.pk, s)].score.features for s in ("mapbox", "google")}
    out = []
    for name in INTEGRATION_FEATURE_NAMES:
        if name.endswith("_p_tp"):
            out.append(0.7)
        elif name.startswith(("mapbox_", "google_")):
            src, feat = name.split("_", 1)
            v = f[src][feat]
            out.append(float(COVERAGE_TYPES.index(v)) if feat == "coverage_type" else v)
        else:
            out.append(f["mapbox"][name])
    return out


@pytest.mark.django_db
def test_model_decisions_and_probabilities_match_the_model():
    ctx = build_campaign()
    res = integration_run(campaign=ctx["campaign"])
    assert (res.blocks, res.decided, res.incomplete, res.kept_lead) == (4, 4, 0, 0)
    assert sum(res.counts.values()) == 4 and res.model == "int-r1"
    x = np.array([_inputs(ctx, b) for b in ctx["blocks"]])
    expected = ctx["model"].predict_proba(x)
    for blk, p in zip(ctx["blocks"], expected, strict=True):
        row = BlockIntegration.objects.get(block=blk)
        j = int(np.argmax(p))
        assert row.decision == row.model_decision == CORE_DECISIONS[j]
        assert row.probability == pytest.approx(p[j]) and row.source == IntegrationSource.MODEL
        assert row.probabilities == pytest.approx(
            dict(zip(CORE_DECISIONS, p, strict=True))
        )
        assert math.isclose(sum(row.probabilities.values()), 1.0, rel_tol=1e-6)
        assert row.model_version == ctx["integration"]
        assert row.mapbox_prediction.source.slug == "mapbox"
        assert row.google_prediction.source.slug == "google"


@pytest.mark.django_db
def test_lead_override_becomes_a_label_and_survives_the_next_model_run(users):
    ctx = build_campaign()
    integration_run(campaign=ctx["campaign"])
    blk = ctx["blocks"][0]
    model_said = BlockIntegration.objects.get(block=blk).decision
    choice = "neither" if model_said != "neither" else "merge_both"
    row = integration_override(user=users["lead"], block=blk, decision=choice)
    assert (row.decision, row.source, row.overridden_by) == (choice, "lead", users["lead"])
    assert row.model_decision == model_said and row.overridden_at is not None
    assert row.probability == pytest.approx(row.probabilities[choice])
    label = IntegrationLabel.objects.get(block=blk)
    assert (label.decision, label.user, label.model_version, label.round_number) == (
        choice,
        users["lead"],
        "int-r1",
        1,
    )
    assert AuditEntry.objects.filter(block_id=blk.pk, action="integration_set").count() == 1
    res = integration_run(campaign=ctx["campaign"])
    assert res.kept_lead == 1
    row.refresh_from_db()
    assert (row.decision, row.source, row.model_decision) == (choice, "lead", model_said)
    with pytest.raises(IntegrationError, match="unknown integration decision"):
        integration_override(user=users["lead"], block=blk, decision="both")


@pytest.mark.django_db
def test_incomplete_blocks_and_missing_prerequisites_are_reported():
    ctx = build_campaign()
    BlockPrediction.objects.filter(
        pk=ctx["predictions"][(ctx["blocks"][3].pk, "google")].pk
    ).delete()
    res = integration_run(campaign=ctx["campaign"])
    assert (res.decided, res.incomplete) == (3, 1)
    assert not BlockIntegration.objects.filter(block=ctx["blocks"][3]).exists()
    ProvinceStatus.objects.update(decision="continue")
    with pytest.raises(IntegrationError, match="no blocks in converged provinces"):
        integration_run(campaign=ctx["campaign"])
    ModelVersion.objects.filter(kind="integration").update(is_current=False)
    with pytest.raises(IntegrationError, match="no current integration model"):
        integration_run(campaign=ctx["campaign"])


def _more_labelled_blocks(ctx, n: int) -> list:
    """n more blocks of the campaign with scored predictions on both sources (no masks: the
    integration model trains on features and P(TP) only)."""
    from django.contrib.gis.geos import Polygon

    from learning.core.features.block import FEATURE_NAMES
    from learning.models import BlockScore
    from mapping.geo.grid import BlockId, grid_for
    from mapping.models import Block
    from tests.product.test_product_jobs import COL0, ROW

    grid, rng, out = grid_for(0.05), np.random.default_rng(5), []
    seg, rnd = ctx["segmenter"], ctx["round"]
    sources = {p.source.slug: p.source for p in ctx["predictions"].values()}
    for i in range(n):
        blk = Block.objects.create(
            campaign=ctx["campaign"],
            row=ROW + 1 + i // 4,
            col=COL0 + i % 4,
            geometry=Polygon.from_bbox(grid.bounds(BlockId(ROW + 1 + i // 4, COL0 + i % 4))),
            province=ctx["province"],
            county=ctx["counties"][0],
        )
        for src in sources.values():
            p = BlockPrediction.objects.create(
                block=blk, source=src, model_version=seg, round=rnd, mask_path="none.tif"
            )
            feats = {n: float(v) for n, v in zip(FEATURE_NAMES, rng.normal(size=16), strict=True)}
            feats["coverage_type"] = "planting"
            BlockScore.objects.create(prediction=p, round=rnd, features=feats, p_incorrect=0.2)
        out.append(blk)
    return out


@pytest.mark.django_db
def test_the_next_integration_model_trains_on_the_leads_labels(users):
    from learning.core.tabular.integration import IntegrationModel
    from learning.services.integration_training import integration_model_train
    from learning.services.registry import model_version_set_current

    ctx = build_campaign()
    camp = ctx["campaign"]
    blocks = ctx["blocks"] + _more_labelled_blocks(ctx, 20)
    decisions = [("neither", "only_mapbox", "only_google", "merge_both")[i % 4] for i in range(24)]
    for blk, d in zip(blocks[:6], decisions, strict=False):
        integration_override(user=users["lead"], block=blk, decision=d)
    few = integration_model_train(campaign=camp, name="int-r2")
    assert not few.trained and "6 integration labels" in few.message
    assert few.model_version == ctx["integration"]  # the current model stays
    for blk, d in zip(blocks[6:], decisions[6:], strict=True):
        integration_override(user=users["lead"], block=blk, decision=d)
    # A label whose block lacks a scored prediction on one source is not a training row.
    BlockPrediction.objects.filter(block=blocks[-1], source__slug="google").delete()
    res = integration_model_train(campaign=camp, name="int-r2", seed=3)
    assert res.trained, res.message
    mv = res.model_version
    assert (mv.kind, mv.name, mv.is_current) == ("integration", "int-r2", False)
    labels = IntegrationLabel.objects.filter(block__in=blocks[:-1])
    assert sorted(mv.training_samples) == sorted(labels.values_list("pk", flat=True))
    model = IntegrationModel.load(Path(settings.DATA_DIR) / mv.bundle_path)
    counts = {d: decisions[:23].count(d) for d in set(decisions)}
    assert model.metrics["class_counts"] == counts
    assert model.metrics["n_train"] + model.metrics["n_test"] == 23
    # Once current, the same labels train nothing new; an override changes that.
    model_version_set_current(model_version=mv)
    again = integration_model_train(campaign=camp, name="int-r3")
    assert not again.trained and again.model_version == mv and "no new labels" in again.message
    integration_override(user=users["lead"], block=blocks[0], decision="merge_both")
    assert integration_model_train(campaign=camp, name="int-r3").trained
    # The run now uses the model the leads' labels trained.
    assert integration_run(campaign=camp).model == "int-r2"


@pytest.mark.django_db
def test_labels_of_one_decision_give_a_constant_model_that_integrates(users, client):
    """The demo's gap (issue 13): the first masks are poor everywhere, every integration label
    is "neither", and no classifier fits one class. The model is then the constant of that
    decision, recorded and shown as such, and the converged province is integrated."""
    from django.urls import reverse

    from learning.services.integration_training import integration_model_train
    from learning.services.registry import model_version_set_current

    ctx = build_campaign()
    camp = ctx["campaign"]
    blocks = ctx["blocks"] + _more_labelled_blocks(ctx, 8)
    for blk in blocks:
        integration_override(user=users["lead"], block=blk, decision="neither")
    res = integration_model_train(campaign=camp, name="int-r2")
    assert res.trained, res.message
    assert "constant: all 12 labels were 'neither'" in res.message
    mv = res.model_version
    assert mv.metrics["constant"] == "neither" and mv.metrics["baseline_accuracy"] == 1.0
    model_version_set_current(model_version=mv)
    BlockIntegration.objects.all().delete()  # no lead override in force: the model decides
    run = integration_run(campaign=camp)
    assert run.model == "int-r2" and run.decided == 12 and run.counts["neither"] == 12
    row = BlockIntegration.objects.get(block=ctx["blocks"][0])
    assert (row.decision, row.probability, row.source) == ("neither", 1.0, "model")
    client.force_login(users["admin"])
    html = client.get(reverse("learning-models", args=[camp.slug])).content.decode()
    assert "constant: all labels were Neither" in html
