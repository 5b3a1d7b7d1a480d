"""Embed a whole catalogue into the ``ImageIndex``: fetch, (cache), embed in batches, upsert.

The bulk path beside the stream: ``prodcat embed`` runs it over a catalogue file, tests and
benchmarks over the shared photo sets. A bad image never stops the run; it is counted under
its fetch reason in the returned ``EmbedReport``.

The level-1 and level-2 fields of every row are taxonomy category IDS, as the stream writes them
(``streams.pipeline.level_categories``), so vectors from both paths are filtered together: with
a ``taxonomy`` (an explicit file) the record's path is looked up in it; without one the ids are
:func:`prodcat.taxonomy.path_id` of the path's first one and two names, which is what a taxonomy
built from the catalogue's paths (:meth:`~prodcat.taxonomy.Taxonomy.from_paths`) calls them.

>>> from prodcat.catalogue import read_catalogue                           # doctest: +SKIP
>>> report = embed_catalogue(read_catalogue(path, "myntra-images"),        # doctest: +SKIP
...                          embedder=EfficientNetLite0Embedder(), index=ImageIndex("images.db"))
>>> report.summary()                                                       # doctest: +SKIP
'embedded 9984, from cache 0, failed 16 (not found: 16)'
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import numpy as np
from PIL import Image

from embedder.base import Embedder
from embedder.cache import VectorCache
from embedder.fetch import ImageFetcher
from embedder.index import ImageIndex, ImageVector
from prodcat.catalogue import true_category_path
from prodcat.errors import ConfigError, InvalidRecord
from prodcat.record import ProductRecord, parse_record
from prodcat.taxonomy import Taxonomy, path_id

__all__ = ["EmbedReport", "embed_catalogue", "level_ids"]

MAX_EXAMPLES = 20  # failures kept verbatim in the report; the rest are only counted


@dataclass
class EmbedReport:
    """What one run did. ``reasons`` counts failures by kind (the fetch reason up to its first
    ":", e.g. "not found", "refused", "too large"); ``examples`` keeps the first few
    ``(product id, full reason)`` pairs."""

    embedded: int = 0
    cached: int = 0
    failed: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    examples: list[tuple[str, str]] = field(default_factory=list)

    @property
    def indexed(self) -> int:
        """Rows written to the index (embedded now or taken from the cache)."""
        return self.embedded + self.cached

    @property
    def processed(self) -> int:
        return self.indexed + self.failed

    def fail(self, product_id: str, reason: str) -> None:
        self.failed += 1
        self.reasons[reason.split(":", 1)[0].strip()] += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append((product_id, reason))

    def summary(self) -> str:
        text = f"embedded {self.embedded}, from cache {self.cached}, failed {self.failed}"
        if self.reasons:
            text += " (" + ", ".join(f"{r}: {n}" for r, n in self.reasons.most_common()) + ")"
        return text


@dataclass
class _Item:
    id: str
    url: str
    level1: str
    level2: str
    vector: np.ndarray | None = None
    content_hash: str | None = None
    image: Image.Image | None = None


def level_ids(path: list[str], taxonomy: Taxonomy | None = None) -> tuple[str, str] | None:
    """The level-1 and level-2 category ids of a category path, or None when it has no level-2 category
    (or, with ``taxonomy``, when the taxonomy has no category of that level-2 path)."""
    if len(path) < 2:
        return None
    if taxonomy is None:
        return path_id(path[:1]), path_id(path[:2])
    level2 = taxonomy.find(path[:2])
    parent = None if level2 is None else taxonomy.parent(level2)
    return None if level2 is None or parent is None else (parent, level2)


def _item(raw: ProductRecord | Mapping[str, Any], position: int, report: EmbedReport,
          taxonomy: Taxonomy | None = None) -> _Item | None:
    """The record as an indexable item, or None (and a failure in ``report``)."""
    try:
        record = raw if isinstance(raw, ProductRecord) else parse_record(raw)
    except InvalidRecord as exc:
        report.fail(f"#{position}", f"invalid record: {exc.reason}"[:200])
        return None
    if not record.image_url:
        report.fail(record.id, "no image url")
        return None
    path = true_category_path(record)
    if len(path) < 2:
        report.fail(record.id, f"no level-2 category: path {path!r}"[:200])
        return None
    levels = level_ids(path, taxonomy)
    if levels is None:
        report.fail(record.id, f"level-2 category not in the taxonomy: {' > '.join(path[:2])!r}"[:200])
        return None
    return _Item(record.id, record.image_url, level1=levels[0], level2=levels[1])


def _chunks(records: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(records)
    while chunk := list(islice(iterator, size)):
        yield chunk


def embed_catalogue(
    records: Iterable[ProductRecord | Mapping[str, Any]],
    *,
    embedder: Embedder,
    index: ImageIndex,
    fetcher: ImageFetcher | None = None,
    cache: VectorCache | None = None,
    batch_size: int = 32,
    concurrency: int = 8,
    on_progress: Callable[[EmbedReport], None] | None = None,
    on_indexed: Callable[[list[ImageVector]], None] | None = None,
    taxonomy: Taxonomy | None = None,
) -> EmbedReport:
    """Embed every record's image and upsert it into ``index`` with the ids of the record's level-1
    and level-2 category (the first two elements of its own category path; see the module docstring:
    looked up in ``taxonomy`` when given, else :func:`~prodcat.taxonomy.path_id`).

    ``records`` are cleaned ``ProductRecord``s or raw catalogue dicts (parsed here).
    ``fetcher`` defaults to one that reads local files too (catalogues ship ``file://``
    images) and refuses private addresses. With ``cache``, a URL seen before skips the
    download, a known picture (by content hash) skips the model, and new vectors are stored.
    ``on_progress`` gets the running report after each batch of ``batch_size`` records, and
    ``on_indexed`` each batch's rows as written to the index (``prodcat embed --export`` keeps them).
    """
    if batch_size < 1 or concurrency < 1:
        raise ConfigError(f"Expected batch_size >= 1 and concurrency >= 1. Received: batch_size={batch_size}, "
                          f"concurrency={concurrency}.")
    if embedder.dim != index.dim:
        raise ConfigError(f"The embedder makes {embedder.dim}-d vectors but collection {index.collection!r} "
                          f"stores {index.dim}-d ones; use another collection for this model.")
    fetcher = fetcher or ImageFetcher(allow_local_files=True)
    report = EmbedReport()
    position = 0
    with ThreadPoolExecutor(concurrency, thread_name_prefix="prodcat-embed-fetch") as pool:
        for chunk in _chunks(records, batch_size):
            items = []
            for raw in chunk:
                position += 1
                if (item := _item(raw, position, report, taxonomy)) is not None:
                    items.append(item)
            indexed = _embed_batch(items, embedder, index, fetcher, cache, pool, report)
            if on_indexed is not None and indexed:
                on_indexed(indexed)
            if on_progress is not None:
                on_progress(report)
    return report


def _embed_batch(items: list[_Item], embedder: Embedder, index: ImageIndex, fetcher: ImageFetcher,
                 cache: VectorCache | None, pool: ThreadPoolExecutor, report: EmbedReport) -> list[ImageVector]:
    """Fetch, (cache), embed and upsert one batch; the rows written."""
    version = embedder.version
    if cache is not None and items:
        for item, vector in zip(items, cache.get_many_by_url([i.url for i in items], version)):
            item.vector = vector

    fetched = []
    pending = [i for i in items if i.vector is None]
    for item, result in zip(pending, pool.map(fetcher.fetch, [i.url for i in pending])):
        if result.ok:
            item.image, item.content_hash = result.image, result.content_hash
            fetched.append(item)
        else:
            report.fail(item.id, result.reason or "unknown")

    if cache is not None and fetched:
        # the same picture under a new URL: reuse its vector and remember the URL
        known = [(i, v) for i, v in zip(fetched, cache.get_many([i.content_hash for i in fetched], version))
                 if v is not None]
        for item, vector in known:
            item.vector = vector
        if known:
            cache.put_many([i.content_hash for i, _ in known], [v for _, v in known], version,
                           urls=[i.url for i, _ in known])

    new = [i for i in fetched if i.vector is None]
    if new:
        vectors = embedder.embed([i.image for i in new])
        for item, vector in zip(new, vectors):
            item.vector = vector
        if cache is not None:
            cache.put_many([i.content_hash for i in new], vectors, version, urls=[i.url for i in new])
    for item in fetched:
        item.image = None  # a batch of decoded photos is the run's biggest memory user

    done = [ImageVector(i.id, i.vector, i.level1, i.level2, version) for i in items if i.vector is not None]
    index.upsert(done)
    report.embedded += len(new)
    report.cached += len(done) - len(new)
    return done
