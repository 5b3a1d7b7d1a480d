"""The member contract, run over every member in the registry: no member is exempt from any check.

Each member trains once per module on 500 real Flipkart products (true labels, a depth-2 tree
of ~34 categories) with 100 held out for early stopping; the checks then share that model.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from models.errors import DataError, NotFittedError
from models.labels import LabelWeighting
from models.members import MEMBERS, Member, create_member, load_member

# The same small budget for every member: enough to learn 500 titles, cheap on 2 CPU cores.
FAST = {"epochs": 15, "learning_rate": 3e-3, "batch_size": 64, "seed": 0}
TRAIN, HELD_OUT = slice(0, 500), slice(500, 600)


def rows(features: dict[str, np.ndarray], index: slice | np.ndarray) -> dict[str, np.ndarray]:
    return {name: array[index] for name, array in features.items()}


@pytest.fixture(scope="module", params=sorted(MEMBERS))
def trained(request, sample, featuriser, features) -> Member:
    member = create_member(request.param, featuriser, **FAST)
    validation = (rows(features, HELD_OUT), sample.y[HELD_OUT])
    return member.fit(rows(features, TRAIN), sample.y[TRAIN], validation=validation)


def answered(p: np.ndarray) -> np.ndarray:
    """Rows the member did not abstain on (abstention = a whole row of NaN)."""
    return ~np.isnan(p).any(axis=1)


def test_registry_names_match_classes():
    assert all(cls.name == name and issubclass(cls, Member) for name, cls in MEMBERS.items())


def test_predict_proba_shape_and_range(trained, sample, features):
    p = trained.predict_proba(features)
    assert p.shape == sample.y.shape and p.dtype == np.float32
    ok = answered(p)
    assert np.isnan(p[~ok]).all(), "NaN only as whole rows (abstentions)"
    assert ok.mean() > 0.5
    assert ((p[ok] >= 0) & (p[ok] <= 1)).all()


def test_learns_something(trained, sample, features):
    x, y = rows(features, TRAIN), sample.y[TRAIN]
    p = trained.predict_proba(x)
    ok = answered(p)
    y, p = y[ok], p[ok]
    both = (y.min(axis=0) == 0) & (y.max(axis=0) == 1)
    # Macro AUC: a constant or prior predictor scores exactly 0.5 on every class.
    auc = roc_auc_score(y[:, both], p[:, both], average="macro")
    # Micro-F1 at 0.5: predicting nothing scores 0; the best constant (every root always) ~0.2.
    f1 = f1_score(y, p > 0.5, average="micro", zero_division=0)
    print(f"{trained.name}: train macro-AUC {auc:.3f}, micro-F1 {f1:.3f}, epochs {len(trained.history_['loss'])}")
    assert auc > 0.9
    assert f1 > 0.5


def test_save_load_gives_identical_outputs(trained, tmp_path, features, bad_records, featuriser):
    trained.save(tmp_path)
    loaded = load_member(tmp_path)
    assert type(loaded) is type(trained) and loaded.get_config() == trained.get_config()
    for x in (features, featuriser.transform(bad_records)):
        assert np.array_equal(loaded.predict_proba(x), trained.predict_proba(x), equal_nan=True)
        assert np.array_equal(loaded.embed(x), trained.embed(x), equal_nan=True)
    with pytest.raises(DataError, match=f"holds a '{trained.name}' member"):
        other = next(cls for cls in MEMBERS.values() if cls is not type(trained))
        other.load(tmp_path)


def test_from_config_rebuilds_an_untrained_copy(trained, features):
    config = trained.get_config()
    json.dumps(config)  # serialisable, so an artifact can store it
    copy = type(trained).from_config(config)
    assert copy.get_config() == config and trained.clone().get_config() == config
    with pytest.raises(NotFittedError, match="not fitted"):
        copy.predict_proba(features)


def test_embed_shape(trained, sample, features):
    e = trained.embed(features)
    assert e.ndim == 2 and e.shape[0] == len(sample.records) and e.shape[1] >= 1 and e.dtype == np.float32
    p = trained.predict_proba(features)
    assert np.array_equal(answered(e), answered(p))
    assert np.isfinite(e[answered(e)]).all()


def test_bad_records_predict_without_crashing(trained, sample, featuriser, bad_records):
    p = trained.predict_proba(featuriser.transform(bad_records))
    assert p.shape == (len(bad_records), sample.y.shape[1])
    assert ((p[answered(p)] >= 0) & (p[answered(p)] <= 1)).all()


def test_missing_features_are_named(trained, features):
    name = sorted(trained.get_config()["inputs"])[0]
    broken = {k: v for k, v in features.items() if k != name}
    with pytest.raises(DataError, match=f"expected feature\\(s\\) \\['{name}'\\]"):
        trained.predict_proba(broken)


@pytest.mark.parametrize("name", sorted(MEMBERS))
def test_weighted_fit_is_repeatable(name, sample, featuriser, features):
    """PU and class weights are accepted, and the same seed gives the same model."""
    x, y = rows(features, slice(0, 200)), sample.y[:200]
    weights = LabelWeighting(pu_correction=True).compute(y, sample.taxonomy)._asdict()
    first = create_member(name, featuriser, **{**FAST, "epochs": 2}).fit(x, y, **weights)
    second = create_member(name, featuriser, **{**FAST, "epochs": 2}).fit(x, y, **weights)
    assert np.array_equal(first.predict_proba(x), second.predict_proba(x), equal_nan=True)
    with pytest.raises(DataError, match="sample_weight of shape"):
        first.fit(x, y, sample_weight=np.ones(3))
