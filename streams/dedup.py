"""Skip work that is not needed: products unchanged since the same model version classified them."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import orjson
from redis.asyncio import Redis

from prodcat.record import ProductRecord


def fingerprint(record: ProductRecord, model_version: str) -> str:
    """Hash of the cleaned content (all but updated_at: a re-sent unchanged product is unchanged)."""
    doc = record.to_document()
    doc.pop("updated_at", None)
    payload = orjson.dumps([model_version, doc], option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(payload, digest_size=16).hexdigest()


class UnchangedFilter:
    """Remembers, per product, the fingerprint of what was last written; one round trip per batch."""

    def __init__(self, redis: Redis, ttl_s: int, namespace: str = "prodcat:seen") -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self.namespace = namespace

    def _key(self, product_id: str) -> str:
        return f"{self.namespace}:{product_id}"

    async def unchanged(self, items: Sequence[tuple[str, str]]) -> list[bool]:
        """For (product id, fingerprint) pairs: True where the stored fingerprint is the same."""
        if not items:
            return []
        stored = await self.redis.mget([self._key(pid) for pid, _ in items])
        return [(s.decode() if isinstance(s, bytes) else s) == fp for s, (_, fp) in zip(stored, items, strict=True)]

    async def remember(self, items: Sequence[tuple[str, str]]) -> None:
        """Call only after every sink acknowledged the products: a replay must not be skipped early."""
        if not items:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for pid, fp in items:
                pipe.set(self._key(pid), fp, ex=self.ttl_s)
            await pipe.execute()
