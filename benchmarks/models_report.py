"""The models report: Markdown and PNG from benchmarks/models.py's results (``models.json``).

Per dataset: the headline per variant with its goal, the training labels without a human scored
against the truth, self-training's rounds, the study's hypotheses and the full tables; then the
crossover point (``crossover*.json``, benchmarks/crossover.py) and the scale table
(``scale.json``, benchmarks/scale.py) found in the same folder.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

KEYS = ("micro_precision", "micro_recall", "micro_f1", "macro_f1", "hierarchical_precision", "hierarchical_recall",
        "hierarchical_f1", "coverage")


def f1_bound(missed_share: float) -> float:
    """Micro-F1 of predictions exact except that they miss ``missed_share`` of the true pairs (precision 1)."""
    return 2 * (1 - missed_share) / (2 - missed_share)


def table(rows: list[tuple[str, dict[str, Any]]], depth: int) -> list[str]:
    keys = [*KEYS[:4], "hierarchical_f1", *[f"f1_level_{d}" for d in range(1, depth + 1)], "coverage"]
    lines = ["| method | " + " | ".join(k.replace("_", " ") for k in keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, m in rows:
        lines.append(f"| {name} | " + " | ".join(f"{m.get(k, float('nan')):.3f}" for k in keys) + " |")
    return lines


TFIDF_MEMBERS, EMBEDDING_MEMBERS = ("logreg", "mlp"), ("wide_deep", "textcnn", "gru")


def hypotheses(r: dict[str, Any]) -> list[str]:
    """The study's hypotheses, answered from this dataset's numbers (test split, micro-F1 unless named)."""
    variants = r["variants"]
    main = next((k for k in variants if k == "weak labels"),
                next((k for k in variants if k.startswith("rules+pu")), next(iter(variants))))
    v = variants[main]
    truth = next((k for k in variants if k.startswith("truth")), None)

    def f1(key: str, target: str = "vs_truth", metric: str = "micro_f1", of: dict | None = None) -> float:
        return (of or v)[key][target][metric]

    members = [k[7:] for k in v if k.startswith("member:")]
    deepest = r["info"]["taxonomy"]["max_depth"]
    lines = [f"**Hypotheses** (variant `{main}`, scored against the truth, unless named):", ""]
    if "logreg" in members and len(members) > 1:
        others = [m for m in members if m not in ("logreg", "image_head")]
        best1 = max(others, key=lambda m: f1(f"member:{m}", metric="f1_level_1"))
        bestd = max(others, key=lambda m: f1(f"member:{m}", metric=f"f1_level_{deepest}"))
        gap1 = f1("member:logreg", metric="f1_level_1") - f1(f"member:{best1}", metric="f1_level_1")
        gapd = f1("member:logreg", metric=f"f1_level_{deepest}") - f1(f"member:{bestd}", metric=f"f1_level_{deepest}")
        lines.append(f"- H2 (linear good at high levels, worse deep): logreg vs the best other member: level 1 "
                     f"{100 * gap1:+.1f} points ({best1}), level {deepest} {100 * gapd:+.1f} points ({bestd}) -> "
                     f"{'supported' if gapd < gap1 - 0.005 else 'not supported'} (criterion: logreg falls further behind at depth).")
    if {"logreg", "mlp"} <= set(members):
        d = f1("member:mlp") - f1("member:logreg")
        lines.append(f"- H3 (deep models on TF-IDF barely beat linear): mlp {f1('member:mlp'):.3f} vs logreg "
                     f"{f1('member:logreg'):.3f} ({100 * d:+.1f} points) -> "
                     f"{'supported' if abs(d) < 0.02 else 'not supported'} (criterion: |difference| < 2 points).")
    tfidf = [m for m in members if m in TFIDF_MEMBERS]
    emb = [m for m in members if m in EMBEDDING_MEMBERS]
    if tfidf and emb:
        def mean(names: list[str], target: str) -> float:
            return float(np.mean([f1(f"member:{m}", target) for m in names]))
        e_t, t_t = mean(emb, "vs_truth"), mean(tfidf, "vs_truth")
        e_gap, t_gap = mean(emb, "vs_truth") - mean(emb, "vs_rules"), mean(tfidf, "vs_truth") - mean(tfidf, "vs_rules")
        lines.append(f"- H4 (embedding models generalise better to true labels): mean vs truth: embedding members "
                     f"({', '.join(emb)}) {e_t:.3f}, TF-IDF members ({', '.join(tfidf)}) {t_t:.3f}; change from "
                     f"'vs rules' to 'vs truth': {100 * e_gap:+.1f} vs {100 * t_gap:+.1f} points -> "
                     f"{'supported' if e_t > t_t and e_gap > t_gap else 'not supported'} (criterion: both higher).")
    if "ensemble:stacked text-only" in v:
        lines.append(f"- H6 (image vectors help): stacked with the image member {f1('ensemble:stacked'):.3f} vs "
                     f"text members only {f1('ensemble:stacked text-only'):.3f} "
                     f"({100 * (f1('ensemble:stacked') - f1('ensemble:stacked text-only')):+.1f} points); image_head "
                     f"alone {f1('member:image_head'):.3f}; with the truth as labels: "
                     + (f"{f1('ensemble:stacked', of=variants[truth]):.3f} vs "
                        f"{f1('ensemble:stacked text-only', of=variants[truth]):.3f}" if truth else "n/a") + ".")
    for name, of in ((main, v), *(((truth, variants[truth]),) if truth else ())):
        best = max((k for k in of if k.startswith("member:")), key=lambda k: f1(k, of=of))
        stacked, mean_f1 = f1("ensemble:stacked", of=of), f1("ensemble:mean", of=of)
        lines.append(f"- H8 (ensemble beats every member), `{name}`: stacked {stacked:.3f} vs best member "
                     f"{best[7:]} {f1(best, of=of):.3f} -> {'supported' if stacked > f1(best, of=of) else 'not supported'}. "
                     f"H9 (meta-learner beats averaging): stacked {stacked:.3f} vs mean {mean_f1:.3f}, weighted "
                     f"{f1('ensemble:weighted', of=of):.3f} -> {'supported' if stacked > mean_f1 else 'not supported'}."
                     + (f" Joint model ({', '.join(of.get('joint_towers', []))} trained together): {f1('joint', of=of):.3f} "
                        f"vs stacked ensemble {stacked:.3f} ({100 * (f1('joint', of=of) - stacked):+.1f} points; "
                        f"trained in {of['joint_train_seconds']:.0f}s vs the ensemble's {of['train_seconds']:.0f}s)."
                        if "joint" in of else ""))
    return lines


def report(results: dict[str, Any], args: argparse.Namespace) -> str:
    goals = goal_points(results)
    lines = ["# Models without human labels: rules, weak labels, self-training, scored against the truth", "",
             f"Generated by `benchmarks/models.py` ({sum(r['seconds'] for r in results.values()) / 60:.1f} min of "
             "compute on 2 shared CPU cores; the command of each dataset is given in its section).", "",
             "Protocol: category fields dropped from the inputs (they are the label); title (+ gender on Myntra) only, "
             "plus the photo's EfficientNet-Lite0 vector for the image member where the dataset has photos. "
             "The joint model (towers of several members under one output, trained together) is trained by the same "
             "protocol on its own and compared with the ensemble. "
             "Taxonomy = true paths cut at depth, rare categories pruned (on the training part). Seeded 90/10 split. "
             "Rule labels: `generate_rules(taxonomy, support=...)` on the full pruned taxonomy, applied to every title. "
             f"Each variant: {args.folds}-fold out-of-fold member probabilities; combiners fitted on 75% of the OOF "
             "rows, per-category thresholds (F0.5) tuned on the other 25% — against the variant's own training "
             "labels (rule labels for the rule variants: no truth is used for training or tuning); members refit on "
             "all training rows and scored on the test 10%. 'served' = the saved classifier's own decisions "
             "(refit members + stacked combiner + thresholds).", "",
             "Variants: `rules` = the generated rules' labels; `weak labels` = `models.weak_labels` on the training "
             "products (each rule a source, the MiniLM semantic matcher on titles, the rules' votes carried up, "
             "combined by the label model; categories still without a label seeded with their 5 most similar "
             "products at weight 0.5), hard labels with per-entry weights P(label right), as `prodcat train "
             "--labels weak`; `weak labels + self-training` = `models.self_training` from the weak labels (teacher "
             "views fitted on out-of-fold rows; confident pairs added, bounded rounds), then the full ensemble on "
             "the result; `truth (ceiling)` = the true categories. Goals (issue 13): with no human label, micro-F1 "
             "vs truth >= rules + 10 points on Flipkart and >= rules + 15 on the dataset whose rules cover least.",
             ""]
    for dataset, r in results.items():
        info = r["info"]
        depth = info["taxonomy"]["max_depth"]
        lines += [f"## {dataset}", "", f"`{r.get('command', 'benchmarks/models.py')}`"
                  + (f" (code at commit {r['commit']})" if "commit" in r else ""), "",
                  f"{info['n_records']} products ({info['n_train']} train / {info['n_test']} test), "
                  f"{info['taxonomy']['categories']} categories (depth <= {depth}, support >= {info['min_support']}); "
                  f"{info['rules']} generated rules label {info['rule_coverage_train']:.0%} of training products "
                  f"({info['rule_coverage_level2_train']:.0%} at level >= 2)"
                  + (f"; {info['with_photo']} have a photo (EfficientNet-Lite0 vectors for the image member)."
                     if "with_photo" in info else "."), ""]
        if "test_pairs_in_those" in info:
            share = info["test_pairs_in_those"]
            one = info["categories_without_rule_labels"] == 1
            lines += [f"What the rule labels cannot teach: {info['categories_without_rule_labels']} of the "
                      f"{info['taxonomy']['categories']} categories {'gets' if one else 'get'} no rule label in "
                      f"training, and {'it holds' if one else 'they hold'} "
                      f"{share:.1%} of the test split's true (product, category) pairs. A model trained on these "
                      "labels has no positive to learn them from, so even one exact on every other category "
                      f"would score at most micro-F1 {f1_bound(share):.3f} against the truth.", ""]
        rules_f1 = r["rules_vs_truth"]["micro_f1"]
        headline = []
        for label, v in r["variants"].items():
            s = v["ensemble:stacked"]["vs_truth"]["micro_f1"]
            best = max((v[k]["vs_truth"]["micro_f1"], k) for k in v if k.startswith("member:"))
            points = goals.get(dataset)
            goal = ("" if label.startswith("truth") or points is None else
                    f", goal +{points}: {'met' if s - rules_f1 >= points / 100 else 'NOT met'}")
            headline.append(f"- **{label}**: stacked micro-F1 vs truth **{s:.3f}** (rules {rules_f1:.3f}: "
                            f"{100 * (s - rules_f1):+.1f} points{goal}); best member {best[1][7:]} {best[0]:.3f} "
                            f"(stacked {'>=' if s >= best[0] else '<'} best member, {100 * (s - best[0]):+.2f} points); served {v['served']['vs_truth']['micro_f1']:.3f}; "
                            f"train {v['train_seconds']:.0f}s; categorise_batch {v['throughput_per_s']:.0f} products/s"
                            + (f"; rules ∪ model {v['rules ∪ served']['vs_truth']['micro_f1']:.3f}"
                               if "rules ∪ served" in v else ""))
        lines += headline + ["", *label_sources(r), *self_training_rounds(r), *hypotheses(r), ""]
        for label, v in r["variants"].items():
            for target in ("vs_truth", "vs_rules"):
                rows = [(k, v[k][target]) for k in v
                        if k.startswith(("member:", "ensemble:", "joint", "served", "rules ∪")) and isinstance(v[k], dict)
                        and target in v[k]]
                if target == "vs_truth" and label.startswith("rules") and label == next(iter(r["variants"])):
                    rows.append(("rules themselves", r["rules_vs_truth"]))
                lines += [f"### {label} — test scored {target.replace('_', ' ')}", "", *table(rows, depth), ""]
            lines += [f"Weighted-ensemble weights: {json.dumps({k: round(x, 3) for k, x in v['weighted_weights'].items()})}; "
                      f"stacked slopes: {json.dumps({k: round(x, 3) for k, x in v['stacked_slopes'].items()})}", ""]
    lines += [*crossover_section(args.out), *scale_section(args.out)]
    return "\n".join(lines) + "\n"


def goal_points(results: dict[str, Any]) -> dict[str, int]:
    """The issue's goals: Flipkart rules + 10 points; the dataset whose rules label the fewest products + 15."""
    goals = {name: 10 for name in results if name == "flipkart"}
    if results:
        least = min(results, key=lambda name: results[name]["info"]["rule_coverage_train"])
        goals[least] = 15
    return goals


def label_sources(r: dict[str, Any]) -> list[str]:
    """The training labels without a human (each source, the label model, self-training) vs the truth."""
    weak = r.get("weak_labels")
    if not weak:
        return []
    rows = dict(weak["sources"])
    if "self_training" in r:
        rows["after self-training"] = r["self_training"]["labels_vs_truth"]
    n = r["info"]["taxonomy"]["categories"]
    lines = [f"**Training labels without a human**, scored against the {r['info']['n_train']} training products' "
             f"true categories (the truth is read only here); {weak['n_sources']} label-model sources, matcher "
             f"threshold {weak['matcher_threshold']:.3f}"
             + ("" if weak.get("matcher_calibrated", True) else " (its calibration found no threshold at the target "
                "precision: the fallback, and its matches count only on products no rule labels)")
             + f", {weak['seconds']:.0f} s:", "",
             "| labels | P | R | F1 | pairs | categories with a label |", "|---|---|---|---|---|---|"]
    for name, m in rows.items():
        lines.append(f"| {name} | {m['micro_precision']:.3f} | {m['micro_recall']:.3f} | {m['micro_f1']:.3f} | "
                     f"{m['pairs']:,} | {m['categories_labelled']} of {n} |")
    seeded = (f"Seeded: {weak['seeded_categories']} categories no source labelled got their 5 most similar "
              f"products; {weak['seeded_precision']:.0%} of those seed pairs are right." if weak["seeded_categories"]
              else "Seeded: none; every category had a label from a source.")
    lines += ["", seeded, ""]
    return lines


def self_training_rounds(r: dict[str, Any]) -> list[str]:
    """Self-training's rounds: pairs added per view, their precision against the truth, the teachers' test F1."""
    st = r.get("self_training")
    if not st:
        return []
    lines = [f"**Self-training** (views {', '.join(f'`{v}`' for v in st['views'])}; a pair is added at "
             f"probability >= {st['min_probability']} and its category's threshold; at most {st['max_rounds']} "
             f"rounds; {st['seconds']:.0f} s):", "",
             "| round | pairs added (per view) | products | precision of all added pairs so far | labels F1 vs truth "
             "| teacher test F1 (trained on the labels before this round) |", "|---|---|---|---|---|---|"]
    for h in st["rounds"]:
        views = ", ".join(f"{k} {v:,}" for k, v in h["per_view"].items())
        teachers = ", ".join(f"{k} {v:.3f}" for k, v in h["teacher_test_f1"].items())
        lines.append(f"| {h['round']} | {h['added_pairs']:,} ({views}) | {h['added_products']:,} | "
                     f"{h['added_precision_so_far']:.3f} | {h['labels_vs_truth']['micro_f1']:.3f} | {teachers} |")
    return [*lines, ""]


def crossover_section(folder: Path) -> list[str]:
    """The crossover point per dataset, from benchmarks/crossover.py's JSON files in ``folder``."""
    found = sorted(folder.glob("crossover*.json"))
    if not found:
        return []
    lines = ["## The crossover point", "",
             "How many true labels, drawn at random, a model trained on them alone needs to match the models trained "
             "with no human label (benchmarks/crossover.py: the same split and taxonomy as above, members as "
             "named, test micro-F1 vs the truth; linear interpolation on the mean of the seeds).", "",
             "| dataset | members | no-human-label model | test micro-F1 | true labels to match it |",
             "|---|---|---|---|---|"]
    for path in found:
        x = json.loads(path.read_text())
        for name, f1 in x["baselines"].items():
            k = x["crossover"][name]
            lines.append(f"| {x.get('dataset', 'flipkart')} | {','.join(x['members'])} | {name} | {f1:.3f} | "
                         + (f"more than {x['sizes'][-1]:,}" if k is None else f"{k:,.0f}") + " |")
    lines += ["", "Each dataset's curve and command: " + ", ".join(f"`{p.with_suffix('.md').name}`" for p in found)
              + ".", ""]
    return lines


def scale_section(folder: Path) -> list[str]:
    """The ~200 and ~1,000 category figures, from benchmarks/scale.py's ``scale.json`` in ``folder``."""
    path = folder / "scale.json"
    if not path.is_file():
        return []
    lines = ["## The mission's scale: ~200 and ~1,000 categories", "",
             "From `scale.md` (`.venv/bin/python benchmarks/scale.py`): Flipkart, the full ensemble on the true "
             "labels of the training products, each size in its own process; categorise_batch in batches of 256.", "",
             "| categories | depth | training products | members | training | categorise_batch | artifact "
             "| peak memory | test micro-F1 |", "|---|---|---|---|---|---|---|---|---|"]
    for s in json.loads(path.read_text()):
        lines.append(f"| {s['categories']:,} | <= {s['depth']} | {s['train_products']:,} | {','.join(s['members'])} "
                     f"| {s['train_minutes']:.1f} min | {s['products_per_s']:,} products/s | {s['artifact_mb']:.0f} MB "
                     f"| {s['peak_rss_gb']:.1f} GB | {s['test_micro_f1']:.3f} |")
    return [*lines, ""]


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(12 * len(results), 6), squeeze=False)
    for ax, (dataset, r) in zip(axes[0], results.items(), strict=True):
        labels, values, colours = ["rules"], [r["rules_vs_truth"]["micro_f1"]], ["grey"]
        palette = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
        for i, (variant, v) in enumerate(r["variants"].items()):
            for k in [k for k in v if k.startswith(("member:", "ensemble:")) or k == "joint"]:
                labels.append(f"{variant}\n{k.split(':')[-1]}")
                values.append(v[k]["vs_truth"]["micro_f1"])
                colours.append(palette[i % len(palette)])
        ax.bar(range(len(values)), values, color=colours)
        ax.set_xticks(range(len(values)), labels, rotation=90, fontsize=7)
        ax.set_ylabel("micro F1 vs truth (test)")
        ax.set_title(f"{dataset}: trained on rule labels vs truth ceiling")
        ax.axhline(values[0], color="grey", linestyle=":", label="rules")
        ax.axhline(values[0] + 0.15, color="black", linestyle="--", linewidth=0.8, label="goal: rules + 15 points")
        if "test_pairs_in_those" in r["info"]:
            ax.axhline(f1_bound(r["info"]["test_pairs_in_those"]), color="tab:purple", linestyle="-.", linewidth=0.8,
                       label="bound for rule labels")
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
