"""Benchmark the classifier trained without human labels (rules, weak labels, self-training) against the truth.

    .venv/bin/python benchmarks/models.py [--datasets ../shared/datasets] [--limit N] [--depth 4]
        [--min-support 30] [--members logreg,mlp,wide_deep,textcnn,gru] [--joint mlp,textcnn]
        [--images] [--dataset flipkart,myntra-images,myntra,bigbasket | --dataset PATH [--preset P]
        [--columns C] [--mapping FILE] [--no-header]] [--variants rules,weak,self,truth]
        [--self-views 'logreg|image_head'] [--self-rounds 2] [--out DIR]

``--dataset`` names shared datasets or catalogue files: a PATH is read like ``prodcat train``
reads it (the same ``--preset``, ``--columns``, ``--mapping`` and ``--no-header``; see the README's
"Bring your own catalogue") and reported under its file name.

Protocol per dataset: the category fields ARE the label, so they are dropped from the inputs.
Taxonomy = true paths cut at ``--depth``, categories with fewer than ``--min-support`` training
products pruned. Fixed seeded 90/10 split. Rule labels = ``generate_rules`` on the FULL pruned
taxonomy (with support counts), applied to every title. Weak labels and self-training
(benchmarks/no_human_labels.py) label the training products only, without reading the truth.
Each variant (``--variants``: rules, weak, self, truth, pu:<weight>[:labelled]) trains the whole
classifier (out-of-fold stacking, thresholds tuned with beta=0.5 on the held-out OOF part,
members refit) and is scored on the test 10% against the rule labels and against the truth.
Every member, the mean/weighted/stacked ensembles (same OOF, same thresholding protocol; with
``--images`` also without the image member), the jointly trained model (``--joint`` towers, the
same protocol), the rules themselves and the ensemble trained on TRUE labels (the ceiling) are
reported, with the study's hypotheses answered from the numbers and categorise_batch throughput on
batches of 256 (median of 3). With ``--images`` the photos are embedded once (cached under
.prodcat/cache/bench/). Datasets already in models.json stay; those run now replace theirs.
Writes models.md, models.json and models.png into ``--out`` (default: a new temporary folder,
printed at the end; the committed report is made with ``--out benchmarks/results``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.models_report import plot, report  # noqa: E402
from benchmarks.no_human_labels import self_trained_variant, weak_variant  # noqa: E402
from benchmarks.protocol import DATASETS, split_and_taxonomy, subsample  # noqa: E402
from models.classifier import Classifier  # noqa: E402
from models.config import FeatureConfig  # noqa: E402
from models.ensemble import MeanEnsemble, StackedEnsemble, WeightedEnsemble  # noqa: E402
from models.labels import LabelWeighting, label_matrix, labels_from_paths  # noqa: E402
from models.metrics import evaluate  # noqa: E402
from models.thresholds import Thresholds  # noqa: E402
from models.training import train_ensemble  # noqa: E402
from prodcat.catalogue import true_category_path  # noqa: E402
from prodcat.catalogue_options import Catalogue  # noqa: E402
from prodcat.errors import InvalidRecord, ProdcatError  # noqa: E402
from prodcat.record import parse_record  # noqa: E402
from prodcat.rules import generate_rules  # noqa: E402
from prodcat.taxonomy import Taxonomy  # noqa: E402


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def catalogue_of(dataset: str, args: argparse.Namespace) -> Catalogue:
    """A shared dataset by name, or a catalogue file read with the mapping options (as `prodcat train` does)."""
    if dataset in DATASETS:
        path, preset = DATASETS[dataset]
        return Catalogue(args.datasets / path, preset)
    if not Path(dataset).is_file():
        raise SystemExit(f"error: unknown dataset {dataset!r}; expected one of {sorted(DATASETS)} or a catalogue file")
    return Catalogue.from_options(Path(dataset), args.preset, args.columns, args.mapping, no_header=args.no_header)


def dataset_name(dataset: str) -> str:
    """The report's name for a dataset: its own name, or a catalogue file's name without extension."""
    return dataset if dataset in DATASETS else Path(dataset).stem


def load(dataset: str, args: argparse.Namespace) -> tuple[list, list[list[str]]]:
    records = []
    for raw in catalogue_of(dataset, args).read():
        try:
            records.append(parse_record(raw))
        except InvalidRecord:
            continue  # the stream would dead-letter it (a user's catalogue may hold a few)
    if not records:
        raise SystemExit(f"error: no usable product in {dataset}; a catalogue without a header or with its own "
                         "column names needs --columns/--mapping (and --no-header)")
    records = subsample(records, args.limit)
    return records, [true_category_path(r) for r in records]


def image_vectors(records: list, cache: Path) -> np.ndarray:
    """EfficientNet-Lite0 vectors of the records' photos (NaN rows where there is none), cached by id."""
    from PIL import Image

    from embedder import EfficientNetLite0Embedder

    ids = [r.id for r in records]
    if cache.is_file():
        saved = np.load(cache, allow_pickle=False)
        if list(saved["ids"]) == ids:
            return saved["vectors"]
    embedder = EfficientNetLite0Embedder(cache_dir=ROOT / ".prodcat" / "cache" / "embedder")
    out = np.full((len(records), embedder.dim), np.nan, np.float32)
    with_photo = [i for i, r in enumerate(records) if r.image_url]
    started = time.perf_counter()
    for start in range(0, len(with_photo), 256):
        part = with_photo[start:start + 256]
        images = [Image.open(urlparse(records[i].image_url).path).convert("RGB") for i in part]
        out[part] = embedder.embed(images)
    log(f"embedded {len(with_photo)} photos in {time.perf_counter() - started:.0f}s")
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, ids=np.array(ids), vectors=out)
    return out


def score_all(oof, member_names: list[str], member_test: np.ndarray, y_rule_test: np.ndarray,
              y_true_test: np.ndarray, taxonomy: Taxonomy, beta: float,
              joint: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, Any]:
    """Members, the three combiners (also without the image member, when there is one) and the joint
    model, each thresholded by the same protocol (tuned on the OOF validation part)."""
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
    if joint is not None:
        out["joint"] = both(decide(joint[0][val], joint[1]))
    groups = {"": list(range(len(member_names)))}
    if "image_head" in member_names:
        groups[" text-only"] = [j for j, name in enumerate(member_names) if name != "image_head"]
    for suffix, cols in groups.items():
        member_probs, test_probs = oof.member_probs[cols], member_test[cols]
        for label, combiner in (("mean", MeanEnsemble()), ("weighted", WeightedEnsemble()),
                                ("stacked", StackedEnsemble())):
            combiner.fit(list(member_probs[:, fit]), oof.y[fit])
            out[f"ensemble:{label}{suffix}"] = both(decide(combiner.predict_proba(list(member_probs[:, val])),
                                                          combiner.predict_proba(list(test_probs))))
            names = [member_names[j] for j in cols]
            if label == "weighted" and not suffix:
                out["weighted_weights"] = dict(zip(names, map(float, combiner.weights_), strict=True))
            if label == "stacked" and not suffix:
                out["stacked_slopes"] = dict(zip(names, map(float, combiner.slopes_), strict=True))
    return out


def throughput(classifier: Classifier, records: list, vectors: np.ndarray | None, batch: int = 256) -> float:
    classifier.warm_up()  # as the worker does: tracing is not throughput
    rates = []
    for r in range(3):
        rows = [(r * batch + i) % len(records) for i in range(batch)]
        started = time.perf_counter()
        classifier.categorise_batch([records[i] for i in rows], None if vectors is None else vectors[rows])
        rates.append(batch / (time.perf_counter() - started))
    return float(np.median(rates))


def run_dataset(dataset: str, args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    records, paths = load(dataset, args)
    train_idx, test_idx, taxonomy, support = split_and_taxonomy(paths, depth=args.depth,
                                                                min_support=args.min_support)
    y_true = label_matrix(labels_from_paths(paths, taxonomy), taxonomy)
    rules = generate_rules(taxonomy, support=support)
    y_rule = label_matrix([m.labels for m in rules.apply_many(records)], taxonomy)
    train_records = [records[i] for i in train_idx]
    test = [records[i] for i in test_idx]
    info = {"dataset": dataset_name(dataset), "n_records": len(records), "n_train": len(train_records), "n_test": len(test),
            "taxonomy": taxonomy.describe(), "depth": args.depth, "min_support": args.min_support,
            "rules": len(rules), "rule_coverage_train": float((y_rule[train_idx].sum(1) > 0).mean()),
            "rule_coverage_level2_train": float(
                (y_rule[train_idx][:, [taxonomy.depth(c) >= 2 for c in taxonomy.ids]].sum(1) > 0).mean())}
    # What rule labels cannot teach: categories no rule labels in training have no positive to learn from.
    unlabelled_categories = ~(y_rule[train_idx] > 0.5).any(axis=0)
    info["categories_without_rule_labels"] = int(unlabelled_categories.sum())
    info["test_pairs_in_those"] = float(y_true[test_idx][:, unlabelled_categories].sum() / y_true[test_idx].sum())
    log(f"{dataset}: {info}")
    result: dict[str, Any] = {"info": info, "variants": {}}
    result["rules_vs_truth"] = evaluate(y_true[test_idx] > 0.5, y_rule[test_idx] > 0.5, taxonomy, beta=args.beta)
    log(f"rules vs truth: micro F1 {result['rules_vs_truth']['micro_f1']:.3f}")
    drop = {"category": {"kind": "drop"}, "category_path": {"kind": "drop"}}
    vectors = None
    if args.images and any(r.image_url for r in records):
        vectors = image_vectors(records, ROOT / ".prodcat" / "cache" / "bench" / f"{dataset_name(dataset)}-"
                                                                                 f"{len(records)}.npz")
        info["with_photo"] = int((~np.isnan(vectors[:, 0])).sum())
    else:
        drop["image"] = {"kind": "drop"}
    data = FeatureConfig.default().with_fields(**drop).to_dict()
    towers = [t for t in args.joint.split(",") if t] + (["image_head"] if vectors is not None else [])
    data["members"]["joint"] = {"fields": data["members"]["textcnn"]["fields"] + (["image"] if vectors is not None
                                                                                     else []),
                                "params": {"towers": towers}}
    config = FeatureConfig.from_dict(data, source="benchmarks/models.py")
    members = [m for m in args.members.split(",") if m]
    train_vectors = None if vectors is None else vectors[train_idx]
    test_vectors = None if vectors is None else vectors[test_idx]
    variants: list[tuple[str, np.ndarray, LabelWeighting, str, np.ndarray | None]] = []
    specs = [spec for spec in args.variants.split(",") if spec]
    if {"weak", "self"} & set(specs):  # the no-human-label sources, on the training products only
        weak, result["weak_labels"] = weak_variant(train_records, rules, taxonomy, y_true[train_idx],
                                                   y_rule[train_idx], threads=args.threads, log=log)
    for spec in specs:
        # "rules" | "weak" | "self" | "truth" | "pu:<unlabelled weight>[:labelled]" (PU weighting, tuned on
        # labelled rows)
        kind, *rest = spec.split(":")
        if kind == "truth":
            variants.append(("truth (ceiling)", y_true, LabelWeighting(), "all", None))
        elif kind == "rules":
            variants.append(("rules", y_rule, LabelWeighting(), "all", None))
        elif kind in ("weak", "self"):
            label_sets, weights = weak.label_sets, weak.weights
            if kind == "self":
                views = [v.split("+") for v in args.self_views.split("|") if v]
                views = [v for v in views if "image_head" not in v or vectors is not None]
                text_config = config.with_fields(image={"kind": "drop"})
                label_sets, weights, result["self_training"] = self_trained_variant(
                    train_records, weak, taxonomy, y_true[train_idx], views=views, config=config,
                    text_config=text_config, image_vectors=train_vectors, test=test, test_vectors=test_vectors,
                    y_test=y_true[test_idx], rounds=args.self_rounds, min_probability=args.self_min_probability,
                    beta=args.beta, log=log)
            y = np.zeros_like(y_true)
            y[train_idx] = taxonomy.to_matrix(label_sets)
            full = np.ones_like(y_true)
            full[train_idx] = weights
            variants.append(("weak labels" if kind == "weak" else "weak labels + self-training", y, LabelWeighting(),
                             "all", full))
        else:
            tune = "labelled" if rest[1:] == ["labelled"] else "all"
            variants.append((f"rules+pu{rest[0]}" + ("+tune-labelled" if tune == "labelled" else ""), y_rule,
                             LabelWeighting(pu_correction=True, unlabelled_weight=float(rest[0])), tune, None))
    for label, y, weighting, tune_on, entry_weights in variants:
        def train(names: list[str], combiner: str = "stacked", label: str = label, y: np.ndarray = y,
                  weighting: LabelWeighting = weighting, tune_on: str = tune_on,
                  entry_weights: np.ndarray | None = entry_weights) -> Classifier:
            return train_ensemble(
                train_records, taxonomy.from_matrix(y[train_idx]), taxonomy, config=config, members=names,
                combiner=combiner, beta=args.beta, folds=args.folds, weighting=weighting, tune_on=tune_on,
                keep_oof=True, image_vectors=train_vectors,
                sample_weight=None if entry_weights is None else entry_weights[train_idx],
                on_progress=lambda stage, done, total: log(f"  {label}: {stage} ({done}/{total})"))

        t0 = time.perf_counter()
        classifier = train(members)
        train_s = time.perf_counter() - t0
        _, member_test = classifier.predict_proba(test, test_vectors)
        joint = None
        if towers:
            t1 = time.perf_counter()
            joint_model = train(["joint"], combiner="mean")
            assert np.array_equal(joint_model.oof_.val_idx, classifier.oof_.val_idx)  # the same protocol split
            joint = (joint_model.oof_.member_probs[0], joint_model.predict_proba(test, test_vectors)[1][0])
            joint_s = time.perf_counter() - t1
        scores = score_all(classifier.oof_, list(classifier.members), member_test, y_rule[test_idx],
                           y_true[test_idx], taxonomy, args.beta, joint)
        if joint is not None:
            scores["joint_train_seconds"], scores["joint_towers"] = round(joint_s, 1), towers
        served = classifier.decide(test, test_vectors)
        hybrid = served | (y_rule[test_idx] > 0.5)  # the rules' labels plus the model's
        scores["rules ∪ served"] = {"vs_rules": evaluate(y_rule[test_idx] > 0.5, hybrid, taxonomy, beta=args.beta),
                                    "vs_truth": evaluate(y_true[test_idx] > 0.5, hybrid, taxonomy, beta=args.beta)}
        scores["served"] = {"vs_rules": evaluate(y_rule[test_idx] > 0.5, served, taxonomy, beta=args.beta),
                            "vs_truth": evaluate(y_true[test_idx] > 0.5, served, taxonomy, beta=args.beta)}
        scores["train_seconds"] = round(train_s, 1)
        scores["throughput_per_s"] = round(throughput(classifier, test, test_vectors), 1)
        result["variants"][label] = scores
        log(f"{label}: stacked vs truth micro F1 {scores['ensemble:stacked']['vs_truth']['micro_f1']:.3f} "
            f"(served {scores['served']['vs_truth']['micro_f1']:.3f}), train {train_s:.0f}s, "
            f"{scores['throughput_per_s']}/s")
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["command"] = "benchmarks/models.py " + shlex.join(sys.argv[1:])
    result["commit"] = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                      text=True).stdout.strip() or "unknown"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--dataset", default="flipkart",
                        help=f"comma-separated: {', '.join(DATASETS)} (under --datasets) or catalogue files")
    parser.add_argument("--preset", default="auto", help="format of a catalogue file given as --dataset")
    parser.add_argument("--columns", default=None, help="which column holds which field (as prodcat --columns)")
    parser.add_argument("--mapping", type=Path, default=None, help="a column mapping file (as prodcat --mapping)")
    parser.add_argument("--no-header", action="store_true", help="the CSV's first row is a product")
    parser.add_argument("--limit", type=int, default=None, help="subsample this many products per dataset")
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--min-support", type=int, default=30)
    parser.add_argument("--members", default="logreg,mlp,wide_deep,textcnn,gru")
    parser.add_argument("--joint", default="mlp,textcnn",
                        help="towers of the jointly trained model compared with the ensemble ('' = none); "
                             "image_head is added with --images")
    parser.add_argument("--images", action="store_true",
                        help="photos -> EfficientNet-Lite0 vectors -> image_head member (datasets with photos)")
    parser.add_argument("--variants", default="rules,pu:0.1,truth",
                        help="comma-separated: rules | weak | self | truth | pu:<unlabelled weight>[:labelled]")
    parser.add_argument("--self-views", default="logreg|image_head",
                        help="self-training's teacher views: member lists joined by '+', views by '|' (image_head "
                             "only where there are photos)")
    parser.add_argument("--self-rounds", type=int, default=2)
    parser.add_argument("--self-min-probability", type=float, default=0.9)
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime threads for the MiniLM encoder")
    parser.add_argument("--merge", type=Path, default=None, help="add the variants of an earlier models.json")
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--beta", type=float, default=0.5)
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for models.md/json/png (default: a new temporary folder; the committed report: "
                             "benchmarks/results)")
    parser.add_argument("--report-only", action="store_true", help="rewrite models.md/png from --out's models.json")
    args = parser.parse_args()
    if args.report_only and args.out is None:
        parser.error("--report-only rewrites the report in --out DIR; pass --out")
    args.out = args.out or Path(tempfile.mkdtemp(prefix="prodcat-models-"))
    if args.report_only:
        results = json.loads((args.out / "models.json").read_text())
        (args.out / "models.md").write_text(report(results, args))
        plot(results, args.out / "models.png")
        return
    # datasets run earlier stay in the report; the ones run now replace theirs
    results = json.loads((args.out / "models.json").read_text()) if (args.out / "models.json").is_file() else {}
    for dataset in args.dataset.split(","):
        name = dataset_name(dataset)
        results[name] = run_dataset(dataset, args)
        if args.merge and args.merge.is_file():
            earlier = json.loads(args.merge.read_text()).get(name)
            if earlier:
                results[name]["variants"] = {**earlier["variants"], **results[name]["variants"]}
                results[name]["seconds"] += earlier["seconds"]
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "models.json").write_text(json.dumps(results, indent=1))
        (args.out / "models.md").write_text(report(results, args))
        plot(results, args.out / "models.png")
    log(f"wrote {args.out / 'models.md'}")


if __name__ == "__main__":
    try:
        main()
    except ProdcatError as exc:  # a catalogue or mapping mistake: one line, as the prodcat command prints it
        raise SystemExit(f"error: {' '.join(str(exc).split())}") from None
