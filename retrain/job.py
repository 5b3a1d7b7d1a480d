"""One retraining round: rule labels + human labels -> a candidate -> the promotion gate -> announce.

A candidate is promoted only if it beats the model in the stream on the gate metric, measured on
a held-out set of human-labelled products that neither model trained on. A failed or worse
candidate never reaches the stream. A Redis lock keeps two rounds from running at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from prodcat.categoriser import Categoriser
from prodcat.errors import ProdcatError
from prodcat.record import ProductRecord
from prodcat.taxonomy import Taxonomy
from retrain.resolution import ProductLabels
from retrain.weights import RuleTrust, decided_matrix

log = logging.getLogger(__name__)

# (records, their label sets, taxonomy, sample_weight: (n,) or (n, C), or None) -> the candidate
Trainer = Callable[[Sequence[ProductRecord], Sequence[set[str]], Taxonomy, np.ndarray | None], Categoriser]


class RetrainBusy(ProdcatError):
    """Another retraining round holds the lock."""


def in_holdout(product_id: str, share: float) -> bool:
    """Stable per product: the same products stay held out from round to round."""
    digest = hashlib.blake2b(product_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < share


def training_targets(rule_labels: Mapping[str, set[str]], human: Mapping[str, ProductLabels],
                     taxonomy: Taxonomy) -> dict[str, set[str]]:
    """Per product: its rule labels, where people said otherwise overridden, closed under ancestors."""
    targets = {}
    for pid in set(rule_labels) | set(human):
        labels = set(rule_labels.get(pid, ()))
        if pid in human:
            labels = (labels - human[pid].negatives) | human[pid].positives
        targets[pid] = taxonomy.close(labels)
    return targets


@dataclass(frozen=True)
class GatePolicy:
    """Which metric decides, and by how much a candidate must win."""

    metric: str = "micro_f1"
    min_gain: float = 0.0
    holdout_share: float = 0.3
    min_holdout: int = 20


@dataclass
class GateResult:
    promote: bool
    reason: str
    candidate: dict[str, float] = field(default_factory=dict)
    current: dict[str, float] = field(default_factory=dict)


def gate(candidate: Categoriser, current: Categoriser, records: Sequence[ProductRecord],
         truth: Sequence[ProductLabels], policy: GatePolicy) -> GateResult:
    """Compare the two on the human-labelled holdout: the people's positives are the truth."""
    from models.metrics import evaluate  # numpy only

    if len(records) < policy.min_holdout:
        return GateResult(False, f"only {len(records)} held-out human-labelled products; "
                                 f"the gate needs {policy.min_holdout}")
    taxonomy = candidate.taxonomy
    y_true = taxonomy.to_matrix([taxonomy.close(t.positives) for t in truth])

    def score(model: Categoriser) -> dict[str, float]:
        decided = [set(c.categories) & set(taxonomy.ids) for c in model.categorise_batch(records)]
        return evaluate(y_true, taxonomy.to_matrix(decided), taxonomy)

    cand, cur = score(candidate), score(current)
    gain = cand[policy.metric] - cur[policy.metric]
    promote = gain > policy.min_gain
    verdict = "better" if promote else "not better"
    return GateResult(promote, f"{policy.metric} {cand[policy.metric]:.4f} vs {cur[policy.metric]:.4f} "
                               f"(gain {gain:+.4f}, needed > {policy.min_gain}): {verdict}", cand, cur)


@dataclass
class RoundReport:
    """What a round did; stored in the Elasticsearch `evaluations` index."""

    started_at: str
    candidate_version: str | None
    current_version: str
    promoted: bool
    reason: str
    n_train: int
    n_human_labelled: int
    n_holdout: int
    candidate_metrics: dict[str, float] = field(default_factory=dict)
    current_metrics: dict[str, float] = field(default_factory=dict)
    importance: dict[str, float] = field(default_factory=dict)  # see importance_summary

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def training_weights(train_ids: Sequence[str], targets: Mapping[str, set[str]], rule_labels: Mapping[str, set[str]],
                     human: Mapping[str, ProductLabels], taxonomy: Taxonomy, *,
                     importance: Mapping[str, float] | None = None, human_weight: float = 1.0,
                     correct_rules: bool = False) -> np.ndarray:
    """The ``sample_weight`` of a round: (n,) per product, or (n, C) per entry with ``correct_rules``.

    A human-labelled product weighs ``human_weight * importance[pid]`` (the self-normalised 1/p
    of :func:`retrain.weights.importance_weights`), any other 1. ``correct_rules`` multiplies in
    :meth:`RuleTrust.entry_weights`, estimated on the human labels of ``human`` (pass only the
    training products' labels: the holdout must not shape the candidate).
    """
    if human_weight <= 0:
        raise ValueError(f"Expected human_weight > 0. Received: human_weight={human_weight}")
    importance = importance or {}
    rows = np.array([human_weight * importance.get(pid, 1.0) if pid in human else 1.0 for pid in train_ids],
                    dtype=np.float32)
    if not correct_rules or not human:
        return rows
    trust = RuleTrust.estimate(rule_labels, human, importance, taxonomy)
    y = taxonomy.to_matrix([taxonomy.close(targets[pid]) for pid in train_ids])
    entry = trust.entry_weights(y, decided_matrix(train_ids, human, taxonomy))
    return rows[:, None] * entry


def importance_summary(product_ids: Sequence[str], importance: Mapping[str, float]) -> dict[str, float]:
    """What a round's report keeps of the 1/p weights its human-labelled training products had.

    ``n`` products; ``min``, ``max`` and ``mean`` of their weights (the weights are normalised over
    every labelled product, the holdout included, so the mean is near 1, not exactly 1); and
    ``effective`` = (sum w)^2 / sum w^2, Kish's effective number of labels: how many equally
    weighted labels the weighted ones are worth (``n`` when all weigh the same).
    """
    w = np.array([importance.get(pid, 1.0) for pid in product_ids], dtype=np.float64)
    if not len(w):
        return {"n": 0}
    return {"n": len(w), "min": float(w.min()), "max": float(w.max()), "mean": float(w.mean()),
            "effective": float(w.sum() ** 2 / (w ** 2).sum())}


def run_round(records: Sequence[ProductRecord], rule_labels: Mapping[str, set[str]],
              human: Mapping[str, ProductLabels], current: Categoriser, *, policy: GatePolicy,
              train: Trainer, importance: Mapping[str, float] | None = None, human_weight: float = 1.0,
              correct_rules: bool = False) -> tuple[RoundReport, Categoriser | None]:
    """Train on everything but the holdout, gate against ``current``; returns the report and the candidate.

    ``train(records, label_sets, taxonomy, sample_weight)`` builds the candidate (models.training.train_ensemble
    with the job's settings); ``importance`` holds the self-normalised 1/p weights of importance-weighted
    active learning, ``human_weight`` and ``correct_rules`` are explained in :func:`training_weights`.
    """
    started = datetime.now(timezone.utc).isoformat()
    taxonomy = current.taxonomy
    by_id = {r.id: r for r in records}
    held = [pid for pid in human if pid in by_id and in_holdout(pid, policy.holdout_share)]
    held_set = set(held)
    targets = training_targets(rule_labels, human, taxonomy)
    train_ids = [pid for pid in by_id if pid not in held_set and targets.get(pid) is not None]
    weights = training_weights(train_ids, targets, rule_labels, {p: h for p, h in human.items() if p not in held_set},
                               taxonomy, importance=importance, human_weight=human_weight, correct_rules=correct_rules)
    base: dict[str, Any] = dict(
        started_at=started, current_version=current.version, n_train=len(train_ids), n_human_labelled=len(human),
        n_holdout=len(held), importance=importance_summary([p for p in train_ids if p in human], importance or {}))
    try:
        candidate = train([by_id[p] for p in train_ids], [targets[p] for p in train_ids], taxonomy, weights)
    except Exception as exc:  # noqa: BLE001 - a failed candidate is reported, never promoted
        log.exception("training failed")
        return RoundReport(candidate_version=None, promoted=False, reason=f"training failed: {exc}", **base), None
    verdict = gate(candidate, current, [by_id[p] for p in held], [human[p] for p in held], policy)
    return RoundReport(candidate_version=candidate.version, promoted=verdict.promote, reason=verdict.reason,
                       candidate_metrics=verdict.candidate, current_metrics=verdict.current, **base), candidate
