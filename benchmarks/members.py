"""Measure members one at a time on Flipkart 20k TRUE labels, by the models report's protocol (issue 13.4).

The per-member rows of benchmarks/models.py's
``truth (ceiling)`` variant without training the other members.

    .venv/bin/python benchmarks/members.py [--members gru,textcnn,logreg]
        [--params '{"gru": {"learning_rate": 0.001}}'] [--datasets ../shared/datasets] [--out FILE]

Protocol (benchmarks/protocol.py, benchmarks/models.py): depth <= 4, categories with fewer than
30 training products pruned, seeded 90/10 split; ``train_ensemble`` with that one member, 2 folds,
default epochs and class weights, true labels; thresholds (F0.5) tuned on the out-of-fold
validation part and applied to the refit member's test probabilities (score_all's member rows).
Also printed: the refit member at threshold 0.5, the out-of-fold member at 0.5, and the seconds
of the refit on the 18,000 training products alone. One thread per op, so a run takes one core.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.protocol import split_and_taxonomy  # noqa: E402
from models.config import FeatureConfig  # noqa: E402
from models.labels import LabelWeighting, label_matrix, labels_from_paths  # noqa: E402
from models.metrics import evaluate  # noqa: E402
from models.thresholds import Thresholds  # noqa: E402
from models.training import train_ensemble  # noqa: E402
from prodcat.catalogue import true_category_path  # noqa: E402
from prodcat.catalogue_options import Catalogue  # noqa: E402
from prodcat.record import parse_record  # noqa: E402

KEYS = ("micro_precision", "micro_recall", "micro_f1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--members", default="gru,textcnn,logreg")
    parser.add_argument("--params", default="{}", help='JSON {member: {parameter: value}}')
    parser.add_argument("--out", type=Path, default=None, help="append one JSON line per member")
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    path = args.datasets / "flipkart" / "products_20k_name_tree.csv"
    if not path.is_file():
        raise SystemExit(f"Flipkart 20k not found at {path}; pass --datasets")
    records = [parse_record(raw) for raw in Catalogue(path, "flipkart-names").read()]
    paths = [true_category_path(r) for r in records]
    train_idx, test_idx, taxonomy, _ = split_and_taxonomy(paths, depth=4, min_support=30)
    y = label_matrix(labels_from_paths(paths, taxonomy), taxonomy)
    config = FeatureConfig.default().with_fields(category={"kind": "drop"}, category_path={"kind": "drop"},
                                                 image={"kind": "drop"})
    train, test = [records[i] for i in train_idx], [records[i] for i in test_idx]
    params = json.loads(args.params)
    for name in filter(None, args.members.split(",")):
        started = time.perf_counter()
        stamps: dict[str, float] = {}
        classifier = train_ensemble(train, taxonomy.from_matrix(y[train_idx]), taxonomy, config=config,
                                    members=[name], combiner="mean", beta=0.5, folds=2, keep_oof=True,
                                    member_params=params, weighting=LabelWeighting(),
                                    on_progress=lambda stage, done, total: stamps.setdefault(stage, time.perf_counter()))
        seconds = time.perf_counter() - started
        oof = classifier.oof_
        test_probs = np.nan_to_num(classifier.predict_proba(test)[1][0])
        val_probs = np.nan_to_num(oof.member_probs[0][oof.val_idx])
        thresholds = Thresholds(beta=0.5, min_support=3).fit(val_probs, oof.y[oof.val_idx], taxonomy)
        tuned = evaluate(y[test_idx] > 0.5, thresholds.decide(test_probs), taxonomy, beta=0.5)
        at_half = evaluate(y[test_idx] > 0.5, test_probs > 0.5, taxonomy, beta=0.5)
        oof_half = evaluate(oof.y[oof.val_idx] > 0.5, val_probs > 0.5, taxonomy, beta=0.5)
        row = {"member": name, "params": params.get(name, {}), "tuned": {k: round(tuned[k], 3) for k in KEYS},
               "refit_at_0.5": {k: round(at_half[k], 3) for k in KEYS},
               "oof_at_0.5_f1": round(oof_half["micro_f1"], 3),
               "median_threshold": round(float(np.median(thresholds.thresholds_)), 3),
               "train_ensemble_seconds": round(seconds, 1),
               # the refit on all 18,000 training products alone: what one retraining fit costs
               "refit_seconds": round(stamps[f"{name}: refit on all rows"] - stamps["combiner and thresholds"], 1),
               "epochs": classifier.training["epochs"][name]}
        print(json.dumps(row), flush=True)
        if args.out:
            with args.out.open("a", encoding="utf-8") as out:
                out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
