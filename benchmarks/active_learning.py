"""Benchmark active-learning selection strategies: F1 vs number of human labels.

    .venv/bin/python benchmarks/active_learning.py [--dataset myntra|flipkart|bigbasket] [--products 4000
        --rounds 10 --batch 50 --seeds 3] [--max-depth 3] [--test-size N] [--members logreg,mlp] [--jobs 2]
        [--strategies random,uncertainty,...] [--human-weight 1] [--correct-rules] [--unlabelled-weight W]
        [--tune-on all|labelled] [--resume]

Protocol. A fixed random subset of ``--products`` products of the dataset (Myntra styles.csv: truth =
master > sub > articleType; Flipkart 20k: truth = its category tree; BigBasket 27k: truth = category >
sub_category > type), split (seeded, fixed) into dev and ``--test-size`` test products (default 10%).
The category fields are the label, so they are removed from the records (rules and featuriser see
the title, + gender on Myntra, + brand on BigBasket). Taxonomy = the dev products' true paths cut at
``--max-depth``, categories with fewer than ``--min-support`` dev products pruned. Rule labels = ``generate_rules(taxonomy, support=...)`` applied to the
category-less records. The start model is trained on rule labels for all dev products (the
unlabelled pool). Then each round every strategy picks ``--batch`` products from the dev products
it has not had labelled yet; the TRUE categories act as the labeller (full relabel: positives =
true path, negatives = every other category), merged with the rule labels by
``retrain.job.training_targets`` (human overrides rules); importance-weighted selection passes its
weights as ``sample_weight`` (accumulated per product, others weight 1). ``stream`` is production's
selection: ``retrain.selection.StreamSelection`` replays the pool as one simulated day through the
worker's sampler (``prodcat.sampling``) with a budget of ``--batch`` per day, and its labels weigh the
self-normalised 1/p over all labels so far, computed by ``retrain.job.training_weights`` as in the
retrain service. The model is retrained on
all dev products and scored (micro-F1) on the test split against the TRUE categories. Each seed
changes the training seed and the selection RNG (subset and split stay fixed). The **ceiling** of a
seed is the same model trained on the TRUE labels of every dev product (what labelling the whole
pool would give), scored on the same test split.
Writes benchmarks/results/active_learning_<dataset>.md and .png (rewritten after every
finished (seed, strategy) run, so a cut-short run still leaves a report) and .runs.json (the
finished runs with the settings they ran under, which ``--resume`` continues from).
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.config import FeatureConfig  # noqa: E402
from models.labels import LabelWeighting, label_matrix, labels_from_paths  # noqa: E402
from models.metrics import evaluate  # noqa: E402
from models.training import train_ensemble  # noqa: E402
from prodcat.catalogue import read_catalogue, true_category_path  # noqa: E402
from prodcat.record import parse_record  # noqa: E402
from prodcat.rules import generate_rules  # noqa: E402
from prodcat.taxonomy import Taxonomy  # noqa: E402
from retrain.job import training_targets, training_weights  # noqa: E402
from retrain.resolution import ProductLabels  # noqa: E402
from retrain.selection import (  # noqa: E402
    CombinedSelection,
    DisagreementSelection,
    ImportanceWeightedSelection,
    Pool,
    RandomSelection,
    StreamSelection,
    UncertaintySelection,
)
from retrain.weights import importance_weights  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SOURCES = {"myntra": ("myntra/styles.csv", "myntra"),  # truth: master > sub > articleType
           "flipkart": ("flipkart/products_20k_name_tree.csv", "flipkart-names"),  # truth: the category tree
           "bigbasket": ("bigbasket/products_27k.csv", "bigbasket")}  # truth: category > sub_category > type
STRATEGIES = ("random", "uncertainty", "disagreement", "combined", "importance", "stream")
CEILING = "ceiling"  # not a strategy: the run trained on every dev product's true labels
# what a finished run depends on: --resume reuses runs only when these are the same
SETTINGS = ("dataset", "products", "max_depth", "test_size", "min_support", "rounds", "batch", "members", "folds",
            "epochs_logreg", "epochs_mlp", "title_tokens", "human_weight", "correct_rules", "unlabelled_weight",
            "tune_on")
COLOURS = {"random": "black", "uncertainty": "tab:blue", "disagreement": "tab:orange", "combined": "tab:green",
           "importance": "tab:red", "stream": "tab:purple"}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def png_name(args: argparse.Namespace) -> str:
    return f"active_learning_{args.dataset}.png"


def make_strategy(name: str):
    if name == "random":
        return RandomSelection()
    if name == "uncertainty":
        return UncertaintySelection()
    if name == "disagreement":
        return DisagreementSelection()
    if name == "combined":
        return CombinedSelection()
    if name == "importance":
        return ImportanceWeightedSelection()
    if name == "stream":  # production's selection: the worker's sampler, budget = batch per simulated day
        return StreamSelection()
    raise ValueError(f"unknown strategy {name!r}")


# --- data (built once per process; deterministic) -------------------------------------------------


def read_bigbasket(path: Path):
    """BigBasket's rows in feed form: the three category columns joined as one path, as the other presets give it."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            yield {"id": row["index"], "title": row["product"], "brand": row["brand"],
                   "category": " > ".join(row[c] for c in ("category", "sub_category", "type"))}


def read_source(args: argparse.Namespace):
    source, preset = SOURCES[args.dataset]
    path = args.datasets / source
    if not path.is_file():
        raise SystemExit(f"error: {path} not found; pass --datasets (the shared datasets folder)")
    return read_bigbasket(path) if preset == "bigbasket" else read_catalogue(path, preset)

_DATA: dict[str, Any] = {}


def data(args: argparse.Namespace) -> dict[str, Any]:
    if _DATA:
        return _DATA
    records = [parse_record(raw) for raw in read_source(args)]
    keep = np.sort(np.random.default_rng(1).permutation(len(records))[:args.products])
    records = [records[i] for i in keep]
    paths = [true_category_path(r) for r in records]
    # the category IS the label: rules and featuriser only see the record without it
    bare = [r.model_copy(update={"category": None, "category_path": []}) for r in records]
    order = np.random.default_rng(0).permutation(len(records))
    n_test = len(records) // 10 if args.test_size is None else args.test_size
    test_idx, dev_idx = np.sort(order[:n_test]), np.sort(order[n_test:])
    full = Taxonomy.from_paths([paths[i] for i in dev_idx], max_depth=args.max_depth)
    support = full.support(labels_from_paths([paths[i] for i in dev_idx], full))
    taxonomy = full.prune(support=support, min_support=args.min_support)
    true_sets = [taxonomy.close(s) for s in labels_from_paths(paths, taxonomy)]
    rules = generate_rules(taxonomy, support=support)
    rule_sets = [set(m.labels) for m in rules.apply_many(bare)]
    dev = [bare[i] for i in dev_idx]
    test = [bare[i] for i in test_idx]
    y_test = label_matrix([true_sets[i] for i in test_idx], taxonomy) > 0.5
    y_rule_test = label_matrix([rule_sets[i] for i in test_idx], taxonomy) > 0.5
    y_rule_dev = label_matrix([rule_sets[i] for i in dev_idx], taxonomy) > 0.5
    y_true_dev = label_matrix([true_sets[i] for i in dev_idx], taxonomy) > 0.5
    drop = {"category": {"kind": "drop"}, "category_path": {"kind": "drop"}, "image": {"kind": "drop"}}
    config = FeatureConfig.default()
    if args.title_tokens is not None:  # a lighter model: the TF-IDF width is most of logreg's cost
        drop["title"] = {**config.fields["title"].model_dump(mode="json"), "max_tokens": args.title_tokens}
    _DATA.update(
        taxonomy=taxonomy, dev=dev, test=test, y_test=y_test,
        dev_ids=[r.id for r in dev],
        rule_labels={dev[j].id: rule_sets[i] for j, i in enumerate(dev_idx)},
        true_labels={dev[j].id: true_sets[i] for j, i in enumerate(dev_idx)},
        config=config.with_fields(**drop),
        info={"n_products": len(records), "n_dev": len(dev), "n_test": len(test), "categories": len(taxonomy),
              "rules": len(rules),
              "rule_coverage_dev": float(y_rule_dev.any(1).mean()),
              "rules_vs_truth_test_micro_f1": evaluate(y_test, y_rule_test, taxonomy)["micro_f1"],
              "rules_vs_truth_dev_micro_f1": evaluate(y_true_dev, y_rule_dev, taxonomy)["micro_f1"]},
    )
    return _DATA


def train_and_score(args: argparse.Namespace, human: dict[str, ProductLabels], weights: dict[str, float] | None,
                    seed: int) -> tuple[float, Pool, float, list[int]]:
    """Retrain on all dev products (rule labels, human-overridden); test micro-F1 and the pool of unlabelled rows."""
    d = data(args)
    taxonomy = d["taxonomy"]
    targets = training_targets(d["rule_labels"], human, taxonomy)
    # a person's label is the truth, a rule's is a guess: human rows weigh --human-weight (x 1/p if importance);
    # the same function as the retrain service, rule-trust correction included with --correct-rules
    sw = training_weights(d["dev_ids"], targets, d["rule_labels"], human, taxonomy, importance=weights,
                          human_weight=args.human_weight, correct_rules=args.correct_rules)
    epochs = {"logreg": args.epochs_logreg, "mlp": args.epochs_mlp}
    weighting = (LabelWeighting() if args.unlabelled_weight is None
                 else LabelWeighting(pu_correction=True, unlabelled_weight=args.unlabelled_weight))
    t0 = time.perf_counter()
    clf = train_ensemble(d["dev"], [targets[pid] for pid in d["dev_ids"]], taxonomy, config=d["config"],
                         members=args.members, folds=args.folds, epochs=epochs, sample_weight=sw, seed=seed,
                         weighting=weighting, tune_on=args.tune_on)
    seconds = time.perf_counter() - t0
    pool_rows = [j for j, pid in enumerate(d["dev_ids"]) if pid not in human]
    records = [d["dev"][j] for j in pool_rows] + d["test"]
    probs, members = clf.predict_proba(records)
    probs = np.nan_to_num(probs, nan=0.0)
    members = np.nan_to_num(members, nan=0.0)
    n_pool = len(pool_rows)
    f1 = evaluate(d["y_test"], clf.thresholds.decide(probs[n_pool:]), taxonomy)["micro_f1"]
    pool = Pool(np.clip(probs[:n_pool], 0, 1), np.asarray(clf.thresholds.thresholds_, dtype=np.float64),
                members=np.clip(members[:, :n_pool], 0, 1), texts=[d["dev"][j].title for j in pool_rows])
    return float(f1), pool, seconds, pool_rows


def human_label(d: dict[str, Any], pid: str) -> ProductLabels:
    pos = frozenset(d["true_labels"][pid])
    return ProductLabels(positives=pos, negatives=frozenset(d["taxonomy"].ids) - pos)


def start_task(job: tuple[argparse.Namespace, int]) -> dict[str, Any]:
    args, seed = job
    f1, pool, seconds, rows = train_and_score(args, {}, None, seed)
    log(f"seed {seed}: start model (rule labels) test micro-F1 {f1:.4f} ({seconds:.0f}s)")
    return {"seed": seed, "f1": f1, "pool": pool, "rows": rows, "seconds": seconds}


def ceiling_task(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """The same model on the TRUE labels of every dev product: what labelling the whole pool would reach."""
    d = data(args)
    f1, _, seconds, _ = train_and_score(args, {pid: human_label(d, pid) for pid in d["dev_ids"]}, None, seed)
    log(f"seed {seed}: ceiling (all {len(d['dev_ids'])} dev products truly labelled) test micro-F1 {f1:.4f} "
        f"({seconds:.0f}s)")
    return {"seed": seed, "strategy": CEILING, "f1": [f1], "labels": [len(d["dev_ids"])], "seconds": [seconds]}


def strategy_task(job: tuple[argparse.Namespace, int, str, dict[str, Any]]) -> dict[str, Any]:
    args, seed, name, start = job
    if name == CEILING:
        return ceiling_task(args, seed)
    d = data(args)
    strategy = make_strategy(name)
    rng = np.random.default_rng([seed, STRATEGIES.index(name)])
    human: dict[str, ProductLabels] = {}
    weights: dict[str, float] | None = {} if name == "importance" else None
    asked_with: dict[str, float] = {}  # stream: the p each product was asked with, as the label store keeps it
    pool, rows = start["pool"], start["rows"]
    curve, labels, secs = [start["f1"]], [0], []
    for rnd in range(1, args.rounds + 1):
        sel = strategy.select(pool, args.batch, rng)
        for k, (j, w) in enumerate(zip(sel.indices, sel.weights)):
            pid = d["dev_ids"][rows[int(j)]]
            human[pid] = human_label(d, pid)
            if weights is not None:
                weights[pid] = weights.get(pid, 0.0) + float(w)  # not re-drawn later (pool excludes it)
            if sel.p is not None:
                asked_with[pid] = float(sel.p[k])
        if asked_with:  # as the retrain service does: self-normalised 1/p over every label so far
            weights = importance_weights(asked_with)
        f1, pool, seconds, rows = train_and_score(args, human, weights, seed)
        curve.append(f1)
        labels.append(len(human))
        secs.append(seconds)
        log(f"seed {seed} {name:12s} round {rnd:2d}: {len(human):4d} labels, F1 {f1:.4f} ({seconds:.0f}s)")
    return {"seed": seed, "strategy": name, "f1": curve, "labels": labels, "seconds": secs}


# --- report -------------------------------------------------------------------------------------


def labels_to_reach(labels: np.ndarray, f1: np.ndarray, target: float) -> float | None:
    """Linear interpolation on the mean curve: first crossing of ``target``."""
    if f1[0] >= target:
        return float(labels[0])
    for k in range(1, len(f1)):
        if f1[k] >= target:
            a, b = f1[k - 1], f1[k]
            return float(labels[k - 1] + (labels[k] - labels[k - 1]) * (target - a) / (b - a if b > a else 1))
    return None


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for name in STRATEGIES:
        mine = [r for r in runs if r["strategy"] == name]
        if not mine:
            continue
        k = min(len(r["f1"]) for r in mine)
        f = np.array([r["f1"][:k] for r in mine])
        lab = np.array([r["labels"][:k] for r in mine]).mean(0)
        out[name] = {"f1": f, "mean": f.mean(0), "min": f.min(0), "max": f.max(0), "labels": lab,
                     "seeds": sorted(r["seed"] for r in mine)}
    return out


def plot(summary: dict[str, dict[str, np.ndarray]], start_f1: float, rules_f1: float, ceiling: float | None,
         path: Path, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 6))
    for name, s in summary.items():
        ax.plot(s["labels"], s["mean"], marker="o", ms=3, color=COLOURS[name],
                label=f"{name} (n={len(s['seeds'])} seeds)")
        ax.fill_between(s["labels"], s["min"], s["max"], color=COLOURS[name], alpha=0.12)
    if ceiling is not None:
        ax.axhline(ceiling, color="tab:brown", linewidth=1.2, label=f"ceiling: all dev products truly labelled ({ceiling:.3f})")
        ax.axhline(ceiling - 0.05, color="tab:brown", linestyle=":", linewidth=0.9, label="ceiling - 5 points")
    ax.axhline(start_f1, color="grey", linestyle=":", label=f"start: rule-trained model ({start_f1:.3f})")
    ax.axhline(rules_f1, color="grey", linestyle="--", linewidth=0.8, label=f"rules themselves ({rules_f1:.3f})")
    if "random" in summary:
        ax.axhline(summary["random"]["mean"][-1], color="black", linestyle="-.", linewidth=0.7,
                   label="random's final mean F1")
    ax.set_xlabel("human labels (true categories)")
    ax.set_ylabel("test micro-F1 vs truth")
    ax.set_title(f"Active learning on {args.dataset} ({args.products} products, depth <= {args.max_depth}, "
                 f"batch {args.batch}); mean, min-max band", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)  # below: curves may be anywhere
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def fmt(x: float | None) -> str:
    return "not reached" if x is None else f"{x:.0f}"


def goals(summary: dict[str, dict[str, np.ndarray]], ceiling: float | None, dataset: str, start_f1: float) -> list[str]:
    """The issue's three goals for the production strategy (stream), each MET / NOT MET with its number."""
    if "stream" not in summary or "random" not in summary:
        return ["## Goals", "", "Not assessed: they need both the random and the stream runs.", ""]
    stream, rnd = summary["stream"], summary["random"]
    target, random_labels = float(rnd["mean"][-1]), float(rnd["labels"][-1])
    need = labels_to_reach(stream["labels"], stream["mean"], target)
    # a random curve that ends at or below the start leaves nothing to reach: the start "reaches" it with 0 labels
    moot = target <= start_f1
    met_a = not moot and need is not None and need <= 0.5 * random_labels
    L = ["## Goals", "",
         f"- (a) The production strategy (stream) reaches random's final mean F1 ({target:.4f} at {random_labels:.0f} "
         f"labels) with <= 50% of random's labels: **{'MET' if met_a else 'NOT MET'}** — "
         + (f"random's final F1 is not above the start ({start_f1:.4f}): labels bought it nothing, so there is no "
            "saving to measure." if moot else
            f"{need:.0f} labels ({need / random_labels:.0%})." if need is not None else "not reached.")]
    final = float(stream["mean"][-1])
    if ceiling is None:
        L.append("- (b) Within 5 points of the all-truth ceiling: not assessed (no ceiling run finished).")
    else:
        gap = ceiling - final
        best = max(summary, key=lambda n: summary[n]["mean"][-1])
        L.append(f"- (b) After {stream['labels'][-1]:.0f} labels, within 5 points of the all-truth ceiling "
                 f"({ceiling:.4f}){' — the issue sets it on Flipkart' if dataset != 'flipkart' else ''}: "
                 f"**{'MET' if gap <= 0.05 else 'NOT MET'}** — stream {final:.4f}, {100 * gap:.1f} points below "
                 f"(best final: {best} {summary[best]['mean'][-1]:.4f}, {100 * (ceiling - summary[best]['mean'][-1]):.1f} "
                 "points below).")
    half = int(np.argmin(np.abs(stream["labels"] - stream["labels"][-1] / 2)))
    rises = stream["f1"][:, -1] - stream["f1"][:, half]
    rise = float(stream["mean"][-1] - stream["mean"][half])
    L += [f"- (c) No plateau: stream's curve still rises between {stream['labels'][half]:.0f} and "
          f"{stream['labels'][-1]:.0f} labels (criterion: higher at the end in every seed): "
          f"**{'MET' if (rises > 0).all() else 'NOT MET'}** — mean {rise * 100:+.1f} points; per seed "
          + ", ".join(f"{100 * x:+.1f}" for x in rises) + ".", ""]
    return L


def report(args, info, starts, runs, elapsed: float, complete: bool, per_train: list[float], resumed: int = 0) -> str:
    curves = [r for r in runs if r["strategy"] != CEILING]
    ceilings = sorted((r for r in runs if r["strategy"] == CEILING), key=lambda r: r["seed"])
    ceiling = float(np.mean([r["f1"][0] for r in ceilings])) if ceilings else None
    summary = summarise(curves)
    used = {r["seed"] for r in curves}  # compare against the start models of the seeds that ran
    start_f1s = [s["f1"] for s in starts if s["seed"] in used or not used]
    start_f1 = float(np.mean(start_f1s)) if start_f1s else float("nan")
    cmd = "`.venv/bin/python benchmarks/active_learning.py " + " ".join(sys.argv[1:]) + "`"
    L = [f"# Active learning: label complexity of the selection strategies ({args.dataset})", "",
         f"Generated by {cmd} in {elapsed / 60:.1f} min on 2 shared CPU cores"
         + ("." if complete else " — **PARTIAL: the run was still going when this was written** "
            "(tables hold the (seed, strategy) runs finished so far)."), "",
         *([f"{resumed} of the runs were loaded from `{png_name(args).replace('.png', '.runs.json')}`, "
            "written by earlier invocations with the same settings (runs are deterministic per seed: the start "
            "models retrained here match theirs); the time above is this invocation's only. Mean training time "
            "below covers every run.", ""] if resumed else []),
         "## Settings actually used", "",
         f"- Data: {info['n_products']} {args.dataset} products ({SOURCES[args.dataset][0]}, fixed random subset, seed 1), "
         f"{info['n_dev']} dev (= unlabelled pool) / {info['n_test']} test (fixed seeded split). Truth = the "
         f"dataset's category path; taxonomy from dev paths, depth <= {args.max_depth}, categories with "
         f"< {args.min_support} dev products pruned: {info['categories']} categories.",
         "- Inputs: the records WITHOUT their category fields (title, + gender on Myntra, + brand on BigBasket); "
         "image field dropped.",
         f"- Rule labels: {info['rules']} rules from `generate_rules(taxonomy, support=...)`, applied to the "
         f"category-less records; they label {info['rule_coverage_dev']:.0%} of dev products; rules vs truth "
         f"micro-F1 {info['rules_vs_truth_test_micro_f1']:.3f} (test), {info['rules_vs_truth_dev_micro_f1']:.3f} (dev).",
         f"- Model: `train_ensemble(members={tuple(args.members)}, folds={args.folds}, epochs=logreg "
         f"{args.epochs_logreg} / mlp {args.epochs_mlp}, combiner=stacked, beta=0.5, tune_on={args.tune_on!r}, "
         f"weighting={'PU, unlabelled weight ' + str(args.unlabelled_weight) if args.unlabelled_weight is not None else 'class balancing only'})`, "
         f"title TF-IDF vocabulary {args.title_tokens or 'of features.yaml (8,000)'}; "
         f"human-labelled rows weighted x{args.human_weight:g}; retrained from scratch on "
         f"all {info['n_dev']} dev products every round; mean training time "
         f"{np.mean(per_train) if per_train else float('nan'):.0f}s.",
         f"- Loop: {args.rounds} rounds x batch {args.batch} = {args.rounds * args.batch} human labels per strategy; "
         f"seeds {list(range(args.seeds))} (seed = training seed + selection RNG). Human label = the true path "
         "(positives) and every other category (negatives), merged by `retrain.job.training_targets`. "
         "Importance-weighted: `ImportanceWeightedSelection()` (base = uncertainty 'threshold', floor 0.1, "
         "self-normalised) weights passed as `sample_weight` (1 for all other rows). Uncertainty = "
         "`UncertaintySelection()` ('threshold'), disagreement = `DisagreementSelection()` (vote entropy of "
         "the members), combined = `CombinedSelection()` (0.5/0.5); none with `diverse=True`. Stream = "
         "`StreamSelection()` (the worker's sampler, budget = batch per simulated day: the number it picks "
         "varies around the batch).",
         f"- Ceiling: the same model trained on the TRUE labels of all {info['n_dev']} dev products, once per seed: "
         + (", ".join(f"{r['f1'][0]:.4f}" for r in ceilings) + f" (mean {ceiling:.4f})." if ceilings
            else "no ceiling run finished yet."),
         "- Metric: micro-F1 of `classifier.thresholds.decide(probabilities)` on the test split vs TRUE categories "
         "(`models.metrics.evaluate`).", ""]
    if not summary:
        return "\n".join(L + ["No strategy run finished yet.", ""])
    rounds = min(len(s["mean"]) for s in summary.values())
    L += ["## Test micro-F1 per round (mean ± half-range over seeds, [min, max])", "",
          "Round 0 is the start model trained on rule labels only (same for every strategy within a seed). "
          f"Start model per seed: {', '.join(f'{x:.4f}' for x in start_f1s)} (mean {start_f1:.4f}). "
          "Labels: the mean number of human labels per strategy after the round (the stream's varies).", "",
          "| round | " + " | ".join(f"{n} labels | {n} F1" for n in summary) + " |",
          "|---" * (2 * len(summary) + 1) + "|"]
    for k in range(rounds):
        cells = [f"{s['labels'][k]:.0f} | {s['mean'][k]:.4f} ± {(s['max'][k] - s['min'][k]) / 2:.4f}"
                 for s in summary.values()]
        L.append(f"| {k} | " + " | ".join(cells) + " |")
    L += ["", "Seeds per strategy: " + ", ".join(f"{n} {s['seeds']}" for n, s in summary.items()), ""]
    if "random" in summary:
        rnd = summary["random"]
        target = float(rnd["mean"][-1])
        random_labels = float(rnd["labels"][-1])
        near = None if ceiling is None else ceiling - 0.05
        L += [f"## Label complexity: labels needed to reach random's final mean F1 ({target:.4f} with "
              f"{random_labels:.0f} labels)" + ("" if near is None else f" and ceiling - 5 points ({near:.4f})"), "",
              "Linear interpolation on each strategy's mean curve; per-seed values are each seed's own curve against "
              "the same target.", "",
              "| strategy | labels to random's final | share of random's labels | per seed | labels to ceiling - 5 "
              "| per seed | final mean F1 | gain over start | below ceiling |",
              "|---|---|---|---|---|---|---|---|---|"]
        for name, s in summary.items():
            need = labels_to_reach(s["labels"], s["mean"], target)
            per_seed = [labels_to_reach(s["labels"], f, target) for f in s["f1"]]
            near_need = None if near is None else labels_to_reach(s["labels"], s["mean"], near)
            near_seed = [] if near is None else [labels_to_reach(s["labels"], f, near) for f in s["f1"]]
            L.append(f"| {name} | {fmt(need)} | {'—' if need is None else f'{need / random_labels:.0%}'} | "
                     + ", ".join(fmt(x) for x in per_seed)
                     + f" | {'—' if near is None else fmt(near_need)} | {', '.join(fmt(x) for x in near_seed) or '—'} "
                     f"| {s['mean'][-1]:.4f} | {s['mean'][-1] - start_f1:+.4f} | "
                     + ("—" if ceiling is None else f"{100 * (ceiling - s['mean'][-1]):.1f} points") + " |")
        L.append("")
    L += goals(summary, ceiling, args.dataset, start_f1)
    L += ["## Per-seed curves (test micro-F1 by round)", "", "| strategy | seed | " +
          " | ".join(str(k) for k in range(args.rounds + 1)) + " |", "|---" * (args.rounds + 3) + "|"]
    for r in sorted(curves, key=lambda r: (STRATEGIES.index(r["strategy"]), r["seed"])):
        L.append(f"| {r['strategy']} | {r['seed']} | " + " | ".join(f"{x:.4f}" for x in r["f1"]) + " |")
    L += ["", f"![F1 vs human labels]({png_name(args)})", "", "## Discussion", "", "DISCUSSION_PLACEHOLDER", ""]
    return "\n".join(L)


def load_runs(saved: Path, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The finished runs of ``saved`` if they ran under ``settings``; none otherwise (said in the log)."""
    if not saved.exists():
        return []
    kept = json.loads(saved.read_text())
    if not isinstance(kept, dict) or kept.get("settings") != settings:
        log(f"not resuming from {saved}: its runs were made with other settings")
        return []
    return kept["runs"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--dataset", choices=sorted(SOURCES), default="myntra")
    parser.add_argument("--products", type=int, default=4000)
    parser.add_argument("--max-depth", type=int, default=3, help="taxonomy depth (the true paths are cut there)")
    parser.add_argument("--test-size", type=int, default=None, help="test products (default: 10%% of --products)")
    parser.add_argument("--human-weight", type=float, default=1.0, help="training weight of human-labelled rows")
    parser.add_argument("--correct-rules", action="store_true",
                        help="weight rule labels by the precision/recall the human labels show (retrain.weights)")
    parser.add_argument("--unlabelled-weight", type=float, default=None,
                        help="PU correction: weight of the zeros of products no rule fired on (default: off)")
    parser.add_argument("--tune-on", choices=("all", "labelled"), default="all",
                        help="fit combiner/thresholds on all rows or only rows with a positive label")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--members", default="logreg,mlp")
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--epochs-logreg", type=int, default=6)
    parser.add_argument("--epochs-mlp", type=int, default=3)
    parser.add_argument("--min-support", type=int, default=10)
    parser.add_argument("--title-tokens", type=int, default=None,
                        help="title TF-IDF vocabulary (default: features.yaml's); smaller trains faster")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--no-ceiling", action="store_true", help="skip the all-truth ceiling runs")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--time-only", action="store_true", help="train the start model once and exit")
    parser.add_argument("--resume", action="store_true",
                        help="keep the runs already in the report's .runs.json (same settings); run the rest")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.members = [m for m in args.members.split(",") if m]
    names = [s for s in args.strategies.split(",") if s]
    unknown = sorted(set(names) - set(STRATEGIES))
    if unknown:
        parser.error(f"unknown strategies {unknown}; expected some of {', '.join(STRATEGIES)}")
    started = time.perf_counter()
    d = data(args)
    log(f"data: {d['info']} ({time.perf_counter() - started:.0f}s)")
    if args.time_only:
        start_task((args, 0))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    png = args.out / png_name(args)
    md, saved = png.with_suffix(".md"), png.with_suffix(".runs.json")
    settings = {key: getattr(args, key) for key in SETTINGS}
    runs = load_runs(saved, settings) if args.resume else []
    finished = {(r["seed"], r["strategy"]) for r in runs}
    resumed = len(runs)
    # the ceiling first within a seed: every plot and goal (b) is measured against it
    todo = ([] if args.no_ceiling else [CEILING]) + names
    # one run per process: TensorFlow keeps ~100 MB per trained model (Keras fit in a loop leaks;
    # clear_session does not help), and a worker that trains 70 models gets OOM-killed
    with mp.get_context("spawn").Pool(args.jobs, maxtasksperchild=1) as workers:
        starts = sorted(workers.map(start_task, [(args, s) for s in range(args.seeds)]), key=lambda s: s["seed"])
        per_train = [s["seconds"] for s in starts] + [x for r in runs for x in r["seconds"]]
        jobs = [(args, s["seed"], name, s) for s in starts for name in todo if (s["seed"], name) not in finished]

        def write(complete: bool) -> None:
            start_f1 = float(np.mean([s["f1"] for s in starts]))
            md.write_text(report(args, d["info"], starts, runs, time.perf_counter() - started, complete, per_train,
                                 resumed))
            summary = summarise([r for r in runs if r["strategy"] != CEILING])
            ceilings = [r["f1"][0] for r in runs if r["strategy"] == CEILING]
            if summary:
                plot(summary, start_f1, d["info"]["rules_vs_truth_test_micro_f1"],
                     float(np.mean(ceilings)) if ceilings else None, png, args)

        write(False)
        for result in workers.imap_unordered(strategy_task, jobs):
            runs.append(result)
            saved.write_text(json.dumps({"settings": settings, "runs": runs}))
            per_train.extend(result["seconds"])
            write(False)
            log(f"done: seed {result['seed']} {result['strategy']} ({len(runs)} runs finished)")
        write(True)
    log(f"wrote {md} and {png} in {(time.perf_counter() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
