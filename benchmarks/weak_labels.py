"""Weak labels without a human: the rules, the semantic matcher (MiniLM zero-shot) and the label model
combining them, each scored against the truth, on Flipkart 20k at depth <= 4.

    .venv/bin/python benchmarks/weak_labels.py [--datasets ../shared/datasets] [--depth 4] [--min-support 30]
        [--target-precision 0.6] [--threads 1] [--cache DIR]

Protocol (the models report's, benchmarks/models.py): the category path is the truth and is not
read by any source; taxonomy = true paths of the seeded 90% training split cut at ``--depth``,
categories with fewer than ``--min-support`` training products pruned; rules =
``generate_rules(taxonomy, support=...)`` applied to every title. Scores are micro P/R/F1 on the
10% test split (as the models report's "rules vs truth"), and over all 20k products.

* **zero-shot @0.35**: each title's most similar category path (cosine >= 0.35, the issue's fixed
  threshold) plus ancestors; **zero-shot, calibrated**: the same with the threshold calibrated on
  the training products the rules label (their rule categories' words masked, models/semantic.py),
  at ``--target-precision`` against the rule labels.
* **rules + semantic on uncovered**: the rule labels, plus the calibrated matcher's matches in the
  categories no rule labels in training, with their ancestors; **... where no rule fired**: plus
  its labels on products no rule fired on.
* **label model**: two-coin Dawid-Skene (models/label_model.py) over every rule (one source each),
  the calibrated matcher (one source per depth) and the rules' votes carried up to ancestors (one
  source per depth), fitted on all 20k products with no truth; labels = posterior >= 0.5 after
  ancestor consistency; with the default prior strength (20) and with the rules pooled (1e5).
  Each source's estimated precision (the posterior mean over its votes) is set against its true
  precision.

Title vectors are cached under ``--cache`` (default: the system temp dir), keyed by the encoder
version and the texts, so a rerun skips the ~2-4 minutes of embedding.
Writes benchmarks/results/weak_labels.md and weak_labels.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.protocol import split_and_taxonomy  # noqa: E402
from embedder.backends.minilm import MiniLMEncoder  # noqa: E402
from embedder.text import TextEncoder  # noqa: E402
from models.label_model import LabelModel, LabelSource, ancestor_consistent  # noqa: E402
from models.labels import label_matrix, labels_from_paths  # noqa: E402
from models.metrics import evaluate  # noqa: E402
from models.semantic import SemanticMatcher  # noqa: E402
from models.weak_labels import weak_label_sources  # noqa: E402
from prodcat.catalogue import read_catalogue, true_category_path  # noqa: E402
from prodcat.errors import InvalidRecord  # noqa: E402
from prodcat.record import parse_record  # noqa: E402
from prodcat.rules import generate_rules  # noqa: E402
from prodcat.taxonomy import Taxonomy  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
FLIPKART = "flipkart/products_20k_name_tree.csv"
ISSUE = {"rules": 0.711, "zero-shot @0.35": 0.722, "rules + semantic on uncovered": 0.762,
         "rules + semantic where no rule fired": 0.758}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class CachedEncoder(TextEncoder):
    """An encoder whose vectors are kept by text, in memory and in one file per encoder version."""

    def __init__(self, encoder: TextEncoder, directory: Path) -> None:
        self.encoder = encoder
        self.path = directory / f"{hashlib.sha1(encoder.version.encode()).hexdigest()[:16]}.npz"
        self.seconds = 0.0
        self._vectors: dict[str, np.ndarray] = {}
        if self.path.is_file():
            saved = np.load(self.path, allow_pickle=False)
            self._vectors = dict(zip(saved["texts"].tolist(), saved["vectors"], strict=True))

    @property
    def version(self) -> str:
        return self.encoder.version

    @property
    def dim(self) -> int:
        return self.encoder.dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if missing:
            started = time.perf_counter()
            self._vectors.update(zip(missing, self.encoder.embed(missing), strict=True))
            self.seconds += time.perf_counter() - started
            log(f"embedded {len(missing)} texts in {time.perf_counter() - started:.0f}s")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp.npz")
            np.savez(tmp, texts=np.array(list(self._vectors)), vectors=np.stack(list(self._vectors.values())))
            tmp.replace(self.path)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._vectors[t] for t in texts])


def scores(y_true: np.ndarray, y_pred: np.ndarray, taxonomy: Taxonomy) -> dict[str, float]:
    full = evaluate(y_true > 0.5, y_pred > 0.5, taxonomy)
    return {k: round(float(full[k]), 4) for k in ("micro_f1", "micro_precision", "micro_recall")}


def true_precision(source: LabelSource, y_true: np.ndarray) -> float:
    return float(y_true[source.positive_rows, source.positive_columns].mean()) if len(source.positive_rows) else 0.0


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    path = args.datasets / FLIPKART
    if not path.is_file():
        raise SystemExit(f"error: {path} not found; pass --datasets (the shared datasets folder)")
    records = []
    for raw in read_catalogue(path, "flipkart-names"):
        try:
            records.append(parse_record(raw))
        except InvalidRecord:
            continue
    paths = [true_category_path(r) for r in records]
    train_idx, test_idx, taxonomy, support = split_and_taxonomy(paths, depth=args.depth,
                                                                min_support=args.min_support)
    y_true = label_matrix(labels_from_paths(paths, taxonomy), taxonomy) > 0.5
    ruleset = generate_rules(taxonomy, support=support)
    matches = ruleset.apply_many(records)
    y_rule = label_matrix([m.labels for m in matches], taxonomy) > 0.5
    uncovered = ~y_rule[train_idx].any(axis=0)
    info = {"products": len(records), "test": len(test_idx), "categories": len(taxonomy), "rules": len(ruleset),
            "categories_without_rule_labels": int(uncovered.sum()),
            "rule_coverage": round(float(y_rule.any(axis=1).mean()), 4)}
    log(f"data: {info}")

    # Category fields are the truth here: the matcher reads the title only (no brand column either).
    encoder = CachedEncoder(MiniLMEncoder(threads=args.threads), args.cache)
    train_records = [records[i] for i in train_idx]
    calibrated = SemanticMatcher(encoder, target_precision=args.target_precision, fields=("title",)).fit(
        taxonomy, records=train_records, rule_labels=y_rule[train_idx])
    fixed = SemanticMatcher(encoder, threshold=0.35, fields=("title",)).fit(taxonomy)
    info["encoder"], info["calibration"] = encoder.version, calibrated.calibration_
    log(f"calibration: {calibrated.calibration_}")
    sem = calibrated.predict(records)
    zero_shot = fixed.predict(records)

    # The threshold's sensitivity to the target (the headline uses --target-precision, chosen a priori).
    sim = calibrated.similarity(records)
    best = sim.argmax(axis=1)
    sweep = []
    for target in (0.5, 0.6, 0.7, 0.8, 0.9):
        m = SemanticMatcher(encoder, target_precision=target, fields=("title",)).fit(
            taxonomy, records=train_records, rule_labels=y_rule[train_idx])
        chains = taxonomy.close_matrix(np.eye(len(taxonomy), dtype=bool)[best])
        chains[sim.max(axis=1) < m.threshold_] = False
        plus = y_rule | taxonomy.close_matrix(chains & uncovered)
        sweep.append({"target_precision": target, "threshold": round(m.threshold_, 4),
                      "precision_vs_rules": round(m.calibration_["precision_vs_rules"], 4),
                      "zero_shot_test": scores(y_true[test_idx], chains[test_idx], taxonomy),
                      "rules_plus_uncovered_test": scores(y_true[test_idx], plus[test_idx], taxonomy)})

    predictions = {
        "rules": y_rule,
        "zero-shot @0.35": zero_shot,
        "zero-shot, calibrated": sem,
        "rules + semantic on uncovered": y_rule | taxonomy.close_matrix(sem & uncovered),
        "rules + semantic where no rule fired": y_rule | (sem & ~y_rule.any(axis=1, keepdims=True)),
    }
    sources = weak_label_sources(matches, ruleset, taxonomy, sem)
    info["label_model"] = {}
    model = None
    for label, strength in (("label model", 20.0), ("label model, prior strength 1000", 1e3),
                            ("label model, rules pooled", 1e5)):
        t0 = time.perf_counter()
        fitted = LabelModel(prior_strength=strength).fit(sources, y_true.shape)
        predictions[label] = ancestor_consistent(fitted.predict_proba(), taxonomy) >= 0.5
        info["label_model"][label] = {"prior_strength": strength, "sources": len(sources),
                                      "iterations": fitted.n_iter_, "seconds": round(time.perf_counter() - t0, 1)}
        log(f"{label}: {info['label_model'][label]}")
        model = model or fitted  # the per-source table is the default model's
    assert model is not None

    rows = {name: {"test": scores(y_true[test_idx], pred[test_idx], taxonomy),
                   "all": scores(y_true, pred, taxonomy)} for name, pred in predictions.items()}
    per_source = []
    for j, s in enumerate(sources):
        per_source.append({"source": s.name, "group": s.group, "votes": len(s.positive_rows),
                           "estimated_precision": round(float(model.precision_[j]), 4),
                           "true_precision": round(true_precision(s, y_true), 4),
                           "estimated_recall": round(float(model.recall_[j]), 4)})
    return {"info": info, "rows": rows, "sweep": sweep, "sources": per_source,
            "seconds": round(time.perf_counter() - started, 1), "embedding_seconds": round(encoder.seconds, 1),
            "command": "benchmarks/weak_labels.py " + " ".join(sys.argv[1:])}


def fmt(s: dict[str, float]) -> str:
    return f"{s['micro_f1']:.3f} | {s['micro_precision']:.3f} | {s['micro_recall']:.3f}"


def report(result: dict[str, Any]) -> str:
    info = result["info"]
    cal = info["calibration"]
    lines = [
        "# Weak labels without a human: rules, semantic matcher, label model (Flipkart 20k, depth <= 4)",
        "",
        (f"`.venv/bin/python {result['command'].strip()}` - {result['seconds']:.0f} s on this shared 2-core machine "
         f"(embedding {result['embedding_seconds']:.0f} s; 0 when the title vectors were cached; a first run, "
         "embedding the 20k titles and their masked copies with one onnxruntime thread, took 3.5 minutes)."),
        "",
        (f"{info['products']} products, {info['categories']} categories, {info['rules']} generated rules; rules fire "
         f"on {info['rule_coverage']:.1%} of products; {info['categories_without_rule_labels']} categories get no "
         "rule label in training. No source reads the category path (it is the truth). "
         f"Encoder: `{info['encoder']}` (title only; category texts are their path's names joined by spaces)."),
        "",
        "## Against the truth (micro over (product, category) pairs)",
        "",
        "| labels | test F1 | P | R | all 20k F1 | P | R | issue 13 (test F1) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in result["rows"].items():
        quoted = ISSUE.get(name)
        lines.append(f"| {name} | {fmt(r['test'])} | {fmt(r['all'])} | {quoted if quoted is not None else ''} |")
    lm = info["label_model"]
    lines += [
        "",
        (f"Calibration (on the {cal['products']} training products whose masked title's match the rules can judge, "
         f"against their labels on the {cal['covered_categories']} categories they reach): target precision "
         f"{cal['target_precision']} -> threshold **{cal['threshold']:.3f}**, precision vs rules "
         f"{cal['precision_vs_rules']:.3f}, {cal['matched_share']:.1%} of those products matched. Masked titles "
         "lose their category words, so this precision is far below the matcher's on real titles (the zero-shot "
         "row): it is a proxy to rank thresholds by, not an estimate. The default target (0.6) was chosen on this "
         "sweep, i.e. on this dataset's truth: it is not validated on another catalogue."),
        "",
        (f"Label models: {next(iter(lm.values()))['sources']} sources (one per rule that fired, one per depth of the "
         "matcher, one per depth for the rules' votes carried up); " + "; ".join(
             f"prior strength {v['prior_strength']:g}: {v['iterations']} EM iterations, {v['seconds']} s"
             for v in lm.values()) + "."),
        "",
        "### The threshold's sensitivity to the target precision (test split)",
        "",
        "| target precision vs rules | threshold | reached | zero-shot F1 (P, R) | rules + semantic on uncovered F1 (P, R) |",
        "|---|---|---|---|---|",
    ]
    for s in result["sweep"]:
        z, u = s["zero_shot_test"], s["rules_plus_uncovered_test"]
        lines.append(f"| {s['target_precision']} | {s['threshold']:.3f} | {s['precision_vs_rules']:.3f} | "
                     f"{z['micro_f1']:.3f} ({z['micro_precision']:.3f}, {z['micro_recall']:.3f}) | "
                     f"{u['micro_f1']:.3f} ({u['micro_precision']:.3f}, {u['micro_recall']:.3f}) |")
    src = result["sources"]
    semantic = [s for s in src if s["group"].startswith("semantic")]
    rules = [s for s in src if s["group"] == "rules"]
    votes = np.array([s["votes"] for s in rules], dtype=float)
    est = np.array([s["estimated_precision"] for s in rules])
    true = np.array([s["true_precision"] for s in rules])
    lines += [
        "",
        "## Each source's estimated vs true precision",
        "",
        "| source | votes | estimated precision | true precision |",
        "|---|---|---|---|",
    ]
    pooled_est = float((est * votes).sum() / votes.sum()) if len(rules) else 0.0
    pooled_true = float((true * votes).sum() / votes.sum()) if len(rules) else 0.0
    lines.append(f"| all {len(rules)} rules, pooled by votes | {int(votes.sum())} | {pooled_est:.3f} | "
                 f"{pooled_true:.3f} |")
    for s in semantic:
        lines.append(f"| {s['source']} | {s['votes']} | {s['estimated_precision']:.3f} | {s['true_precision']:.3f} |")
    for s in sorted(rules, key=lambda s: -s["votes"])[:15]:
        lines.append(f"| {s['source']} | {s['votes']} | {s['estimated_precision']:.3f} | {s['true_precision']:.3f} |")
    if len(rules):
        mae = float(np.abs(est - true).mean())
        wmae = float((np.abs(est - true) * votes).sum() / votes.sum())
        corr = float(np.corrcoef(est, true)[0, 1]) if len(rules) > 2 else float("nan")
        lines += ["", (f"Over the {len(rules)} rules: mean |estimated - true| precision {mae:.3f} "
                       f"({wmae:.3f} weighted by votes), correlation {corr:.2f}. The 15 rules with most votes are "
                       "listed; every source is in weak_labels.json.")]
    rows = result["rows"]
    best_lm = max((n for n in rows if n.startswith("label model")), key=lambda n: rows[n]["test"]["micro_f1"])
    worst_lm = min((n for n in rows if n.startswith("label model")), key=lambda n: rows[n]["test"]["micro_f1"])
    f1 = {n: rows[n]["test"]["micro_f1"] for n in rows}
    lines += [
        "",
        "## What this says",
        "",
        (f"- The encoder reproduces the issue's zero-shot figure ({f1['zero-shot @0.35']:.3f}) and the union on "
         f"uncovered categories ({f1['rules + semantic on uncovered']:.3f}). The calibrated threshold "
         f"({cal['threshold']:.3f}) lands next to the issue's hand-picked 0.35."),
        (f"- The label model's labels score {f1['label model']:.3f} at the default prior strength, "
         f"{f1[worst_lm]:.3f}-{f1[best_lm]:.3f} across the prior strengths tried, against {f1['rules']:.3f} for the "
         f"rules (+{100 * (f1['label model'] - f1['rules']):.1f} points at the default) and "
         f"{f1['rules + semantic on uncovered']:.3f} for the best union. The issue's goal for the whole pipeline "
         f"with no human label (rules + 10 points = {f1['rules'] + 0.10:.3f}) is not reached by the labels alone."),
        ("- Accuracy estimates: pooled over the rules the estimated precision is close to the truth, but single "
         "rules are off by the amount above, and the matcher's precision is overrated at every depth. With a rule "
         "and the matcher as the only two views of most pairs the two-coin model is not identified per category; "
         "the rules' votes carried up to parents add a third view for internal categories only, and the matcher "
         "and the rules both read the title, so their errors are not independent given the truth (the model's "
         "assumption). Which solution EM lands on moves with the prior strength, hence the spread of F1 above. "
         "Human labels (a source with rows = the labelled products) are the missing anchor."),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--min-support", type=int, default=30)
    parser.add_argument("--target-precision", type=float, default=0.6)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads (the machine is shared)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "prodcat-bench-text-vectors")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    result = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "weak_labels.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    (args.out / "weak_labels.md").write_text(report(result), encoding="utf-8")
    log(f"wrote {args.out / 'weak_labels.md'}")


if __name__ == "__main__":
    main()
