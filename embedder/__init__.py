"""Image embedding: images in, L2-normalised vectors out (see ``Embedder``)."""

from embedder.backends.efficientnet_lite import EfficientNetLite0Embedder
from embedder.backends.hub import HubEmbedder
from embedder.base import Embedder
from embedder.cache import VectorCache
from embedder.fetch import FetchResult, ImageFetcher
from embedder.index import ImageIndex, ImageVector, Neighbour

__all__ = ["Embedder", "EfficientNetLite0Embedder", "FetchResult", "HubEmbedder", "ImageFetcher", "ImageIndex",
           "ImageVector", "Neighbour", "VectorCache"]
