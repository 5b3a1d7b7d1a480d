"""Multi-label metrics on boolean ``n x C`` matrices in taxonomy column order.

Flat metrics (micro, macro) score the matrices as given. The hierarchical and per-level metrics
first close both sides under ancestors (a category implies its ancestors), because that is what a
label or a decision means in this project:

* **micro** precision/recall/F: pooled true/false positives over every entry.
* **macro** precision/recall/F1: the mean over categories with at least one true positive label
  (support > 0); a category never predicted has precision 0 there (sklearn's ``zero_division=0``).
  Macro F1 is the mean of per-category F1, not the F1 of the macro P and R.
* **hierarchical** P/R/F (Kiritchenko et al., 2005): close the true and the predicted set of every
  product under ancestors, then micro-average over the closed sets. A near miss (the right parent,
  the wrong leaf) earns partial credit.
* **per-level F1**: micro F1 over the (closed) columns of depth d.
* **coverage**: the share of products with at least one category of level 2 predicted (the level
  that the visual-similarity search filters on).

Every ratio with a zero denominator is 0.0, so :func:`evaluate` never returns NaN and its output
is plain JSON (Elasticsearch's ``evaluations`` index, the promotion gate).

>>> tax = Taxonomy.from_paths([["Shoes", "Sneakers"], ["Bags"]])  # columns: Bags, Shoes, Sneakers
>>> y_true = np.array([[0, 1, 1], [1, 0, 0]], bool)
>>> y_pred = np.array([[0, 1, 0], [1, 0, 0]], bool)
>>> micro_prf(y_true, y_pred)
(1.0, 0.6666666666666666, 0.8)
>>> evaluate(y_true, y_pred, tax)["coverage"]
0.0
"""

from __future__ import annotations

from typing import Any

import numpy as np

from models.errors import DataError
from prodcat.taxonomy import Taxonomy

__all__ = [
    "coverage",
    "evaluate",
    "f_beta",
    "hierarchical_prf",
    "macro_prf",
    "micro_prf",
    "per_level_f1",
]


def f_beta(precision: float | np.ndarray, recall: float | np.ndarray, beta: float = 1.0) -> Any:
    """The weighted harmonic mean ``(1 + b^2) P R / (b^2 P + R)``; 0 where P and R are both 0.

    ``beta < 1`` weighs precision more (F0.5 counts precision twice as much as recall). Works on
    scalars (returns a float) and arrays (element-wise).

    >>> f_beta(1.0, 0.5, beta=0.5)
    0.8333333333333334
    """
    if beta <= 0:
        raise ValueError(f"Expected beta > 0. Received: beta={beta}")
    p = np.asarray(precision, dtype=np.float64)
    r = np.asarray(recall, dtype=np.float64)
    b2 = beta * beta
    den = b2 * p + r
    out = np.divide((1.0 + b2) * p * r, den, out=np.zeros(np.broadcast(p, r).shape), where=den > 0)
    return float(out) if out.ndim == 0 else out


def _ratio(num: np.ndarray | float, den: np.ndarray | float) -> Any:
    num_a = np.asarray(num, dtype=np.float64)
    den_a = np.asarray(den, dtype=np.float64)
    out = np.divide(num_a, den_a, out=np.zeros(np.broadcast(num_a, den_a).shape), where=den_a > 0)
    return float(out) if out.ndim == 0 else out


def _as_bool(y: Any, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 2:
        raise DataError(f"Expected {name} as an (n, C) matrix. Received: shape={y.shape}")
    if y.dtype == np.bool_:
        return y
    if not ((y == 0) | (y == 1)).all():
        raise DataError(f"Expected {name} to hold only 0/1 (or booleans). Received values such as "
                        f"{y[(y != 0) & (y != 1)][:3].tolist()}; threshold probabilities first "
                        "(Thresholds.decide)")
    return y.astype(bool)


def _pair(y_true: Any, y_pred: Any, taxonomy: Taxonomy | None = None) -> tuple[np.ndarray, np.ndarray]:
    t, p = _as_bool(y_true, "y_true"), _as_bool(y_pred, "y_pred")
    if t.shape != p.shape:
        raise DataError(f"Expected y_true and y_pred of the same shape. Received: {t.shape} and {p.shape}")
    if taxonomy is not None and t.shape[1] != len(taxonomy):
        raise DataError(f"Expected {len(taxonomy)} columns (one per taxonomy category). Received: {t.shape[1]}")
    return t, p


def _counts(t: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-column true positives, false positives, false negatives."""
    tp = np.count_nonzero(t & p, axis=0)
    fp = np.count_nonzero(p, axis=0) - tp
    fn = np.count_nonzero(t, axis=0) - tp
    return tp, fp, fn


def _micro(t: np.ndarray, p: np.ndarray, beta: float) -> tuple[float, float, float]:
    tp = int(np.count_nonzero(t & p))
    precision = _ratio(tp, np.count_nonzero(p))
    recall = _ratio(tp, np.count_nonzero(t))
    return precision, recall, f_beta(precision, recall, beta)


def micro_prf(y_true: Any, y_pred: Any, *, beta: float = 1.0) -> tuple[float, float, float]:
    """Micro precision, recall and F-beta: every (product, category) entry counts once."""
    return _micro(*_pair(y_true, y_pred), beta)


def macro_prf(y_true: Any, y_pred: Any, *, beta: float = 1.0) -> tuple[float, float, float]:
    """Mean per-category precision, recall and F-beta over categories with support > 0 (0s if none)."""
    t, p = _pair(y_true, y_pred)
    tp, fp, fn = _counts(t, p)
    keep = (tp + fn) > 0
    if not keep.any():
        return 0.0, 0.0, 0.0
    precision = _ratio(tp[keep], tp[keep] + fp[keep])
    recall = _ratio(tp[keep], tp[keep] + fn[keep])
    return float(precision.mean()), float(recall.mean()), float(f_beta(precision, recall, beta).mean())


def hierarchical_prf(y_true: Any, y_pred: Any, taxonomy: Taxonomy, *, beta: float = 1.0) -> tuple[float, float, float]:
    """Hierarchical P/R/F-beta: micro over the ancestor-closed true and predicted sets."""
    t, p = _pair(y_true, y_pred, taxonomy)
    return _micro(taxonomy.close_matrix(t), taxonomy.close_matrix(p), beta)


def _depths(taxonomy: Taxonomy) -> np.ndarray:
    return np.array([taxonomy.depth(c) for c in taxonomy.ids], dtype=np.int64)


def per_level_f1(y_true: Any, y_pred: Any, taxonomy: Taxonomy) -> dict[int, float]:
    """Micro F1 over the columns of each depth (1 = top level), after ancestor closure of both sides."""
    t, p = _pair(y_true, y_pred, taxonomy)
    t, p = taxonomy.close_matrix(t), taxonomy.close_matrix(p)
    depth = _depths(taxonomy)
    return {d: _micro(t[:, depth == d], p[:, depth == d], 1.0)[2] for d in range(1, taxonomy.max_depth + 1)}


def coverage(y_pred: Any, taxonomy: Taxonomy, *, level: int = 2) -> float:
    """The share of products with at least one category of depth >= ``level`` predicted (0 if no rows).

    A deeper prediction counts, since it implies its level-``level`` ancestor.
    """
    p = _as_bool(y_pred, "y_pred")
    if p.shape[1] != len(taxonomy):
        raise DataError(f"Expected {len(taxonomy)} columns (one per taxonomy category). Received: {p.shape[1]}")
    deep = _depths(taxonomy) >= level
    return _ratio(np.count_nonzero(p[:, deep].any(axis=1)), len(p))


def evaluate(y_true: Any, y_pred: Any, taxonomy: Taxonomy, *, beta: float = 0.5) -> dict[str, Any]:
    """Every metric of this module in one flat, JSON-serialisable dict (floats and ints).

    Keys: ``micro_{precision,recall,f1,fbeta}``, ``macro_{precision,recall,f1}``,
    ``hierarchical_{precision,recall,f1,fbeta}``, ``f1_level_<d>`` for each depth, ``coverage``
    (level 2), plus ``beta``, ``n_products``, ``n_categories`` and ``n_categories_with_support``.
    ``fbeta`` uses ``beta`` (0.5 by default: the precision-first view the thresholds are tuned for).
    No key contains a dot, so the dict indexes into Elasticsearch as flat fields.
    """
    t, p = _pair(y_true, y_pred, taxonomy)
    out: dict[str, Any] = {}
    mp, mr, mf = _micro(t, p, 1.0)
    out.update(micro_precision=mp, micro_recall=mr, micro_f1=mf, micro_fbeta=f_beta(mp, mr, beta))
    ap, ar, af = macro_prf(t, p)
    out.update(macro_precision=ap, macro_recall=ar, macro_f1=af)
    tc, pc = taxonomy.close_matrix(t), taxonomy.close_matrix(p)
    hp, hr, hf = _micro(tc, pc, 1.0)
    out.update(hierarchical_precision=hp, hierarchical_recall=hr, hierarchical_f1=hf,
               hierarchical_fbeta=f_beta(hp, hr, beta))
    depth = _depths(taxonomy)
    for d in range(1, taxonomy.max_depth + 1):
        out[f"f1_level_{d}"] = _micro(tc[:, depth == d], pc[:, depth == d], 1.0)[2]
    out["coverage"] = _ratio(np.count_nonzero(pc[:, depth >= 2].any(axis=1)), len(pc))
    out.update(beta=float(beta), n_products=int(t.shape[0]), n_categories=int(t.shape[1]),
               n_categories_with_support=int(np.count_nonzero(t.any(axis=0))))
    return out
