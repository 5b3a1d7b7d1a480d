"""Elasticsearch sink: the `products` index, written in bulk, idempotently, newest record wins."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from elasticsearch import AsyncElasticsearch, helpers
from elasticsearch.exceptions import ApiError

from runtime.policy import Outage
from runtime.sinks.base import WriteResult

_KW = {"type": "keyword"}
_OPAQUE = {"type": "object", "enabled": False}

PRODUCTS_MAPPING: dict[str, Any] = {
    # unknown fields are stored in _source but not indexed: affiliate feeds would explode the mapping
    "dynamic": False,
    "properties": {
        "id": _KW, "network": _KW, "retailer": _KW, "brand": _KW, "gender": _KW, "size": _KW,
        "currency": _KW, "category_path": _KW, "categories": _KW, "category_names": _KW,
        "level1": _KW, "level2": _KW, "model_version": _KW, "rule_labels": _KW,
        "title": {"type": "text", "fields": {"raw": {"type": "keyword", "ignore_above": 512}}},
        "category": {"type": "text", "fields": {"raw": {"type": "keyword", "ignore_above": 1024}}},
        "description": {"type": "text"},
        "price": {"type": "float"},
        "image_url": {"type": "keyword", "index": False},
        "url": {"type": "keyword", "index": False},
        "updated_at": {"type": "date"},
        "classified_at": {"type": "date"},
        "uncertainty": {"type": "float"},
        "scores": _OPAQUE, "explanation": _OPAQUE, "extras": _OPAQUE,
    },
}


@dataclass(frozen=True)
class Document:
    """One product document with its external version (records' updated_at in ms)."""

    id: str
    version: int
    source: dict


class ElasticSink:
    """Bulk upserts into the products index.

    Idempotent: doc id = product id. Newest wins: the version is the record's updated_at with
    ``external_gte``, so a replay rewrites the same version and an older record is refused (409,
    reported as stale). An outage (connection, 429, 5xx for the request or any document) raises,
    and the error policy retries the whole write, which the idempotence makes harmless.
    """

    def __init__(self, client: AsyncElasticsearch, index: str) -> None:
        self.client = client
        self.index = index

    async def ensure_index(self) -> None:
        """Create the index with its mapping, or add new fields to an existing one."""
        if await self.client.indices.exists(index=self.index):
            await self.client.indices.put_mapping(index=self.index, **PRODUCTS_MAPPING)
            return
        try:
            await self.client.indices.create(index=self.index, mappings=PRODUCTS_MAPPING,
                                             settings={"number_of_replicas": 0})
        except ApiError as exc:
            if exc.error != "resource_already_exists_exception":  # else another worker was first
                raise

    def _actions(self, docs: Sequence[Document]):
        for doc in docs:
            yield {"_op_type": "index", "_index": self.index, "_id": doc.id, "version": doc.version,
                   "version_type": "external_gte", "_source": doc.source}

    async def write(self, docs: Sequence[Document]) -> WriteResult:
        """Write every document; returns only when Elasticsearch has answered for each one."""
        _, errors = await helpers.async_bulk(self.client, self._actions(docs), raise_on_error=False,
                                             max_retries=5, initial_backoff=0.5, chunk_size=500)
        position = {doc.id: i for i, doc in enumerate(docs)}
        stale, failed = set(), {}
        for item in errors if isinstance(errors, list) else []:  # a list unless stats_only
            info = next(iter(item.values()))
            status, i = info.get("status", 0), position[str(info.get("_id"))]
            if status == 409:
                stale.add(i)
            elif status == 429 or status >= 500:  # still refused after the helper's own retries
                raise Outage(f"Elasticsearch refused document {info.get('_id')!r:.80} with {status}")
            else:
                failed[i] = str(info.get("error", info))[:500]
        return WriteResult(failed=failed, stale=frozenset(stale))
