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
This file is the entry point: the measurements are ``similarity_measure.py``, the Milvus stage
``similarity_milvus.py`` and the report ``similarity_report.py``, beside it.
The datasets are read from ../shared/datasets (``--datasets``); the script stops with a message
if they are absent.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

import numpy as np  # noqa: E402
from similarity_measure import (  # noqa: E402
    BATCH,
    DEFAULT_DATASETS,
    MILVUS_QUERIES,
    RESULTS,
    Dataset,
    colour_histograms,
    decode_images,
    embed_timed,
    evaluate,
    load_dataset,
    log,
    per_type,
    single_latencies,
)
from similarity_milvus import measure_milvus  # noqa: E402
from similarity_report import Run, contact_sheet, per_type_chart, write_report  # noqa: E402

from embedder import EfficientNetLite0Embedder  # noqa: E402


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
