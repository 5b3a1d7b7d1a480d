"""The crossover point: how many true labels, drawn at random, a model trained on them alone needs
to match the model trained with no human label (BoxWRENCH's measure of weak supervision).

    .venv/bin/python benchmarks/crossover.py [--dataset flipkart|myntra-images|bigbasket] [--depth 4]
        [--min-support 30] [--limit N] [--datasets ../shared/datasets] [--members logreg]
        [--sizes 50,100,200,400,800,1600,3200,6400] [--seeds 3]

Protocol (the models report's, benchmarks/protocol.py): the dataset (default Flipkart 20k),
depth <= 4, categories with >= 30 training products (209 on Flipkart), seeded 90/10 split; the
category fields are dropped from the records (they are the truth). The no-human-label models train on all 18,000 training products:
on the generated rules' labels (``prodcat train``'s default) and on the weak labels of
``models.weak_labels`` (rules + MiniLM semantic matcher + label model; ``--labels weak``). The
random-label models train on the TRUE labels of ``k`` training products drawn at random (one draw
per seed) and nothing else. Same members and ``train_ensemble`` defaults everywhere; micro-F1 on
the 2,000 test products against the truth. The crossover is the first ``k`` (linear
interpolation on the mean over seeds) at which the random-label model reaches each no-label
model. Writes benchmarks/results/crossover.md, .json and .png (Flipkart) or crossover_<dataset>.*.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.protocol import DATASETS, split_and_taxonomy, subsample  # noqa: E402
from embedder.backends.minilm import MiniLMEncoder  # noqa: E402
from models.labels import label_matrix, labels_from_paths  # noqa: E402
from models.metrics import evaluate  # noqa: E402
from models.semantic import SemanticMatcher  # noqa: E402
from models.training import train_ensemble  # noqa: E402
from models.weak_labels import weak_labels  # noqa: E402
from prodcat.catalogue import read_catalogue, true_category_path  # noqa: E402
from prodcat.record import parse_record  # noqa: E402
from prodcat.rules import generate_rules  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def crossing(sizes: list[int], f1: list[float], target: float) -> float | None:
    """The first size at which the curve reaches ``target``, interpolated linearly; None if it never does."""
    for k in range(len(sizes)):
        if f1[k] >= target:
            if k == 0:
                return float(sizes[0])
            a, b = f1[k - 1], f1[k]
            return sizes[k - 1] + (sizes[k] - sizes[k - 1]) * (target - a) / (b - a)
    return None


def run(args: argparse.Namespace) -> dict[str, Any]:
    path, preset = DATASETS[args.dataset]
    records = subsample([parse_record(raw) for raw in read_catalogue(args.datasets / path, preset)], args.limit)
    paths = [true_category_path(r) for r in records]
    bare = [r.model_copy(update={"category": None, "category_path": []}) for r in records]
    train_idx, test_idx, taxonomy, support = split_and_taxonomy(paths, depth=args.depth, min_support=args.min_support)
    truth = labels_from_paths(paths, taxonomy)
    train, test = [bare[i] for i in train_idx], [bare[i] for i in test_idx]
    y_test = label_matrix([truth[i] for i in test_idx], taxonomy) > 0.5

    def fit_and_score(rows: list[int], label_sets: list[set[str]], seed: int = 0,
                      sample_weight: np.ndarray | None = None) -> float:
        model = train_ensemble([train[j] for j in rows], label_sets, taxonomy, members=args.members, seed=seed,
                               sample_weight=sample_weight, folds=2 if len(rows) < 400 else 3)
        return float(evaluate(y_test, model.decide(test), taxonomy)["micro_f1"])

    everyone = list(range(len(train)))
    ruleset = generate_rules(taxonomy, support=support)
    rule_sets = [m.labels for m in ruleset.apply_many(train)]
    rules_test = label_matrix([m.labels for m in ruleset.apply_many(test)], taxonomy) > 0.5
    baselines = {"rules themselves": float(evaluate(y_test, rules_test, taxonomy)["micro_f1"])}
    t0 = time.perf_counter()
    baselines["trained on rule labels"] = fit_and_score(everyone, rule_sets)
    log(f"rule labels: {baselines['trained on rule labels']:.4f} ({time.perf_counter() - t0:.0f}s)")
    t0 = time.perf_counter()
    weak = weak_labels(train, ruleset, taxonomy,
                       matcher=SemanticMatcher(MiniLMEncoder(threads=args.threads), fields=("title",)))
    baselines["trained on weak labels"] = fit_and_score(everyone, weak.label_sets, sample_weight=weak.weights)
    log(f"weak labels: {baselines['trained on weak labels']:.4f} ({time.perf_counter() - t0:.0f}s)")

    curves: dict[int, list[float]] = {}
    for seed in range(args.seeds):
        order = np.random.default_rng(100 + seed).permutation(len(train))
        for k in args.sizes:
            rows = sorted(order[:k].tolist())
            curves.setdefault(k, []).append(fit_and_score(rows, [truth[train_idx[j]] for j in rows], seed=seed))
            log(f"seed {seed}, {k} true labels: {curves[k][-1]:.4f}")
    mean = [float(np.mean(curves[k])) for k in args.sizes]
    return {"dataset": args.dataset, "depth": args.depth, "min_support": args.min_support, "limit": args.limit,
            "members": args.members, "categories": len(taxonomy), "train": len(train), "test": len(test),
            "baselines": baselines, "sizes": args.sizes, "curves": {str(k): v for k, v in curves.items()},
            "mean": mean, "crossover": {name: crossing(args.sizes, mean, f1) for name, f1 in baselines.items()},
            "command": ".venv/bin/python benchmarks/crossover.py " + " ".join(sys.argv[1:])}


def report(result: dict[str, Any], minutes: float) -> str:
    lines = [
        f"# The crossover point: random true labels vs no human label ({result.get('dataset', 'flipkart')}, "
        f"depth <= {result.get('depth', 4)})", "",
        f"`{result['command'].strip()}` in {minutes:.0f} min on this shared 2-core machine.", "",
        f"{result['categories']} categories (>= {result.get('min_support', 30)} training products); {result['train']} training and {result['test']} test products; members "
        f"`{','.join(result['members'])}`; micro-F1 on the test products against the truth.", "",
        "| no-human-label model | test micro-F1 | true labels a model needs to match it (crossover) |",
        "|---|---|---|",
    ]
    for name, f1 in result["baselines"].items():
        k = result["crossover"][name]
        lines.append(f"| {name} | {f1:.3f} | {'more than ' + str(result['sizes'][-1]) if k is None else f'{k:,.0f}'} |")
    lines += ["", "| random true labels | " + " | ".join(f"{k:,}" for k in result["sizes"]) + " |",
              "|---" * (len(result["sizes"]) + 1) + "|",
              "| mean micro-F1 | " + " | ".join(f"{x:.3f}" for x in result["mean"]) + " |",
              "| per seed | " + " | ".join(", ".join(f"{x:.3f}" for x in result["curves"][str(k)])
                                         for k in result["sizes"]) + " |",
              "", "![crossover](crossover.png)", ""]
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(result["sizes"], result["mean"], marker="o", color="black", label="trained on k random true labels")
    for (name, f1), colour in zip(result["baselines"].items(), ("grey", "tab:blue", "tab:green"), strict=False):
        ax.axhline(f1, color=colour, linestyle="--", linewidth=0.9, label=f"{name} ({f1:.3f})")
    ax.set_xscale("log")
    ax.set_xlabel("true labels (random)")
    ax.set_ylabel("test micro-F1")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="flipkart")
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--min-support", type=int, default=30)
    parser.add_argument("--members", default="logreg")
    parser.add_argument("--limit", type=int, default=None,
                        help="a fixed random sample of this many products (the models report's --limit)")
    parser.add_argument("--sizes", default="50,100,200,400,800,1600,3200,6400")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads for the encoder")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.members = [m for m in args.members.split(",") if m]
    args.sizes = [int(k) for k in args.sizes.split(",")]
    started = time.perf_counter()
    result = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "crossover" if args.dataset == "flipkart" else f"crossover_{args.dataset}"
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    plot(result, args.out / f"{stem}.png")
    (args.out / f"{stem}.md").write_text(report(result, (time.perf_counter() - started) / 60).replace(
        "crossover.png", f"{stem}.png"))
    print((args.out / f"{stem}.md").read_text())


if __name__ == "__main__":
    main()
