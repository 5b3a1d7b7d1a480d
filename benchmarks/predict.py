"""categorise_batch throughput of a saved model on batches of 256, with the time of each step.

    .venv/bin/python benchmarks/predict.py --model DIR [--batches 20] [--batch 256]

Flipkart products (category fields dropped: they are the label) in batches of ``--batch``; the
model is loaded and warmed up (its calls traced) first, as the worker does. Reports the median
over ``--batches`` batches of the whole ``categorise_batch`` (featurise + every member + combiner +
thresholds + explanations) and of each step alone. Writes benchmarks/results/predict_batch.md
(the file keeps its name from when the method was called predict_batch).
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.artifact import load_classifier  # noqa: E402
from prodcat.catalogue import read_catalogue  # noqa: E402
from prodcat.record import parse_record  # noqa: E402

DATASETS = ROOT.parent / "shared" / "datasets"


def median_ms(fn, batches: list) -> float:
    times = []
    for batch in batches:
        started = time.perf_counter()
        fn(batch)
        times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a model artifact directory")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "predict_batch.md")
    args = parser.parse_args()

    started = time.perf_counter()
    classifier = load_classifier(args.model)
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    classifier.warm_up()
    warm_s = time.perf_counter() - started
    rows = itertools.islice(read_catalogue(DATASETS / "flipkart" / "products_20k_name_tree.csv", "flipkart-names"),
                            args.batch * args.batches)
    records = [parse_record(r).model_copy(update={"category": None, "category_path": []}) for r in rows]
    batches = [records[i:i + args.batch] for i in range(0, len(records), args.batch)]
    features = {id(b): classifier.features(b) for b in batches}

    whole = median_ms(classifier.categorise_batch, batches)
    steps = {"featurise": median_ms(classifier.features, batches)}
    for name, member in classifier.members.items():
        steps[f"member {name}"] = median_ms(lambda b, m=member: m.predict_proba(features[id(b)]), batches)
    lines = "\n".join(f"| {name} | {ms:.1f} |" for name, ms in steps.items())
    rest = whole - sum(steps.values())
    args.out.write_text(f"""# categorise_batch throughput

Command: `.venv/bin/python benchmarks/predict.py {' '.join(sys.argv[1:])}`

Model `{classifier.version}`: members {', '.join(classifier.members)}, {classifier.combiner.kind} combiner,
{len(classifier.taxonomy)} categories. {len(batches)} batches of {args.batch} Flipkart products on this
2-core machine (shared); medians over the batches. Load {load_s:.1f} s, warm-up (tracing) {warm_s:.1f} s.

**categorise_batch: {args.batch / whole * 1000:.0f} products/s** ({whole:.1f} ms per batch of {args.batch}).

| step (alone) | ms per batch |
|---|---|
{lines}
| combiner + thresholds + explanations + assembly (the rest) | {rest:.1f} |
""")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
