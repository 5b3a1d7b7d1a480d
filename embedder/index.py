"""``ImageIndex``: product image vectors in Milvus, searched by cosine within a level-2 category."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pymilvus import DataType, MilvusClient

from prodcat.errors import ConfigError, InvalidRecord, NotFound, ProdcatError

__all__ = ["ImageIndex", "ImageVector", "Neighbour", "quote_literal"]

IndexType = Literal["auto", "FLAT", "HNSW", "IVF_FLAT"]

MAX_ID_BYTES = 256
MAX_LEVEL_BYTES = 1024
MAX_VERSION_BYTES = 256
MAX_K = 16_384  # Milvus rejects a larger top-k
BATCH_ROWS = 1_000  # 1,000 x 1280-d float32 is ~5 MB per request, far below gRPC's 64 MB cap
Consistency = Literal["Strong", "Session", "Bounded"]
# HNSW: M=16 / efConstruction=200 are Milvus' recommended defaults for ~1k-dim image vectors;
# ef is raised to at least k at search time (Milvus requires ef >= k).
HNSW_BUILD = {"M": 16, "efConstruction": 200}
HNSW_MIN_EF = 128
IVF_BUILD = {"nlist": 1024}
IVF_NPROBE = 64


@dataclass(frozen=True, eq=False)  # eq=False: comparing numpy vectors with == is ambiguous
class ImageVector:
    """One product's image embedding and the categories it is searched within."""

    id: str
    vector: np.ndarray
    level1: str
    level2: str
    model_version: str


@dataclass(frozen=True)
class Neighbour:
    """A search hit; ``score`` is the cosine similarity (1.0 = same direction)."""

    id: str
    score: float
    level1: str
    level2: str


def quote_literal(value: str) -> str:
    """``value`` as a double-quoted Milvus filter literal, safe for quotes and backslashes.

    Only the escapes both Milvus Lite and the server parser understand are used
    (``\\\\ \\" \\n \\r \\t``); other control characters cannot be written and are refused.
    """
    bad = sorted({c for c in value if ord(c) < 32 and c not in "\n\r\t"})
    if bad:
        raise InvalidRecord(f"Expected an id or category without control characters. Received {value!r} "
                            f"containing {bad!r}; clean it before indexing.", stage="milvus")
    escaped = (value.replace("\\", "\\\\").replace('"', '\\"')
               .replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t"))
    return f'"{escaped}"'


def _is_lite(uri: str) -> bool:
    # pymilvus' own rule: a URI ending in ".db" is a Milvus Lite file, anything else a server
    return uri.endswith(".db")


class ImageIndex:
    """The ``product_images`` collection: one row per product id, searched by cosine.

    ``uri`` is a Milvus Lite file (``.../name.db``, the embedded default) or a server URI
    (``http://host:19530``). An existing collection is reused as it is; its vector size must
    equal ``dim``.

    ``consistency`` is what reads wait for on a server (Milvus Lite applies every write before
    it returns, so all levels behave alike there). "Session" (default): this process reads its
    own writes; a read right after a write waits for it (~200 ms, the server's time-tick), other
    reads return at once (~ms). "Strong": every read also sees every other process's writes, at
    ~200 ms per read. "Bounded": may miss the last few seconds of writes. ``count()`` is always
    Strong, so it is exact.
    """

    def __init__(self, uri: str, token: str | None = None, collection: str = "product_images",
                 dim: int = 1280, index_type: IndexType = "auto", *, consistency: Consistency = "Session",
                 timeout_s: float = 60.0) -> None:
        if dim < 2 or dim > 32_768:
            raise ConfigError(f"Expected 2 <= dim <= 32768 for a FLOAT_VECTOR field. Received dim={dim}.")
        if index_type not in ("auto", "FLAT", "HNSW", "IVF_FLAT"):
            raise ConfigError(f"Expected index_type in auto, FLAT, HNSW, IVF_FLAT. Received {index_type!r}.")
        if consistency not in ("Strong", "Session", "Bounded"):
            raise ConfigError(f"Expected consistency in Strong, Session, Bounded. Received {consistency!r}.")
        self.uri = uri
        self.consistency = consistency
        self.collection = collection
        self.dim = dim
        self.lite = _is_lite(uri)
        self._closed = False
        if self.lite:
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._client = MilvusClient(uri=uri, token=token or "", timeout=timeout_s)
        except Exception as exc:  # pymilvus raises its own hierarchy; name the setting to fix
            raise ConfigError(f"Cannot open Milvus at {uri!r} (setting PRODCAT_MILVUS_URI / "
                              f"PRODCAT_MILVUS_TOKEN): {exc}") from exc
        if self._client.has_collection(collection):
            self._check_dim()
        else:
            self._create(self._resolve_index_type(index_type))
        self._ensure_loaded()
        self.index_type: str = self._client.describe_index(collection, "vector")["index_type"]

    # --- set-up ----------------------------------------------------------------------------

    def _resolve_index_type(self, index_type: IndexType) -> str:
        if index_type != "auto":
            return index_type
        # Milvus Lite (in-process Python, one file) serves dev, tests and small catalogues.
        # It offers HNSW (faiss) too, but under a selective level-2 filter faiss' HNSW drops
        # hits (measured: 66 of k=100 in a 200-row category of 10k); FLAT is exact and, at
        # 10k x 1280-d, as fast (Lite's per-row filter bookkeeping dominates). A server holds
        # the full catalogue (millions of rows): HNSW gives ~5 ms searches, filtered ones
        # complete, recall@10 = 1.0 on 5k random 128-d, at the price of memory and build time.
        return "FLAT" if self.lite else "HNSW"

    def _scalar_index_type(self) -> str:
        # INVERTED exists since Milvus 2.4 (and in Lite); 2.3 servers index VARCHAR with a Trie
        version = self._client.get_server_version()
        if self.lite or not version.startswith("v2."):
            return "INVERTED"
        minor = int(version.split(".")[1])
        return "Trie" if minor < 4 else "INVERTED"

    def _create(self, index_type: str) -> None:
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=MAX_ID_BYTES)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        schema.add_field("level1", DataType.VARCHAR, max_length=MAX_LEVEL_BYTES)
        schema.add_field("level2", DataType.VARCHAR, max_length=MAX_LEVEL_BYTES)
        schema.add_field("model_version", DataType.VARCHAR, max_length=MAX_VERSION_BYTES)
        params = self._client.prepare_index_params()
        build = {"HNSW": HNSW_BUILD, "IVF_FLAT": IVF_BUILD}.get(index_type, {})
        params.add_index(field_name="vector", index_type=index_type, metric_type="COSINE", params=build)
        # every search filters on level2: a scalar index turns the filter into a lookup
        params.add_index(field_name="level2", index_type=self._scalar_index_type())
        self._client.create_collection(self.collection, schema=schema, index_params=params,
                                       consistency_level=self.consistency)

    def _check_dim(self) -> None:
        fields = self._client.describe_collection(self.collection)["fields"]
        stored = next((int(f["params"]["dim"]) for f in fields if f["name"] == "vector"), None)
        if stored is None:
            raise ConfigError(f"Collection {self.collection!r} at {self.uri!r} has no 'vector' field; "
                              "it was not created by ImageIndex. Choose another collection name.")
        if stored != self.dim:
            raise ConfigError(f"Collection {self.collection!r} at {self.uri!r} stores {stored}-d vectors, "
                              f"but dim={self.dim} was requested. Pass dim={stored}, or use another "
                              "collection for the new embedder.")

    def _ensure_loaded(self) -> None:
        # a server keeps collections released after a restart; searches need them in memory
        if str(self._client.get_load_state(self.collection)["state"]) != "Loaded":
            self._client.load_collection(self.collection)

    # --- writes ----------------------------------------------------------------------------

    def upsert(self, items: Iterable[ImageVector]) -> int:
        """Insert or replace rows by id (the last item wins for a repeated id); returns rows written."""
        rows: dict[str, dict[str, Any]] = {}
        for item in items:
            rows[item.id] = self._row(item)  # dedup: Milvus would keep both copies of one batch
        batch = list(rows.values())
        for start in range(0, len(batch), BATCH_ROWS):
            self._client.upsert(self.collection, batch[start:start + BATCH_ROWS])
        return len(batch)

    def delete(self, ids: Sequence[str]) -> int:
        """Delete rows by id; returns how many existed (unknown ids are ignored)."""
        existing = [row["id"] for row in self._query_ids(ids, ["id"])]
        for start in range(0, len(existing), BATCH_ROWS):
            self._client.delete(self.collection, ids=existing[start:start + BATCH_ROWS])
        return len(existing)

    def flush(self, *, wait_index: bool = True, timeout_s: float = 300.0) -> None:
        """Seal buffered rows into segments and, by default, wait until the vector index covers
        them (after a bulk load; reads see unflushed rows anyway)."""
        self._client.flush(self.collection)
        deadline = time.monotonic() + timeout_s
        while wait_index:
            info = self._client.describe_index(self.collection, "vector")
            if int(info.get("pending_index_rows", 0)) == 0 and info.get("state") in ("Finished", None):
                return
            if time.monotonic() > deadline:
                raise ProdcatError(f"Index on {self.collection!r} still building after {timeout_s}s "
                                   f"({info}); raise timeout_s or check the Milvus logs.")
            time.sleep(0.5)

    def drop(self) -> None:
        """Delete the collection and every vector in it."""
        self._client.drop_collection(self.collection)

    def close(self) -> None:
        """Close the connection; for Milvus Lite also stop the embedded server so the file's
        lock is released and another process (or a new ``ImageIndex``) can open it."""
        if self._closed:
            return
        self._closed = True
        self._client.close()
        if self.lite:
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(self.uri)

    # --- reads -----------------------------------------------------------------------------

    def get(self, ids: Sequence[str]) -> list[ImageVector]:
        """The stored rows for ``ids``, in the order asked; unknown ids are skipped."""
        found = {row["id"]: row for row in self._query_ids(ids, ["id", "vector", "level1", "level2",
                                                                 "model_version"])}
        return [ImageVector(id=i, vector=np.asarray(found[i]["vector"], dtype=np.float32),
                            level1=found[i]["level1"], level2=found[i]["level2"],
                            model_version=found[i]["model_version"])
                for i in dict.fromkeys(ids) if i in found]

    def count(self) -> int:
        """Exact number of rows (deleted and replaced rows excluded)."""
        rows = self._client.query(self.collection, filter="", output_fields=["count(*)"],
                                  consistency_level="Strong")
        return int(rows[0]["count(*)"])

    def search(self, vector: Sequence[float] | np.ndarray, *, level2: str | None, k: int = 100,
               exclude_id: str | None = None) -> list[Neighbour]:
        """The ``k`` most cosine-similar products, best first, within ``level2`` unless it is None."""
        if not 1 <= k <= MAX_K:
            raise ValueError(f"Expected 1 <= k <= {MAX_K}. Received k={k}.")
        query = self._vector(vector, what="query vector")
        clauses = []
        if level2 is not None:
            clauses.append(f"level2 == {quote_literal(level2)}")
        if exclude_id is not None:
            clauses.append(f"id != {quote_literal(exclude_id)}")
        hits = self._client.search(
            self.collection, data=[query.tolist()], limit=k, filter=" and ".join(clauses),
            output_fields=["level1", "level2"], search_params=self._search_params(k),
            consistency_level=self.consistency,
        )[0]
        return [Neighbour(id=h["id"], score=float(h["distance"]), level1=h["entity"]["level1"],
                          level2=h["entity"]["level2"]) for h in hits]

    def similar(self, product_id: str, *, k: int = 100, within_level2: bool = True) -> list[Neighbour]:
        """Products most similar to ``product_id``'s stored image, itself excluded."""
        found = self.get([product_id])
        if not found:
            raise NotFound(f"Product {product_id!r} has no image vector in {self.collection!r}; "
                           "upsert its embedding first (or check the id).")
        own = found[0]
        return self.search(own.vector, level2=own.level2 if within_level2 else None, k=k,
                           exclude_id=product_id)

    # --- helpers ---------------------------------------------------------------------------

    def _search_params(self, k: int) -> dict[str, Any]:
        params: dict[str, Any] = {"metric_type": "COSINE"}
        if self.index_type == "HNSW":
            params["params"] = {"ef": max(k, HNSW_MIN_EF)}
        elif self.index_type == "IVF_FLAT":
            params["params"] = {"nprobe": IVF_NPROBE}
        return params

    def _query_ids(self, ids: Sequence[str], fields: list[str]) -> list[dict[str, Any]]:
        unique = list(dict.fromkeys(ids))
        rows: list[dict[str, Any]] = []
        for start in range(0, len(unique), BATCH_ROWS):
            chunk = unique[start:start + BATCH_ROWS]
            expr = f"id in [{', '.join(quote_literal(i) for i in chunk)}]"
            rows += self._client.query(self.collection, filter=expr, output_fields=fields,
                                       consistency_level=self.consistency)
        return rows

    def _vector(self, vector: Sequence[float] | np.ndarray, *, what: str) -> np.ndarray:
        array = np.asarray(vector, dtype=np.float32)
        if array.ndim != 1 or array.shape[0] != self.dim:
            received = f"dim {array.shape[0]}" if array.ndim == 1 else f"shape {array.shape}"
            raise InvalidRecord(f"Expected a {what} of dim {self.dim} for collection {self.collection!r}. "
                                f"Received {received}; embed with the model this index was built for.",
                                stage="milvus")
        if not np.isfinite(array).all() or not array.any():
            raise InvalidRecord(f"Expected a finite, non-zero {what}; cosine is undefined otherwise.",
                                stage="milvus")
        return array

    def _row(self, item: ImageVector) -> dict[str, Any]:
        for name, limit in (("id", MAX_ID_BYTES), ("level1", MAX_LEVEL_BYTES), ("level2", MAX_LEVEL_BYTES),
                            ("model_version", MAX_VERSION_BYTES)):
            value = getattr(item, name)
            if not isinstance(value, str) or len(value.encode()) > limit:
                raise InvalidRecord(f"Expected {name} to be a string of at most {limit} UTF-8 bytes. "
                                    f"Received {value!r:.80} for product {item.id!r:.80}.", stage="milvus")
        vector = self._vector(item.vector, what=f"vector for product {item.id!r}")
        return {"id": item.id, "vector": vector, "level1": item.level1, "level2": item.level2,
                "model_version": item.model_version}
