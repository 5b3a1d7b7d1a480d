"""Image embedding: safe fetching, CNN vectors (``Embedder``), a vector cache and the Milvus index.

Names are imported on first use, so ``import prodcat.commands.embedder`` stays cheap (pymilvus and
TensorFlow load only when an index or a model is actually needed).
"""

from prodcat.lazy import lazy_exports

_EXPORTS = {
    "Embedder": "embedder.base",
    "EfficientNetLite0Embedder": "embedder.backends.efficientnet_lite",
    "HubEmbedder": "embedder.backends.hub",
    "VectorCache": "embedder.cache",
    "FetchResult": "embedder.fetch",
    "ImageFetcher": "embedder.fetch",
    "ImageIndex": "embedder.index",
    "ImageVector": "embedder.index",
    "Neighbour": "embedder.index",
    "embed_catalogue": "embedder.bulk",
    "EmbedReport": "embedder.bulk",
    "JudgementStore": "embedder.judgements",
    "similarity_app": "embedder.similarity_app",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
