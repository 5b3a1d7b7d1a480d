"""Any TensorFlow Hub image model (handle, URL or local SavedModel directory) as an Embedder.

Uses ``tensorflow_hub.load`` (``hub.KerasLayer`` needs Keras 2 and cannot go into a Keras 3
model). The model is called on float32 ``[n, image_size, image_size, 3]`` pixels in [0, 1], the
common convention of hub image models.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from embedder.base import Embedder, l2_normalise, letterbox_batch
from prodcat.errors import ConfigError

__all__ = ["HubEmbedder", "HANDLE_SETTING"]

HANDLE_SETTING = "PRODCAT_EMBEDDER_HANDLE"


class HubEmbedder(Embedder):
    """Embeds images with a hub model; the output picked is a tensor or ``output_key`` of a dict.

    Outputs with spatial axes (``[n, h, w, c]``) are average-pooled to ``[n, c]``. The model is
    loaded and run once on a blank image when built, so a bad handle or output key fails here,
    with the setting to change in the message.
    """

    def __init__(
        self,
        handle: str,
        image_size: int = 224,
        output_key: str | None = None,
        *,
        batch_size: int = 32,
    ) -> None:
        if not isinstance(handle, str) or not handle.strip():
            raise ConfigError(f"Expected {HANDLE_SETTING} to be a hub handle, URL or SavedModel directory. Received: {handle!r}.")
        if not isinstance(image_size, int) or not 32 <= image_size <= 1024:
            raise ConfigError(f"Expected `image_size` to be an int in [32, 1024]. Received: image_size={image_size!r}.")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"Expected `batch_size` to be a positive int. Received: batch_size={batch_size!r}.")
        self.handle = handle
        self.image_size = image_size
        self.output_key = output_key
        self.batch_size = batch_size
        self._model, model_dir = self._load(handle)
        self._fingerprint = _fingerprint(model_dir, image_size, output_key)
        probe = self._forward(np.zeros((1, image_size, image_size, 3), np.float32))
        self._dim = int(probe.shape[1])

    @property
    def version(self) -> str:
        return f"{self.handle}@{self._fingerprint[:12]}"

    @property
    def dim(self) -> int:
        return self._dim

    def preprocess(self, images: Sequence[Image.Image]) -> np.ndarray:
        """``[n, image_size, image_size, 3]`` float32 in [0, 1]: letterboxed RGB on white."""
        batch = letterbox_batch(images, self.image_size)
        batch *= 1.0 / 255.0
        return batch

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        n = len(images)
        out = np.empty((n, self._dim), np.float32) if n else np.zeros((0, self._dim), np.float32)
        for start in range(0, n, self.batch_size):
            chunk = images[start : start + self.batch_size]
            out[start : start + len(chunk)] = self._forward(self.preprocess(chunk))
        return l2_normalise(out)

    # -- internals ----------------------------------------------------------------------------
    def _load(self, handle: str) -> tuple[Any, Path]:
        import tensorflow_hub as hub

        try:
            model_dir = Path(hub.resolve(handle))
            model = hub.load(str(model_dir))
        except Exception as exc:  # network, missing path, not a SavedModel, bad proto ...
            raise ConfigError(
                f"Could not load the image-embedding model {HANDLE_SETTING}={handle!r}: "
                f"{type(exc).__name__}: {exc}. Expected a TF Hub / Kaggle handle or URL reachable from "
                f"this machine, or a local SavedModel directory; set {HANDLE_SETTING} to one "
                "(machines without internet need a local directory)."
            ) from exc
        return model, model_dir

    def _forward(self, pixels: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        x = tf.constant(pixels)
        if callable(self._model):
            result = self._model(x)
        else:  # TF1-style hub models expose only signatures
            signature = self._model.signatures.get("serving_default") if hasattr(self._model, "signatures") else None
            if signature is None:
                raise ConfigError(
                    f"{HANDLE_SETTING}={self.handle!r} is neither callable nor has a 'serving_default' signature."
                )
            (input_name,) = signature.structured_input_signature[1].keys()
            result = signature(**{input_name: x})
        return self._pick_output(result)

    def _pick_output(self, result: Any) -> np.ndarray:
        if isinstance(result, dict):
            keys = sorted(result)
            key = self.output_key
            if key is None:
                if len(keys) != 1:
                    raise ConfigError(
                        f"{HANDLE_SETTING}={self.handle!r} returns several outputs {keys}; "
                        "pass `output_key` to choose the embedding."
                    )
                key = keys[0]
            if key not in result:
                raise ConfigError(f"Expected output key {key!r} from {self.handle!r}; it returns {keys}.")
            result = result[key]
        elif self.output_key is not None:
            raise ConfigError(
                f"`output_key`={self.output_key!r} given, but {self.handle!r} returns a single tensor, not a dict."
            )
        array = np.asarray(result, dtype=np.float32)
        if array.ndim > 2:  # spatial feature map: global average pool
            array = array.mean(axis=tuple(range(1, array.ndim - 1)))
        if array.ndim != 2:
            raise ConfigError(
                f"Expected {self.handle!r} to return [batch, dim] vectors; received shape {array.shape}."
            )
        return array


def _fingerprint(model_dir: Path, image_size: int, output_key: str | None) -> str:
    """Hash of the graph and the variables index (which carries a checksum per variable) plus
    the settings that change the vectors; cheap even for large models."""
    h = hashlib.sha256()
    for name in ("saved_model.pb", "saved_model.pbtxt", "variables/variables.index"):
        path = model_dir / name
        if path.is_file():
            h.update(name.encode())
            h.update(path.read_bytes())
    h.update(f"|size={image_size}|key={output_key}".encode())
    return h.hexdigest()
