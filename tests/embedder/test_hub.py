"""HubEmbedder on local SavedModels (hubs are unreachable from these machines): a tf.Module
with a dict output, a Keras 3 ``model.export`` (signature only, not callable), a spatial
feature map, and the errors an operator sees for a bad handle or output key."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from embedder import Embedder, HubEmbedder
from prodcat.errors import ConfigError

tf = pytest.importorskip("tensorflow")

SIZE = 32
DIM = 8


class _TinyImageModel(tf.Module):
    """[n, h, w, 3] in [0, 1] -> {"embedding": [n, 8], "logits": [n, 3]} with fixed weights."""

    def __init__(self) -> None:
        super().__init__()
        rng = np.random.default_rng(0)
        self.w1 = tf.Variable(rng.normal(size=(3, 16)).astype(np.float32))
        self.w2 = tf.Variable(rng.normal(size=(16, DIM)).astype(np.float32))
        self.w3 = tf.Variable(rng.normal(size=(DIM, 3)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def __call__(self, images):
        h = tf.nn.relu(tf.einsum("nhwc,cd->nhwd", images - 0.5, self.w1))
        emb = tf.reduce_mean(tf.einsum("nhwd,de->nhwe", h, self.w2), axis=[1, 2]) + 0.1
        return {"embedding": emb, "logits": tf.matmul(emb, self.w3)}


class _FeatureMapModel(tf.Module):
    """Returns a spatial map [n, h/4, w/4, 8] (like a backbone without pooling)."""

    def __init__(self) -> None:
        super().__init__()
        self.kernel = tf.Variable(np.random.default_rng(1).normal(size=(4, 4, 3, DIM)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def __call__(self, images):
        return tf.nn.conv2d(images, self.kernel, strides=4, padding="VALID")


@pytest.fixture(scope="module")
def dict_model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("hub") / "tiny_dict"
    tf.saved_model.save(_TinyImageModel(), str(path))
    return path


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    rng = np.random.default_rng(42)
    out = [Image.fromarray(rng.integers(0, 256, size=(40 + 10 * i, 30 + 7 * i, 3), dtype=np.uint8)) for i in range(5)]
    out.append(Image.new("L", (50, 20), 128))  # greyscale, wide
    return out


def test_dict_output_picked_by_key_is_unit_float32(dict_model_dir, images):
    emb = HubEmbedder(str(dict_model_dir), image_size=SIZE, output_key="embedding")
    assert isinstance(emb, Embedder)
    assert emb.dim == DIM
    vectors = emb.embed(images)
    assert vectors.shape == (len(images), DIM) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    singles = np.concatenate([emb.embed([im]) for im in images])
    np.testing.assert_allclose(vectors, singles, atol=1e-5)
    assert emb.embed([]).shape == (0, DIM)


def test_preprocess_gives_nhwc_pixels_in_unit_range(dict_model_dir, images):
    emb = HubEmbedder(str(dict_model_dir), image_size=SIZE, output_key="embedding")
    pixels = emb.preprocess(images)
    assert pixels.shape == (len(images), SIZE, SIZE, 3) and pixels.dtype == np.float32
    assert pixels.min() >= 0.0 and pixels.max() <= 1.0


def test_version_is_handle_plus_content_hash(dict_model_dir, tmp_path):
    a = HubEmbedder(str(dict_model_dir), image_size=SIZE, output_key="embedding")
    assert a.version.startswith(f"{dict_model_dir}@") and len(a.version.rsplit("@", 1)[1]) == 12
    assert HubEmbedder(str(dict_model_dir), image_size=SIZE, output_key="embedding").version == a.version
    assert HubEmbedder(str(dict_model_dir), image_size=SIZE, output_key="logits").version != a.version
    other = tmp_path / "other"
    tf.saved_model.save(_FeatureMapModel(), str(other))
    assert HubEmbedder(str(other), image_size=SIZE).version.rsplit("@", 1)[1] != a.version.rsplit("@", 1)[1]


def test_keras_export_signature_only_model(tmp_path, images):
    keras = pytest.importorskip("keras")
    inputs = keras.Input(shape=(SIZE, SIZE, 3))
    x = keras.layers.Conv2D(DIM, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(DIM)(x))
    path = tmp_path / "keras_export"
    model.export(str(path), verbose=False)
    emb = HubEmbedder(str(path), image_size=SIZE)
    vectors = emb.embed(images)
    assert vectors.shape == (len(images), DIM)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    expected = model.predict(emb.preprocess(images), verbose=0)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, expected, atol=1e-5)


def test_spatial_feature_map_is_average_pooled(tmp_path, images):
    path = tmp_path / "feature_map"
    tf.saved_model.save(_FeatureMapModel(), str(path))
    emb = HubEmbedder(str(path), image_size=SIZE)
    assert emb.dim == DIM
    assert emb.embed(images).shape == (len(images), DIM)


def test_unreachable_handle_is_a_config_error_naming_the_setting(tmp_path):
    with pytest.raises(ConfigError, match="PRODCAT_EMBEDDER_HANDLE") as info:
        HubEmbedder(str(tmp_path / "no-such-model"))
    assert "no-such-model" in str(info.value)
    with pytest.raises(ConfigError, match="PRODCAT_EMBEDDER_HANDLE"):
        HubEmbedder(str(tmp_path))  # a directory, but not a SavedModel
    with pytest.raises(ConfigError, match="PRODCAT_EMBEDDER_HANDLE"):
        HubEmbedder("")


def test_ambiguous_or_wrong_output_key_is_a_config_error(dict_model_dir):
    with pytest.raises(ConfigError, match=r"output_key"):
        HubEmbedder(str(dict_model_dir), image_size=SIZE)
    with pytest.raises(ConfigError, match=r"'nope'.*\['embedding', 'logits'\]"):
        HubEmbedder(str(dict_model_dir), image_size=SIZE, output_key="nope")
