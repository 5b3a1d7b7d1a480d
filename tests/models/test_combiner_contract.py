"""The combiner contract, run over every ensemble kind in the registry: no kind is exempt from a check.

What the classifier relies on, whichever combiner an artifact holds: fit returns the combiner;
predict_proba gives float32 n x C in [0, 1] whose rows do not depend on the other rows; an
abstaining member (an all-NaN row) is skipped, never read as 0; exact JSON and file round trips;
clone / from_config give an unfitted copy; wrong shapes and unfitted use raise the project's
errors. A new combiner is covered by adding it to ``COMBINERS``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.ensemble import Ensemble, MeanEnsemble, StackedEnsemble, WeightedEnsemble, ensemble_from_dict, load_ensemble
from models.errors import DataError, NotFittedError
from tests.helpers import implementations

# every combiner of the project, with small settings that keep the suite fast
COMBINERS: dict[type[Ensemble], Ensemble] = {
    MeanEnsemble: MeanEnsemble(),
    WeightedEnsemble: WeightedEnsemble(max_entries=5_000),
    StackedEnsemble: StackedEnsemble(max_entries=5_000),
}


@pytest.fixture(scope="module")
def members() -> tuple[list[np.ndarray], np.ndarray]:
    """An informative member, a noise member and one that abstains on a fifth of the products."""
    rng = np.random.default_rng(0)
    n, c = 400, 8
    y = rng.random((n, c)) < np.linspace(0.05, 0.4, c)
    informative = 1 / (1 + np.exp(-(3.0 * (2 * y - 1) + rng.normal(0, 1.5, (n, c)))))
    noise = rng.random((n, c))
    abstaining = informative.copy()
    abstaining[rng.random(n) < 0.2] = np.nan
    return [m.astype(np.float32) for m in (informative, noise, abstaining)], y


@pytest.fixture(params=list(COMBINERS), ids=lambda cls: cls.kind)
def combiner(request) -> Ensemble:
    return COMBINERS[request.param].clone()


@pytest.fixture
def fitted(combiner: Ensemble, members) -> Ensemble:
    probs, y = members
    return combiner.fit(probs, y)


def log_loss(q: np.ndarray, y: np.ndarray) -> float:
    q = np.clip(q.astype(np.float64), 1e-6, 1 - 1e-6)
    return float(-np.mean(np.where(y, np.log(q), np.log1p(-q))))


def test_registry_covers_every_combiner_and_kind() -> None:
    assert set(COMBINERS) == implementations(Ensemble)
    assert len({cls.kind for cls in COMBINERS}) == len(COMBINERS)


def test_fit_returns_the_combiner_and_leaves_the_inputs_alone(combiner: Ensemble, members) -> None:
    probs, y = members
    before = [p.copy() for p in probs]
    assert combiner.fit(probs, y) is combiner
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(probs, before, strict=True))
    assert combiner.n_members_ == len(probs) and combiner.n_categories_ == y.shape[1]


def test_probabilities_shape_dtype_and_range(fitted: Ensemble, members) -> None:
    probs, y = members
    q = fitted.predict_proba(probs)
    assert q.shape == y.shape and q.dtype == np.float32
    assert np.isfinite(q).all() and ((q >= 0) & (q <= 1)).all()
    assert log_loss(q, y) < log_loss(probs[1], y), "better than the noise member"


def test_rows_do_not_depend_on_the_other_rows(fitted: Ensemble, members) -> None:
    probs, _ = members
    whole = fitted.predict_proba(probs)
    rows = np.array([5, 0, 399, 17])
    assert np.allclose(fitted.predict_proba([p[rows] for p in probs]), whole[rows], atol=1e-6)
    assert fitted.predict_proba([p[:0] for p in probs]).shape == (0, whole.shape[1])


def test_an_abstaining_member_is_skipped_not_read_as_zero(fitted: Ensemble, members) -> None:
    probs, _ = members
    asked = [p[:50].copy() for p in probs]
    asked[2][:] = np.nan  # the third member abstains on every product
    q = fitted.predict_proba(asked)
    assert np.isfinite(q).all() and ((q >= 0) & (q <= 1)).all()
    zeros = [*asked[:2], np.zeros_like(asked[2])]
    assert not np.allclose(q, fitted.predict_proba(zeros)), "an abstention must not count as p = 0"


def test_fitting_is_deterministic(combiner: Ensemble, members) -> None:
    probs, y = members
    first = combiner.clone().fit(probs, y).to_dict()
    assert combiner.clone().fit(probs, y).to_dict() == first


def test_round_trips_are_exact(fitted: Ensemble, members, tmp_path) -> None:
    probs, _ = members
    data = json.loads(json.dumps(fitted.to_dict(), allow_nan=False))
    again = ensemble_from_dict(data)
    assert type(again) is type(fitted) and again.to_dict() == fitted.to_dict()
    assert np.array_equal(again.predict_proba(probs), fitted.predict_proba(probs))
    fitted.save(tmp_path / "ensemble.json")
    assert np.array_equal(load_ensemble(tmp_path / "ensemble.json").predict_proba(probs), fitted.predict_proba(probs))
    assert type(fitted).load(tmp_path / "ensemble.json").to_dict() == fitted.to_dict()


def test_clone_and_from_config_give_an_unfitted_copy(fitted: Ensemble) -> None:
    config = fitted.get_config()
    json.dumps(config)  # an artifact stores it
    for copy in (fitted.clone(), type(fitted).from_config(config)):
        assert type(copy) is type(fitted) and copy.get_config() == config
        # unfitted: nothing to save (the mean, which learns nothing, may still predict)
        assert copy.n_members_ is None
        with pytest.raises(NotFittedError, match="not fitted"):
            copy.to_dict()


def test_wrong_shapes_are_named(combiner: Ensemble, members) -> None:
    probs, y = members
    with pytest.raises(DataError, match="y_true"):
        combiner.clone().fit(probs, y[:10])
    with pytest.raises(DataError, match="one shape"):
        combiner.clone().fit([probs[0], probs[1][:, :3]], y)
    fitted = combiner.fit(probs, y)
    with pytest.raises(DataError, match="3 members"):
        fitted.predict_proba(probs[:2])
    with pytest.raises(DataError, match="8 categories"):
        fitted.predict_proba([p[:, :4] for p in probs])
