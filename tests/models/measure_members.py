"""Measure every text member on Flipkart 20k: true labels, and rule labels with/without the PU correction.

Not a test (pytest does not collect it): a reproducible measurement for the models report.

    .venv/bin/python tests/models/measure_members.py [--datasets ../shared/datasets] [--depth 2]
        [--min-support 20] [--members logreg,mlp,...] [--out results.json]

Protocol: the category path is the label, so the category fields are dropped from the inputs
(the title is the only input this file has). Taxonomy = paths cut at ``--depth``, categories with
fewer than ``--min-support`` products pruned. Seeded 90/10 split; 10% of the training part is the
early-stopping set. Scores: micro precision/recall/F1 at threshold 0.5 on the test split against
the TRUE labels, raw sigmoid outputs (no ancestor repair, no tuned thresholds).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import precision_recall_fscore_support

from models.config import FeatureConfig
from models.featuriser import Featuriser
from models.labels import LabelWeighting, label_matrix, labels_from_paths
from models.members import create_member
from prodcat.catalogue import read_catalogue
from prodcat.record import parse_record
from prodcat.rules import generate_rules
from prodcat.taxonomy import Taxonomy

TEXT_MEMBERS = ("logreg", "mlp", "wide_deep", "textcnn", "gru")


def scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    precision, recall, f1, _ = precision_recall_fscore_support(y, p > 0.5, average="micro", zero_division=0)
    return {"precision": round(float(precision), 4), "recall": round(float(recall), 4), "f1": round(float(f1), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "datasets")
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--min-support", type=int, default=20)
    parser.add_argument("--members", default=",".join(TEXT_MEMBERS))
    parser.add_argument("--rule-members", default="logreg,mlp,textcnn")
    parser.add_argument("--unlabelled-weights", default="0.2,0.05")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    path = args.datasets / "flipkart" / "products_20k_name_tree.csv"
    if not path.is_file():
        raise SystemExit(f"Flipkart 20k not found at {path}; pass --datasets")
    records = [parse_record(raw) for raw in read_catalogue(path, "flipkart-names")]
    paths = [r.category_path for r in records]
    taxonomy = Taxonomy.from_paths(paths, max_depth=args.depth)
    support = taxonomy.support(labels_from_paths(paths, taxonomy))
    taxonomy = taxonomy.prune(support=support, min_support=args.min_support)
    y_true = label_matrix(labels_from_paths(paths, taxonomy), taxonomy)
    rules = generate_rules(taxonomy)
    y_rule = label_matrix([m.labels for m in rules.apply_many(records)], taxonomy)

    order = np.random.default_rng(0).permutation(len(records))
    n_test, n_val = len(records) // 10, len(records) // 10 * 9 // 10
    test, val, train = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
    print(f"{taxonomy}; train {len(train)}, early-stopping {len(val)}, test {len(test)}; "
          f"{len(rules)} rules fire on {(y_rule.sum(1) > 0).mean():.0%} of products")
    result: dict = {"taxonomy": taxonomy.describe(), "rules_vs_truth": scores(y_true[test], y_rule[test]),
                    "true_labels": {}, "rule_labels": {}}
    print("rules alone vs truth:", result["rules_vs_truth"])

    config = FeatureConfig.default().with_fields(category={"kind": "drop"}, category_path={"kind": "drop"},
                                                 image={"kind": "drop"})
    started = time.perf_counter()
    featuriser = Featuriser(config).fit([records[i] for i in train])
    x = featuriser.transform(records)
    print(f"featuriser fit + transform {time.perf_counter() - started:.1f}s")

    def rows(index: np.ndarray) -> dict[str, np.ndarray]:
        return {name: array[index] for name, array in x.items()}

    def run(name: str, y: np.ndarray, weighting: LabelWeighting) -> dict:
        member = create_member(name, featuriser)
        weights = weighting.compute(y[train], taxonomy)._asdict()
        val_weights = weighting.compute(y[val], taxonomy).sample_weight
        started = time.perf_counter()
        member.fit(rows(train), y[train], **weights, validation=(rows(val), y[val], val_weights))
        seconds = time.perf_counter() - started
        out = {**scores(y_true[test], member.predict_proba(rows(test))), "seconds": round(seconds, 1),
               "epochs": len(member.history_["loss"])}
        # Elkan-Noto's c = P(labelled | positive): mean score on held-out rule positives.
        p_val = member.predict_proba(rows(val))
        out["c_held_out"] = round(float(p_val[y[val] > 0.5].mean()), 3)
        return out

    for name in filter(None, args.members.split(",")):
        for label, weighting in (("plain", LabelWeighting(positive_power=0)), ("class_weights", LabelWeighting())):
            result["true_labels"][f"{name}/{label}"] = run(name, y_true, weighting)
            print("true", name, label, result["true_labels"][f"{name}/{label}"], flush=True)
    for name in filter(None, args.rule_members.split(",")):
        variants = [("pu_off", LabelWeighting(positive_power=0))]
        variants += [(f"pu_{w}", LabelWeighting(positive_power=0, pu_correction=True, unlabelled_weight=float(w)))
                     for w in args.unlabelled_weights.split(",")]
        for label, weighting in variants:
            result["rule_labels"][f"{name}/{label}"] = run(name, y_rule, weighting)
            print("rules", name, label, result["rule_labels"][f"{name}/{label}"], flush=True)
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
