"""The mission's scale: training time, categorise_batch throughput, artifact size and peak memory
of the full ensemble at about 200 and about 1,000 categories.

    .venv/bin/python benchmarks/scale.py [--datasets ../shared/datasets] [--members logreg,mlp,wide_deep,textcnn]

Protocol: Flipkart 20k (benchmarks/protocol.py: seeded 90/10 split, taxonomy from the training
products' paths only), the category fields dropped from the records (they are the label), trained
on the TRUE labels of the 18,000 training products with ``train_ensemble``'s defaults (3 folds,
stacked combiner). Two taxonomies: depth <= 4 with >= 30 products (the models report's ~200) and
depth <= 6 with >= 5 products (~1,000). Each size runs in its own process, so its peak resident
memory (``ru_maxrss``) is its own. The model is registered, loaded back and warmed up as the worker
does, then ``categorise_batch`` runs on the 2,000 test products in batches of 256 (the worker's
default): products/s = the median batch. Writes benchmarks/results/scale.md, scale.json and scale.png.

Goals (issue 13): at 1,000 categories, categorise_batch >= 2,000 products/s and full-ensemble
training on 20k products < 15 min on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"
SIZES = "4:30,6:5"  # depth:min support: ~200 and ~1,000 categories
BATCH = 256
GOAL_PER_S, GOAL_TRAIN_MIN = 2000, 15


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def measure(datasets: Path, depth: int, min_support: int, members: list[str]) -> dict[str, Any]:
    """One taxonomy size, in this process: train, save, load, warm up, categorise the test split."""
    from benchmarks.protocol import split_and_taxonomy
    from models.artifact import load_classifier
    from models.labels import label_matrix, labels_from_paths
    from models.metrics import evaluate
    from models.registry import ModelRegistry
    from models.training import train_ensemble
    from prodcat.catalogue import read_catalogue, true_category_path
    from prodcat.record import parse_record

    records = [parse_record(raw) for raw in read_catalogue(datasets / "flipkart" / "products_20k_name_tree.csv",
                                                           "flipkart-names")]
    paths = [true_category_path(r) for r in records]
    bare = [r.model_copy(update={"category": None, "category_path": []}) for r in records]
    train_idx, test_idx, taxonomy, _ = split_and_taxonomy(paths, depth=depth, min_support=min_support)
    truth = labels_from_paths(paths, taxonomy)
    log(f"depth {depth}, min support {min_support}: {len(taxonomy)} categories; training on {len(train_idx)}")
    started = time.perf_counter()
    classifier = train_ensemble([bare[i] for i in train_idx], [truth[i] for i in train_idx], taxonomy,
                                members=members)
    train_s = time.perf_counter() - started
    log(f"trained in {train_s / 60:.1f} min")
    with tempfile.TemporaryDirectory() as folder:
        registry = ModelRegistry(Path(folder))
        path = registry.path(registry.register(classifier))
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        loaded = load_classifier(path).warm_up()
    test = [bare[i] for i in test_idx]
    batches = [test[i:i + BATCH] for i in range(0, len(test), BATCH)]
    seconds = []
    for batch in batches:
        t0 = time.perf_counter()
        loaded.categorise_batch(batch)
        seconds.append(time.perf_counter() - t0)
    full = [s for b, s in zip(batches, seconds, strict=True) if len(b) == BATCH]  # the last one is short
    per_s = BATCH / statistics.median(full)
    y_test = label_matrix([truth[i] for i in test_idx], taxonomy) > 0.5
    f1 = evaluate(y_test, loaded.decide(test), taxonomy)["micro_f1"]
    return {"depth": depth, "min_support": min_support, "categories": len(taxonomy),
            "train_products": len(train_idx), "test_products": len(test_idx), "members": members,
            "train_minutes": round(train_s / 60, 2), "products_per_s": round(per_s),
            "batches": len(full), "artifact_mb": round(size / 1e6, 1),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
            "test_micro_f1": round(float(f1), 4), "load_average": [round(x, 1) for x in os.getloadavg()]}


def report(rows: list[dict[str, Any]], command: str, minutes: float) -> str:
    big = max(rows, key=lambda r: r["categories"])
    met_speed = big["products_per_s"] >= GOAL_PER_S
    met_train = big["train_minutes"] < GOAL_TRAIN_MIN
    lines = [
        "# The mission's scale: ~200 and ~1,000 categories", "",
        f"`{command}` in {minutes:.0f} min on this 2-core machine, shared with other work (load average at the "
        "end of each size in the table: the timings are upper bounds for an idle machine).", "",
        f"Flipkart 20k, trained on the true labels of the {rows[0]['train_products']} training products, full "
        f"ensemble `{','.join(rows[0]['members'])}` (3 folds, stacked combiner, `train_ensemble` defaults); "
        f"categorise_batch on the {rows[0]['test_products']} test products in batches of {BATCH} after load and "
        "warm-up, median batch; each size in its own process.", "",
        "| taxonomy | categories | training | categorise_batch | artifact | peak memory | test micro-F1 | load avg |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| depth <= {r['depth']}, >= {r['min_support']} products | {r['categories']} | "
                     f"{r['train_minutes']:.1f} min | {r['products_per_s']:,} products/s | {r['artifact_mb']:.1f} MB | "
                     f"{r['peak_rss_gb']:.2f} GB | {r['test_micro_f1']:.3f} | {r['load_average'][0]:.1f} |")
    lines += [
        "", "## Goals at the larger size", "",
        f"- categorise_batch >= {GOAL_PER_S:,} products/s: **{'MET' if met_speed else 'NOT MET'}** "
        f"({big['products_per_s']:,} at {big['categories']} categories).",
        f"- Full-ensemble training on 20k products < {GOAL_TRAIN_MIN} min: **{'MET' if met_train else 'NOT MET'}** "
        f"({big['train_minutes']:.1f} min on {big['train_products']} products).", "",
        "![scale](scale.png)", "",
    ]
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['categories']} categories" for r in rows]
    panels = (("train_minutes", "training (min)", GOAL_TRAIN_MIN), ("products_per_s", "categorise_batch (products/s)",
              GOAL_PER_S), ("artifact_mb", "artifact (MB)", None), ("peak_rss_gb", "peak memory (GB)", None))
    fig, axes = plt.subplots(1, len(panels), figsize=(13, 3.4))
    for ax, (key, title, goal) in zip(axes, panels, strict=True):
        ax.bar(labels, [r[key] for r in rows], color=["tab:blue", "tab:orange"][:len(rows)])
        if goal is not None:
            ax.axhline(goal, color="black", linestyle="--", linewidth=0.8, label="goal")
            ax.legend(fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--members", default="logreg,mlp,wide_deep,textcnn")
    parser.add_argument("--sizes", default=SIZES, help="taxonomies as depth:min-support pairs")
    parser.add_argument("--one", nargs=2, type=int, metavar=("DEPTH", "MIN_SUPPORT"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    members = [m for m in args.members.split(",") if m]
    if args.one:  # a child: one size, its numbers as JSON on stdout
        print(json.dumps(measure(args.datasets, *args.one, members)))
        return
    started = time.perf_counter()
    rows = []
    for depth, min_support in (map(int, size.split(":")) for size in args.sizes.split(",")):
        child = subprocess.run([sys.executable, __file__, "--datasets", str(args.datasets), "--members", args.members,
                                "--one", str(depth), str(min_support)], stdout=subprocess.PIPE, text=True, check=True)
        rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
        log(f"{rows[-1]}")
    args.out.mkdir(parents=True, exist_ok=True)
    command = ".venv/bin/python benchmarks/scale.py " + " ".join(sys.argv[1:])
    (args.out / "scale.json").write_text(json.dumps(rows, indent=1) + "\n")
    plot(rows, args.out / "scale.png")
    (args.out / "scale.md").write_text(report(rows, command.strip(), (time.perf_counter() - started) / 60))
    print((args.out / "scale.md").read_text())


if __name__ == "__main__":
    main()
