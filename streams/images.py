"""The stream's image stage: fetch (bounded), reuse cached vectors, embed the rest off the loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import Executor

import numpy as np

from embedder.base import Embedder
from embedder.cache import VectorCache
from embedder.fetch import ImageFetcher
from embedder.index import ImageIndex, ImageVector
from prodcat.record import ProductRecord
from runtime.sinks.base import WriteResult

log = logging.getLogger(__name__)


class ImagePipeline:
    """Vectors for a batch of products: URL cache -> download -> content-hash cache -> embed.

    A product whose image cannot be fetched simply has no vector: it is still classified on text.
    """

    def __init__(self, fetcher: ImageFetcher, embedder: Embedder, cpu: Executor, *,
                 cache: VectorCache | None = None, concurrency: int = 8) -> None:
        self.fetcher, self.embedder, self.cpu, self.cache, self.concurrency = fetcher, embedder, cpu, cache, concurrency

    async def vectors(self, records: Sequence[ProductRecord]) -> dict[str, np.ndarray]:
        loop = asyncio.get_running_loop()
        version = self.embedder.version
        wanted = {r.id: r.image_url for r in records if r.image_url}
        found: dict[str, np.ndarray] = {}
        if self.cache is not None and wanted:
            urls = list(wanted.items())
            cache = self.cache
            hits = await loop.run_in_executor(None, lambda: cache.get_many_by_url([u for _, u in urls], version))
            found = {pid: vec for (pid, _), vec in zip(urls, hits, strict=True) if vec is not None}
        todo = [(pid, url) for pid, url in wanted.items() if pid not in found]
        fetched = await self.fetcher.fetch_many([url for _, url in todo], concurrency=self.concurrency)
        images, keys = [], []
        for (pid, url), result in zip(todo, fetched, strict=True):
            if not result.ok or result.image is None or result.content_hash is None:
                log.info("no image vector for %s: %s", pid, result.reason)
                continue
            images.append(result.image)
            keys.append((pid, url, result.content_hash))
        if self.cache is not None and keys:
            cache = self.cache
            hits = await loop.run_in_executor(None, lambda: cache.get_many([h for _, _, h in keys], version))
            for (pid, _, _), vec in zip(keys, hits, strict=True):
                if vec is not None:
                    found[pid] = vec
            images = [img for img, (pid, _, _) in zip(images, keys, strict=True) if pid not in found]
            keys = [k for k in keys if k[0] not in found]
        if images:
            embedder, batch = self.embedder, images
            vectors = await loop.run_in_executor(self.cpu, lambda: embedder.embed(batch))
            found.update({pid: vec for (pid, _, _), vec in zip(keys, vectors, strict=True)})
            if self.cache is not None:
                cache, stored = self.cache, keys
                await loop.run_in_executor(None, lambda: cache.put_many([h for _, _, h in stored], vectors, version,
                                                                        [url for _, url, _ in stored]))
        return found


class MilvusSink:
    """Upserts image vectors (primary key = product id: idempotent); an outage raises for the policy."""

    def __init__(self, index: ImageIndex, io: Executor) -> None:
        self.index, self.io = index, io

    async def ping(self) -> bool:
        await asyncio.get_running_loop().run_in_executor(self.io, self.index.count)
        return True

    async def write(self, rows: Sequence[ImageVector]) -> WriteResult:
        if rows:
            await asyncio.get_running_loop().run_in_executor(self.io, self.index.upsert, list(rows))
        return WriteResult()
