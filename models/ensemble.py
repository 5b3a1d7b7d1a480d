"""Combining the members' probability matrices: the combiner interface and its three kinds.

Every combiner takes ``member_probs``: a list of m float arrays, each ``n x C`` in taxonomy column
order, one per member, where an all-NaN row means the member abstained on that product (the image
head without an image; see :class:`models.members.base.Member`). Abstentions are never read as 0:
each combiner uses only the members that answered.

* :class:`MeanEnsemble`: the plain average of the members that answered.
* :class:`WeightedEnsemble`: a weighted average with non-negative weights summing to 1
  (``w = softmax(a)``), ``a`` fitted with L-BFGS (scipy) on **out-of-fold** member probabilities by
  minimising the mean binary log-loss over all (product, category) entries. Out-of-fold matters:
  in-sample probabilities of a member that overfits look perfect and would take all the weight.
* :class:`StackedEnsemble`: a logistic-regression meta-learner on the members' out-of-fold logits,
  ONE model pooled over all categories with a per-category bias::

      logit q_ic = b0 + b_c + sum_j a_j * logit(p_jic)

  m + 1 + C parameters, fitted exactly by Newton's method (numpy only): the Hessian is "arrow"
  shaped (a dense (m+1) x (m+1) block for the shared weights, a diagonal for the biases), so each
  step is a Schur-complement solve in O(N m^2 + C m^2). Why this form: the shared slopes are
  estimated from every entry of every category (millions), so they are stable even for a
  category with 3 positives, where a per-category logistic regression would overfit or be
  undefined; they learn how far to trust each member and can down-weight a useless one to ~0
  (which the mean cannot) and sharpen or soften the combined score. The per-category bias
  recalibrates each category's base rate (models trained on rule labels underestimate
  probabilities), with an L2 penalty ``bias_l2`` that shrinks rare categories' biases towards
  the shared ``b0``. It fits in seconds for 1,000 categories x 20k rows because negatives are
  subsampled (all positives kept, at most ``max_entries`` entries, negatives re-weighted by
  1/rate so the fitted probabilities stay calibrated).

All three share the verbs ``fit(member_probs, y_true) -> self``, ``predict_proba(member_probs) ->
n x C`` float32, ``to_dict()`` / ``from_dict()`` (plain JSON: coefficients as lists of floats that
round-trip exactly, no pickles) and ``save(path)`` / ``load(path)`` (one JSON file).
:func:`ensemble_from_dict` / :func:`load_ensemble` rebuild whichever kind was saved.

:func:`disagreement` (defined in :mod:`models.signals`, re-exported here) scores how much the members
disagree per product, a signal for active learning. The out-of-fold member probabilities the
combiners are fitted on come from :func:`models.folds.out_of_fold`.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from scipy.special import expit

from models.errors import ConfigError, DataError, NotFittedError
from models.signals import disagreement

__all__ = [
    "Ensemble",
    "MeanEnsemble",
    "StackedEnsemble",
    "WeightedEnsemble",
    "disagreement",
    "ensemble_from_dict",
    "load_ensemble",
]

_FORMAT = "prodcat.ensemble/1"


# --------------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------------


def _members(member_probs: Sequence[np.ndarray], n_members: int | None = None,
             n_categories: int | None = None) -> list[np.ndarray]:
    """The member matrices as arrays (no copy), with shape checks."""
    if isinstance(member_probs, np.ndarray) and member_probs.ndim == 3:
        arrays = list(member_probs)
    else:
        arrays = [np.asarray(p) for p in member_probs]
    if not arrays:
        raise DataError("Expected a list of member probability matrices. Received: an empty list")
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1 or arrays[0].ndim != 2:
        raise DataError(f"Expected every member's probabilities as (n, C) matrices of one shape. "
                        f"Received shapes: {[a.shape for a in arrays]}")
    if n_members is not None and len(arrays) != n_members:
        raise DataError(f"Expected probabilities from {n_members} members (as in fit). Received: {len(arrays)}")
    if n_categories is not None and arrays[0].shape[1] != n_categories:
        raise DataError(f"Expected {n_categories} categories (as in fit). Received: {arrays[0].shape[1]}")
    return arrays


def _gather(arrays: list[np.ndarray], idx: np.ndarray) -> np.ndarray:
    """(m, N) float64: the flat entries ``idx`` of every member (no full float64 copy of the matrices)."""
    return np.stack([a.reshape(-1)[idx].astype(np.float64) for a in arrays])


def _labels(y_true: Any, shape: tuple[int, ...]) -> np.ndarray:
    y = np.asarray(y_true)
    if y.shape != shape:
        raise DataError(f"Expected y_true of shape {shape} (n x C, like each member's probabilities). "
                        f"Received: {y.shape}")
    return y > 0.5


def _sample_entries(y: np.ndarray, max_entries: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Flat entry indices (all positives + a uniform share of negatives) and weights 1 / sampling rate."""
    flat = y.ravel()
    if flat.size <= max_entries:
        return np.arange(flat.size), np.ones(flat.size)
    pos = np.flatnonzero(flat)
    neg_total = flat.size - len(pos)
    budget = max(max_entries - len(pos), min(neg_total, 1000))
    neg = np.flatnonzero(~flat)
    neg = np.sort(rng.choice(neg, size=min(budget, neg_total), replace=False))
    idx = np.concatenate([pos, neg])
    weight = np.concatenate([np.ones(len(pos)), np.full(len(neg), neg_total / max(len(neg), 1))])
    return idx, weight


def _logit(p: np.ndarray, clip: float) -> np.ndarray:
    p = np.clip(p, clip, 1.0 - clip)
    return np.log(p) - np.log1p(-p)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function, keeping the dtype. Not 0.5 * (1 + tanh(x / 2)): in float32 that is
    exactly 0 below x = -17, and products tied at 0 cannot be ranked (uncertainty, thresholds)."""
    return expit(x)


def _log_loss(q: np.ndarray, y: np.ndarray, w: np.ndarray, clip: float) -> float:
    q = np.clip(q, clip, 1.0 - clip)
    return float(-(w * np.where(y, np.log(q), np.log1p(-q))).sum() / w.sum())


def _floats(a: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(a, dtype=np.float64).ravel()]


# --------------------------------------------------------------------------------------------
# the interface
# --------------------------------------------------------------------------------------------


class Ensemble(ABC):
    """Combines m members' ``n x C`` probability matrices into one. Hyper-parameters only in ``__init__``."""

    kind: ClassVar[str]

    def __init__(self) -> None:
        self.n_members_: int | None = None
        self.n_categories_: int | None = None

    @abstractmethod
    def fit(self, member_probs: Sequence[np.ndarray], y_true: np.ndarray) -> Ensemble:
        """Learn from out-of-fold member probabilities and the 0/1 labels (n x C); returns ``self``."""

    @abstractmethod
    def predict_proba(self, member_probs: Sequence[np.ndarray]) -> np.ndarray:
        """float32 (n, C) combined probabilities."""

    @abstractmethod
    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, JSON-serialisable."""

    @abstractmethod
    def _state(self) -> dict[str, Any]:
        """The learned state as JSON values."""

    @abstractmethod
    def _restore(self, state: dict[str, Any]) -> None:
        """Set the learned state from :meth:`_state` output."""

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Ensemble:
        return cls(**config)

    def clone(self) -> Ensemble:
        """An unfitted copy with the same hyper-parameters."""
        return self.from_config(self.get_config())

    def _check_fitted(self) -> None:
        if self.n_members_ is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(member_probs, y_true) or load(path)")

    def to_dict(self) -> dict[str, Any]:
        """Kind, config and learned state as plain JSON values (exact round trip through :meth:`from_dict`)."""
        self._check_fitted()
        return {"format": _FORMAT, "kind": self.kind, "config": self.get_config(),
                "n_members": self.n_members_, "n_categories": self.n_categories_, "state": self._state()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Ensemble:
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            received = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise DataError(f"Expected an ensemble snapshot with format {_FORMAT!r}. Received: {received!r}")
        if data.get("kind") != cls.kind:
            raise DataError(f"Expected a {cls.kind!r} ensemble snapshot. Received: kind={data.get('kind')!r}; "
                            "use ensemble_from_dict to load any kind")
        self = cls.from_config(data["config"])
        self.n_members_ = int(data["n_members"])
        self.n_categories_ = int(data["n_categories"])
        self._restore(data["state"])
        return self

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_dict` as JSON to ``path`` (a file)."""
        Path(path).write_text(json.dumps(self.to_dict()), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Ensemble:
        return cls.from_dict(_read_json(path))


def _read_json(path: str | Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read an ensemble from {path}: {exc}; pass a file written by save()") from exc


def _masked_mean(arrays: list[np.ndarray], weights: np.ndarray | None = None) -> np.ndarray:
    """float32 weighted mean over the members that answered (non-NaN); 0 where none did.

    Accumulates member by member, so memory stays at a few n x C float32 buffers.
    """
    num = np.zeros(arrays[0].shape, dtype=np.float32)
    den = np.zeros(arrays[0].shape, dtype=np.float32)
    for j, a in enumerate(arrays):
        w = np.float32(1.0 if weights is None else weights[j])
        present = ~np.isnan(a)
        num += np.where(present, a, 0.0).astype(np.float32, copy=False) * w
        den += present * w
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


# --------------------------------------------------------------------------------------------
# combiners
# --------------------------------------------------------------------------------------------


class MeanEnsemble(Ensemble):
    """The plain average of the members that answered (0 where every member abstained)."""

    kind = "mean"

    def get_config(self) -> dict[str, Any]:
        return {}

    def fit(self, member_probs: Sequence[np.ndarray], y_true: np.ndarray | None = None) -> MeanEnsemble:
        arrays = _members(member_probs)
        if y_true is not None:
            _labels(y_true, arrays[0].shape)
        self.n_members_, self.n_categories_ = len(arrays), arrays[0].shape[1]
        return self

    def predict_proba(self, member_probs: Sequence[np.ndarray]) -> np.ndarray:
        return _masked_mean(_members(member_probs, self.n_members_, self.n_categories_))

    def _state(self) -> dict[str, Any]:
        return {}

    def _restore(self, state: dict[str, Any]) -> None:
        pass


class WeightedEnsemble(Ensemble):
    """A weighted average, weights >= 0 summing to 1, fitted by minimising log-loss on out-of-fold probabilities.

    ``weights = softmax(a)``; ``a`` minimises the (sampling-weighted) mean binary log-loss plus
    ``l2 * |a|^2`` (a tiny penalty that keeps ``a`` finite when one member is best everywhere) with
    scipy's L-BFGS and the analytic gradient. Members that abstain on an entry drop out of it and
    the remaining weights are renormalised.
    """

    kind = "weighted"

    def __init__(self, *, l2: float = 1e-4, max_entries: int = 2_000_000, seed: int = 0, clip: float = 1e-6) -> None:
        super().__init__()
        if l2 < 0 or max_entries < 1 or not 0 < clip < 0.5:
            raise ConfigError(f"Expected l2 >= 0, max_entries >= 1 and 0 < clip < 0.5. Received: l2={l2}, "
                              f"max_entries={max_entries}, clip={clip}")
        self.l2, self.max_entries, self.seed, self.clip = float(l2), int(max_entries), int(seed), float(clip)
        self.weights_: np.ndarray | None = None

    def get_config(self) -> dict[str, Any]:
        return {"l2": self.l2, "max_entries": self.max_entries, "seed": self.seed, "clip": self.clip}

    def fit(self, member_probs: Sequence[np.ndarray], y_true: np.ndarray) -> WeightedEnsemble:
        from scipy.optimize import minimize  # training-only dependency; serving needs numpy alone

        arrays = _members(member_probs)
        y = _labels(y_true, arrays[0].shape)
        m = len(arrays)
        idx, w = _sample_entries(y, self.max_entries, np.random.default_rng(self.seed))
        p = _gather(arrays, idx)
        present = ~np.isnan(p)
        p = np.where(present, p, 0.0)
        t = y.ravel()[idx]
        w = w / w.sum()

        def objective(a: np.ndarray) -> tuple[float, np.ndarray]:
            e = np.exp(a - a.max())
            v = e / e.sum()
            s = (v[:, None] * present).sum(axis=0)
            s_safe = np.where(s > 0, s, 1.0)
            q = np.where(s > 0, (v[:, None] * p).sum(axis=0) / s_safe, 0.5)
            qc = np.clip(q, self.clip, 1.0 - self.clip)
            loss = -(w * np.where(t, np.log(qc), np.log1p(-qc))).sum() + self.l2 * (a @ a)
            dq = w * (qc - t) / (qc * (1.0 - qc))  # d loss / d q
            dq = np.where((q > self.clip) & (q < 1.0 - self.clip), dq, 0.0)
            g_v = ((p - q[None, :] * present) / s_safe[None, :]) @ dq  # d loss / d v_j
            g_a = v * (g_v - v @ g_v) + 2.0 * self.l2 * a
            return float(loss), g_a

        result = minimize(objective, np.zeros(m), jac=True, method="L-BFGS-B")
        e = np.exp(result.x - result.x.max())
        self.weights_ = e / e.sum()
        self.n_members_, self.n_categories_ = m, arrays[0].shape[1]
        return self

    def predict_proba(self, member_probs: Sequence[np.ndarray]) -> np.ndarray:
        self._check_fitted()
        return _masked_mean(_members(member_probs, self.n_members_, self.n_categories_), self.weights_)

    def _state(self) -> dict[str, Any]:
        assert self.weights_ is not None
        return {"weights": _floats(self.weights_)}

    def _restore(self, state: dict[str, Any]) -> None:
        self.weights_ = np.asarray(state["weights"], dtype=np.float64)


class StackedEnsemble(Ensemble):
    """Pooled logistic regression on member logits with a per-category bias (see the module docstring).

    ``logit q_ic = b0 + b_c + sum_j a_j logit(p_jic)``. A member that abstains on an entry gets
    the mean logit of the members that answered (so the prediction falls back to their consensus);
    where every member abstained the logit is 0. Penalties: ``bias_l2`` on the ``b_c`` (shrinks
    them to the shared ``b0``; must be > 0, it makes ``b0`` identifiable) and ``slope_l2`` on the
    ``a_j``, both in units of the summed log-loss. Newton steps with step halving until the
    largest parameter change is below ``tol``.
    """

    kind = "stacked"

    def __init__(self, *, bias_l2: float = 1.0, slope_l2: float = 1e-3, max_entries: int = 2_000_000,
                 max_iter: int = 50, tol: float = 1e-7, seed: int = 0, clip: float = 1e-6) -> None:
        super().__init__()
        if bias_l2 <= 0 or slope_l2 < 0:
            raise ConfigError(f"Expected bias_l2 > 0 and slope_l2 >= 0. Received: bias_l2={bias_l2}, "
                              f"slope_l2={slope_l2}")
        if max_entries < 1 or max_iter < 1 or tol <= 0 or not 0 < clip < 0.5:
            raise ConfigError(f"Expected max_entries >= 1, max_iter >= 1, tol > 0 and 0 < clip < 0.5. Received: "
                              f"max_entries={max_entries}, max_iter={max_iter}, tol={tol}, clip={clip}")
        self.bias_l2, self.slope_l2 = float(bias_l2), float(slope_l2)
        self.max_entries, self.max_iter, self.tol = int(max_entries), int(max_iter), float(tol)
        self.seed, self.clip = int(seed), float(clip)
        self.slopes_: np.ndarray | None = None  # (m,)
        self.intercept_: float | None = None  # b0
        self.biases_: np.ndarray | None = None  # (C,)
        self.n_iter_: int | None = None

    def get_config(self) -> dict[str, Any]:
        return {"bias_l2": self.bias_l2, "slope_l2": self.slope_l2, "max_entries": self.max_entries,
                "max_iter": self.max_iter, "tol": self.tol, "seed": self.seed, "clip": self.clip}

    def _features(self, stack: np.ndarray) -> np.ndarray:
        """(m, ...) logits with abstentions imputed by the mean logit of the members that answered."""
        z = _logit(stack, self.clip)
        missing = np.isnan(stack)
        if missing.any():
            answered = (~missing).sum(axis=0)
            mean = np.divide(np.where(missing, 0.0, z).sum(axis=0), answered,
                             out=np.zeros(z.shape[1:]), where=answered > 0)
            z = np.where(missing, mean[None], z)
        return z

    def fit(self, member_probs: Sequence[np.ndarray], y_true: np.ndarray) -> StackedEnsemble:
        arrays = _members(member_probs)
        y = _labels(y_true, arrays[0].shape)
        m, n_cat = len(arrays), arrays[0].shape[1]
        idx, w = _sample_entries(y, self.max_entries, np.random.default_rng(self.seed))
        z = self._features(_gather(arrays, idx))  # (m, N)
        x = np.vstack([z, np.ones((1, z.shape[1]))]).T  # (N, m + 1): member logits and the shared intercept
        cat = idx % n_cat
        t = y.ravel()[idx].astype(np.float64)
        theta_s = np.concatenate([np.full(m, 1.0 / m), [0.0]])  # start at the mean of the logits
        bias = np.zeros(n_cat)
        ridge_s = np.concatenate([np.full(m, self.slope_l2), [0.0]])

        def loss_of(ts: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray]:
            eta = x @ ts + b[cat]
            # log(1 + e^eta) - t * eta, stable for large |eta|
            nll = (w * (np.logaddexp(0.0, eta) - t * eta)).sum()
            return float(nll + 0.5 * (ridge_s * ts * ts).sum() + 0.5 * self.bias_l2 * (b @ b)), eta

        loss, eta = loss_of(theta_s, bias)
        n_iter = 0
        for n_iter in range(1, self.max_iter + 1):
            q = _sigmoid(eta)
            r = w * (q - t)
            h = w * q * (1.0 - q)
            g_s = x.T @ r + ridge_s * theta_s
            g_b = np.bincount(cat, weights=r, minlength=n_cat) + self.bias_l2 * bias
            h_ss = (x * h[:, None]).T @ x + np.diag(ridge_s)
            h_sb = np.stack([np.bincount(cat, weights=h * x[:, k], minlength=n_cat) for k in range(m + 1)])
            h_bb = np.bincount(cat, weights=h, minlength=n_cat) + self.bias_l2
            # Schur complement on the diagonal bias block
            schur = h_ss - (h_sb / h_bb) @ h_sb.T
            step_s = np.linalg.solve(schur, g_s - h_sb @ (g_b / h_bb))
            step_b = (g_b - h_sb.T @ step_s) / h_bb
            scale = 1.0
            while True:
                new_s, new_b = theta_s - scale * step_s, bias - scale * step_b
                new_loss, new_eta = loss_of(new_s, new_b)
                if new_loss <= loss + 1e-12 * abs(loss) or scale < 1e-4:
                    break
                scale *= 0.5
            theta_s, bias, eta = new_s, new_b, new_eta
            change = scale * max(np.abs(step_s).max(), np.abs(step_b).max(initial=0.0))
            loss = new_loss
            if change < self.tol:
                break
        self.slopes_, self.intercept_, self.biases_ = theta_s[:m].copy(), float(theta_s[m]), bias
        self.n_iter_ = n_iter
        self.n_members_, self.n_categories_ = m, n_cat
        return self

    def predict_proba(self, member_probs: Sequence[np.ndarray]) -> np.ndarray:
        self._check_fitted()
        assert self.slopes_ is not None and self.biases_ is not None and self.intercept_ is not None
        arrays = _members(member_probs, self.n_members_, self.n_categories_)
        # float32, member by member: a few n x C buffers whatever the number of members
        eta = np.empty(arrays[0].shape, dtype=np.float32)
        eta[:] = (self.intercept_ + self.biases_).astype(np.float32)
        clip = np.float32(self.clip)

        def logits(a: np.ndarray) -> np.ndarray:
            return _logit(a.astype(np.float32, copy=False), clip)

        if any(np.isnan(a).any() for a in arrays):
            total = np.zeros_like(eta)
            count = np.zeros_like(eta)
            for a in arrays:
                present = ~np.isnan(a)
                total += np.where(present, logits(a), 0.0)
                count += present
            mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
            for slope, a in zip(self.slopes_, arrays):
                eta += np.float32(slope) * np.where(np.isnan(a), mean, logits(a))
        else:
            for slope, a in zip(self.slopes_, arrays):
                eta += np.float32(slope) * logits(a)
        return _sigmoid(eta)

    def _state(self) -> dict[str, Any]:
        assert self.slopes_ is not None and self.biases_ is not None
        return {"slopes": _floats(self.slopes_), "intercept": self.intercept_, "biases": _floats(self.biases_),
                "n_iter": self.n_iter_}

    def _restore(self, state: dict[str, Any]) -> None:
        self.slopes_ = np.asarray(state["slopes"], dtype=np.float64)
        self.intercept_ = float(state["intercept"])
        self.biases_ = np.asarray(state["biases"], dtype=np.float64)
        self.n_iter_ = state.get("n_iter")


_KINDS: dict[str, type[Ensemble]] = {cls.kind: cls for cls in (MeanEnsemble, WeightedEnsemble, StackedEnsemble)}


def ensemble_from_dict(data: dict[str, Any]) -> Ensemble:
    """Rebuild any ensemble kind from its :meth:`Ensemble.to_dict` output."""
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind not in _KINDS:
        raise DataError(f"Expected an ensemble snapshot with kind in {sorted(_KINDS)}. Received: kind={kind!r}")
    return _KINDS[kind].from_dict(data)


def load_ensemble(path: str | Path) -> Ensemble:
    """Rebuild any ensemble kind from a file written by :meth:`Ensemble.save`."""
    return ensemble_from_dict(_read_json(path))
