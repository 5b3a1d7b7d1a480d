"""The similarity benchmark's Milvus stage: insert, single-search latency and batched top-k searches
in Milvus Lite and (when the PyPI ``milvus`` package is installed) a standalone server.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import random
import tempfile
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pymilvus import MilvusClient
from similarity_measure import K_QUALITY, K_SERVE, SEARCH_CALLS, SEED, Dataset, StoreResult, log, pick_queries, timed

from embedder import ImageIndex, ImageVector
from embedder.index import HNSW_MIN_EF, quote_literal
from prodcat.stack.milvus import MilvusStandalone


def search_latencies(index: ImageIndex, ds: Dataset, vectors: np.ndarray, level2: bool) -> list[float]:
    """Single-query ImageIndex.search(k=100) latencies (ms) for SEARCH_CALLS random products."""
    rng = random.Random(SEED)
    picks = [rng.randrange(len(ds)) for _ in range(SEARCH_CALLS + 5)]
    out = []
    for n, i in enumerate(picks):
        _, seconds = timed(lambda: index.search(vectors[i], level2=ds.level2[i] if level2 else None,
                                                k=K_SERVE, exclude_id=ds.ids[i]))
        if n >= 5:
            out.append(1000 * seconds)
    return out


def batched_topk(client: MilvusClient, collection: str, index_type: str, ds: Dataset, vectors: np.ndarray,
                 within_level2: bool, queries: Sequence[int], k: int = K_QUALITY, nq: int = 256) -> np.ndarray:
    """Top-k row indices (itself dropped) for the ``queries`` rows, many queries per request;
    rows not queried stay -1."""
    position = {pid: i for i, pid in enumerate(ds.ids)}
    params: dict = {"metric_type": "COSINE"}
    if index_type == "HNSW":  # the ef ImageIndex uses for the product's k=100 searches
        params["params"] = {"ef": max(K_SERVE, HNSW_MIN_EF)}
    groups: dict[str, list[int]] = defaultdict(list)
    for i in queries:
        groups[ds.level2[i] if within_level2 else ""].append(i)
    out = np.full((len(ds), k), -1, np.int64)
    for level2, members in groups.items():
        expr = f"level2 == {quote_literal(level2)}" if within_level2 else ""
        for start in range(0, len(members), nq):
            rows = members[start:start + nq]
            hits = client.search(collection, data=[vectors[i].tolist() for i in rows], limit=k + 1, filter=expr,
                                 search_params=params, consistency_level="Strong")
            for i, found in zip(rows, hits):
                ids = [position[h["id"]] for h in found if h["id"] != ds.ids[i]][:k]
                out[i, :len(ids)] = ids
    return out


def run_store(name: str, uri: str, ds: Dataset, vectors: np.ndarray, version: str,
              queries: int) -> tuple[StoreResult, ImageIndex]:
    """Insert, flush (index build), time single searches and run the batched quality searches."""
    collection = f"bench_{ds.name.lower()}_{uuid.uuid4().hex[:8]}"
    index = ImageIndex(uri, collection=collection, dim=vectors.shape[1])
    items = [ImageVector(ds.ids[i], vectors[i], ds.level1[i], ds.level2[i], version) for i in range(len(ds))]
    _, upsert_s = timed(lambda: index.upsert(items))
    _, flush_s = timed(lambda: index.flush(wait_index=True))
    print(f"  {name} {ds.name}: upsert {upsert_s:.1f}s, flush {flush_s:.1f}s", flush=True)
    result = StoreResult(name, index.index_type, len(items), upsert_s, flush_s,
                         search_latencies(index, ds, vectors, level2=True),
                         search_latencies(index, ds, vectors, level2=False))
    client = MilvusClient(uri=uri)
    try:
        sample = np.arange(len(ds)) if not 0 < queries < len(ds) else np.sort(
            np.random.default_rng(SEED).choice(len(ds), queries, replace=False))
        for setting, within, rows in (("within level 2", True, sample), ("global", False, sample)):
            result.queries[setting] = rows
            result.topk[setting] = batched_topk(client, collection, index.index_type, ds, vectors, within, rows)
    finally:
        client.close()
    return result, index



def contact_rows(ds: Dataset, index: ImageIndex, count: int, rng: random.Random) -> list[tuple[Dataset, int, list[tuple[int, float]]]]:
    position = {pid: i for i, pid in enumerate(ds.ids)}
    rows = []
    for q in pick_queries(ds, count, rng):
        hits = index.similar(ds.ids[q], k=8, within_level2=True)
        rows.append((ds, q, [(position[h.id], h.score) for h in hits]))
    return rows



def start_server(args: argparse.Namespace, tmp: Path) -> tuple[MilvusStandalone | None, str | None, str]:
    if args.no_server:
        return None, None, "Milvus server: skipped (--no-server)."
    if importlib.util.find_spec("milvus") is None:
        return None, None, "Milvus server: the PyPI `milvus` package is not installed; only Milvus Lite was measured."
    standalone = MilvusStandalone(tmp / "milvus-server")
    (uri, seconds) = timed(standalone.start)
    version = importlib.metadata.version("milvus")
    note = (f"Milvus server: the PyPI `milvus` {version} standalone binary (embedded etcd, local storage) "
            f"started as a local process in {seconds:.0f} s; Milvus Lite {importlib.metadata.version('milvus-lite')} "
            "runs in-process on a file. Both share the 2 cores with this script.")
    return standalone, str(uri), note



@dataclass
class Milvus:
    """What the Milvus stage produced: per-dataset store results, contact-sheet rows, server note."""

    stores: dict[str, list[StoreResult]]
    sheet: list[tuple[Dataset, int, list[tuple[int, float]]]]
    server_note: str


def measure_milvus(args: argparse.Namespace, data: Sequence[tuple[Dataset, np.ndarray, int]], version: str,
                   started: float) -> Milvus:
    """Milvus Lite, then (if available) the standalone server, for every (dataset, vectors, sheet rows)."""
    out = Milvus({ds.name: [] for ds, _, _ in data}, [], "")
    rng = random.Random(SEED)
    with tempfile.TemporaryDirectory(prefix="prodcat-similarity-") as tmp_name:
        tmp = Path(tmp_name)
        for ds, vectors, sheet_rows in data:
            result, index = run_store("Milvus Lite", str(tmp / "lite" / "images.db"), ds, vectors, version,
                                      args.milvus_queries)
            out.stores[ds.name].append(result)
            out.sheet += contact_rows(ds, index, sheet_rows, rng)
            index.close()
        log("Milvus Lite done", started)
        standalone, server_uri, out.server_note = start_server(args, tmp)
        try:
            if server_uri is not None:
                log("Milvus server started", started)
                for ds, vectors, _ in data:
                    result, index = run_store("Milvus server", server_uri, ds, vectors, version, args.milvus_queries)
                    out.stores[ds.name].append(result)
                    index.close()
        finally:
            if standalone is not None:
                standalone.stop()
                log("Milvus server done and stopped", started)
    return out

