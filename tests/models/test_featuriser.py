"""Featuriser and feature config: shapes from the spec, identical arrays after save/load, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from models.config import FeatureConfig, TextField
from models.errors import ConfigError, DataError, NotFittedError
from models.featuriser import Featuriser
from prodcat.record import ProductRecord


def test_default_config_has_the_study_representation():
    config = FeatureConfig.default()
    title, brand, category = config.fields["title"], config.fields["brand"], config.fields["category"]
    assert isinstance(title, TextField) and title.max_tokens == 8000 and set(title.outputs) == {"tf_idf", "int"}
    assert (brand.kind, brand.top_k, brand.embedding_dim) == ("categorical", 5000, 10)
    assert (category.kind, category.top_k, category.embedding_dim) == ("categorical", 950, 6)
    assert config.fields["category_path"].max_tokens == 1000
    assert config.fields["description"].max_tokens == 8000
    assert config.fields["size"].top_k == 100
    assert config.fields["image"].dim == 1280
    assert config.fields["price"].kind == "drop"
    assert FeatureConfig.from_yaml(config.to_yaml()) == config


@pytest.mark.parametrize("text, message", [
    ("fields: {title: {kind: txt, max_tokens: 10}}", "fields.title"),
    ("fields: {title: {kind: text}}", "max_tokens"),
    ("fields: {titel: {kind: text, max_tokens: 10}}", "needs a 'source'"),
    ("fields: {title: {kind: text, max_tokens: 10}}\nmembers: {logreg: {fields: [body]}}", "unknown field"),
    ("fields: {a: {kind: dense, dim: 2}, b: {kind: dense, dim: 3}}", "at most one dense field"),
    ("- just a list", "expected a mapping"),
])
def test_config_errors_name_the_setting(text, message):
    with pytest.raises(ConfigError, match=message):
        FeatureConfig.from_yaml(text)


def test_transform_matches_input_spec(sample, featuriser, features):
    spec = featuriser.input_spec()
    assert set(features) == set(spec)
    n = len(sample.records)
    for name, s in spec.items():
        assert features[name].shape == (n, s.width), name
        assert features[name].dtype == np.dtype(s.dtype), name
        if s.vocabulary_size is not None:
            assert features[name].max() < s.vocabulary_size, name
    assert features["title_tfidf"].any(axis=1).mean() > 0.99
    assert 0.7 < features["image_mask"].mean() < 0.9  # 20% of the sample has no image
    assert not features["image"][features["image_mask"][:, 0] == 0].any()


def test_a_dropped_field_is_skipped_everywhere(featuriser):
    assert "category" not in featuriser.input_spec() and "category_path_tfidf" not in featuriser.input_spec()
    assert featuriser.config.active_fields("textcnn") == ["title", "brand", "description", "gender"]


def test_a_field_without_training_text_gives_zeros(featuriser, features):
    # Flipkart's names file has no descriptions: the field must still produce arrays, all zero.
    spec = featuriser.input_spec(["description"])
    assert spec["description_tfidf"].width == 1 and spec["description_tokens"].vocabulary_size == 2
    assert not features["description_tfidf"].any() and not features["description_tokens"].any()


def test_save_load_gives_identical_arrays(tmp_path, sample, featuriser, features, bad_records):
    featuriser.save(tmp_path)
    loaded = Featuriser.load(tmp_path)
    assert loaded.config == featuriser.config
    assert loaded.input_spec() == featuriser.input_spec()
    again = loaded.transform(sample.records, sample.images)
    for name, array in features.items():
        assert again[name].dtype == array.dtype and again[name].tobytes() == array.tobytes(), name
    odd = featuriser.transform(bad_records)
    odd_again = loaded.transform(bad_records)
    assert all(odd[name].tobytes() == odd_again[name].tobytes() for name in odd)
    assert loaded.vocabulary("title_tfidf") == featuriser.vocabulary("title_tfidf")


def test_fit_is_deterministic(sample, config, featuriser):
    other = Featuriser(config).fit(sample.records)
    for name in ("title_tfidf", "title_tokens", "brand"):
        assert other.vocabulary(name) == featuriser.vocabulary(name)


def test_bad_records_give_bounded_features(featuriser, bad_records):
    x = featuriser.transform(bad_records)
    spec = featuriser.input_spec()
    for name, s in spec.items():
        assert x[name].shape == (len(bad_records), s.width), name
        assert np.isfinite(x[name]).all(), name
    empty, huge, emoji, coerced, punct, parsed = range(len(bad_records))
    assert not x["title_tfidf"][empty].any() and not x["title_tokens"][empty].any() and x["brand"][empty, 0] == 0
    assert x["title_tokens"][huge].all()  # truncated to sequence_length, every slot a word
    assert x["title_tfidf"][emoji].any()
    assert x["brand"][coerced, 0] == 1  # an unseen brand is out-of-vocabulary, not missing
    assert not x["title_tokens"][punct].any()
    assert x["title_tfidf"][parsed].any()
    assert not x["image_mask"].any()  # no image vectors given


def test_transform_of_no_records(featuriser):
    x = featuriser.transform([])
    assert all(array.shape[0] == 0 for array in x.values())


def test_image_vectors_are_checked(sample, featuriser):
    records = sample.records[:3]
    with pytest.raises(DataError, match=r"expected image_vectors of shape \(3, 32\).*received \(3, 5\)"):
        featuriser.transform(records, np.zeros((3, 5)))
    vectors = np.ones((3, 32), dtype=np.float32)
    vectors[1] = np.nan
    vectors[2] = 0.0
    x = featuriser.transform(records, vectors)
    assert x["image_mask"][:, 0].tolist() == [1.0, 0.0, 0.0]
    assert np.isfinite(x["image"]).all()


def test_misuse_raises_specific_errors(config, featuriser):
    with pytest.raises(NotFittedError, match="call fit"):
        Featuriser(config).transform([ProductRecord(id="1", title="x")])
    with pytest.raises(DataError, match="expected ProductRecord.*received dict at position 0"):
        featuriser.transform([{"id": "1", "title": "x"}])
    with pytest.raises(ConfigError, match="unknown field"):
        featuriser.input_spec(["titel"])
    with pytest.raises(KeyError, match="no vocabulary for feature 'image'"):
        featuriser.vocabulary("image")


def test_get_config_builds_an_unfitted_copy(featuriser):
    copy = Featuriser.from_config(featuriser.get_config())
    assert copy.config == featuriser.config and not copy.fitted
