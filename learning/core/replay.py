"""Replay the labelling loop on tiles that already have labels: the app's selection vs random.

Both arms start from the same small labelled set and the same model trained on it. Each round
the *selection* arm adds the ``per_round`` unlabelled tiles the app's round would pick (its
pure strategy: :func:`learning.selection.select_spread` ranking by the low-confidence signal of
the arm's current model, measured as the app measures a block prediction) and the *random* arm
adds ``per_round`` tiles at random; each arm then retrains its own model from where it was
(warm start) with the same training options (time budget) and is scored by pooled pixel IoU on
a fixed validation set that is never trained on, beside the all-cropland IoU of that set.

Pure: tiles, an engine factory and options in, a JSON-ready result out; engine-agnostic (any
registered ``SegmentationEngine``).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from learning.core.savings import CurvePoint, annotation_savings, labels_to_reach
from learning.core.segmentation.inference import sliding_window_proba
from learning.core.segmentation.metrics import IGNORE, IoUCounts, iou_counts
from learning.selection import Candidate, select_spread

SCHEMA = 1
ARMS = ("selection", "random")


class Tile(Protocol):
    """A labelled tile (``learning.core.realdata.RealTile`` fits)."""

    @property
    def name(self) -> str: ...

    @property
    def dataset(self) -> str: ...

    @property
    def image(self) -> npt.NDArray[np.uint8]: ...

    @property
    def mask(self) -> npt.NDArray[np.uint8]: ...


class ReplayConfig(BaseModel):
    """How the replay runs (the training options per round are passed beside it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    initial: Annotated[int, Field(ge=1)] = 8
    per_round: Annotated[int, Field(ge=1)] = 8
    rounds: Annotated[int, Field(ge=1)] = 4
    seed: int = 0
    # The app's selection weights (RoundConfig.weights); a replay measures only the model's
    # confidence, so the other signals drop out as they do in a round without them.
    weights: dict[str, float] = Field(default_factory=lambda: {
        "p_incorrect": 0.5, "low_confidence": 0.25, "disagreement": 0.25})
    # Score at most this many unlabelled tiles per round for the selection arm (None: all).
    candidates: Annotated[int | None, Field(ge=1)] = None
    window: Annotated[int, Field(ge=16)] = 256
    overlap: Annotated[int, Field(ge=0)] = 64


def mean_confidence(prob: npt.NDArray[np.floating[Any]]) -> float:
    """How sure a prediction is, as a round records it for a block: mean of ``|2p - 1|``."""
    return float(np.mean(np.abs(2.0 * np.asarray(prob, dtype=np.float64) - 1.0)))


def _predict(engine: Any, image: npt.NDArray[np.uint8], cfg: ReplayConfig,
             ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]:
    if hasattr(engine, "predict_block"):
        mask, prob = engine.predict_block(image, window=cfg.window, overlap=cfg.overlap)
        return np.asarray(mask, dtype=np.uint8), np.asarray(prob, dtype=np.float32)
    prob = sliding_window_proba(image, engine.predict_proba, window=cfg.window,
                                overlap=cfg.overlap)
    return (prob >= 0.5).astype(np.uint8), prob


def evaluate(engine: Any, tiles: Sequence[Tile], cfg: ReplayConfig) -> dict[str, Any]:
    """Pooled pixel IoU overall and per dataset (ignore pixels unscored)."""
    total = IoUCounts(0, 0, 0, 0)
    per: dict[str, IoUCounts] = {}
    for t in tiles:
        c = iou_counts(_predict(engine, t.image, cfg)[0], t.mask)
        total = total + c
        per[t.dataset] = per.get(t.dataset, IoUCounts(0, 0, 0, 0)) + c
    return {"iou": total.iou, "by_dataset": {k: v.iou for k, v in sorted(per.items())}}


def all_cropland(tiles: Sequence[Tile]) -> dict[str, Any]:
    """IoU of predicting cropland everywhere (the constant guess to beat)."""
    total = IoUCounts(0, 0, 0, 0)
    per: dict[str, IoUCounts] = {}
    for t in tiles:
        c = iou_counts(np.ones_like(t.mask), t.mask)
        total = total + c
        per[t.dataset] = per.get(t.dataset, IoUCounts(0, 0, 0, 0)) + c
    return {"iou": total.iou, "by_dataset": {k: v.iou for k, v in sorted(per.items())}}


def select_by_confidence(engine: Any, pool: Sequence[Tile], unlabelled: Sequence[int], *,
                         n: int, cfg: ReplayConfig, rng: np.random.Generator,
                         ) -> list[tuple[int, float]]:
    """The app's pick among ``unlabelled`` (indices into ``pool``): ``(index, score)``.

    Each tile's signal is what a round stores for a block prediction (low confidence =
    1 - mean |2p - 1| over the whole image; the labels are unknown to the app), ranked by
    :func:`select_spread` with the round's weights. Tiles have no coordinates here, so the
    spreading cell is off (``cell_deg=0``).
    """
    idx = list(unlabelled)
    if cfg.candidates is not None and len(idx) > cfg.candidates:
        idx = sorted(int(i) for i in rng.choice(idx, cfg.candidates, replace=False))
    cands = []
    for i in idx:
        prob = _predict(engine, pool[i].image, cfg)[1]
        cands.append(Candidate(block_id=i, lon=0.0, lat=0.0, p_incorrect=None,
                               low_confidence=1.0 - mean_confidence(prob), disagreement=None))
    return [(p.block_id, p.score) for p in select_spread(cands, n=n, cell_deg=0.0,
                                                         weights=cfg.weights)]


@dataclass
class _Arm:
    engine: Any
    labelled: list[int]
    curve: list[dict[str, Any]]


def replay(pool: Sequence[Tile], validation: Sequence[Tile], *,
           make_engine: Callable[[], Any], train_options: Any, config: ReplayConfig,
           on_round: Callable[[str, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run both arms; see the module docstring. ``train_options`` (a ``TrainOptions``) is the
    same every round and arm (its seed is offset by the round so crops differ per round).

    ``on_round(arm, point)`` is called after each evaluation (progress output).
    """
    if not validation:
        raise ValueError("the replay needs validation tiles")
    need = config.initial + config.per_round
    if len(pool) < need:
        raise ValueError(f"the replay needs at least {need} training tiles (initial "
                         f"{config.initial} + one round of {config.per_round}); got {len(pool)}")
    t_start = time.monotonic()
    rng = np.random.default_rng(config.seed)
    initial = sorted(int(i) for i in rng.permutation(len(pool))[:config.initial])

    def fit(engine: Any, labelled: list[int], rnd: int) -> dict[str, Any]:
        opts = train_options.model_copy(update={"seed": int(train_options.seed) + rnd})
        res: dict[str, Any] = engine.train([(pool[i].image, pool[i].mask) for i in labelled],
                                           options=opts)
        return {"steps": len(res.get("step_losses", [])), "seconds": res.get("seconds")}

    def point(name: str, arm: _Arm, rnd: int, trained: dict[str, Any],
              picked: list[Any], scores: dict[str, Any] | None = None) -> None:
        p = {"round": rnd, "labels": len(arm.labelled),
             **(scores or evaluate(arm.engine, validation, config)),
             "train": trained, "added": picked}
        arm.curve.append(p)
        if on_round is not None:
            on_round(name, p)

    engine0 = make_engine()
    trained0 = fit(engine0, initial, 0)
    scores0 = evaluate(engine0, validation, config)  # one model for both arms: scored once
    arms = {name: _Arm(copy.deepcopy(engine0), list(initial), []) for name in ARMS}
    del engine0
    for name, arm in arms.items():
        point(name, arm, 0, trained0, [pool[i].name for i in initial], scores0)
    pick_rng = {"selection": np.random.default_rng([config.seed, 1]),
                "random": np.random.default_rng([config.seed, 2])}
    for rnd in range(1, config.rounds + 1):
        for name, arm in arms.items():
            taken = set(arm.labelled)
            unlabelled = [i for i in range(len(pool)) if i not in taken]
            if not unlabelled:
                continue
            k = min(config.per_round, len(unlabelled))
            if name == "selection":
                picks = select_by_confidence(arm.engine, pool, unlabelled, n=k, cfg=config,
                                             rng=pick_rng[name])
                added = [i for i, _ in picks]
                picked: list[Any] = [{"tile": pool[i].name, "score": s} for i, s in picks]
            else:
                added = sorted(int(i) for i in pick_rng[name].choice(unlabelled, k,
                                                                     replace=False))
                picked = [pool[i].name for i in added]
            arm.labelled += added
            point(name, arm, rnd, fit(arm.engine, arm.labelled, rnd), picked)
    curves = {name: [(float(p["labels"]), float(p["iou"])) for p in arm.curve
                     if np.isfinite(p["iou"])] for name, arm in arms.items()}
    target = curves["random"][-1][1] if curves["random"] else float("nan")
    reach = {}
    for name in ARMS:
        pts = sorted((CurvePoint(n, v) for n, v in curves[name]), key=lambda q: q.labels)
        first = next((p.labels for p in pts if p.iou >= target), None)
        reach[name] = {"labels": first, "interpolated": labels_to_reach(pts, target)}
    savings: dict[str, Any] | None = None
    try:
        savings = annotation_savings(curves["selection"], curves["random"]).to_dict()
    except ValueError:
        savings = None
    return {
        "schema": SCHEMA,
        "config": config.model_dump(mode="json"),
        "train_options": train_options.model_dump(mode="json"),
        "n_pool": len(pool), "n_validation": len(validation),
        "validation_tiles": [t.name for t in validation],
        "all_cropland": all_cropland(validation),
        "arms": {name: arm.curve for name, arm in arms.items()},
        "target_iou": target,
        "labels_to_reach_random_final": reach,
        "savings": savings,
        "seconds": round(time.monotonic() - t_start, 1),
        "ignore_value": IGNORE,
    }


def replay_combine(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Several seeds' replays (each its own starting set, picks, crops and validation fold) as
    one result of the same shape: per round the mean IoU of each arm, beside every seed's IoU,
    their standard deviation and the paired difference selection − random (mean and range:
    the arms of one seed share its start and validation, so the difference is the signal and
    the seeds' spread is its noise). The labels to reach the random arm's final IoU and the
    savings are read off the mean curves. One run is returned as it is.
    """
    if not runs:
        raise ValueError("no replay runs to combine")
    if len(runs) == 1:
        return dict(runs[0])
    shapes = {tuple((p["round"], p["labels"]) for p in r["arms"]["random"]) for r in runs}
    if len(shapes) != 1:
        raise ValueError("replay runs with different rounds or labels cannot be combined")
    arms: dict[str, list[dict[str, Any]]] = {}
    for name in ARMS:
        arms[name] = []
        for i, p in enumerate(runs[0]["arms"][name]):
            ious = [float(r["arms"][name][i]["iou"]) for r in runs]
            arms[name].append({"round": p["round"], "labels": p["labels"],
                               "iou": float(np.mean(ious)), "iou_seeds": ious,
                               "iou_sd": float(np.std(ious, ddof=1))})
    diff = []
    for s_, r_ in zip(arms["selection"], arms["random"], strict=True):
        d = [a - b for a, b in zip(s_["iou_seeds"], r_["iou_seeds"], strict=True)]
        diff.append({"round": s_["round"], "labels": s_["labels"], "mean": float(np.mean(d)),
                     "min": float(min(d)), "max": float(max(d)),
                     "selection_better": sum(x > 0 for x in d)})
    curves = {name: [(float(p["labels"]), p["iou"]) for p in arms[name]] for name in ARMS}
    target = curves["random"][-1][1]
    reach = {}
    for name in ARMS:
        pts = [CurvePoint(n, v) for n, v in curves[name]]
        first = next((p.labels for p in pts if p.iou >= target), None)
        reach[name] = {"labels": first, "interpolated": labels_to_reach(pts, target)}
    base = [float(r["all_cropland"]["iou"]) for r in runs]
    return {
        "schema": SCHEMA,
        "seeds": [r["config"]["seed"] for r in runs],
        "config": runs[0]["config"],
        "train_options": runs[0]["train_options"],
        "n_pool": round(float(np.mean([r["n_pool"] for r in runs]))),
        "n_validation": round(float(np.mean([r["n_validation"] for r in runs]))),
        "all_cropland": {"iou": float(np.mean(base)), "iou_seeds": base},
        "arms": arms,
        "difference": diff,
        "target_iou": target,
        "labels_to_reach_random_final": reach,
        "savings": annotation_savings(curves["selection"], curves["random"]).to_dict(),
        "runs": [{k: v for k, v in r.items() if k != "validation_tiles"} for r in runs],
        "seconds": round(sum(float(r["seconds"]) for r in runs), 1),
        "ignore_value": IGNORE,
    }


def plot(result: dict[str, Any], dest: Any) -> None:
    """IoU per number of labelled tiles for both arms, with the all-cropland line (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for name, style in (("selection", "o-"), ("random", "s--")):
        pts = result["arms"][name]
        xs, ys = [p["labels"] for p in pts], [p["iou"] for p in pts]
        line = ax.plot(xs, ys, style, label=name)[0]
        if all("iou_sd" in p for p in pts):  # several seeds: their spread around the mean
            sd = np.array([p["iou_sd"] for p in pts])
            ax.fill_between(xs, np.array(ys) - sd, np.array(ys) + sd, alpha=0.15,
                            color=line.get_color())
    ax.axhline(result["all_cropland"]["iou"], color="grey", lw=1, ls=":",
               label="all cropland")
    ax.set_xlabel("labelled tiles")
    ax.set_ylabel("validation IoU (cropland)")
    engine = result.get("engine", {}).get("name", "")
    seeds = result.get("seeds")
    over = f", mean ± sd of {len(seeds)} seeds" if seeds else ""
    ax.set_title(f"Replay: app selection vs random ({engine}{over})")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(dest)
    plt.close(fig)
