"""Benchmark the classifier trained on RULE labels against the truth, on Flipkart 20k (and Myntra 44k).

    .venv/bin/python benchmarks/models.py [--datasets ../shared/datasets] [--limit N] [--depth 3]
        [--min-support 30] [--members logreg,mlp,wide_deep,textcnn] [--dataset flipkart,myntra]

Protocol per dataset: the category fields ARE the label, so they are dropped from the inputs.
Taxonomy = true paths cut at ``--depth``, categories with fewer than ``--min-support`` training
products pruned. Fixed seeded 90/10 split. Rule labels = ``generate_rules`` on the FULL pruned
taxonomy (with support counts), applied to every title. Each variant trains the whole
classifier (out-of-fold stacking, thresholds tuned with beta=0.5 on the held-out OOF part,
members refit) and is scored on the test 10% against the rule labels and against the truth.
Every member, the mean/weighted/stacked ensembles (same OOF, same thresholding protocol), the
rules themselves and the ensemble trained on TRUE labels (the ceiling) are reported, plus
predict_batch throughput on batches of 256 (median of 3).
Writes benchmarks/results/models.md, models.json and models.png.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.classifier import Classifier  # noqa: E402
from models.config import FeatureConfig  # noqa: E402
from models.ensemble import MeanEnsemble, StackedEnsemble, WeightedEnsemble  # noqa: E402
from models.labels import LabelWeighting, label_matrix, labels_from_paths  # noqa: E402
from models.metrics import evaluate  # noqa: E402
from models.thresholds import Thresholds  # noqa: E402
from models.training import train_ensemble  # noqa: E402
from prodcat.catalogue import read_catalogue, true_category_path  # noqa: E402
from prodcat.record import parse_record  # noqa: E402
from prodcat.rules import generate_rules  # noqa: E402
from prodcat.taxonomy import Taxonomy  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
KEYS = ("micro_precision", "micro_recall", "micro_f1", "macro_f1", "hierarchical_precision", "hierarchical_recall",
        "hierarchical_f1", "coverage")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def load(dataset: str, datasets: Path, limit: int | None) -> tuple[list, list[list[str]]]:
    if dataset == "flipkart":
        rows = read_catalogue(datasets / "flipkart" / "products_20k_name_tree.csv", "flipkart-names")
    else:
        rows = read_catalogue(datasets / "myntra" / "styles.csv", "myntra")
    records = [parse_record(raw) for raw in rows]
    if limit:
        keep = np.sort(np.random.default_rng(1).permutation(len(records))[:limit])
        records = [records[i] for i in keep]
    return records, [true_category_path(r) for r in records]


def score_all(oof, member_names: list[str], member_test: np.ndarray, y_rule_test: np.ndarray,
              y_true_test: np.ndarray, taxonomy: Taxonomy, beta: float, stacked: Classifier) -> dict[str, Any]:
    """Members and the three combiners, each thresholded by the same protocol (tuned on the OOF val part)."""
    out: dict[str, Any] = {}
    fit, val = oof.fit_idx, oof.val_idx

    def decide(val_probs: np.ndarray, test_probs: np.ndarray) -> np.ndarray:
        th = Thresholds(beta=beta, min_support=3).fit(np.nan_to_num(val_probs), oof.y[val], taxonomy)
        return th.decide(np.nan_to_num(test_probs))

    def both(pred: np.ndarray) -> dict[str, Any]:
        return {"vs_rules": evaluate(y_rule_test > 0.5, pred, taxonomy, beta=beta),
                "vs_truth": evaluate(y_true_test > 0.5, pred, taxonomy, beta=beta)}

    for j, name in enumerate(member_names):
        out[f"member:{name}"] = both(decide(oof.member_probs[j][val], member_test[j]))
    for label, combiner in (("mean", MeanEnsemble()), ("weighted", WeightedEnsemble()),
                            ("stacked", StackedEnsemble())):
        combiner.fit(list(oof.member_probs[:, fit]), oof.y[fit])
        out[f"ensemble:{label}"] = both(decide(combiner.predict_proba(list(oof.member_probs[:, val])),
                                              combiner.predict_proba(list(member_test))))
        if label == "weighted":
            out["weighted_weights"] = dict(zip(member_names, map(float, combiner.weights_)))
        if label == "stacked":
            out["stacked_slopes"] = dict(zip(member_names, map(float, combiner.slopes_)))
    return out


def throughput(classifier: Classifier, records: list, batch: int = 256) -> float:
    classifier.warm_up()  # as the worker does: tracing is not throughput
    rates = []
    for r in range(3):
        chunk = [records[(r * batch + i) % len(records)] for i in range(batch)]
        started = time.perf_counter()
        classifier.predict_batch(chunk)
        rates.append(batch / (time.perf_counter() - started))
    return float(np.median(rates))


def run_dataset(dataset: str, args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    records, paths = load(dataset, args.datasets, args.limit)
    order = np.random.default_rng(0).permutation(len(records))
    n_test = len(records) // 10
    test_idx, train_idx = np.sort(order[:n_test]), np.sort(order[n_test:])
    full = Taxonomy.from_paths([paths[i] for i in train_idx], max_depth=args.depth)
    support = full.support(labels_from_paths([paths[i] for i in train_idx], full))
    taxonomy = full.prune(support=support, min_support=args.min_support)
    y_true = label_matrix(labels_from_paths(paths, taxonomy), taxonomy)
    rules = generate_rules(taxonomy, support=support)
    y_rule = label_matrix([m.labels for m in rules.apply_many(records)], taxonomy)
    train = [records[i] for i in train_idx]
    test = [records[i] for i in test_idx]
    info = {"dataset": dataset, "n_records": len(records), "n_train": len(train), "n_test": len(test),
            "taxonomy": taxonomy.describe(), "depth": args.depth, "min_support": args.min_support,
            "rules": len(rules), "rule_coverage_train": float((y_rule[train_idx].sum(1) > 0).mean()),
            "rule_coverage_level2_train": float(
                (y_rule[train_idx][:, [taxonomy.depth(c) >= 2 for c in taxonomy.ids]].sum(1) > 0).mean())}
    log(f"{dataset}: {info}")
    result: dict[str, Any] = {"info": info, "variants": {}}
    result["rules_vs_truth"] = evaluate(y_true[test_idx] > 0.5, y_rule[test_idx] > 0.5, taxonomy, beta=args.beta)
    log(f"rules vs truth: micro F1 {result['rules_vs_truth']['micro_f1']:.3f}")
    drop = {"category": {"kind": "drop"}, "category_path": {"kind": "drop"}, "image": {"kind": "drop"}}
    config = FeatureConfig.default().with_fields(**drop)
    members = [m for m in args.members.split(",") if m]
    variants = []
    for spec in filter(None, args.variants.split(",")):
        # "rules" | "truth" | "pu:<unlabelled weight>[:labelled]" (PU weighting, tuned on labelled rows)
        kind, *rest = spec.split(":")
        if kind == "truth":
            variants.append(("truth (ceiling)", y_true, LabelWeighting(), "all"))
        elif kind == "rules":
            variants.append(("rules", y_rule, LabelWeighting(), "all"))
        else:
            tune = "labelled" if rest[1:] == ["labelled"] else "all"
            variants.append((f"rules+pu{rest[0]}" + ("+tune-labelled" if tune == "labelled" else ""), y_rule,
                             LabelWeighting(pu_correction=True, unlabelled_weight=float(rest[0])), tune))
    for label, y, weighting, tune_on in variants:
        t0 = time.perf_counter()
        classifier = train_ensemble(
            train, taxonomy.from_matrix(y[train_idx]), taxonomy, config=config, members=members, combiner="stacked",
            beta=args.beta, folds=args.folds, weighting=weighting, tune_on=tune_on, keep_oof=True,
            on_progress=lambda stage, done, total: log(f"  {label}: {stage} ({done}/{total})"))
        train_s = time.perf_counter() - t0
        _, member_test = classifier.predict_proba(test)
        scores = score_all(classifier.oof_, list(classifier.members), member_test, y_rule[test_idx],
                           y_true[test_idx], taxonomy, args.beta, classifier)
        served = classifier.decide(test)
        hybrid = served | (y_rule[test_idx] > 0.5)  # the rules' labels plus the model's
        scores["rules ∪ served"] = {"vs_rules": evaluate(y_rule[test_idx] > 0.5, hybrid, taxonomy, beta=args.beta),
                                    "vs_truth": evaluate(y_true[test_idx] > 0.5, hybrid, taxonomy, beta=args.beta)}
        scores["served"] = {"vs_rules": evaluate(y_rule[test_idx] > 0.5, served, taxonomy, beta=args.beta),
                            "vs_truth": evaluate(y_true[test_idx] > 0.5, served, taxonomy, beta=args.beta)}
        scores["train_seconds"] = round(train_s, 1)
        scores["throughput_per_s"] = round(throughput(classifier, test), 1)
        result["variants"][label] = scores
        log(f"{label}: stacked vs truth micro F1 {scores['ensemble:stacked']['vs_truth']['micro_f1']:.3f} "
            f"(served {scores['served']['vs_truth']['micro_f1']:.3f}), train {train_s:.0f}s, "
            f"{scores['throughput_per_s']}/s")
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["command"] = "benchmarks/models.py " + " ".join(sys.argv[1:])
    return result


def table(rows: list[tuple[str, dict[str, Any]]], depth: int) -> list[str]:
    keys = [*KEYS[:4], "hierarchical_f1", *[f"f1_level_{d}" for d in range(1, depth + 1)], "coverage"]
    lines = ["| method | " + " | ".join(k.replace("_", " ") for k in keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, m in rows:
        lines.append(f"| {name} | " + " | ".join(f"{m.get(k, float('nan')):.3f}" for k in keys) + " |")
    return lines


def report(results: dict[str, Any], args: argparse.Namespace) -> str:
    lines = ["# Models: trained on rule labels, scored against the truth", "",
             f"Generated by `benchmarks/models.py` ({sum(r['seconds'] for r in results.values()) / 60:.1f} min of "
             "compute on 2 shared CPU cores; the command of each dataset is given in its section).", "",
             "Protocol: category fields dropped from the inputs (they are the label); title (+ gender on Myntra) only. "
             "Taxonomy = true paths cut at depth, rare categories pruned (on the training part). Seeded 90/10 split. "
             "Rule labels: `generate_rules(taxonomy, support=...)` on the full pruned taxonomy, applied to every title. "
             f"Each variant: {args.folds}-fold out-of-fold member probabilities; combiners fitted on 75% of the OOF "
             "rows, per-category thresholds (F0.5) tuned on the other 25% — against the variant's own training "
             "labels (rule labels for the rule variants: no truth is used for training or tuning); members refit on "
             "all training rows and scored on the test 10%. 'served' = the saved classifier's own decisions "
             "(refit members + stacked combiner + thresholds).", ""]
    for dataset, r in results.items():
        info = r["info"]
        depth = info["taxonomy"]["max_depth"]
        lines += [f"## {dataset}", "", f"`{r.get('command', 'benchmarks/models.py')}`", "",
                  f"{info['n_records']} products ({info['n_train']} train / {info['n_test']} test), "
                  f"{info['taxonomy']['categories']} categories (depth <= {depth}, support >= {info['min_support']}); "
                  f"{info['rules']} generated rules label {info['rule_coverage_train']:.0%} of training products "
                  f"({info['rule_coverage_level2_train']:.0%} at level >= 2).", ""]
        rules_f1 = r["rules_vs_truth"]["micro_f1"]
        headline = []
        for label, v in r["variants"].items():
            s = v["ensemble:stacked"]["vs_truth"]["micro_f1"]
            best = max((v[k]["vs_truth"]["micro_f1"], k) for k in v if k.startswith("member:"))
            headline.append(f"- **{label}**: stacked micro-F1 vs truth **{s:.3f}** (rules {rules_f1:.3f}: "
                            f"{100 * (s - rules_f1):+.1f} points); best member {best[1][7:]} {best[0]:.3f} "
                            f"(stacked {'>=' if s >= best[0] else '<'} best member); served {v['served']['vs_truth']['micro_f1']:.3f}; "
                            f"train {v['train_seconds']:.0f}s; predict_batch {v['throughput_per_s']:.0f} products/s"
                            + (f"; rules ∪ model {v['rules ∪ served']['vs_truth']['micro_f1']:.3f}"
                               if "rules ∪ served" in v else ""))
        lines += headline + [""]
        for label, v in r["variants"].items():
            for target in ("vs_truth", "vs_rules"):
                rows = [(k, v[k][target]) for k in v if k.startswith(("member:", "ensemble:", "served", "rules ∪"))]
                if target == "vs_truth" and label.startswith("rules") and label == next(iter(r["variants"])):
                    rows.append(("rules themselves", r["rules_vs_truth"]))
                lines += [f"### {label} — test scored {target.replace('_', ' ')}", "", *table(rows, depth), ""]
            lines += [f"Weighted-ensemble weights: {json.dumps({k: round(x, 3) for k, x in v['weighted_weights'].items()})}; "
                      f"stacked slopes: {json.dumps({k: round(x, 3) for k, x in v['stacked_slopes'].items()})}", ""]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(8 * len(results), 5), squeeze=False)
    for ax, (dataset, r) in zip(axes[0], results.items()):
        labels, values, colours = ["rules"], [r["rules_vs_truth"]["micro_f1"]], ["grey"]
        palette = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
        for i, (variant, v) in enumerate(r["variants"].items()):
            for k in [k for k in v if k.startswith(("member:", "ensemble:"))]:
                labels.append(f"{variant}\n{k.split(':')[1]}")
                values.append(v[k]["vs_truth"]["micro_f1"])
                colours.append(palette[i % len(palette)])
        ax.bar(range(len(values)), values, color=colours)
        ax.set_xticks(range(len(values)), labels, rotation=90, fontsize=7)
        ax.set_ylabel("micro F1 vs truth (test)")
        ax.set_title(f"{dataset}: trained on rule labels vs truth ceiling")
        ax.axhline(values[0], color="grey", linestyle=":")
        ax.axhline(values[0] + 0.15, color="black", linestyle="--", linewidth=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--dataset", default="flipkart")
    parser.add_argument("--limit", type=int, default=None, help="subsample this many products per dataset")
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--min-support", type=int, default=30)
    parser.add_argument("--members", default="logreg,mlp,wide_deep,textcnn")
    parser.add_argument("--variants", default="rules,pu:0.1,truth",
                        help="comma-separated: rules | truth | pu:<unlabelled weight>[:labelled]")
    parser.add_argument("--merge", type=Path, default=None, help="add the variants of an earlier models.json")
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--beta", type=float, default=0.5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--report-only", action="store_true", help="rewrite models.md/png from models.json")
    args = parser.parse_args()
    if args.report_only:
        results = json.loads((args.out / "models.json").read_text())
        (args.out / "models.md").write_text(report(results, args))
        plot(results, args.out / "models.png")
        return
    results = {}
    for dataset in args.dataset.split(","):
        results[dataset] = run_dataset(dataset, args)
        if args.merge and args.merge.is_file():
            earlier = json.loads(args.merge.read_text()).get(dataset)
            if earlier:
                results[dataset]["variants"] = {**earlier["variants"], **results[dataset]["variants"]}
                results[dataset]["seconds"] += earlier["seconds"]
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "models.json").write_text(json.dumps(results, indent=1))
        (args.out / "models.md").write_text(report(results, args))
        plot(results, args.out / "models.png")
    log(f"wrote {args.out / 'models.md'}")


if __name__ == "__main__":
    main()
