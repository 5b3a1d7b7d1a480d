"""The ``Embedder`` interface: images in, L2-normalised float32 vectors out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
from PIL import Image

__all__ = ["Embedder"]


class Embedder(ABC):
    """Maps product images to unit-length vectors whose dot product is their cosine similarity.

    ``version`` names the weights *and* every choice that changes the vectors (e.g. the input
    size): vectors with different versions must not be compared or stored side by side.
    """

    @property
    @abstractmethod
    def version(self) -> str:
        """Stable identifier of the model and its preprocessing."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Length of every vector ``embed`` returns."""

    @abstractmethod
    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Return an ``(len(images), dim)`` float32 array of L2-normalised rows."""


def l2_normalise(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows of ``x`` scaled to unit L2 norm (all-zero rows stay zero), as float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, eps)).astype(np.float32, copy=False)


def to_rgb(image: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """``image`` as RGB; transparent pixels are composited onto ``background`` (white:
    product shots are on white, and ``convert("RGB")`` alone would turn them black)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, background)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")


def letterbox(image: Image.Image, size: int, fill: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Resize the longer side to ``size`` (bicubic, keeping the aspect ratio) and centre the
    result on a ``size`` x ``size`` canvas of ``fill``. Unlike a centre crop, it never cuts off
    the ends of a tall or wide product (shoes, dresses, belts)."""
    image = to_rgb(image)
    w, h = image.size
    if w <= 0 or h <= 0:
        raise ValueError(f"Expected an image with a positive size; received {w}x{h}.")
    scale = size / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    if (nw, nh) != (w, h):
        image = image.resize((nw, nh), Image.Resampling.BICUBIC)
    if (nw, nh) == (size, size):
        return image
    canvas = Image.new("RGB", (size, size), fill)
    canvas.paste(image, ((size - nw) // 2, (size - nh) // 2))
    return canvas



def letterbox_batch(images: Sequence[Image.Image], size: int) -> np.ndarray:
    """``[n, size, size, 3]`` float32 pixel values (0-255) of letterboxed images, for a model's input."""
    batch = np.empty((len(images), size, size, 3), dtype=np.float32)
    for i, image in enumerate(images):
        if not isinstance(image, Image.Image):
            raise TypeError(f"Expected PIL.Image.Image objects. Received: {type(image).__name__} at index {i}.")
        batch[i] = np.asarray(letterbox(image, size), dtype=np.float32)
    return batch
