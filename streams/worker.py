"""Start a classifier worker: load the categoriser, make sure topics exist, run the Faust app."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import faust

from prodcat.settings import Settings
from runtime.loading import DATA, load_announced, load_rules
from runtime.model_updates import AnnouncementReader
from streams.app import LabelIntakeFactory, create_app
from streams.images import ImagePipeline, MilvusSink
from streams.topics import ensure_topics


def image_stage(settings: Settings) -> tuple[ImagePipeline, MilvusSink]:
    """Fetcher + vector cache + embedder, and the Milvus sink, as the settings say."""
    import redis
    from PIL import Image

    from embedder import (
        EfficientNetLite0Embedder,
        HubEmbedder,
        ImageFetcher,
        ImageIndex,
        VectorCache,
    )

    cache_dir = settings.state_dir / "cache" / "embedder"
    embedder = (HubEmbedder(settings.embedder_handle, image_size=settings.image_size) if settings.embedder_handle
                else EfficientNetLite0Embedder(cache_dir=cache_dir, image_size=settings.image_size))
    embedder.embed([Image.new("RGB", (32, 32))])  # load and trace now, not in the first batch's latency
    fetcher = ImageFetcher(allow_private=settings.image_allow_private,
                           allow_local_files=settings.image_allow_local_files)
    cache = VectorCache(redis.Redis.from_url(settings.redis_url, **settings.redis_kwargs()))
    if "://" not in settings.milvus_uri:
        Path(settings.milvus_uri).parent.mkdir(parents=True, exist_ok=True)
    token = settings.milvus_token.get_secret_value() if settings.milvus_token else None
    index = ImageIndex(settings.milvus_uri, token=token, dim=embedder.dim)
    # TensorFlow parallelises inside a call; one thread each keeps batches in order
    cpu = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed")
    return (ImagePipeline(fetcher, embedder, cpu, cache=cache, concurrency=settings.image_fetch_concurrency),
            MilvusSink(index, ThreadPoolExecutor(max_workers=1, thread_name_prefix="milvus")))


def run_worker(settings: Settings, loglevel: str = "info", *, label_intake: LabelIntakeFactory | None = None) -> None:
    """Run until SIGTERM/SIGINT; offsets of unfinished batches are not committed."""
    ensure_topics(settings)
    images, image_sink = (image_stage(settings) if settings.embed_images else (None, None))
    reader = AnnouncementReader(settings)
    promoted = reader.latest()
    reader.close()
    legacy = load_rules(settings.rules_path or DATA / "demo_rules.yaml",
                        settings.taxonomy_path or DATA / "demo_taxonomy.json")
    # the promoted model if there is one, else the legacy rules; the rules' labels are kept either way
    categoriser = load_announced(promoted) if promoted else legacy
    app = create_app(settings, categoriser, load_model=load_announced, images=images, image_sink=image_sink,
                     rules=legacy.ruleset, label_intake=label_intake)
    faust.Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()
