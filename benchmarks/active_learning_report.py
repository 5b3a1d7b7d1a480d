"""The active-learning benchmark's report: curves per strategy, the label-complexity table, the goals
and the plot, from the finished runs (benchmarks/active_learning.py writes them)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

STRATEGIES = ("random", "uncertainty", "disagreement", "combined", "importance", "stream")
CEILING = "ceiling"  # not a strategy: the run trained on every dev product's true labels
COLOURS = {"random": "black", "uncertainty": "tab:blue", "disagreement": "tab:orange", "combined": "tab:green",
           "importance": "tab:red", "stream": "tab:purple"}


def png_name(args: argparse.Namespace) -> str:
    return f"active_learning_{args.dataset}.png"


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
         f"- Data: {info['n_products']} {args.dataset} products ({info['source']}, fixed random subset, seed 1), "
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
         f"human-labelled rows weighted x{args.human_weight:g}; "
         + (f"round 1 trained from scratch, every later round fine-tuned from the previous round's model for "
            f"{args.fine_tune} epoch(s) per member, on " if getattr(args, "fine_tune", None) is not None
            else "retrained from scratch on ")
         + f"all {info['n_dev']} dev products every round; mean training time "
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
    L += ["", "Training seconds by round (round 0: the start model):", "", "| strategy | seed | " +
          " | ".join(str(k) for k in range(args.rounds + 1)) + " |", "|---" * (args.rounds + 3) + "|"]
    start_seconds = {s["seed"]: s["seconds"] for s in starts}
    for r in sorted(curves, key=lambda r: (STRATEGIES.index(r["strategy"]), r["seed"])):
        L.append(f"| {r['strategy']} | {r['seed']} | {start_seconds.get(r['seed'], float('nan')):.0f} | "
                 + " | ".join(f"{x:.0f}" for x in r["seconds"]) + " |")
    L += ["", f"![F1 vs human labels]({png_name(args)})", "", "## Discussion", "", "DISCUSSION_PLACEHOLDER", ""]
    return "\n".join(L)
