"""Human labels: the record people publish to labelling.labels and its durable store.

Why a separate ``labels`` index rather than fields of the ``products`` documents:

* the stream rewrites a product document whenever the feed updates the product (newest record
  wins), so labels kept there would need a read-modify-write race with every classification;
* one document per (product, category, labeller) keeps every labeller's own decision, so
  disagreements stay visible and a labeller's history can be audited or discounted;
* the doc id ``"{product}|{category}|{labeller}"`` with the label time as ``external_gte``
  version makes writes idempotent and order-free: the labeller's LAST decision wins however
  Kafka replays or reorders the messages;
* retraining reads labels without scanning millions of unlabelled products.

Stored decisions become training targets in :mod:`retrain.resolution`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Protocol, TypeVar

from elasticsearch import AsyncElasticsearch, helpers
from elasticsearch.exceptions import ApiError
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from prodcat.cleaning import parse_datetime, split_category_path
from prodcat.errors import InvalidRecord
from prodcat.taxonomy import Taxonomy
from retrain.resolution import Conflict, ProductLabels, find_conflicts, resolve, tally
from runtime.policy import is_outage
from runtime.sinks.elastic import Document, ElasticSink

__all__ = ["LABELS_MAPPING", "HumanLabel", "LabelStore", "RequestLookup", "WriteResult", "join_requests", "parse_label"]

log = logging.getLogger(__name__)
T = TypeVar("T")

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# A label stamped far in the future would win "newest wins" forever and lock out later decisions.
MAX_CLOCK_SKEW = timedelta(hours=1)
_TERMS_CHUNK = 10_000

_KW = {"type": "keyword"}
LABELS_MAPPING = {
    "dynamic": False,
    "properties": {"product_id": _KW, "category": _KW, "positive": {"type": "boolean"}, "labeller": _KW,
                   "labelled_at": {"type": "date"}, "p": {"type": "float"}, "model_version": _KW},
}


def _utc_time(value: Any) -> datetime:
    parsed = parse_datetime(value)
    if parsed is None:
        raise ValueError(f"expected an ISO 8601 time or epoch seconds/milliseconds, received {value!r}")
    if parsed < _EPOCH:
        raise ValueError(f"expected a time after 1970-01-01, received {parsed.isoformat()}")
    return parsed


class HumanLabel(BaseModel):
    """One person's decision: is ``product_id`` in ``category`` (a category id)?

    ``p`` is the probability the worker asked for the product with (importance sampling,
    :mod:`prodcat.sampling`); retraining weighs the label by ``1/p`` (:mod:`retrain.weights`).
    The labelling tool copies it from the request; the store joins it from the request when a
    label arrives without it (:class:`RequestLookup`).

    Validated with ``context={"taxonomy": taxonomy}`` (as :func:`parse_label` does), a category
    path such as ``"Shoes > Sneakers"`` is resolved to its id and unknown categories are refused.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True, coerce_numbers_to_str=True)

    product_id: str = Field(min_length=1)
    category: str = Field(min_length=1, description="category id, or a path 'A > B' resolved by the taxonomy")
    positive: StrictBool
    labeller: str = Field(min_length=1, pattern=r"^[^|]+$", description="who decided; no '|' (it splits doc ids)")
    labelled_at: Annotated[datetime, BeforeValidator(_utc_time)] = Field(
        default_factory=lambda: datetime.now(timezone.utc))
    p: float | None = Field(None, gt=0, le=1, description="the probability the product was asked for with; "
                                                          "None if unknown (not from a request)")
    model_version: str | None = Field(None, description="the model that asked for the label")

    @field_validator("category")
    @classmethod
    def _resolve_category(cls, value: str, info: ValidationInfo) -> str:
        taxonomy: Taxonomy | None = (info.context or {}).get("taxonomy")
        if taxonomy is None or value in taxonomy:
            return value
        found = taxonomy.find(split_category_path(value))
        if found is None:
            raise ValueError(f"unknown category {value!r}: neither an id nor a path of the taxonomy "
                             f"({len(taxonomy)} categories)")
        return found

    @property
    def doc_id(self) -> str:
        """One document per (product, category, labeller): a labeller's later decision replaces the earlier."""
        return f"{self.product_id}|{self.category}|{self.labeller}"

    @property
    def version(self) -> int:
        """The external version: labelled_at in epoch milliseconds."""
        return (self.labelled_at - _EPOCH) // timedelta(milliseconds=1)


def _describe(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'label'}: {e['msg']}" for e in exc.errors())


def parse_label(raw: bytes, taxonomy: Taxonomy, *, key: bytes | None = None,
                now: datetime | None = None) -> HumanLabel:
    """A labelling.labels message as a :class:`HumanLabel`; :class:`InvalidRecord` (stage "validate") if bad.

    ``key`` is the Kafka key (the product id): it fills a missing ``product_id`` and must match a
    present one. ``now`` is for tests.
    """
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRecord(f"label is not JSON: {exc}", "parse") from exc
    if not isinstance(data, dict):
        raise InvalidRecord(f"Expected a JSON object with product_id, category, positive, labeller. "
                            f"Received: {type(data).__name__}", "validate")
    if key is not None:
        key_id = key.decode("utf-8", "replace")
        if data.get("product_id") in (None, ""):
            data["product_id"] = key_id
        elif str(data["product_id"]).strip() != key_id:
            raise InvalidRecord(f"product_id {data['product_id']!r} differs from the message key {key_id!r}",
                                "validate")
    try:
        label = HumanLabel.model_validate(data, context={"taxonomy": taxonomy})
    except ValidationError as exc:
        raise InvalidRecord(_describe(exc), "validate") from exc
    limit = (now or datetime.now(timezone.utc)) + MAX_CLOCK_SKEW
    if label.labelled_at > limit:
        raise InvalidRecord(f"labelled_at {label.labelled_at.isoformat()} is in the future (more than "
                            f"{MAX_CLOCK_SKEW} ahead); fix the labelling tool's clock", "validate")
    return label


# --- the store --------------------------------------------------------------------------------


@dataclass
class WriteResult:
    """What happened to a batch: the caller dead-letters the labels of ``unknown_products``."""

    written: int
    stale: int  # older than the labeller's stored decision: refused, as intended
    unknown_products: list[str]  # product ids absent from the products index; not written
    failed: dict[str, str] = field(default_factory=dict)  # doc id -> reason (dead-letter these too)


class AskedWith(Protocol):
    """What the worker remembers of a request (:class:`streams.labelling.AskedWith`)."""

    p: float
    model_version: str


class RequestLookup(Protocol):
    """Where a request's ``p`` can be found again (the worker's labelling gate, in Redis)."""

    async def asked_with(self, product_ids: Collection[str]) -> Mapping[str, AskedWith]: ...


async def join_requests(labels: Sequence[HumanLabel], requests: RequestLookup | None) -> list[HumanLabel]:
    """``labels`` with ``p`` (and the model version) filled in from the request where they lack it.

    A label whose request is no longer known (older than the dedup window, or not from a
    request) keeps ``p = None``: retraining gives it the mean weight of the labels with a ``p``.
    """
    missing = {label.product_id for label in labels if label.p is None}
    if requests is None or not missing:
        return list(labels)
    found = await requests.asked_with(missing)
    return [label.model_copy(update={"p": found[label.product_id].p,
                                     "model_version": label.model_version or found[label.product_id].model_version})
            if label.p is None and label.product_id in found else label for label in labels]


class LabelStore:
    """The ``labels`` index: one document per (product, category, labeller), last decision wins.

    ``requests`` (the worker's labelling gate) fills in ``p`` for labels that arrive without it.

    Writes go through :class:`~runtime.sinks.elastic.ElasticSink` (bulk, external_gte versions);
    writes and reads back off and retry forever on an outage.
    """

    def __init__(self, client: AsyncElasticsearch, index: str = "labels", products_index: str = "products",
                 max_backoff_s: float = 10.0, requests: RequestLookup | None = None) -> None:
        self.client = client
        self.requests = requests
        self.index = index
        self.products_index = products_index
        self.max_backoff_s = max_backoff_s
        self._sink = ElasticSink(client, index)

    async def ensure_index(self) -> None:
        """Create the index with its mapping, or add new fields to an existing one."""
        if await self.client.indices.exists(index=self.index):
            await self.client.indices.put_mapping(index=self.index, **LABELS_MAPPING)
            return
        try:
            await self.client.indices.create(index=self.index, mappings=LABELS_MAPPING,
                                             settings={"number_of_replicas": 0})
        except ApiError as exc:
            if exc.error != "resource_already_exists_exception":  # else another worker was first
                raise

    async def _retrying(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        delay = 0.5
        while True:
            try:
                return await call()
            except Exception as exc:
                if not is_outage(exc):
                    raise
                log.warning("Elasticsearch %s failed (%s); retrying in %.1fs", what, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff_s)

    async def known_products(self, product_ids: Collection[str]) -> set[str]:
        """Those of ``product_ids`` that have a document in the products index (one mget)."""
        if not product_ids:
            return set()
        ids = sorted(set(product_ids))
        resp = await self._retrying("mget", lambda: self.client.mget(index=self.products_index, ids=ids,
                                                                     source=False))
        missing_index = [d for d in resp["docs"] if d.get("error", {}).get("type") == "index_not_found_exception"]
        if missing_index:
            log.warning("products index %r does not exist: every label counts as unknown; "
                        "check PRODCAT_ES_INDEX_PRODUCTS", self.products_index)
        return {d["_id"] for d in resp["docs"] if d.get("found")}

    async def write(self, labels: Sequence[HumanLabel]) -> WriteResult:
        """Store the labels of known products; returns when Elasticsearch has answered for each."""
        if not labels:
            return WriteResult(0, 0, [])
        labels = await join_requests(labels, self.requests)
        known = await self.known_products({label.product_id for label in labels})
        unknown = sorted({label.product_id for label in labels} - known)
        docs = [Document(label.doc_id, label.version, label.model_dump(mode="json"))
                for label in labels if label.product_id in known]
        if not docs:
            return WriteResult(0, 0, unknown)
        result = await self._retrying("bulk", lambda: self._sink.write(docs))
        failed = {docs[i].id: reason for i, reason in result.failed.items()}
        return WriteResult(len(docs) - len(result.stale) - len(failed), len(result.stale), unknown, failed)

    # --- reading ----------------------------------------------------------------------------

    async def labels(self, product_ids: Collection[str] | None = None) -> list[HumanLabel]:
        """Every stored decision (the latest per product, category and labeller), optionally for some products."""
        if product_ids is None:
            queries = [{"match_all": {}}]
        else:  # chunks stay under index.max_terms_count (65,536 by default)
            ids = sorted(set(product_ids))
            queries = [{"terms": {"product_id": ids[i:i + _TERMS_CHUNK]}} for i in range(0, len(ids), _TERMS_CHUNK)]
        out: list[HumanLabel] = []
        for query in queries:
            async def scan(query: dict = query) -> list[HumanLabel]:
                return [HumanLabel.model_validate(hit["_source"])
                        async for hit in helpers.async_scan(self.client, index=self.index,
                                                            query={"query": query}, size=1000)]

            out.extend(await self._retrying("scan", scan))
        return out

    async def resolved(self, taxonomy: Taxonomy, product_ids: Collection[str] | None = None
                       ) -> dict[str, ProductLabels]:
        """Training targets per product id (see :func:`resolve`)."""
        return resolve(tally(await self.labels(product_ids)), taxonomy)

    async def conflicts(self, product_ids: Collection[str] | None = None) -> list[Conflict]:
        """(product, category) pairs on which labellers disagree, with who said what."""
        return find_conflicts(tally(await self.labels(product_ids)))

    async def counts_by_labeller(self) -> dict[str, int]:
        """How many current decisions (one per product and category) each labeller holds."""
        counts: dict[str, int] = {}
        after: dict[str, Any] | None = None
        while True:  # composite pages: no cap on the number of labellers
            composite: dict[str, Any] = {"size": 1000, "sources": [{"labeller": {"terms": {"field": "labeller"}}}]}
            if after is not None:
                composite["after"] = after
            resp = await self._retrying("aggregation", lambda c=composite: self.client.search(
                index=self.index, size=0, aggs={"by": {"composite": c}}))
            agg = resp["aggregations"]["by"]
            counts.update((b["key"]["labeller"], b["doc_count"]) for b in agg["buckets"])
            after = agg.get("after_key")
            if not agg["buckets"] or after is None:
                return counts

    async def total(self) -> int:
        """How many decisions are stored."""
        resp = await self._retrying("count", lambda: self.client.count(index=self.index))
        return int(resp["count"])
