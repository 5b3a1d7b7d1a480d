"""The two doubt signals of active learning, in one place: uncertainty and member disagreement.

The worker (through :class:`models.classifier.Classifier`), the retrain service's pool-based
strategies (:mod:`retrain.selection`) and the simulation benchmark all call these functions, so
a product scores the same wherever it is scored. :func:`product_signals` is the pair the worker
attaches to every categorised product; the pool-based baselines may pick other ``kind``s.

**Uncertainty** (:func:`uncertainty`), per category, how close ``p`` is to its threshold ``t``:

* ``threshold``: ``p / t`` below the threshold, ``(1 - p) / (1 - t)`` at or above it: 1 on the
  threshold, 0 at ``p = 0`` (below) or ``p = 1`` (above), linear in between, for any ``t``.
* ``margin``: ``1 / (1 + |logit p - logit t|)``: the same idea in logit space, where a step from
  0.01 to 0.05 counts as much as one from 0.5 to 0.8 (thresholds are low when probabilities are
  underestimated, as with rule-derived training labels).
* ``entropy``: binary entropy (bits) after moving each threshold to 0.5.

A product's uncertainty is its most borderline category's (max, not sum: summed over ~1,000
near-zero categories the noise would outweigh the signal). Categories never decided on their own
(``t > 1``, :data:`models.thresholds.NEVER`) carry no doubt and are left out. A row whose
probabilities are all NaN (every member abstained) is maximally uncertain (1).
``undecided=True`` adds: a product for which no category reaches its threshold scores at least
``1 - max_c p_c / t_c``. Every product belongs somewhere in the tree, so "nothing decided" is a
certain miss, not certainty; without this term a product with all probabilities near 0 looks
confident and is never asked about (on Flipkart with rule labels half the pool is like that).

**Disagreement** (:func:`disagreement`), over the categories at least one member predicts:

* ``vote``: vote entropy of the members' yes/no decisions, normalised by the largest entropy
  that many voters can reach: 0 = unanimous, 1 = an even split (for 3 voters, 2 against 1 is
  the most they can disagree, and scores 1);
* ``variance``: variance of the members' probabilities over 0.25 (the largest possible).

``reduce="mean"`` averages over those categories, ``"max"`` takes the most disputed one. Members
that abstain (NaN) do not vote; a product no member predicts anything for scores 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from models.errors import DataError

__all__ = ["Decider", "DisagreementKind", "UncertaintyKind", "disagreement", "product_signals",
           "uncertainty", "uncertainty_per_category"]

UncertaintyKind = Literal["threshold", "margin", "entropy"]
DisagreementKind = Literal["vote", "variance"]
_EPS = 1e-7


@runtime_checkable
class Decider(Protocol):
    """Fitted per-category thresholds (:class:`models.thresholds.Thresholds`): ``decide`` also closes
    the decisions under ancestors."""

    thresholds_: np.ndarray | None

    def decide(self, probs: np.ndarray) -> np.ndarray: ...


def _threshold_array(thresholds: Decider | np.ndarray | float, n_categories: int) -> np.ndarray:
    t = thresholds.thresholds_ if isinstance(thresholds, Decider) else thresholds
    t = np.broadcast_to(np.asarray(t, dtype=np.float64), (n_categories,)) if np.ndim(t) == 0 \
        else np.asarray(t, dtype=np.float64)
    if t.shape != (n_categories,):
        raise DataError(f"Expected a Thresholds object, a scalar or {n_categories} thresholds. "
                        f"Received: shape={t.shape}")
    return t


def _binary_entropy(f: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(f * np.log2(f) + (1.0 - f) * np.log2(1.0 - f))
    return np.where(np.isnan(f), np.nan, np.nan_to_num(h, nan=0.0))


def uncertainty_per_category(probs: np.ndarray, thresholds: Decider | np.ndarray | float,
                             kind: UncertaintyKind = "threshold") -> np.ndarray:
    """n x C in [0, 1]: each category's doubt (see the module docstring); 0 where ``t > 1``, NaN stays NaN."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise DataError(f"Expected probabilities of shape (n, C). Received: shape={p.shape}")
    t = _threshold_array(thresholds, p.shape[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "threshold":
            below = np.divide(p, t, out=np.zeros_like(p), where=(p < t) & (t > 0))
            above = np.divide(1.0 - p, 1.0 - t, out=np.ones_like(p), where=(p >= t) & (t < 1))
            u = np.where(p >= t, above, below)
        elif kind == "margin":
            def logit(x: np.ndarray) -> np.ndarray:
                x = np.clip(x, _EPS, 1 - _EPS)
                return np.log(x) - np.log1p(-x)
            u = 1.0 / (1.0 + np.abs(logit(p) - logit(t)))
        elif kind == "entropy":
            # [0, t] onto [0, .5] and [t, 1] onto [.5, 1]: the threshold becomes 0.5
            low = 0.5 * p / np.maximum(t, _EPS)
            high = 0.5 + 0.5 * (p - t) / np.maximum(1 - t, _EPS)
            u = _binary_entropy(np.clip(np.where(p < t, low, high), _EPS, 1 - _EPS))
        else:
            raise ValueError(f"Expected kind 'threshold', 'margin' or 'entropy'. Received: kind={kind!r}")
    u = np.clip(u, 0.0, 1.0)
    u[:, t > 1.0] = 0.0
    u[np.isnan(p)] = np.nan
    return u


def uncertainty(probs: np.ndarray, thresholds: Decider | np.ndarray | float, kind: UncertaintyKind = "threshold",
                *, undecided: bool = False) -> np.ndarray:
    """(n,) in [0, 1]: the most borderline category's doubt (1 = on the threshold); see the module docstring."""
    u = uncertainty_per_category(probs, thresholds, kind)
    out = np.ones(u.shape[0])
    seen = ~np.isnan(u).all(axis=1) if u.shape[1] else np.zeros(u.shape[0], dtype=bool)
    if u.shape[1]:
        out[seen] = np.nanmax(u[seen], axis=1)
    if undecided and u.shape[1]:
        p = np.asarray(probs, dtype=np.float64)
        t = _threshold_array(thresholds, p.shape[1])
        live = t <= 1.0
        if live.any():
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = np.divide(p[:, live], t[live], out=np.full((len(p), int(live.sum())), np.inf),
                                  where=t[live] > 0)
            strongest = np.nanmax(np.where(np.isnan(ratio), -np.inf, ratio), axis=1)
            out[seen] = np.maximum(out[seen], np.clip(1.0 - strongest[seen], 0.0, 1.0))
    return out


def _member_arrays(member_probs: Sequence[np.ndarray] | np.ndarray) -> list[np.ndarray]:
    arrays = list(member_probs) if isinstance(member_probs, np.ndarray) and member_probs.ndim == 3 \
        else [np.asarray(m) for m in member_probs]
    if not arrays:
        raise DataError("Expected a list of member probability matrices. Received: an empty list")
    if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 2:
        raise DataError(f"Expected every member's probabilities as (n, C) matrices of one shape. "
                        f"Received shapes: {[a.shape for a in arrays]}")
    return arrays


def disagreement(member_probs: Sequence[np.ndarray] | np.ndarray, thresholds: Decider | np.ndarray | float, *,
                 kind: DisagreementKind = "vote", reduce: Literal["mean", "max"] = "mean") -> np.ndarray:
    """(n,) in [0, 1]: how much the members disagree about each product (see the module docstring).

    Each member's decisions come from ``thresholds``: a fitted :class:`Decider` (its ``decide``
    closes under ancestors) or per-category / scalar thresholds applied as ``p >= t``.
    """
    if kind not in ("vote", "variance"):
        raise ValueError(f"Expected kind 'vote' or 'variance'. Received: kind={kind!r}")
    if reduce not in ("mean", "max"):
        raise ValueError(f"Expected reduce 'mean' or 'max'. Received: reduce={reduce!r}")
    arrays = _member_arrays(member_probs)
    decider = thresholds if isinstance(thresholds, Decider) else None
    t = None if decider is not None else _threshold_array(thresholds, arrays[0].shape[1])

    def decide(p: np.ndarray) -> np.ndarray:
        return decider.decide(p) if decider is not None else p >= t  # NaN compares False

    shape = arrays[0].shape
    voters = np.zeros(shape, dtype=np.int32)
    yes = np.zeros(shape, dtype=np.int32)
    total = np.zeros(shape)
    total_sq = np.zeros(shape)
    for a in arrays:  # member by member: memory does not grow with the number of members
        present = ~np.isnan(a)
        voters += present
        with np.errstate(invalid="ignore"):
            yes += decide(a) & present
        if kind == "variance":
            p = np.where(present, a, 0.0).astype(np.float64)
            total += p
            total_sq += p * p
    relevant = yes > 0
    if kind == "vote":
        frac = np.divide(yes, voters, out=np.zeros(shape), where=voters > 0)
        best = _binary_entropy(np.floor(voters / 2) / np.maximum(voters, 1))
        score = np.divide(_binary_entropy(frac), best, out=np.zeros(shape), where=best > 0)
    else:
        mean = np.divide(total, voters, out=np.zeros(shape), where=voters > 0)
        var = np.divide(total_sq, voters, out=np.zeros(shape), where=voters > 0) - mean * mean
        score = np.clip(var / 0.25, 0.0, 1.0)
    score = np.where(relevant, score, 0.0)
    if reduce == "max":
        return score.max(axis=1, initial=0.0)
    counts = relevant.sum(axis=1)
    return np.divide(score.sum(axis=1), counts, out=np.zeros(len(counts)), where=counts > 0)


def product_signals(probs: np.ndarray, member_probs: Sequence[np.ndarray] | np.ndarray | None,
                    thresholds: Decider | np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(uncertainty, disagreement) as the worker attaches them to every categorised product.

    Threshold uncertainty with the "nothing decided" term, and the members' normalised vote
    entropy averaged over the categories any member predicts (``None`` without member
    probabilities). The simulation calls this too, so it asks on the worker's signals.
    """
    u = uncertainty(probs, thresholds, "threshold", undecided=True)
    d = None if member_probs is None else disagreement(member_probs, thresholds)
    return u, d
