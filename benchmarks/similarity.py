"""Visual similarity of product photos: embedding speed, Milvus insert/search, and quality.

    .venv/bin/python benchmarks/similarity.py [--limit N] [--image-size 224] [--repeat 3]
        [--milvus-queries 2000] [--no-server]

Embeds the shared Myntra (10,000 photos) and Flipkart (1,047 photos) image sets with
EfficientNet-Lite0, stores the vectors in Milvus Lite (FLAT) and, when the PyPI ``milvus``
package is installed, in a real Milvus standalone server (HNSW), and measures:

- embedding throughput at batch 32 and single-image latency, split into decode / preprocess / model;
- insert throughput and search latency (k=100, with and without the level-2 filter);
- precision@10 of the same leaf / level-2 category (leave-one-out), within level 2 and globally,
  against a random baseline (its exact expected value) and an RGB colour-histogram baseline;
- recall@10 of the Milvus results against exact numpy cosine search.

Writes benchmarks/results/similarity.md, similarity_contact_sheet.png and similarity_per_type.png.
The datasets are read from ../shared/datasets (``--datasets``); the script stops with a message
if they are absent.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import platform
import random
import statistics
import sys
import tempfile
import textwrap
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from pymilvus import MilvusClient  # noqa: E402

from embedder import EfficientNetLite0Embedder, ImageFetcher, ImageIndex, ImageVector  # noqa: E402
from embedder.base import letterbox  # noqa: E402
from embedder.index import HNSW_MIN_EF, quote_literal  # noqa: E402
from prodcat.catalogue import read_catalogue, true_category_path  # noqa: E402
from prodcat.record import parse_record  # noqa: E402
from prodcat.stack.milvus import MilvusStandalone  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_DATASETS = ROOT.parent / "shared" / "datasets"
K_QUALITY = 10  # precision@10 / recall@10
K_SERVE = 100  # the product's "k=100 most similar"
BATCH = 32
TIMING_SUBSET = 1024
PREP_PASSES = 3  # passes whose preprocessing is also timed on its own
MILVUS_QUERIES = 2000  # products searched through Milvus for recall: a seeded sample (Lite: ~10 ms/query)
LATENCY_CALLS = 60
SEARCH_CALLS = 200
SEED = 7


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


@dataclass
class Dataset:
    """One image catalogue: ids, three category levels (as path keys) and decoded images."""

    name: str
    leaf_name: str  # what level 3 is called in this dataset ("articleType", "level3")
    level2_name: str
    ids: list[str]
    level1: list[str]
    level2: list[str]  # "A > B": unique even where a level-2 name repeats under two roots
    level3: list[str]  # "A > B > C" (a path of depth 2 is its own leaf)
    urls: list[str]
    images: list[Image.Image] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)
    decode_s: float = 0.0
    failed: int = 0

    def __len__(self) -> int:
        return len(self.ids)


def load_dataset(csv_path: Path, preset: str, name: str, leaf_name: str, level2_name: str,
                 limit: int | None) -> Dataset:
    """Read a catalogue's records (the feed path: read_catalogue -> parse_record) and their labels;
    ``limit`` takes a seeded random sample."""
    records = [parse_record(raw) for raw in read_catalogue(csv_path, preset)]  # type: ignore[arg-type]
    if limit is not None and limit < len(records):  # the files are sorted by category: sample, keep order
        keep = sorted(random.Random(SEED).sample(range(len(records)), limit))
        records = [records[i] for i in keep]
    ds = Dataset(name, leaf_name, level2_name, [], [], [], [], [])
    for record in records:
        path = true_category_path(record)
        if len(path) < 2 or not record.image_url:
            continue
        ds.ids.append(record.id)
        ds.level1.append(path[0])
        ds.level2.append(" > ".join(path[:2]))
        ds.level3.append(" > ".join(path[:3]))
        ds.urls.append(record.image_url)
    return ds


def decode_images(ds: Dataset) -> None:
    """Read and decode every photo with the project's ImageFetcher; drop the ones that fail."""
    fetcher = ImageFetcher(allow_local_files=True)
    keep: list[int] = []
    started = time.perf_counter()
    for i, url in enumerate(ds.urls):
        result = fetcher.fetch(url)
        if result.ok and result.image is not None:
            result.image.load()
            ds.images.append(result.image)
            ds.hashes.append(result.content_hash or "")
            keep.append(i)
    ds.decode_s = time.perf_counter() - started
    ds.failed = len(ds.urls) - len(keep)
    for name in ("ids", "level1", "level2", "level3", "urls"):
        values = getattr(ds, name)
        setattr(ds, name, [values[i] for i in keep])


def short(key: str) -> str:
    """The last element of a "A > B > C" key."""
    return key.rsplit(" > ", 1)[-1]


def codes(values: Sequence[str]) -> np.ndarray:
    """Integer codes of string labels (equal strings -> equal codes)."""
    index: dict[str, int] = {}
    return np.array([index.setdefault(v, len(index)) for v in values], dtype=np.int64)


def duplicate_groups(hashes: Sequence[str]) -> tuple[int, int]:
    """(groups of byte-identical files, files in them)."""
    sizes = [c for c in Counter(hashes).values() if c > 1]
    return len(sizes), sum(sizes)


# ---------------------------------------------------------------------------------------------
# Embedding and its timing
# ---------------------------------------------------------------------------------------------


@dataclass
class EmbedTiming:
    passes_img_s: list[float]  # embed() = preprocess + model at batch 32, one value per 1,024-photo pass
    preprocess_ms: list[float]  # per image: letterbox + normalise (first PREP_PASSES passes)
    model_ms: list[float]  # per image: that pass's embed time - its preprocess time
    split_embed_ms: list[float] = field(default_factory=list)  # per image: embed time of those same passes
    single_ms: list[float] = field(default_factory=list)  # embed([one image]) calls
    decode_ms: float = 0.0  # per image: read + check + decode (ImageFetcher)
    load_s: float = 0.0

    @property
    def median_img_s(self) -> float:
        return statistics.median(self.passes_img_s)

    @property
    def with_decode_img_s(self) -> float:
        per_image_s = 1.0 / self.median_img_s + self.decode_ms / 1000
        return 1.0 / per_image_s


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    started = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - started


def timed_pass(embedder: EfficientNetLite0Embedder, part: Sequence[Image.Image],
               with_preprocess: bool) -> tuple[np.ndarray, float, float | None]:
    """Embed ``part`` at the embedder's batch size: (vectors, seconds, preprocess-only seconds)."""
    vectors, seconds = timed(lambda: embedder.embed(part))
    prep_s = None
    if with_preprocess:  # preprocess() is what embed() runs before the model, batch by batch
        _, prep_s = timed(lambda: [embedder.preprocess(part[s:s + BATCH]) for s in range(0, len(part), BATCH)])
    return np.asarray(vectors), seconds, prep_s


def embed_timed(embedder: EfficientNetLite0Embedder, images: Sequence[Image.Image],
                min_passes: int) -> tuple[np.ndarray, EmbedTiming]:
    """Vectors of all images, embedded in consecutive 1,024-photo passes that are each timed
    (model load excluded). A run with fewer than ``min_passes`` full chunks re-times the first."""
    n = len(images)
    vectors = np.empty((n, embedder.dim), np.float32)
    timing = EmbedTiming([], [], [], load_s=embedder.load_seconds)

    def record(part: Sequence[Image.Image], seconds: float, prep_s: float | None) -> None:
        timing.passes_img_s.append(len(part) / seconds)
        if prep_s is not None:
            timing.preprocess_ms.append(1000 * prep_s / len(part))
            timing.model_ms.append(1000 * (seconds - prep_s) / len(part))
            timing.split_embed_ms.append(1000 * seconds / len(part))

    for start in range(0, n, TIMING_SUBSET):
        part = list(images[start:start + TIMING_SUBSET])
        full = len(part) == min(TIMING_SUBSET, n)
        out, seconds, prep_s = timed_pass(embedder, part, full and len(timing.preprocess_ms) < PREP_PASSES)
        vectors[start:start + len(part)] = out
        if full:
            record(part, seconds, prep_s)
    while len(timing.passes_img_s) < min_passes:
        part = list(images[:TIMING_SUBSET])
        _, seconds, prep_s = timed_pass(embedder, part, len(timing.preprocess_ms) < PREP_PASSES)
        record(part, seconds, prep_s)
    return vectors, timing


def single_latencies(embedder: EfficientNetLite0Embedder, images: Sequence[Image.Image]) -> list[float]:
    """ms per embed([one image]) call, LATENCY_CALLS calls after 5 warm-up calls."""
    out = []
    for i in range(LATENCY_CALLS + 5):
        _, seconds = timed(lambda: embedder.embed([images[i % len(images)]]))
        if i >= 5:
            out.append(1000 * seconds)
    return out


def colour_histograms(images: Sequence[Image.Image], bins: int = 8) -> np.ndarray:
    """L2-normalised bins^3 RGB histograms of the original photos."""
    out = np.empty((len(images), bins ** 3), np.float32)
    step = 256 // bins
    for i, image in enumerate(images):
        rgb = np.asarray(image.convert("RGB"), dtype=np.int64) // step
        flat = (rgb[..., 0] * bins + rgb[..., 1]) * bins + rgb[..., 2]
        out[i] = np.bincount(flat.ravel(), minlength=bins ** 3)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


# ---------------------------------------------------------------------------------------------
# Exact search and quality metrics
# ---------------------------------------------------------------------------------------------


Variant = tuple[np.ndarray | None, np.ndarray]  # (scope codes or None for global, exclusion codes)


def exact_topk(x: np.ndarray, k: int, variants: dict[str, Variant],
               chunk: int = 512) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Exact cosine top-k of every row, per variant: among the rows with the same scope code (all
    rows if None), skipping rows whose exclusion code equals the query's (itself; or its byte-
    identical copies). Returns name -> (indices, scores), ``-1`` / ``-inf`` where fewer than k
    candidates exist. Each chunk's similarities are computed once for all variants."""
    n = len(x)
    kk = min(k, n)
    out = {name: (np.full((n, k), -1, np.int64), np.full((n, k), -np.inf, np.float32)) for name in variants}
    for start in range(0, n, chunk):
        rows = np.arange(start, min(start + chunk, n))
        base = x[rows] @ x.T
        for name, (scope, exclude) in variants.items():
            sims = base.copy()
            sims[exclude[rows, None] == exclude[None, :]] = -np.inf
            if scope is not None:
                sims[scope[rows, None] != scope[None, :]] = -np.inf
            part = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
            part_scores = np.take_along_axis(sims, part, axis=1)
            order = np.argsort(-part_scores, axis=1, kind="stable")
            top, top_scores = np.take_along_axis(part, order, axis=1), np.take_along_axis(part_scores, order, axis=1)
            top[~np.isfinite(top_scores)] = -1
            idx, scores = out[name]
            idx[rows, :kk], scores[rows, :kk] = top, top_scores
    return out


def precision(neighbours: np.ndarray, labels: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Per query: share of its (up to k) neighbours with the query's label; NaN if it has none.
    ``neighbours[r]`` belongs to query ``rows[r]`` (default: row r)."""
    query_labels = labels if rows is None else labels[rows]
    valid = neighbours >= 0
    same = (labels[np.where(valid, neighbours, 0)] == query_labels[:, None]) & valid
    count = valid.sum(axis=1)
    return np.where(count > 0, same.sum(axis=1) / np.maximum(count, 1), np.nan)


def random_expected(labels: np.ndarray, scope: np.ndarray | None) -> np.ndarray:
    """Per query: expected precision of neighbours drawn at random (without the query itself)
    from its scope: (same label in scope - 1) / (scope size - 1)."""
    scope = np.zeros_like(labels) if scope is None else scope
    pair = Counter(zip(scope.tolist(), labels.tolist()))
    size = Counter(scope.tolist())
    out = np.array([(pair[(s, lab)] - 1) / (size[s] - 1) if size[s] > 1 else np.nan
                    for s, lab in zip(scope.tolist(), labels.tolist())])
    return out


def macro(values: np.ndarray, labels: np.ndarray) -> float:
    """Mean over labels of the per-label mean (each articleType weighs the same)."""
    per = [np.nanmean(values[labels == lab]) for lab in np.unique(labels) if np.isfinite(values[labels == lab]).any()]
    return float(np.mean(per))


def recall_against_exact(found: np.ndarray, exact_scores: np.ndarray, x: np.ndarray, rows: np.ndarray,
                         tol: float = 1e-4) -> np.ndarray:
    """Per query ``rows[r]``: share of the exact top-k that the ANN list ``found[r]`` matches,
    tie-aware: a returned row counts if its exact cosine reaches the exact k-th best score
    (byte-identical duplicates tie, so id-based recall would be ambiguous)."""
    out = np.full(len(found), np.nan)
    for r, i in enumerate(rows):
        wanted = int(np.isfinite(exact_scores[r]).sum())
        if wanted == 0:
            continue
        kth = exact_scores[r][np.isfinite(exact_scores[r])].min()
        hits = [j for j in found[r] if j >= 0]
        good = sum(1 for j in hits[:wanted] if float(x[i] @ x[j]) >= kth - tol)
        out[r] = good / wanted
    return out


@dataclass
class Quality:
    """Precision@10 of one method in one setting, for the leaf and the level-2 label."""

    method: str
    setting: str  # "within level 2" / "global"
    p_leaf: float
    p_level2: float
    p_leaf_macro: float
    queries: int


def quality_row(method: str, setting: str, neighbours: np.ndarray | None, per_query: np.ndarray | None,
                leaf: np.ndarray, level2: np.ndarray, per_query_level2: np.ndarray | None = None,
                rows: np.ndarray | None = None) -> Quality:
    """One table row from neighbour lists (or from per-query values, for the random baseline)."""
    p_leaf = precision(neighbours, leaf, rows) if neighbours is not None else per_query
    p_l2 = precision(neighbours, level2, rows) if neighbours is not None else per_query_level2
    assert p_leaf is not None and p_l2 is not None
    leaf_of_query = leaf if rows is None else leaf[rows]
    return Quality(method, setting, float(np.nanmean(p_leaf)), float(np.nanmean(p_l2)),
                   macro(p_leaf, leaf_of_query), int(np.isfinite(p_leaf).sum()))


# ---------------------------------------------------------------------------------------------
# Milvus
# ---------------------------------------------------------------------------------------------


@dataclass
class StoreResult:
    """Insert and search numbers of one Milvus deployment for one dataset."""

    name: str
    index_type: str
    rows: int
    upsert_s: float
    flush_s: float
    lat_filtered_ms: list[float]
    lat_global_ms: list[float]
    topk: dict[str, np.ndarray] = field(default_factory=dict)  # setting -> [n, 10] row indices
    queries: dict[str, np.ndarray] = field(default_factory=dict)  # setting -> the rows searched

    @property
    def insert_rows_s(self) -> float:
        return self.rows / self.upsert_s

    @property
    def insert_indexed_rows_s(self) -> float:
        return self.rows / (self.upsert_s + self.flush_s)


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


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


# ---------------------------------------------------------------------------------------------
# Evaluation of one dataset
# ---------------------------------------------------------------------------------------------


@dataclass
class Evaluation:
    ds: Dataset
    rows: list[Quality]
    exact: dict[str, tuple[np.ndarray, np.ndarray]]  # setting -> (idx, scores), CNN, leave-one-out
    per_query_leaf: np.ndarray  # CNN within level 2
    colour_per_query_leaf: np.ndarray
    random_per_query_leaf: np.ndarray
    # store, setting, queries, recall@10, share complete, P@10 leaf via Milvus, exact P@10 on the same queries
    recalls: list[tuple[str, str, int, float, float, float, float]] = field(default_factory=list)
    dup_queries_with_dup_in_top: int = 0
    dup_pairs_same_leaf: float = float("nan")  # share of byte-identical pairs that carry the same leaf label


def evaluate(ds: Dataset, vectors: np.ndarray, colours: np.ndarray, stores: Sequence[StoreResult]) -> Evaluation:
    leaf, level2 = codes(ds.level3), codes(ds.level2)
    self_code = np.arange(len(ds))
    dup_code = codes(ds.hashes)
    rows: list[Quality] = []
    exact: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    per_query: dict[str, np.ndarray] = {}
    settings = (("within level 2", level2), ("global", None))
    cnn = exact_topk(vectors, K_QUALITY, {**{s: (scope, self_code) for s, scope in settings},
                                          **{f"dedup {s}": (scope, dup_code) for s, scope in settings}})
    colour = exact_topk(colours, K_QUALITY, {s: (scope, self_code) for s, scope in settings})
    for setting, scope in settings:
        idx, scores = exact[setting] = cnn[setting]
        rows.append(quality_row("CNN EfficientNet-Lite0 (exact cosine)", setting, idx, None, leaf, level2))
        per_query[setting] = precision(idx, leaf)
        rows.append(quality_row("CNN, byte-identical duplicates of the query excluded", setting,
                                cnn[f"dedup {setting}"][0], None, leaf, level2))
        colour_idx = colour[setting][0]
        rows.append(quality_row("colour histogram 8x8x8 RGB", setting, colour_idx, None, leaf, level2))
        per_query[f"colour {setting}"] = precision(colour_idx, leaf)
        rand_leaf, rand_l2 = random_expected(leaf, scope), random_expected(level2, scope)
        rows.append(quality_row("random (expected value)", setting, None, rand_leaf, leaf, level2, rand_l2))
        per_query[f"random {setting}"] = rand_leaf
    ev = Evaluation(ds, rows, exact, per_query["within level 2"], per_query["colour within level 2"],
                    per_query["random within level 2"])
    for store in stores:
        for setting, (exact_idx, scores) in exact.items():
            searched = store.queries[setting]
            found = store.topk[setting][searched]
            rec = recall_against_exact(found, scores[searched], vectors, searched)
            wanted = np.isfinite(scores[searched]).sum(axis=1)
            complete = float(np.mean((found >= 0).sum(axis=1) >= wanted))
            ev.recalls.append((f"{store.name} ({store.index_type})", setting, len(searched), float(np.nanmean(rec)),
                               complete, float(np.nanmean(precision(found, leaf, searched))),
                               float(np.nanmean(precision(exact_idx[searched], leaf, searched)))))
    idx = exact["within level 2"][0]
    ev.dup_queries_with_dup_in_top = int(sum(
        1 for i in range(len(ds)) if any(j >= 0 and dup_code[j] == dup_code[i] for j in idx[i])))
    pairs = [(i, j) for i in range(len(ds)) for j in np.flatnonzero(dup_code == dup_code[i]) if j > i]
    if pairs:
        ev.dup_pairs_same_leaf = sum(leaf[i] == leaf[j] for i, j in pairs) / len(pairs)
    return ev


def confusions(ev: Evaluation, top: int = 10) -> list[tuple[str, str, int, float]]:
    """Most frequent (query leaf -> neighbour leaf) mismatches among the within-level-2 top-10."""
    idx = ev.exact["within level 2"][0]
    pairs: Counter[tuple[str, str]] = Counter()
    for i in range(len(ev.ds)):
        for j in idx[i]:
            if j >= 0 and ev.ds.level3[j] != ev.ds.level3[i]:
                pairs[(ev.ds.level3[i], ev.ds.level3[j])] += 1
    total = Counter(ev.ds.level3)
    return [(short(a), short(b), n, n / (total[a] * K_QUALITY)) for (a, b), n in pairs.most_common(top)]


def per_type(ev: Evaluation, min_count: int) -> list[tuple[str, int, float, float, float]]:
    """(leaf, images, CNN, colour, random) precision@10 within level 2 for leaves with >= min_count images."""
    leaf = np.array(ev.ds.level3)
    out = []
    for name, count in Counter(ev.ds.level3).most_common():
        if count < min_count:
            break
        mask = leaf == name
        out.append((name, count, float(np.nanmean(ev.per_query_leaf[mask])),
                    float(np.nanmean(ev.colour_per_query_leaf[mask])), float(np.nanmean(ev.random_per_query_leaf[mask]))))
    return out


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------


def pick_queries(ds: Dataset, count: int, rng: random.Random) -> list[int]:
    """One random product from each of the ``count`` largest level-2 categories, preferring
    level-2 categories under different level-1 roots first."""
    by_size = [l2 for l2, n in Counter(ds.level2).most_common(2 * count) if n > 8]
    chosen: list[str] = []
    for l2 in by_size:  # first pass: one per root
        if len(chosen) < count and l2.split(" > ")[0] not in {c.split(" > ")[0] for c in chosen}:
            chosen.append(l2)
    for l2 in by_size:
        if len(chosen) < count and l2 not in chosen:
            chosen.append(l2)
    return [rng.choice([i for i in range(len(ds)) if ds.level2[i] == l2]) for l2 in chosen]


def contact_sheet(rows: list[tuple[Dataset, int, list[tuple[int, float]]]], path: Path, per_row: int = 8) -> None:
    """Each row: the query photo, then its neighbours with their leaf category and cosine score."""
    cols = per_row + 1
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.75 * cols, 2.25 * len(rows)), squeeze=False)
    for r, (ds, q, hits) in enumerate(rows):
        cells = [(q, None)] + hits[:per_row]
        for c in range(cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(cells):
                ax.axis("off")
                continue
            i, score = cells[c]
            ax.imshow(letterbox(ds.images[i], 160))
            label = "\n".join(textwrap.wrap(short(ds.level3[i]), 20)[:2])
            if score is None:
                ax.set_title(f"{ds.name} QUERY\n{label}\n[{short(ds.level2[i])}]", fontsize=8, fontweight="bold")
                for spine in ax.spines.values():
                    spine.set_edgecolor("tab:blue")
                    spine.set_linewidth(3)
            else:
                ok = ds.level3[i] == ds.level3[q]
                ax.set_title(f"{label}\ncos {score:.3f}", fontsize=8, color="black" if ok else "tab:red")
                for spine in ax.spines.values():
                    spine.set_edgecolor("tab:green" if ok else "tab:red")
                    spine.set_linewidth(2)
    fig.suptitle("Top-8 neighbours within the query's level-2 category (Milvus Lite, ImageIndex.similar); "
                 "green = same leaf category, red = different", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def per_type_chart(rows: list[tuple[str, int, float, float, float]], path: Path, title: str) -> None:
    rows = sorted(rows, key=lambda r: r[2])
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(9, 0.22 * len(rows) + 1.5))
    ax.barh(y + 0.27, [r[2] for r in rows], height=0.27, label="CNN", color="tab:blue")
    ax.barh(y, [r[3] for r in rows], height=0.27, label="colour histogram", color="tab:orange")
    ax.barh(y - 0.27, [r[4] for r in rows], height=0.27, label="random", color="tab:gray")
    ax.set_yticks(y, [f"{short(r[0])} ({r[1]})" for r in rows], fontsize=7)
    ax.axvline(0.8, color="tab:red", linestyle="--", linewidth=1, label="goal 0.8")
    ax.set_xlim(0, 1)
    ax.set_xlabel("precision@10, same leaf category, searched within level 2")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def fmt(v: object) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def find(rows: Sequence[Quality], method: str, setting: str) -> Quality:
    return next(r for r in rows if r.method.startswith(method) and r.setting == setting)


def quality_section(ev: Evaluation) -> str:
    ds = ev.ds
    rows = [(r.method, r.setting, r.p_leaf, r.p_leaf_macro, r.p_level2, r.queries) for r in ev.rows]
    head = (f"{ds.name}: {len(ds)} photos, {len(set(ds.level1))} level-1, {len(set(ds.level2))} level-2 "
            f"({ds.level2_name}), {len(set(ds.level3))} leaf ({ds.leaf_name}) categories.")
    out = [head, "", table(["method", "searched", f"P@10 same {ds.leaf_name}", f"macro P@10 {ds.leaf_name}",
                            f"P@10 same {ds.level2_name}", "queries"], rows)]
    if ev.recalls:
        out += ["", f"Milvus against exact search ({ds.name}): ANN recall@10 (tie-aware, see notes) and the "
                "precision the Milvus results give:", "",
                table(["Milvus", "searched", "queries", "recall@10", "queries with a full top-10",
                       f"P@10 {ds.leaf_name} via Milvus", "exact P@10 on the same queries"],
                      [(a, b, n, c, f"{d:.1%}", e, f) for a, b, n, c, d, e, f in ev.recalls])]
    return "\n".join(out)


def machine_facts() -> list[str]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    versions = []
    for pkg in ("tensorflow", "keras", "pymilvus", "milvus-lite", "milvus", "numpy", "pillow"):
        try:
            versions.append(f"{pkg} {importlib.metadata.version(pkg)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{pkg} (not installed)")
    return [f"- CPU: {cpu}; `nproc` = {os.cpu_count()}; Python {platform.python_version()}",
            f"- {', '.join(versions)}"]


@dataclass
class Run:
    args: argparse.Namespace
    version: str
    timing: EmbedTiming
    myntra: Evaluation
    flipkart: Evaluation | None
    stores: list[StoreResult]
    server_note: str
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    seconds: float = 0.0
    flipkart_img_s: float = 0.0


def speed_section(run: Run) -> str:
    t = run.timing
    passes = ", ".join(f"{v:.1f}" for v in t.passes_img_s)
    embed_ms = statistics.median(t.split_embed_ms)
    rows = [
        ("decode (read file, check, Pillow decode; ImageFetcher)", f"{t.decode_ms:.2f}"),
        ("preprocess (letterbox to the input size + normalise)", f"{statistics.median(t.preprocess_ms):.2f}"),
        ("model (EfficientNet-Lite0 forward pass, batch 32; = embed() - preprocess in the same pass)",
         f"{statistics.median(t.model_ms):.2f}"),
        ("embed() = preprocess + model (same passes)", f"{embed_ms:.2f}"),
    ]
    return "\n".join([
        table(["measure", "value"], [
            (f"images/s, embed() at batch {BATCH}, median of {len(t.passes_img_s)} timed passes of "
             f"{min(TIMING_SUBSET, len(run.myntra.ds))} decoded photos (the consecutive chunks the whole catalogue "
             "was embedded in)", f"**{t.median_img_s:.1f}** (min {min(t.passes_img_s):.1f}, max "
             f"{max(t.passes_img_s):.1f}; passes: {passes})"),
            ("images/s including decode from disk (derived: 1 / (embed + decode per image))",
             f"{t.with_decode_img_s:.1f}"),
            ("images/s, Flipkart (originals up to 256 px, so letterboxing costs more), median of its passes",
             f"{run.flipkart_img_s:.1f}" if run.flipkart_img_s else "n/a"),
            (f"single image latency p50 / p90 (batch of 1, {len(t.single_ms)} calls), ms",
             f"{statistics.median(t.single_ms):.1f} / {percentile(t.single_ms, 90):.1f}"),
            ("model load (build + convert torch weights + trace), s", f"{t.load_s:.1f}"),
        ]),
        "", f"Per-image time split (medians over the first {len(t.preprocess_ms)} passes, whose preprocessing was "
        f"also timed on its own; ms per image at batch {BATCH}):", "",
        table(["stage", "ms / image"], rows),
    ])


def store_section(run: Run) -> str:
    if not run.stores:
        return run.server_note
    rows = []
    for s in run.stores:
        rows.append((s.name, s.index_type, s.rows, f"{s.insert_rows_s:.0f}", f"{s.flush_s:.1f}",
                     f"{s.insert_indexed_rows_s:.0f}",
                     f"{percentile(s.lat_filtered_ms, 50):.1f} / {percentile(s.lat_filtered_ms, 99):.1f}",
                     f"{percentile(s.lat_global_ms, 50):.1f} / {percentile(s.lat_global_ms, 99):.1f}"))
    return "\n".join([
        table(["Milvus", "index", "rows", "upsert rows/s", "flush + index build s", "rows/s incl. index",
               "search k=100 with level-2 filter p50 / p99 ms", "search k=100 global p50 / p99 ms"], rows),
        "", run.server_note])


def goals_section(run: Run) -> str:
    ev = run.myntra
    within = find(ev.rows, "CNN EfficientNet", "within level 2")
    glob = find(ev.rows, "CNN EfficientNet", "global")
    dedup = find(ev.rows, "CNN, byte-identical", "within level 2")

    def mark(ok: bool) -> str:
        return "**met**" if ok else "**not met**"

    speed = run.timing.median_img_s
    return "\n".join([
        f"- Precision@10 (same articleType) >= 0.8 on the Myntra photos: within level 2 (subCategory filter, "
        f"the product's setting) {within.p_leaf:.3f} -> {mark(within.p_leaf >= 0.8)}; globally "
        f"{glob.p_leaf:.3f} -> {mark(glob.p_leaf >= 0.8)}; within level 2 with byte-identical duplicates "
        f"of the query excluded {dedup.p_leaf:.3f} -> {mark(dedup.p_leaf >= 0.8)}; macro average over "
        f"articleTypes (within level 2) {within.p_leaf_macro:.3f}.",
        f"- Embedding >= 50 images/s on {os.cpu_count()} cores: {speed:.1f} images/s at batch {BATCH} "
        f"(embed() from decoded images) -> {mark(speed >= 50)}; {run.timing.with_decode_img_s:.1f} images/s "
        f"including decode -> {mark(run.timing.with_decode_img_s >= 50)}. Load average during the run: "
        f"{run.load_before[0]:.1f} at start, {run.load_after[0]:.1f} at end (1-min), on {os.cpu_count()} cores.",
    ])


def discussion(run: Run) -> str:
    ev = run.myntra
    within = find(ev.rows, "CNN EfficientNet", "within level 2")
    glob = find(ev.rows, "CNN EfficientNet", "global")
    colour = find(ev.rows, "colour", "within level 2")
    rand = find(ev.rows, "random", "within level 2")
    dedup = find(ev.rows, "CNN, byte-identical", "within level 2")
    types = per_type(ev, 20)
    worst = sorted(types, key=lambda r: r[2])[:6]
    mixed_types = [r for r in types if r[4] < 0.5]  # chance within their subCategory is low
    best = sorted(mixed_types, key=lambda r: -r[2])[:5]
    reaching = sum(1 for r in types if r[2] >= 0.8)
    # queries whose subCategory holds only their articleType score 1.0 with any method once filtered
    trivial = ev.random_per_query_leaf >= 0.999
    mixed = np.isfinite(ev.random_per_query_leaf) & ~trivial
    alone = [short(r[0]) for r in types if r[4] >= 0.999][:3]
    mixed_cnn = float(np.nanmean(ev.per_query_leaf[mixed])) if mixed.any() else float("nan")
    total_ms = statistics.median(run.timing.split_embed_ms)
    tshirts = next((r for r in types if short(r[0]) == "Tshirts"), None)
    conf = confusions(ev, 8)
    groups, files = duplicate_groups(ev.ds.hashes)
    lines = [
        f"- Within level 2 the CNN neighbours share the query's articleType {within.p_leaf:.3f} of the time, "
        f"against {rand.p_leaf:.3f} for random products of the same subCategory and {colour.p_leaf:.3f} for the "
        f"colour histogram; the level-2 filter itself is worth {within.p_leaf - glob.p_leaf:+.3f} over global "
        f"search ({glob.p_leaf:.3f}). Same-subCategory precision is 1.0 by construction when the filter is on.",
        f"- Part of that is the filter alone: {trivial.mean():.0%} of the photos belong to an articleType that is "
        f"the only one of its subCategory (e.g. {', '.join(alone) or 'none here'}), where every method scores 1.0 "
        f"within level 2. Over the other {mixed.sum()} queries the CNN reaches {mixed_cnn:.3f} "
        f"(colour {np.nanmean(ev.colour_per_query_leaf[mixed]):.3f}, random "
        f"{np.nanmean(ev.random_per_query_leaf[mixed]):.3f}).",
        f"- The micro average is carried by large types: the macro average over articleTypes is "
        f"{within.p_leaf_macro:.3f}; {reaching} of the {len(types)} articleTypes with >= 20 photos reach 0.8."
        + (f" Tshirts ({tshirts[1]} photos, {tshirts[1] / len(ev.ds):.0%}) alone reach {tshirts[2]:.3f}, and their "
           f"random baseline within Topwear is {tshirts[4]:.3f}." if tshirts else ""),
        "- Weakest articleTypes (>= 20 photos; P@10 CNN / colour / random): "
        + "; ".join(f"{short(n)} ({c}) {p:.2f} / {col:.2f} / {r:.2f}" for n, c, p, col, r in worst) + ".",
        "- Strongest articleTypes where chance is low (random baseline < 0.5): "
        + "; ".join(f"{short(n)} ({c}) {p:.2f} (random {r:.2f})" for n, c, p, _, r in best) + ".",
        "- Most frequent confusions (query articleType -> neighbour articleType, neighbours within level 2, "
        "share of that type's neighbour slots): "
        + "; ".join(f"{a} -> {b} {n} ({s:.0%})" for a, b, n, s in conf) + ".",
        f"- Duplicates: {groups} groups of byte-identical files ({files} photos); {ev.dup_queries_with_dup_in_top} "
        f"queries have a byte-identical copy among their top-10. Excluding such copies changes within-level-2 "
        f"P@10 from {within.p_leaf:.3f} to {dedup.p_leaf:.3f} "
        f"({'a negligible' if abs(within.p_leaf - dedup.p_leaf) < 0.005 else 'a noticeable'} effect: the copies "
        f"are {files / max(len(ev.ds), 1):.1%} of the photos, and {ev.dup_pairs_same_leaf:.0%} of the identical "
        "pairs carry the same articleType; a copy in the top-10 is a free hit when the labels agree). "
        "Ids whose photo does not match the label (e.g. 11343) are not removed; they lower the numbers a little.",
    ]
    if run.flipkart is not None:
        fk = run.flipkart
        fw, fg = find(fk.rows, "CNN EfficientNet", "within level 2"), find(fk.rows, "CNN EfficientNet", "global")
        fr, fc = find(fk.rows, "random", "within level 2"), find(fk.rows, "colour", "within level 2")
        fconf = confusions(fk, 4)
        lines.append(
            f"- Flipkart: within level 2 P@10 (same level 3) is {fw.p_leaf:.3f} "
            f"(random {fr.p_leaf:.3f}, colour {fc.p_leaf:.3f}); globally the same-level-2 precision is "
            f"{fg.p_level2:.3f}. Its level 2/3 nodes are partly brand-named (\"JMD Home Furnishing\", "
            f"\"palito Wrist Watches\"), which no image model can separate; frequent confusions: "
            + "; ".join(f"{a} -> {b} {n}" for a, b, n, _ in fconf) + ".")
    lines.append(f"- Speed: the model forward pass is {statistics.median(run.timing.model_ms) / total_ms:.0%} of "
                 f"embed() time, letterboxing the 60x80 thumbnails up to {run.args.image_size} px the rest; decoding "
                 f"adds {run.timing.decode_ms:.2f} ms per photo. The 2 cores are shared with other jobs (see the load "
                 "averages), so throughput is noisy; the per-pass values show the spread. When other jobs load the "
                 "cores, expect proportionally lower images/s.")
    return "\n".join(lines)


def write_report(run: Run, path: Path) -> None:
    args = run.args
    options = [f"--limit {args.limit}" if args.limit else "", f"--image-size {args.image_size}",
               f"--repeat {args.repeat}", f"--milvus-queries {args.milvus_queries}",
               "--no-server" if args.no_server else ""]
    cmd = "`.venv/bin/python benchmarks/similarity.py " + " ".join(o for o in options if o) + "`"
    parts = [
        "# Image similarity: embedding speed, Milvus, precision@10",
        "",
        f"Command: {cmd} (total runtime {run.seconds / 60:.1f} min).",
        "",
        "Machine and model:",
        "",
        *machine_facts(),
        f"- Model: `{run.version}` (EfficientNet-Lite0, ImageNet weights, 1280-d L2-normalised), "
        f"input {args.image_size} px letterboxed on white, batch {BATCH}.",
        f"- Load average (1/5/15 min) at start {run.load_before[0]:.1f}/{run.load_before[1]:.1f}/"
        f"{run.load_before[2]:.1f}, at end {run.load_after[0]:.1f}/{run.load_after[1]:.1f}/{run.load_after[2]:.1f}: "
        "other jobs share the cores, so speed numbers are medians of repeated passes and still noisy.",
        "",
        "## Goals",
        "",
        goals_section(run),
        "",
        "## Embedding speed (Myntra photos, 60x80 JPEG)",
        "",
        speed_section(run),
        "",
        "## Milvus insert and search (Myntra vectors)",
        "",
        store_section(run),
        "",
        "## Quality: Myntra",
        "",
        quality_section(run.myntra),
        "",
        "![per articleType](similarity_per_type.png)",
        "",
    ]
    if run.flipkart is not None:
        parts += ["## Quality: Flipkart", "", quality_section(run.flipkart), ""]
    parts += [
        "## Contact sheet",
        "",
        "![contact sheet](similarity_contact_sheet.png)",
        "",
        "## Discussion",
        "",
        discussion(run),
        "",
        "## How the numbers are computed",
        "",
        "- Every product is a query (leave-one-out: the query itself is excluded; other photos, including "
        "byte-identical copies, count unless the row says otherwise). P@10 = share of the returned neighbours "
        "(10, or fewer when the level-2 category has fewer other products) with the query's label, averaged "
        "over queries (micro); macro = mean over leaf categories of their mean. Queries alone in their level-2 "
        "category have no neighbours and are left out of the within-level-2 rows.",
        "- Categories come from the records as the feed would publish them (read_catalogue -> parse_record -> "
        "true_category_path); level 2 is the path's first two elements, the leaf the first three "
        "(Myntra: masterCategory > subCategory > articleType; a Flipkart path of depth 2 is its own leaf).",
        "- Random baseline: the exact expected precision of neighbours drawn uniformly from the same scope "
        "(same level 2, or all products), without the query. Colour histogram: 8x8x8 RGB bins of the "
        "original photo, L2-normalised, cosine, same filters and leave-one-out.",
        "- The quality tables use exact numpy cosine search over all products (what a FLAT index returns). "
        "The recall tables check Milvus against it: batched searches (many query vectors per request, k=11, "
        "then the query dropped) on the collection ImageIndex created, for a seeded random sample of products "
        "(`--milvus-queries`; Milvus Lite's brute-force global search costs ~10 ms per query here); HNSW searches use the ef ImageIndex uses for k=100. Recall@10: "
        "share of the exact numpy top-10 matched by the Milvus top-10, where a returned product counts when its "
        "exact cosine reaches the exact 10th-best score (ties between identical photos make id-based recall "
        "ambiguous). Latencies are single ImageIndex.search(k=100) calls (query excluded by id) on "
        f"{SEARCH_CALLS} random products.",
    ]
    path.write_text("\n".join(parts) + "\n")


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------


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


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="use at most N photos per dataset (quick runs)")
    parser.add_argument("--image-size", type=int, default=224, help="model input size in pixels")
    parser.add_argument("--repeat", type=int, default=3, help="minimum timed embedding passes (median reported)")
    parser.add_argument("--milvus-queries", type=int, default=MILVUS_QUERIES,
                        help="products searched through Milvus to check recall against exact search (0 = all)")
    parser.add_argument("--no-server", action="store_true", help="skip the Milvus standalone server")
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS, help="the shared datasets folder")
    parser.add_argument("--out", type=Path, default=RESULTS, help="output folder")
    return parser.parse_args(argv)


def log(message: str, started: float) -> None:
    print(f"[{time.perf_counter() - started:6.0f}s] {message}", flush=True)


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


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    myntra_csv = args.datasets / "myntra" / "images.csv"
    flipkart_csv = args.datasets / "flipkart" / "images.csv"
    if not myntra_csv.is_file():
        print(f"similarity benchmark skipped: {myntra_csv} not found (pass --datasets; see "
              "../shared/datasets/README.md)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()

    myntra = load_dataset(myntra_csv, "myntra-images", "Myntra", "articleType", "subCategory", args.limit)
    decode_images(myntra)
    log(f"Myntra: {len(myntra)} photos decoded ({myntra.failed} failed) in {myntra.decode_s:.1f}s", started)
    embedder = EfficientNetLite0Embedder(cache_dir=None, image_size=args.image_size, batch_size=BATCH)
    log(f"model {embedder.version} loaded in {embedder.load_seconds:.1f}s", started)
    myntra_vec, timing = embed_timed(embedder, myntra.images, args.repeat)
    timing.decode_ms = 1000 * myntra.decode_s / max(len(myntra), 1)
    timing.single_ms = single_latencies(embedder, myntra.images)
    log(f"Myntra embedded; passes {', '.join(f'{v:.1f}' for v in timing.passes_img_s)} images/s", started)
    data: list[tuple[Dataset, np.ndarray, int]] = [(myntra, myntra_vec, 6)]

    flipkart_img_s = 0.0
    if flipkart_csv.is_file():
        flipkart = load_dataset(flipkart_csv, "flipkart-images", "Flipkart", "level3", "level2", args.limit)
        decode_images(flipkart)
        flipkart_vec, flipkart_timing = embed_timed(embedder, flipkart.images, 1)
        flipkart_img_s = flipkart_timing.median_img_s
        data.append((flipkart, flipkart_vec, 2))
        log(f"Flipkart: {len(flipkart)} photos embedded ({flipkart_img_s:.1f} images/s)", started)

    milvus = measure_milvus(args, data, embedder.version, started)
    contact_sheet(milvus.sheet, args.out / "similarity_contact_sheet.png")
    evaluations = [evaluate(ds, vectors, colour_histograms(ds.images), milvus.stores[ds.name])
                   for ds, vectors, _ in data]
    log("evaluated", started)
    per_type_chart(per_type(evaluations[0], 20), args.out / "similarity_per_type.png",
                   "Myntra articleTypes with >= 20 photos (photo count in brackets)")
    run = Run(args, embedder.version, timing, evaluations[0], evaluations[1] if len(evaluations) > 1 else None,
              milvus.stores["Myntra"], milvus.server_note, load_before, flipkart_img_s=flipkart_img_s)
    run.load_after = os.getloadavg()
    run.seconds = time.perf_counter() - started
    write_report(run, args.out / "similarity.md")
    log(f"wrote {args.out / 'similarity.md'}", started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
