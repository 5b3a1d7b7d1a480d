"""Benchmark active-learning selection strategies: F1 vs number of human labels.

    .venv/bin/python benchmarks/active_learning.py [--dataset myntra|flipkart|bigbasket] [--products 4000
        --rounds 10 --batch 50 --seeds 3] [--max-depth 3] [--test-size N] [--members logreg,mlp] [--jobs 2]
        [--strategies random,uncertainty,...] [--human-weight 1] [--correct-rules] [--unlabelled-weight W]
        [--tune-on all|labelled] [--fine-tune EPOCHS] [--resume]

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
all dev products and scored (micro-F1) on the test split against the TRUE categories; with
``--fine-tune EPOCHS`` round 1 still trains from scratch and every later round fine-tunes the previous
round's model for EPOCHS epochs per member (``train_ensemble(init=...)``: its featuriser, its members'
weights as the start); the training seconds of every round are kept beside its F1. Each seed
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

from benchmarks.active_learning_report import CEILING, STRATEGIES, plot, png_name, report, summarise  # noqa: E402
from models.classifier import Classifier  # noqa: E402
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
# what a finished run depends on: --resume reuses runs only when these are the same
SETTINGS = ("dataset", "products", "max_depth", "test_size", "min_support", "rounds", "batch", "members", "folds",
            "epochs_logreg", "epochs_mlp", "title_tokens", "human_weight", "correct_rules", "unlabelled_weight",
            "tune_on", "fine_tune")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


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
        info={"source": SOURCES[args.dataset][0], "n_products": len(records), "n_dev": len(dev), "n_test": len(test),
              "categories": len(taxonomy),
              "rules": len(rules),
              "rule_coverage_dev": float(y_rule_dev.any(1).mean()),
              "rules_vs_truth_test_micro_f1": evaluate(y_test, y_rule_test, taxonomy)["micro_f1"],
              "rules_vs_truth_dev_micro_f1": evaluate(y_true_dev, y_rule_dev, taxonomy)["micro_f1"]},
    )
    return _DATA


def train_and_score(args: argparse.Namespace, human: dict[str, ProductLabels], weights: dict[str, float] | None,
                    seed: int, init: Classifier | None = None) -> tuple[float, Pool, float, list[int], Classifier]:
    """Retrain on all dev products (rule labels, human-overridden); test micro-F1, the pool of unlabelled rows.

    ``init``: fine-tune that classifier for ``--fine-tune`` epochs per member instead of training from scratch.
    """
    d = data(args)
    taxonomy = d["taxonomy"]
    targets = training_targets(d["rule_labels"], human, taxonomy)
    # a person's label is the truth, a rule's is a guess: human rows weigh --human-weight (x 1/p if importance);
    # the same function as the retrain service, rule-trust correction included with --correct-rules
    sw = training_weights(d["dev_ids"], targets, d["rule_labels"], human, taxonomy, importance=weights,
                          human_weight=args.human_weight, correct_rules=args.correct_rules)
    epochs = ({"logreg": args.epochs_logreg, "mlp": args.epochs_mlp} if init is None
              else dict.fromkeys(args.members, args.fine_tune))
    weighting = (LabelWeighting() if args.unlabelled_weight is None
                 else LabelWeighting(pu_correction=True, unlabelled_weight=args.unlabelled_weight))
    t0 = time.perf_counter()
    clf = train_ensemble(d["dev"], [targets[pid] for pid in d["dev_ids"]], taxonomy, config=d["config"],
                         members=args.members, folds=args.folds, epochs=epochs, sample_weight=sw, seed=seed,
                         weighting=weighting, tune_on=args.tune_on, init=init)
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
    return float(f1), pool, seconds, pool_rows, clf


def human_label(d: dict[str, Any], pid: str) -> ProductLabels:
    pos = frozenset(d["true_labels"][pid])
    return ProductLabels(positives=pos, negatives=frozenset(d["taxonomy"].ids) - pos)


def start_task(job: tuple[argparse.Namespace, int]) -> dict[str, Any]:
    args, seed = job
    f1, pool, seconds, rows, _ = train_and_score(args, {}, None, seed)
    log(f"seed {seed}: start model (rule labels) test micro-F1 {f1:.4f} ({seconds:.0f}s)")
    return {"seed": seed, "f1": f1, "pool": pool, "rows": rows, "seconds": seconds}


def ceiling_task(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """The same model on the TRUE labels of every dev product: what labelling the whole pool would reach."""
    d = data(args)
    f1, _, seconds, _, _ = train_and_score(args, {pid: human_label(d, pid) for pid in d["dev_ids"]}, None, seed)
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
    previous: Classifier | None = None  # the last round's model, fine-tuned next round with --fine-tune
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
        init = previous if args.fine_tune is not None else None
        f1, pool, seconds, rows, previous = train_and_score(args, human, weights, seed, init)
        curve.append(f1)
        labels.append(len(human))
        secs.append(seconds)
        log(f"seed {seed} {name:12s} round {rnd:2d}: {len(human):4d} labels, F1 {f1:.4f} ({seconds:.0f}s"
            f"{', fine-tuned' if init is not None else ''})")
    return {"seed": seed, "strategy": name, "f1": curve, "labels": labels, "seconds": secs}


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
    parser.add_argument("--fine-tune", type=int, default=None, metavar="EPOCHS",
                        help="round 1 trains from scratch, every later round fine-tunes the previous round's model "
                             "for EPOCHS epochs per member (default: every round from scratch)")
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
    if args.fine_tune is not None and args.fine_tune < 1:
        parser.error(f"--fine-tune expects EPOCHS >= 1, received {args.fine_tune}")
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
