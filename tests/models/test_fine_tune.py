"""Fine-tuning: a member starts from the previous member's weights; train_ensemble(init=...) reuses the featuriser
and refuses another taxonomy, feature config or member set; the retrain service fine-tunes only when configured."""

from __future__ import annotations

import numpy as np
import pytest

from models.classifier import Classifier
from models.config import FeatureConfig
from models.errors import ConfigError, DataError, NotFittedError
from models.featuriser import Featuriser
from models.labels import labels_from_paths
from models.members import create_member
from models.training import train_ensemble
from prodcat.settings import Settings
from prodcat.taxonomy import Taxonomy
from retrain.service import default_trainer, fine_tune_start
from tests.models.conftest import Sample

N = 300
FROZEN = {"learning_rate": 1e-9}  # an epoch that cannot move the weights: what a member starts from shows


@pytest.fixture(scope="module")
def small(sample: Sample) -> Sample:
    return Sample(sample.records[:N], sample.taxonomy, sample.y[:N], sample.images[:N])


@pytest.fixture(scope="module")
def text_config(config: FeatureConfig) -> FeatureConfig:
    return config.with_fields(image={"kind": "drop"})


@pytest.fixture(scope="module")
def previous(small: Sample, text_config: FeatureConfig) -> Classifier:
    return train_ensemble(small.records, small.taxonomy.from_matrix(small.y), small.taxonomy, config=text_config,
                          members=("logreg",), folds=2, epochs=3, seed=0)


def test_a_warm_started_member_starts_from_the_previous_weights(sample: Sample, featuriser: Featuriser,
                                                                  features: dict[str, np.ndarray]) -> None:
    prev = create_member("logreg", featuriser, epochs=3, seed=0).fit(features, sample.y)
    before = [w.copy() for w in prev._model.get_weights()]  # type: ignore[attr-defined]
    p_prev = prev.predict_proba(features)
    warm = create_member("logreg", featuriser, epochs=1, seed=1, **FROZEN).fit(features, sample.y,
                                                                                 warm_start_from=prev)
    fresh = create_member("logreg", featuriser, epochs=1, seed=1, **FROZEN).fit(features, sample.y)
    np.testing.assert_allclose(warm.predict_proba(features), p_prev, atol=1e-4)
    assert np.abs(fresh.predict_proba(features) - p_prev).max() > 0.1
    # the previous member is left as it was
    assert all(np.array_equal(a, b) for a, b in zip(before, prev._model.get_weights()))  # type: ignore[attr-defined]
    # an ordinary fine-tuning epoch moves away from the start, but stays nearer to it than a fresh model
    tuned = create_member("logreg", featuriser, epochs=1, seed=1).fit(features, sample.y, warm_start_from=prev)
    one_epoch = create_member("logreg", featuriser, epochs=1, seed=1).fit(features, sample.y)
    assert (np.abs(tuned.predict_proba(features) - p_prev).mean()
            < np.abs(one_epoch.predict_proba(features) - p_prev).mean())


def test_a_member_refuses_to_start_from_an_unsuitable_one(sample: Sample, featuriser: Featuriser,
                                                          features: dict[str, np.ndarray]) -> None:
    prev = create_member("logreg", featuriser, epochs=1).fit(features, sample.y)
    with pytest.raises(NotFittedError, match="not fitted"):
        create_member("logreg", featuriser, epochs=1).fit(features, sample.y,
                                                          warm_start_from=create_member("logreg", featuriser))
    with pytest.raises(ConfigError, match="can start only from a fitted 'logreg' member"):
        create_member("logreg", featuriser, epochs=1).fit(
            features, sample.y, warm_start_from=create_member("mlp", featuriser, epochs=1).fit(features, sample.y))
    with pytest.raises(DataError, match=f"with {sample.y.shape[1] - 1} classes"):
        create_member("logreg", featuriser, epochs=1).fit(features, sample.y[:, 1:], warm_start_from=prev)


def test_fine_tuning_reuses_the_featuriser_and_starts_every_member_from_the_previous_one(
        small: Sample, previous: Classifier) -> None:
    tuned = train_ensemble(small.records, small.taxonomy.from_matrix(small.y), small.taxonomy, members=("logreg",),
                           folds=2, epochs=1, member_params={"logreg": FROZEN}, seed=1, init=previous,
                           keep_oof=True)
    assert tuned.featuriser is previous.featuriser
    assert tuned.training["fine_tuned_from"] == previous.version and tuned.training["epochs"] == {"logreg": 1}
    x = previous.featuriser.transform(small.records)
    p_prev = previous.members["logreg"].predict_proba(x)
    np.testing.assert_allclose(tuned.members["logreg"].predict_proba(x), p_prev, atol=1e-4)  # the refit
    np.testing.assert_allclose(tuned.oof_.member_probs[0], p_prev, atol=1e-4)  # the out-of-fold copies
    assert previous.training["fine_tuned_from"] is None


def test_fine_tuning_refuses_another_taxonomy(small: Sample, previous: Classifier) -> None:
    paths = [r.category_path for r in small.records]
    other = Taxonomy.from_paths(paths, max_depth=1)
    assert other.ids != small.taxonomy.ids
    with pytest.raises(ConfigError, match=r"Expected the taxonomy .* Received: \d+ ids.*train from scratch"):
        train_ensemble(small.records, labels_from_paths(paths, other), other, members=("logreg",), folds=2,
                       epochs=1, init=previous)


def test_fine_tuning_refuses_another_config_or_a_new_member(small: Sample, previous: Classifier,
                                                            config: FeatureConfig) -> None:
    labels = small.taxonomy.from_matrix(small.y)
    with pytest.raises(ConfigError, match="feature config of the classifier being fine-tuned"):
        train_ensemble(small.records, labels, small.taxonomy, config=config, members=("logreg",), folds=2,
                       epochs=1, init=previous)
    with pytest.raises(ConfigError, match=r"Expected members .* \['logreg'\]. Received: \['logreg', 'mlp'\]"):
        train_ensemble(small.records, labels, small.taxonomy, members=("logreg", "mlp"), folds=2, epochs=1,
                       init=previous)


def test_the_retrain_services_trainer_fine_tunes_the_promoted_model_only_when_told(
        small: Sample, previous: Classifier) -> None:
    labels = small.taxonomy.from_matrix(small.y)
    told = Settings(retrain_fine_tune_epochs=1)
    tuned = default_trainer(told, members=("logreg", "mlp"), folds=2, current=previous)(
        small.records, labels, small.taxonomy, None)
    assert isinstance(tuned, Classifier) and tuned.training["fine_tuned_from"] == previous.version
    assert list(tuned.members) == ["logreg"] and tuned.training["epochs"] == {"logreg": 1}  # the members both have
    scratch = default_trainer(Settings(), members=("logreg",), folds=2, current=previous)(
        small.records, labels, small.taxonomy, None)
    assert isinstance(scratch, Classifier) and scratch.training["fine_tuned_from"] is None  # the default
    other = Taxonomy.from_paths([["Somewhere", "Else"]])
    assert fine_tune_start(previous, other, ("logreg",)) is None  # a new taxonomy: from scratch
    assert fine_tune_start(previous, small.taxonomy, ("mlp",)) is None  # no member to start from
    assert fine_tune_start(None, small.taxonomy, ("logreg",)) is None  # the legacy rules: nothing to tune
