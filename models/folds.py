"""Out-of-fold predictions: every row predicted by a model that did not train on it.

What the combiners (:mod:`models.ensemble`) and the thresholds are fitted on: in-sample
probabilities of a member that overfits look perfect, and would take all the weight.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from models.errors import DataError

__all__ = ["out_of_fold"]


def out_of_fold(fit_predict: Callable[[np.ndarray, np.ndarray], np.ndarray], n: int, *, k: int = 5,
                seed: int = 0) -> np.ndarray:
    """Out-of-fold predictions for ``n`` rows: every row predicted by a model that did not train on it.

    The rows are shuffled (``seed``) into ``k`` folds of near-equal size; for each fold,
    ``fit_predict(train_idx, val_idx)`` (sorted index arrays) trains a fresh model on ``train_idx``
    and returns its predictions for ``val_idx`` (``len(val_idx)`` rows, any trailing shape, e.g.
    ``len(val_idx) x C``). Returns them assembled in the original row order.

    >>> out_of_fold(lambda tr, va: va[:, None] * 10.0, 4, k=2).ravel().tolist()
    [0.0, 10.0, 20.0, 30.0]
    """
    if not 2 <= k <= n:
        raise ValueError(f"Expected 2 <= k <= n. Received: k={k}, n={n}")
    folds = np.array_split(np.random.default_rng(seed).permutation(n), k)
    out: np.ndarray | None = None
    for fold in folds:
        val_idx = np.sort(fold)
        train_idx = np.setdiff1d(np.arange(n), val_idx, assume_unique=True)
        pred = np.asarray(fit_predict(train_idx, val_idx))
        if pred.ndim == 0 or pred.shape[0] != len(val_idx):
            raise DataError(f"Expected fit_predict to return {len(val_idx)} rows (one per val_idx). "
                            f"Received: shape={pred.shape}")
        if out is None:
            dtype = pred.dtype if np.issubdtype(pred.dtype, np.floating) else np.float64
            out = np.full((n,) + pred.shape[1:], np.nan, dtype=dtype)
        elif pred.shape[1:] != out.shape[1:]:
            raise DataError(f"Expected every fold's predictions with trailing shape {out.shape[1:]}. "
                            f"Received: {pred.shape[1:]}")
        out[val_idx] = pred
    assert out is not None
    return out
