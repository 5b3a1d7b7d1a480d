"""The similarity benchmark's measurements: loading and decoding the photo sets, embedding speed,
exact search, precision against the categories and recall of the Milvus results.

Run by ``benchmarks/similarity.py`` (the entry point); Milvus itself is ``similarity_milvus.py``, the
report ``similarity_report.py``.
"""

from __future__ import annotations

import random
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from embedder import EfficientNetLite0Embedder, ImageFetcher
from prodcat.catalogue import read_catalogue, true_category_path
from prodcat.record import parse_record

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



def log(message: str, started: float) -> None:
    print(f"[{time.perf_counter() - started:6.0f}s] {message}", flush=True)

