"""Train the whole classifier: featuriser, members, combiner and thresholds, without leaking labels.

:func:`train_ensemble` does, in order:

1. fit the featuriser on the training records and transform them (with image vectors if given);
2. for each member, **out-of-fold** probabilities (:func:`models.folds.out_of_fold`, ``folds``
   folds): every row is predicted by a copy of the member that never saw it;
3. split the rows (seeded) into a combiner part and a held-out **validation** part; fit the
   combiner on the combiner part's OOF probabilities, then the per-category
   :class:`~models.thresholds.Thresholds` (F-beta, ``beta`` < 1 favours precision) on the
   combiner's output for the validation part, which neither the combiner nor any member that
   predicted it has seen;
4. refit every member on all rows; the :class:`~models.classifier.Classifier` serves those.

Metrics of the validation part (OOF members -> combiner -> thresholds) are kept in
``classifier.metrics`` under ``validation``.

**Fine-tuning** (``train_ensemble(..., init=previous, epochs=...)``): the same steps, except that
step 1 reuses ``previous``'s fitted featuriser (same vocabulary, so every member's input shapes
match; tokens first seen since ``previous`` was trained are out of vocabulary) and every member,
its out-of-fold copies and its final refit, starts from ``previous``'s member weights
(:meth:`models.members.base.Member.fit` ``warm_start_from``) for the given, usually smaller,
number of epochs. The combiner and thresholds are refitted as usual. The price: ``previous`` has
seen (almost) every row the out-of-fold copies then predict, so their probabilities are no
longer out-of-fold but optimistic, and the combiner and thresholds are fitted to members that
look more certain than they are on new products (thresholds a little too low, the validation
metrics in ``classifier.metrics`` too good). That is a measured trade-off, not a hidden one
(``benchmarks/results/fine_tune.md``: F1 and minutes against retraining from scratch); retrain
from scratch now and then, and after a taxonomy change, which fine-tuning refuses.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from typing import Any, Literal, NamedTuple

import numpy as np

from models.classifier import Classifier
from models.config import FeatureConfig
from models.ensemble import Ensemble, MeanEnsemble, StackedEnsemble, WeightedEnsemble
from models.errors import ConfigError, DataError
from models.featuriser import Featuriser
from models.folds import out_of_fold
from models.labels import LabelWeighting, label_matrix
from models.members import MEMBERS, create_member
from models.metrics import evaluate
from models.thresholds import Thresholds
from prodcat.record import ProductRecord
from prodcat.taxonomy import Taxonomy

__all__ = ["DEFAULT_EPOCHS", "TEXT_MEMBERS", "CombinerKind", "OutOfFold", "make_combiner", "new_version", "train_ensemble"]

CombinerKind = Literal["stacked", "weighted", "mean"]
TEXT_MEMBERS: tuple[str, ...] = ("logreg", "mlp", "wide_deep", "textcnn", "gru")
# Fixed epochs (no early stopping: the refit on all rows has no held-out set to stop on).
# Small on purpose: training runs inline in retraining on a shared CPU.
DEFAULT_EPOCHS: dict[str, int] = {"logreg": 12, "mlp": 6, "wide_deep": 5, "textcnn": 5, "gru": 4, "image_head": 10,
                                  "joint": 5}

class OutOfFold(NamedTuple):
    """What the combiner and thresholds were fitted on: OOF member probabilities and labels, and the two parts."""

    member_probs: np.ndarray  # (m, n, C)
    y: np.ndarray  # (n, C)
    fit_idx: np.ndarray  # rows the combiner was fitted on
    val_idx: np.ndarray  # rows the thresholds were tuned on


Progress = Callable[[str, int, int], None]  # (stage description, step done, steps in total)


def make_combiner(kind: CombinerKind, *, seed: int = 0) -> Ensemble:
    """An unfitted combiner of the given kind."""
    if kind == "stacked":
        return StackedEnsemble(seed=seed)
    if kind == "weighted":
        return WeightedEnsemble(seed=seed)
    if kind == "mean":
        return MeanEnsemble()
    raise ConfigError(f"Expected combiner 'stacked', 'weighted' or 'mean'. Received: combiner={kind!r}")


def new_version(*parts: Any) -> str:
    """``model-<UTC timestamp>-<8 hex digits of a hash of parts>``."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"model-{stamp}-{digest}"


def _entry_weights(y: np.ndarray, taxonomy: Taxonomy, weighting: LabelWeighting,
                   sample_weight: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(class_weight_vector, sample_weight) with the PU entry weights times the per-row importance weights."""
    weights = weighting.compute(y, taxonomy)
    entry = weights.sample_weight
    if sample_weight is not None:
        sw = np.asarray(sample_weight, dtype=np.float32)
        if sw.shape not in ((len(y),), y.shape) or not np.isfinite(sw).all() or (sw < 0).any():
            raise DataError(f"Expected sample_weight as finite non-negative numbers, one per record ({len(y)},) "
                            f"or one per label entry {y.shape}. Received: shape={sw.shape}")
        # per record (importance weights) or per entry (retrain.weights.RuleTrust on rule labels)
        base = entry if entry is not None else np.ones_like(y, dtype=np.float32)
        entry = (sw[:, None] if sw.ndim == 1 else sw) * base
    return weights.class_weight_vector, entry


def _check_init(init: Classifier, taxonomy: Taxonomy, config: FeatureConfig | None) -> None:
    """Refuse to fine-tune ``init`` for another taxonomy or another feature config (ConfigError)."""
    expected, received = tuple(init.taxonomy.ids), tuple(taxonomy.ids)
    if expected != received:
        missing = [c for c in expected if c not in set(received)]
        added = [c for c in received if c not in set(expected)]
        where = next((i for i, (a, b) in enumerate(zip(expected, received)) if a != b), min(len(expected),
                                                                                           len(received)))
        raise ConfigError(
            f"Expected the taxonomy of the classifier being fine-tuned ({init.version}): {len(expected)} category "
            f"ids in its order. Received: {len(received)} ids, first difference at position {where}; missing "
            f"{missing[:5]}{' ...' if len(missing) > 5 else ''}, new {added[:5]}{' ...' if len(added) > 5 else ''}. "
            "Fine-tuning keeps each output column's weights, so the categories must be the same ids in the same "
            "order: train from scratch (init=None) after a taxonomy change")
    if config is not None and config != init.featuriser.config:
        raise ConfigError(f"Expected config=None or the feature config of the classifier being fine-tuned "
                          f"({init.version}). Received: a different FeatureConfig; fine-tuning reuses its "
                          "featuriser: pass config=None, or train from scratch (init=None) with the new config")


def train_ensemble(
    records: Sequence[ProductRecord],
    label_sets: Sequence[Iterable[str]],
    taxonomy: Taxonomy,
    *,
    config: FeatureConfig | None = None,
    members: Sequence[str] = TEXT_MEMBERS,
    combiner: CombinerKind = "stacked",
    beta: float = 0.5,
    folds: int = 3,
    epochs: int | dict[str, int] | None = None,
    member_params: dict[str, dict[str, Any]] | None = None,
    image_vectors: np.ndarray | None = None,
    sample_weight: np.ndarray | None = None,
    weighting: LabelWeighting | None = None,
    validation_share: float = 0.25,
    min_support: int = 3,
    seed: int = 0,
    version: str | None = None,
    tune_on: Literal["all", "labelled"] = "all",
    keep_oof: bool = False,
    on_progress: Progress | None = None,
    init: Classifier | None = None,
) -> Classifier:
    """Train a :class:`Classifier` on ``records`` labelled with ``label_sets`` (category ids of ``taxonomy``).

    ``members``: keys of :data:`models.members.MEMBERS`; ``"image_head"`` is added when
    ``image_vectors`` (n x dim, NaN rows for products without an image) are given and the config
    has a dense field. ``epochs``: one number for every member or per member name (defaults in
    :data:`DEFAULT_EPOCHS`). ``weighting``: class balancing and the PU correction for rule labels
    (default: class balancing only). ``sample_weight``: (n,) importance weights (active learning), or
    (n, C) per-entry weights (importance x rule trust, :func:`retrain.job.training_weights`).
    ``min_support``: validation positives a category needs for its own threshold.
    ``tune_on="labelled"`` fits the combiner and tunes the thresholds only on rows with at least
    one positive label: with positive-only rule labels a product no rule fired on is not a
    negative, and counting it as one pushes every threshold up. ``keep_oof``
    keeps the out-of-fold probabilities on ``classifier.oof_`` (for benchmarks; not saved).
    ``init``: fine-tune this classifier instead of training from scratch (see the module's
    docstring: its featuriser is reused, its members' weights are the starting point, ``epochs``
    counts the fine-tuning epochs); its taxonomy must be ``taxonomy`` (same ids, same order),
    every member of ``members`` must be one of its members, and ``config``, when given, its
    featuriser's config; else :class:`~models.errors.ConfigError`.
    """
    started = time.perf_counter()
    records = list(records)
    n = len(records)
    if len(label_sets) != n:
        raise DataError(f"Expected one label set per record ({n}). Received: {len(label_sets)}")
    if not 2 <= folds <= n:
        raise ConfigError(f"Expected 2 <= folds <= number of records ({n}). Received: folds={folds}")
    if not 0.0 < validation_share < 1.0:
        raise ConfigError(f"Expected 0 < validation_share < 1. Received: validation_share={validation_share}")
    if init is not None:
        _check_init(init, taxonomy, config)
        config = init.featuriser.config
    config = config if config is not None else FeatureConfig.default()
    names = list(dict.fromkeys(members))
    has_dense = any(spec.kind == "dense" for spec in config.fields.values())
    if image_vectors is not None and has_dense and "image_head" not in names:
        names.append("image_head")
    if image_vectors is None and "image_head" in names:
        names.remove("image_head")  # nothing to train it on
    unknown = [m for m in names if m not in MEMBERS]
    if unknown or not names:
        raise ConfigError(f"Expected member names from {sorted(MEMBERS)}. Received: {list(members)}")
    if init is not None and not set(names) <= set(init.members):
        raise ConfigError(f"Expected members that the classifier being fine-tuned ({init.version}) has: "
                          f"{list(init.members)}. Received: {names}; fine-tune with those members, or train from "
                          "scratch (init=None) to add one")
    start_from = dict(init.members) if init is not None else {}
    if isinstance(epochs, dict):
        per_member_epochs = {**DEFAULT_EPOCHS, **epochs}
    elif epochs is not None:
        per_member_epochs = {**DEFAULT_EPOCHS, **dict.fromkeys(names, int(epochs))}
    else:
        per_member_epochs = dict(DEFAULT_EPOCHS)
    member_params = member_params or {}
    weighting = weighting if weighting is not None else LabelWeighting()

    def report(stage: str, done: int, total: int) -> None:
        if on_progress is not None:
            on_progress(stage, done, total)

    steps = len(names) * (folds + 1) + 2
    step = 0
    report("featurising", step, steps)
    y = label_matrix([set(s) for s in label_sets], taxonomy)
    featuriser = init.featuriser if init is not None else Featuriser(config).fit(records)
    x = featuriser.transform(records, image_vectors if has_dense else None)
    class_weights, entry_weights = _entry_weights(y, taxonomy, weighting, sample_weight)

    def params_of(name: str) -> dict[str, Any]:
        return {"epochs": per_member_epochs.get(name, 5), "seed": seed, **member_params.get(name, {})}

    def rows(index: np.ndarray) -> dict[str, np.ndarray]:
        return {key: array[index] for key, array in x.items()}

    # --- out-of-fold member probabilities ------------------------------------------------------
    oof: list[np.ndarray] = []
    for name in names:
        def fit_predict(train_idx: np.ndarray, val_idx: np.ndarray, name: str = name) -> np.ndarray:
            nonlocal step
            member = create_member(name, featuriser, **params_of(name))
            member.fit(rows(train_idx), y[train_idx], class_weight_vector=class_weights,
                       sample_weight=None if entry_weights is None else entry_weights[train_idx],
                       warm_start_from=start_from.get(name))
            step += 1
            report(f"{name}: out-of-fold", step, steps)
            return member.predict_proba(rows(val_idx))

        oof.append(out_of_fold(fit_predict, n, k=folds, seed=seed).astype(np.float32))

    # --- combiner on one part, thresholds on the other -----------------------------------------
    order = np.random.default_rng(seed + 1).permutation(n)
    n_val = max(1, min(n - 1, int(round(n * validation_share))))
    val_idx, fit_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
    if tune_on == "labelled":
        labelled = y.any(axis=1)
        if labelled[val_idx].sum() < 2 or labelled[fit_idx].sum() < 2:
            raise DataError("tune_on='labelled' needs labelled rows in both the combiner and the validation part; "
                            f"received {int(labelled.sum())} labelled rows of {n}")
        val_idx, fit_idx = val_idx[labelled[val_idx]], fit_idx[labelled[fit_idx]]
    elif tune_on != "all":
        raise ConfigError(f"Expected tune_on 'all' or 'labelled'. Received: tune_on={tune_on!r}")
    combiner_model = make_combiner(combiner, seed=seed).fit([p[fit_idx] for p in oof], y[fit_idx])
    val_probs = combiner_model.predict_proba([p[val_idx] for p in oof])
    thresholds = Thresholds(beta=beta, min_support=min_support, seed=seed).fit(val_probs, y[val_idx], taxonomy)
    step += 1
    report("combiner and thresholds", step, steps)
    validation = evaluate(y[val_idx] > 0.5, thresholds.decide(val_probs), taxonomy, beta=beta)
    per_member = {}
    for name, p in zip(names, oof):
        member_thresholds = Thresholds(beta=beta, min_support=min_support, seed=seed).fit(
            np.nan_to_num(p[val_idx], nan=0.0), y[val_idx], taxonomy)
        per_member[name] = evaluate(y[val_idx] > 0.5, member_thresholds.decide(np.nan_to_num(p[val_idx], nan=0.0)),
                                    taxonomy, beta=beta)

    # --- refit on everything ------------------------------------------------------------------
    fitted = {}
    for name in names:
        member = create_member(name, featuriser, **params_of(name))
        member.fit(x, y, class_weight_vector=class_weights, sample_weight=entry_weights,
                   warm_start_from=start_from.get(name))
        fitted[name] = member
        step += 1
        report(f"{name}: refit on all rows", step, steps)

    training = {
        "n_records": n, "n_categories": len(taxonomy), "members": names, "combiner": combiner, "beta": beta,
        "folds": folds, "epochs": {m: per_member_epochs.get(m, 5) for m in names},
        "weighting": weighting.get_config(), "importance_weights": sample_weight is not None,
        "validation_share": validation_share, "tune_on": tune_on, "seed": seed,
        "fine_tuned_from": init.version if init is not None else None,
        "seconds": round(time.perf_counter() - started, 1),
        "label_positives": int(y.sum()), "labelled_share": float((y.sum(axis=1) > 0).mean()),
    }
    version = version or new_version(training, thresholds.to_dict()["thresholds"], taxonomy.ids)
    step += 1
    report("done", step, steps)
    classifier = Classifier(featuriser=featuriser, members=fitted, combiner=combiner_model, thresholds=thresholds,
                            taxonomy=taxonomy, version=version,
                            metrics={"validation": validation, "validation_members": per_member}, training=training)
    if keep_oof:
        classifier.oof_ = OutOfFold(np.stack(oof), y, fit_idx, val_idx)
    return classifier
