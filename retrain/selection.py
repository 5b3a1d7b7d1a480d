"""Pool-based batch selection: which B unlabelled products people label next.

Scores are plain numpy functions (:func:`uncertainty_scores`, :func:`disagreement_scores`), thin
wrappers of :mod:`models.signals`, where the worker's signals are defined too;
strategies are small classes with one verb, ``select(pool, batch_size, rng) -> Selection``.
Score-based strategies take the top B (ties broken at random) and, with ``diverse=True``, skip
candidates whose title is a near-duplicate of one already chosen: affiliate catalogues hold
many near-identical short titles ("Nike Men Red T-Shirt" in six sizes), and plain uncertainty
sampling then spends the whole batch on one product family, which is why peers found it no
better than random.

:class:`ImportanceWeightedSelection` samples instead of ranking, and weights what it picks so
that a model trained on the labelled batch still estimates pool-level quantities without bias.

:class:`StreamSelection` is production's strategy: the worker's stream sampler
(:mod:`prodcat.sampling`) replayed on the pool. The pool-based strategies are the baselines it
is measured against, behind the same ``select`` interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from models import signals
from models.signals import UncertaintyKind, product_signals
from prodcat.sampling import DAY_S, SamplingPolicy, StreamSampler
from retrain.diversity import distinct_in_order
from retrain.weights import importance_weights

__all__ = [
    "CombinedSelection", "DisagreementSelection", "ImportanceWeightedSelection", "Pool", "RandomSelection",
    "ScoreSelection", "Selection", "Strategy", "StreamSelection", "UncertaintySelection", "disagreement_scores",
    "minmax", "uncertainty_scores",
]

DisagreementKind = Literal["vote_entropy", "vote", "variance"]


@dataclass(frozen=True)
class Pool:
    """The unlabelled products: probabilities (n x C), thresholds (C,), optionally member
    probabilities (m x n x C) for disagreement and titles (n) for diversity.

    A threshold above 1 (:data:`models.thresholds.NEVER`) marks a category the model never
    decides on its own; it carries no doubt and is left out of every score.
    """

    probabilities: np.ndarray
    thresholds: np.ndarray
    members: np.ndarray | None = None
    texts: Sequence[str | None] | None = None

    def __post_init__(self) -> None:
        p = np.asarray(self.probabilities, dtype=np.float64)
        t = np.asarray(self.thresholds, dtype=np.float64)
        if p.ndim != 2 or t.shape != (p.shape[1],):
            raise ValueError(f"Expected probabilities (n, C) and thresholds (C,). "
                             f"Received: {p.shape} and {t.shape}")
        if not np.all((p >= 0) & (p <= 1)):  # also catches NaN
            raise ValueError("Expected probabilities in [0, 1]; received values outside it or NaN")
        if not np.all(t >= 0):
            raise ValueError("Expected thresholds >= 0 (above 1: never decided); received negative values or NaN")
        object.__setattr__(self, "probabilities", p)
        object.__setattr__(self, "thresholds", t)
        if self.members is not None:
            m = np.asarray(self.members, dtype=np.float64)
            if m.ndim != 3 or m.shape[1:] != p.shape:
                raise ValueError(f"Expected members of shape (m, {p.shape[0]}, {p.shape[1]}). Received: {m.shape}")
            object.__setattr__(self, "members", m)
        if self.texts is not None and len(self.texts) != p.shape[0]:
            raise ValueError(f"Expected {p.shape[0]} texts, one per product. Received: {len(self.texts)}")

    @property
    def n(self) -> int:
        return int(self.probabilities.shape[0])


@dataclass(frozen=True)
class Selection:
    """Chosen pool rows, their training weights (mean 1) and the scores they were chosen on;
    ``p``: the probabilities they were asked with (stream selection only), to re-weight across rounds."""

    indices: np.ndarray
    weights: np.ndarray
    scores: np.ndarray
    p: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.indices)


# --- scores -----------------------------------------------------------------------------------


def uncertainty_scores(probabilities: np.ndarray, thresholds: np.ndarray,
                       kind: UncertaintyKind = "threshold", *, undecided: bool = True) -> np.ndarray:
    """Per product, how close its most doubtful category is to the threshold (higher = more doubtful).

    :func:`models.signals.uncertainty` (the worker's definition; ``kind`` and ``undecided`` are
    explained there). ``undecided`` is on by default: a product for which no category reaches its
    threshold is a certain miss, not a confident one.
    """
    return signals.uncertainty(probabilities, thresholds, kind, undecided=undecided)


def disagreement_scores(members: np.ndarray, thresholds: np.ndarray,
                        kind: DisagreementKind = "vote_entropy") -> np.ndarray:
    """Per product, how much ensemble members split on their most disputed category, in [0, 1].

    :func:`models.signals.disagreement` with ``reduce="max"`` (the worker averages instead: a
    pool ranking wants the single most disputed category). ``vote_entropy`` is the old name of
    ``vote``; both are accepted.
    """
    name = {"vote_entropy": "vote", "vote": "vote", "variance": "variance"}.get(kind)
    if name is None:
        raise ValueError(f"Expected kind 'vote_entropy' (or 'vote') or 'variance'. Received: kind={kind!r}")
    return signals.disagreement(members, np.asarray(thresholds, dtype=np.float64), kind=name, reduce="max")


def minmax(scores: np.ndarray) -> np.ndarray:
    """Scores rescaled to [0, 1] over the pool (all zeros when they are all equal)."""
    s = np.asarray(scores, dtype=np.float64)
    span = s.max() - s.min() if s.size else 0.0
    return (s - s.min()) / span if span > 0 else np.zeros_like(s)


def _rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


# --- strategies -------------------------------------------------------------------------------


class Strategy(ABC):
    """Chooses up to ``batch_size`` pool rows for labelling."""

    @abstractmethod
    def select(self, pool: Pool, batch_size: int, rng: np.random.Generator | int | None = None) -> Selection:
        """The chosen rows, with their training weights and scores."""


class RandomSelection(Strategy):
    """The baseline: B rows uniformly without replacement, weight 1."""

    def select(self, pool: Pool, batch_size: int, rng: np.random.Generator | int | None = None) -> Selection:
        k = min(_check_batch(batch_size), pool.n)
        idx = _rng(rng).choice(pool.n, size=k, replace=False)
        return Selection(idx, np.ones(k), np.zeros(k))


def _check_batch(batch_size: int) -> int:
    if batch_size < 1:
        raise ValueError(f"Expected batch_size >= 1. Received: batch_size={batch_size}")
    return batch_size


class ScoreSelection(Strategy):
    """Top-B by :meth:`scores` (ties at random); ``diverse=True`` skips near-duplicate titles.

    The duplicate check runs on a shortlist of ``shortlist_factor * B`` top candidates, widened
    (x4) only if the shortlist holds fewer than B distinct titles.
    """

    def __init__(self, *, diverse: bool = False, similarity: float = 0.8,
                 analyzer: Literal["char", "word"] = "char", shortlist_factor: int = 5) -> None:
        if not 0 < similarity <= 1:
            raise ValueError(f"Expected 0 < similarity <= 1. Received: similarity={similarity}")
        if shortlist_factor < 1:
            raise ValueError(f"Expected shortlist_factor >= 1. Received: shortlist_factor={shortlist_factor}")
        self.diverse = diverse
        self.similarity = similarity
        self.analyzer = analyzer
        self.shortlist_factor = shortlist_factor

    @abstractmethod
    def scores(self, pool: Pool) -> np.ndarray:
        """One non-negative score per pool row; higher = more worth labelling."""

    def select(self, pool: Pool, batch_size: int, rng: np.random.Generator | int | None = None) -> Selection:
        k = min(_check_batch(batch_size), pool.n)
        scores = self.scores(pool)
        order = np.lexsort((_rng(rng).random(pool.n), -scores))  # by score, ties in random order
        if not self.diverse:
            idx = order[:k]
        elif pool.texts is None:
            raise ValueError(f"{type(self).__name__}(diverse=True) needs pool.texts (one title per product); "
                             "pass them or use diverse=False")
        else:
            window = self.shortlist_factor * k
            while True:
                idx = distinct_in_order(order[:window], pool.texts, k, similarity=self.similarity,
                                        analyzer=self.analyzer)
                if len(idx) == k or window >= pool.n:
                    break
                window *= 4
        return Selection(idx, np.ones(len(idx)), scores[idx])


def _members(pool: Pool, who: str) -> np.ndarray:
    if pool.members is None:
        raise ValueError(f"{who} needs pool.members (m x n x C member probabilities); "
                         "use UncertaintySelection for a single model")
    return pool.members


class UncertaintySelection(ScoreSelection):
    """Products closest to a threshold or with no category at all (see :func:`uncertainty_scores`)."""

    def __init__(self, kind: UncertaintyKind = "threshold", *, undecided: bool = True, **options) -> None:
        super().__init__(**options)
        self.kind, self.undecided = kind, undecided

    def scores(self, pool: Pool) -> np.ndarray:
        return uncertainty_scores(pool.probabilities, pool.thresholds, self.kind, undecided=self.undecided)


class DisagreementSelection(ScoreSelection):
    """Products on which ensemble members split (see :func:`disagreement_scores` for ``kind``)."""

    def __init__(self, kind: DisagreementKind = "vote_entropy", **options) -> None:
        super().__init__(**options)
        self.kind = kind

    def scores(self, pool: Pool) -> np.ndarray:
        return disagreement_scores(_members(pool, "DisagreementSelection"), pool.thresholds, self.kind)


class CombinedSelection(ScoreSelection):
    """``weight * minmax(uncertainty) + (1 - weight) * minmax(disagreement)``: the study's choice.

    Min-max over the pool puts both on one scale, so ``weight`` means what it says.
    """

    def __init__(self, weight: float = 0.5, uncertainty: UncertaintyKind = "threshold",
                 disagreement: DisagreementKind = "vote_entropy", *, undecided: bool = True, **options) -> None:
        if not 0 <= weight <= 1:
            raise ValueError(f"Expected 0 <= weight <= 1. Received: weight={weight}")
        super().__init__(**options)
        self.weight, self.uncertainty, self.disagreement = weight, uncertainty, disagreement
        self.undecided = undecided

    def scores(self, pool: Pool) -> np.ndarray:
        u = minmax(uncertainty_scores(pool.probabilities, pool.thresholds, self.uncertainty,
                                      undecided=self.undecided))
        if self.weight == 1:
            return u
        d = minmax(disagreement_scores(_members(pool, "CombinedSelection(weight < 1)"), pool.thresholds,
                                       self.disagreement))
        return self.weight * u + (1 - self.weight) * d


class ImportanceWeightedSelection(Strategy):
    """Sample by score, weight by inverse probability: labels stay informative AND unbiased.

    Estimator. Draw B rows i.i.d. (with replacement) from ``q_i = (1 - floor) s_i / sum(s) + floor / n``
    (``s`` the base strategy's scores; the uniform floor keeps every ``q_i >= floor / n``, so no
    weight exceeds ``1 / floor``). For any per-product quantity f (a loss, a label rate),
    ``(1/B) sum_b f(i_b) / (n q_{i_b})`` is an unbiased estimate of the pool mean ``(1/n) sum_i f_i``.
    A row drawn c times is labelled once, with c times the weight, so the estimate is unchanged.
    Returned weights make ``mean(weights * f[indices])`` that estimate; with ``self_normalise``
    (default) they are rescaled to mean exactly 1 (``sum(w f) / sum(w)``): consistent, a bias of
    order 1/B, less variance, and the training loss keeps its scale.

    No ``diverse`` option: skipping near-duplicates would change the inclusion probabilities and
    the weights would no longer correct for them.
    """

    def __init__(self, base: ScoreSelection | None = None, *, floor: float = 0.1, self_normalise: bool = True) -> None:
        if not 0 < floor <= 1:
            raise ValueError(f"Expected 0 < floor <= 1 (the uniform share of q). Received: floor={floor}")
        if base is not None and base.diverse:
            raise ValueError("ImportanceWeightedSelection needs a base strategy with diverse=False: "
                             "skipping duplicates would bias the weights")
        self.base = base or UncertaintySelection()
        self.floor = floor
        self.self_normalise = self_normalise

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        """The sampling distribution q over pool rows, from the base strategy's scores."""
        s = np.clip(np.asarray(scores, dtype=np.float64), 0, None)
        share = s / s.sum() if s.sum() > 0 else np.full(len(s), 1 / len(s))
        return (1 - self.floor) * share + self.floor / len(s)

    def select(self, pool: Pool, batch_size: int, rng: np.random.Generator | int | None = None) -> Selection:
        draws = _check_batch(batch_size)
        scores = self.base.scores(pool)
        q = self.probabilities(scores)
        idx, counts = np.unique(_rng(rng).choice(pool.n, size=draws, p=q), return_counts=True)
        # mean(w * f[idx]) = (1/B) sum_b f / (n q): the unbiased estimator, duplicates merged
        weights = counts * len(idx) / (draws * pool.n * q[idx])
        if self.self_normalise:
            weights = weights / weights.mean()
        return Selection(idx, weights, scores[idx])


class StreamSelection(Strategy):
    """The worker's own selection, replayed on a pool: what production would have asked for.

    The pool's rows arrive one simulated day in random order (uniform arrival times) and go
    through :class:`prodcat.sampling.StreamSampler`, the code the worker runs, with a budget of
    ``batch_size`` per day, on the worker's signals (:func:`models.signals.product_signals`).
    The number chosen is therefore random, around ``batch_size`` (the rate controller's
    accuracy). Weights are the self-normalised ``1/p`` (:func:`retrain.weights.importance_weights`);
    ``Selection.p`` keeps the ``p`` themselves so a caller can re-normalise over several rounds.

    ``arrivals_per_draw``: rows per draw call (the worker's micro-batch).
    """

    def __init__(self, policy: SamplingPolicy | None = None, *, arrivals_per_draw: int = 5) -> None:
        if arrivals_per_draw < 1:
            raise ValueError(f"Expected arrivals_per_draw >= 1. Received: arrivals_per_draw={arrivals_per_draw}")
        self.policy = policy or SamplingPolicy()
        self.arrivals_per_draw = arrivals_per_draw

    def select(self, pool: Pool, batch_size: int, rng: np.random.Generator | int | None = None) -> Selection:
        rng = _rng(rng)
        u, d = product_signals(pool.probabilities, pool.members, pool.thresholds)
        d = np.zeros(pool.n) if d is None else d
        order = rng.permutation(pool.n)
        times = np.sort(rng.uniform(0.0, DAY_S, pool.n))
        sampler = StreamSampler(replace(self.policy, budget_per_day=float(_check_batch(batch_size))),
                                seed=int(rng.integers(2**63)))
        chosen, p_chosen, score_chosen = [], [], []
        step = self.arrivals_per_draw
        for start in range(0, pool.n, step):
            rows = order[start:start + step]
            now = float(times[min(start + step, pool.n) - 1])
            draws = sampler.draw(u[rows].tolist(), d[rows].tolist(), now)
            made = [(int(row), x) for row, x in zip(rows, draws, strict=True) if x.asked]
            sampler.spend(len(made), now)
            chosen += [row for row, _ in made]
            p_chosen += [x.p for _, x in made]
            score_chosen += [x.score for _, x in made]
        p = np.array(p_chosen, dtype=np.float64)
        weights = importance_weights(dict(enumerate(p.tolist())))
        return Selection(np.array(chosen, dtype=np.int64), np.array([weights[i] for i in range(len(p))]),
                         np.array(score_chosen), p)
