"""Per-category decision thresholds, tuned on validation for precision first, and the decision rule.

**Tuning** (:meth:`Thresholds.fit`). For each category the threshold maximises F-beta on the
validation probabilities, with ``beta < 1`` (0.5 by default) so a false positive costs more than
a false negative. The candidates are the column's sorted unique probabilities: threshold ``t`` means
"predict when ``p >= t``", so the chosen ``t`` is the probability of the least confident
validation product still predicted. Ties in F-beta go to the higher threshold (fewer predictions).
A threshold whose precision is no better than the column's positive rate (chance: predicting
every product, say) is not a candidate, though its F-beta is above 0; a category with no better
threshold is never predicted on its own (:data:`NEVER`).
With ``min_precision`` only thresholds whose validation precision reaches it are candidates; a
category that cannot reach it is never predicted on its own (threshold :data:`NEVER`).

**Micro floor** (``micro_floor=True``, the default): a category's own threshold also needs a
validation precision of at least ``F / (1 + beta^2)``, ``F`` the pooled F-beta at the global
threshold (:attr:`Thresholds.precision_floor_`). Adding predictions of precision ``q`` to a pool
of F-beta ``F`` raises the pooled (micro) F-beta only if ``q > F / (1 + beta^2)``, so below the
floor a category's decisions cost the micro metric the promotion gate uses. Without it a category
whose few validation positives the model ranks low (one that only human labels name: 3
positives, probabilities near 0) takes the threshold that catches one of them, as an F-beta of
0.01 beats 0, and is decided with its ancestors for a fifth of the products or all of them
(issue 14: Flipkart active learning, micro-F1 0.79 -> 0.51 from one round to the next).

A category with fewer than ``min_support`` validation positives cannot be tuned reliably; it gets
the **global threshold**, tuned the same way on all columns pooled (a random subsample of at most
``max_pooled`` entries when the matrix is larger).

**Decision** (:meth:`Thresholds.decide`): ``close(p >= t)``: a predicted category implies its
ancestors, and a negative never removes an ancestor that a descendant implies. Because a parent is
also predicted whenever any descendant is, tuning with a taxonomy (``hierarchical=True``) goes
bottom-up: a parent's threshold is chosen for ``(p_parent >= t) | any descendant predicted``, so the
F-beta it maximises is the one of the decision actually made.

**Uncertainty** (:meth:`Thresholds.uncertainty`, defined in :mod:`models.signals`): per category,
how close ``p`` is to ``t``, scaled separately on each side so that both ends of [0, 1] are "far":
``u = p / t`` below the threshold and ``u = (1 - p) / (1 - t)`` at or above it. ``u`` is 1 exactly on
the threshold, 0 at ``p = 0`` (below) or ``p = 1`` (above), and linear in between, so a threshold
of 0.8 gives the same uncertainty at p = 0.4 and p = 0.9 (half-way to each end). A product's
uncertainty is its most borderline category's ``u``. Categories that are never predicted
(``t > 1``) do not count.

>>> probs = np.array([[0.9], [0.8], [0.7], [0.6], [0.2]])
>>> y = np.array([[1], [1], [0], [1], [0]])
>>> Thresholds(beta=0.5, min_support=1).fit(probs, y).thresholds_.tolist()
[0.8]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from models import signals
from models.errors import ConfigError, DataError, NotFittedError
from prodcat.taxonomy import Taxonomy

__all__ = ["NEVER", "Thresholds"]

_FORMAT = "prodcat.thresholds/1"
# A threshold above every probability: the category is never predicted on its own (a descendant
# can still imply it). The smallest double above 1.0, so it survives JSON exactly.
NEVER = float(np.nextafter(1.0, 2.0))
_CHUNK = 256  # columns searched at once: bounds the sort buffers to n x _CHUNK


def _fbeta_counts(tp: np.ndarray, fp: np.ndarray, pos: np.ndarray, beta: float) -> np.ndarray:
    b2 = beta * beta
    num = (1.0 + b2) * tp
    den = num + b2 * (pos - tp) + fp
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def _search(probs: np.ndarray, y: np.ndarray, *, beta: float, min_precision: float | None,
            forced: np.ndarray | None = None) -> np.ndarray:
    """The best F-beta threshold of every column of ``probs`` (n x k); ``forced`` rows are predicted anyway."""
    n, k = probs.shape
    out = np.full(k, NEVER)
    if n == 0 or k == 0:
        return out
    for lo in range(0, k, _CHUNK):
        p = probs[:, lo:lo + _CHUNK].astype(np.float64)
        p[np.isnan(p)] = -np.inf  # a missing probability is never predicted
        if forced is not None:
            p[forced[:, lo:lo + _CHUNK]] = np.inf  # always predicted: sorts first, shares one boundary
        t = y[:, lo:lo + _CHUNK]
        order = np.argsort(-p, axis=0, kind="stable")
        ps = np.take_along_axis(p, order, axis=0)
        ys = np.take_along_axis(t, order, axis=0)
        tp = np.cumsum(ys, axis=0, dtype=np.float64)  # row i: the top i + 1 rows predicted
        fp = np.arange(1, n + 1, dtype=np.float64)[:, None] - tp
        score = _fbeta_counts(tp, fp, tp[-1], beta)
        # a cut is possible only between distinct values (ties are predicted together)
        valid = np.ones_like(ps, dtype=bool)
        valid[:-1] = ps[:-1] != ps[1:]
        valid &= ps > -np.inf
        # a cut must beat chance: precision above the column's positive rate (or no false positive, for a
        # column positive on every row). Predicting every row scores F-beta > 0 whenever the column has a
        # positive, so without this a category whose few validation positives rank at the bottom (tied
        # at probability 0, say) gets threshold 0 and is decided, with its ancestors, for every product
        valid &= (tp * n > tp[-1] * (tp + fp)) | (fp == 0)
        if min_precision is not None:
            valid &= tp / (tp + fp) >= min_precision
        score[~valid] = -1.0
        best = np.argmax(score, axis=0)  # first maximum = the highest threshold among ties
        cols = np.arange(ps.shape[1])
        chosen = ps[best, cols]
        ok = score[best, cols] > 0.0
        # inf = only the forced rows were worth predicting; no positive reached = never predict
        out[lo:lo + ps.shape[1]] = np.where(ok & np.isfinite(chosen), chosen, NEVER)
    return out


def _ancestor_table(parents: np.ndarray) -> np.ndarray:
    """(C, D): row c lists c and its ancestors, padded with c (closure sets the same cell twice)."""
    n = len(parents)
    chains: list[list[int]] = []
    for c in range(n):
        chain, a = [c], int(parents[c])
        while a >= 0:
            chain.append(a)
            a = int(parents[a])
            if len(chain) > n:
                raise DataError("threshold parents contain a cycle; rebuild them from the taxonomy")
        chains.append(chain)
    width = max((len(c) for c in chains), default=1)
    table = np.empty((n, width), dtype=np.int64)
    for c, chain in enumerate(chains):
        table[c] = chain + [c] * (width - len(chain))
    return table


class Thresholds:
    """Per-category thresholds tuned for F-beta on validation; ``decide`` applies them with ancestor closure.

    Hyper-parameters (only here): ``beta`` (< 1 favours precision), ``min_support`` (validation
    positives a category needs for its own threshold), ``min_precision`` (optional floor on a
    category's validation precision), ``hierarchical`` (bottom-up tuning when a taxonomy is given),
    ``max_pooled`` and ``seed`` (the subsample the global threshold is tuned on), ``micro_floor``
    (the precision floor of the module docstring).

    Learned (after :meth:`fit` or :meth:`from_dict`): ``thresholds_`` (C,), ``global_threshold_``,
    ``support_`` (validation positives per category), ``fallback_`` (True where the global
    threshold is used), ``parents_`` (parent column per category, -1 at the top; ``None`` when
    fitted without a taxonomy, then :meth:`decide` does not close), ``precision_floor_`` (the
    validation precision an own threshold needed: the micro floor or ``min_precision``, the larger).
    """

    def __init__(self, *, beta: float = 0.5, min_support: int = 5, min_precision: float | None = None,
                 hierarchical: bool = True, max_pooled: int = 2_000_000, seed: int = 0,
                 micro_floor: bool = True) -> None:
        if not beta > 0:
            raise ConfigError(f"Expected beta > 0 (e.g. 0.5 to favour precision). Received: beta={beta}")
        if min_support < 1:
            raise ConfigError(f"Expected min_support >= 1. Received: min_support={min_support}")
        if min_precision is not None and not 0.0 < min_precision <= 1.0:
            raise ConfigError(f"Expected min_precision in (0, 1] or None. Received: min_precision={min_precision}")
        if max_pooled < 1:
            raise ConfigError(f"Expected max_pooled >= 1. Received: max_pooled={max_pooled}")
        self.beta = float(beta)
        self.min_support = int(min_support)
        self.min_precision = None if min_precision is None else float(min_precision)
        self.hierarchical = bool(hierarchical)
        self.max_pooled = int(max_pooled)
        self.seed = int(seed)
        self.micro_floor = bool(micro_floor)
        self.precision_floor_: float | None = None  # the own thresholds' precision floor (min_precision included)
        self.thresholds_: np.ndarray | None = None
        self.global_threshold_: float | None = None
        self.support_: np.ndarray | None = None
        self.fallback_: np.ndarray | None = None
        self.parents_: np.ndarray | None = None
        self.ids_: tuple[str, ...] | None = None
        self._table: np.ndarray | None = None

    # --- config ----------------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        return {"beta": self.beta, "min_support": self.min_support, "min_precision": self.min_precision,
                "hierarchical": self.hierarchical, "max_pooled": self.max_pooled, "seed": self.seed,
                "micro_floor": self.micro_floor}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Thresholds:
        return cls(**config)

    def clone(self) -> Thresholds:
        return self.from_config(self.get_config())

    # --- fitting ---------------------------------------------------------------------------

    def fit(self, probs: np.ndarray, y_true: np.ndarray, taxonomy: Taxonomy | None = None) -> Thresholds:
        """Tune on validation probabilities ``probs`` and 0/1 labels ``y_true`` (both n x C); returns ``self``.

        With a ``taxonomy`` the labels are closed under ancestors, :meth:`decide` closes its
        decisions, and (``hierarchical=True``) parents are tuned given their descendants' decisions.
        """
        probs = np.asarray(probs)
        y = np.asarray(y_true)
        if probs.ndim != 2 or y.shape != probs.shape:
            raise DataError(f"Expected probs and y_true of the same (n, C) shape. Received: {probs.shape} "
                            f"and {y.shape}")
        y = y > 0.5
        n, n_cols = probs.shape
        parents: np.ndarray | None = None
        if taxonomy is not None:
            if n_cols != len(taxonomy):
                raise DataError(f"Expected {len(taxonomy)} columns (one per taxonomy category). "
                                f"Received: {n_cols}")
            y = taxonomy.close_matrix(y)
            parents = np.array([-1 if (p := taxonomy.parent(c)) is None else taxonomy.index(p)
                                for c in taxonomy.ids], dtype=np.int64)
        support = y.sum(axis=0).astype(np.int64)
        fallback = support < self.min_support
        glob, pooled_f = self._global(probs, y)
        floor = max(self.min_precision or 0.0, pooled_f / (1.0 + self.beta**2) if self.micro_floor else 0.0)
        self.precision_floor_ = floor
        thresholds = np.full(n_cols, glob)
        if parents is None or not self.hierarchical:
            own = np.flatnonzero(~fallback)
            thresholds[own] = _search(probs[:, own], y[:, own], beta=self.beta, min_precision=floor or None)
        else:
            self._fit_bottom_up(probs, y, parents, fallback, thresholds, floor or None)
        self.thresholds_ = thresholds
        self.global_threshold_ = glob
        self.support_ = support
        self.fallback_ = fallback
        self.parents_ = parents
        self.ids_ = taxonomy.ids if taxonomy is not None else None
        self._table = None if parents is None else _ancestor_table(parents)
        return self

    def _global(self, probs: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """The global threshold and the pooled F-beta it reaches (on the same subsample)."""
        flat_p, flat_y = probs.reshape(-1, 1), y.reshape(-1, 1)
        if flat_p.shape[0] > self.max_pooled:
            pick = np.random.default_rng(self.seed).choice(flat_p.shape[0], self.max_pooled, replace=False)
            flat_p, flat_y = flat_p[pick], flat_y[pick]
        glob = float(_search(flat_p, flat_y, beta=self.beta, min_precision=self.min_precision)[0])
        with np.errstate(invalid="ignore"):
            pred = flat_p[:, 0] >= glob
        truth = flat_y[:, 0]
        tp, fp = float((pred & truth).sum()), float((pred & ~truth).sum())
        return glob, float(_fbeta_counts(np.array(tp), np.array(fp), np.array(float(truth.sum())), self.beta))

    def _fit_bottom_up(self, probs: np.ndarray, y: np.ndarray, parents: np.ndarray, fallback: np.ndarray,
                       thresholds: np.ndarray, min_precision: float | None) -> None:
        """Deepest level first; a column's forced rows are those where a child column is decided positive."""
        depth = np.zeros(len(parents), dtype=np.int64)
        for c in range(len(parents)):  # column order puts parents first
            depth[c] = 1 if parents[c] < 0 else depth[parents[c]] + 1
        decided = np.zeros(probs.shape, dtype=bool)
        for d in range(int(depth.max(initial=0)), 0, -1):
            cols = np.flatnonzero(depth == d)
            children = np.flatnonzero(depth == d + 1)
            forced = np.zeros((probs.shape[0], len(cols)), dtype=bool)
            if len(children):
                where = np.searchsorted(cols, parents[children])  # each child's parent among cols
                incidence = np.zeros((len(children), len(cols)), dtype=np.float32)
                incidence[np.arange(len(children)), where] = 1.0
                forced = (decided[:, children].astype(np.float32) @ incidence) > 0
            own = ~fallback[cols]
            thresholds[cols[own]] = _search(probs[:, cols[own]], y[:, cols[own]], beta=self.beta,
                                            min_precision=min_precision, forced=forced[:, own])
            with np.errstate(invalid="ignore"):
                decided[:, cols] = forced | (probs[:, cols] >= thresholds[cols])

    # --- using -----------------------------------------------------------------------------

    def _check(self, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.thresholds_ is None:
            raise NotFittedError("thresholds are not fitted; call fit(probs, y_true) or Thresholds.from_dict(...)")
        probs = np.asarray(probs)
        if probs.ndim != 2 or probs.shape[1] != len(self.thresholds_):
            raise DataError(f"Expected probabilities of shape (n, {len(self.thresholds_)}). "
                            f"Received: shape={probs.shape}")
        return probs, self.thresholds_

    def decide(self, probs: np.ndarray) -> np.ndarray:
        """Boolean n x C: ``p >= t`` per category, closed under ancestors when fitted with a taxonomy. NaN = no."""
        probs, t = self._check(probs)
        with np.errstate(invalid="ignore"):
            out = probs >= t
        if self._table is not None:
            rows, cols = np.divmod(np.flatnonzero(out), out.shape[1])
            width = self._table.shape[1]
            out[np.repeat(rows, width), self._table[cols].ravel()] = True
        return out

    def uncertainty_per_category(self, probs: np.ndarray) -> np.ndarray:
        """n x C in [0, 1]: ``p / t`` below the threshold, ``(1 - p) / (1 - t)`` at or above
        (:func:`models.signals.uncertainty_per_category`). 0 for categories never predicted (t > 1);
        NaN probabilities stay NaN.
        """
        probs, t = self._check(probs)
        return signals.uncertainty_per_category(probs, t)

    def uncertainty(self, probs: np.ndarray) -> np.ndarray:
        """(n,) in [0, 1]: the most borderline category's uncertainty (1 = a probability exactly on its threshold).

        A row whose probabilities are all NaN (every member abstained) is maximally uncertain (1).
        """
        probs, t = self._check(probs)
        return signals.uncertainty(probs, t)

    def most_borderline(self, probs: np.ndarray) -> np.ndarray:
        """(n,) column index of each product's most borderline category (the one :meth:`uncertainty` reports)."""
        u = np.nan_to_num(self.uncertainty_per_category(probs), nan=-1.0)
        return np.argmax(u, axis=1)

    # --- persistence -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot (config and learned state) that :meth:`from_dict` reads back exactly."""
        if self.thresholds_ is None or self.support_ is None or self.fallback_ is None:
            raise NotFittedError("thresholds are not fitted; call fit(probs, y_true) first")
        return {
            "format": _FORMAT,
            "config": self.get_config(),
            "thresholds": [float(v) for v in self.thresholds_],
            "global_threshold": self.global_threshold_,
            "precision_floor": self.precision_floor_,
            "support": [int(v) for v in self.support_],
            "fallback": [bool(v) for v in self.fallback_],
            "parents": None if self.parents_ is None else [int(v) for v in self.parents_],
            "ids": None if self.ids_ is None else list(self.ids_),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Thresholds:
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            received = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise DataError(f"Expected a thresholds snapshot with format {_FORMAT!r}. Received: {received!r}")
        self = cls.from_config(data["config"])
        self.thresholds_ = np.asarray(data["thresholds"], dtype=np.float64)
        self.global_threshold_ = float(data["global_threshold"])
        self.precision_floor_ = data.get("precision_floor")  # absent in snapshots older than the floor
        self.support_ = np.asarray(data["support"], dtype=np.int64)
        self.fallback_ = np.asarray(data["fallback"], dtype=bool)
        if data["parents"] is not None:
            self.parents_ = np.asarray(data["parents"], dtype=np.int64)
            self._table = _ancestor_table(self.parents_)
        self.ids_ = None if data.get("ids") is None else tuple(data["ids"])
        lengths = {len(self.thresholds_), len(self.support_), len(self.fallback_)}
        if self.parents_ is not None:
            lengths.add(len(self.parents_))
        if len(lengths) != 1:
            raise DataError(f"thresholds snapshot has per-category lists of different lengths {sorted(lengths)}")
        return self

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_dict` as JSON to ``path`` (a file)."""
        Path(path).write_text(json.dumps(self.to_dict()), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Thresholds:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise DataError(f"cannot read thresholds from {path}: {exc}; pass a file written by save()") from exc
        return cls.from_dict(json.loads(text))
