"""Command functions for training and using the classifier, registered on the ``prodcat`` app in prodcat/cli.py:

    models_app = typer.Typer(help="The model ensemble.", no_args_is_help=True)
    models_app.command()(train); models_app.command()(evaluate); models_app.command()(predict)
    app.add_typer(models_app, name="models")

Plain functions with Typer ``Annotated`` parameters; every user mistake is raised as a
``ProdcatError`` (one line, non-zero exit through ``prodcat.cli.main``). TensorFlow is imported
inside the functions so ``prodcat --help`` stays quick.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain, islice
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional, cast

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from prodcat.catalogue_options import Catalogue, ColumnsOpt, MappingOpt, NoHeaderOpt, PresetOpt
from prodcat.console import JsonOpt, err, out, print_json, print_json_line, table
from prodcat.errors import ConfigError, DataError, InvalidRecord, ProdcatError
from prodcat.taxonomy import DEFAULT_MAX_DEPTH, DEFAULT_MIN_SUPPORT

if TYPE_CHECKING:
    import numpy as np
    from rich.table import Table

    from models.classifier import Classifier
    from models.config import FeatureConfig
    from models.training import CombinerKind
    from prodcat.record import ProductRecord
    from prodcat.rules import RuleSet
    from prodcat.taxonomy import Taxonomy

__all__ = ["evaluate", "predict", "train"]

LimitOpt = Annotated[Optional[int], typer.Option(min=1, help="Read at most this many products.")]
UseCategoryOpt = Annotated[bool, typer.Option(
    "--use-category/--no-use-category",
    help="Read the feed's category fields as model inputs. Off by default: in the public catalogues the "
         "category path IS the label.")]
PREDICT_BATCH = 256  # products per model call when predicting JSONL, as the worker's PRODCAT_BATCH_SIZE default
METRIC_KEYS = ("micro_precision", "micro_recall", "micro_f1", "macro_f1", "hierarchical_precision",
               "hierarchical_recall", "hierarchical_f1", "coverage")


def _records(catalogue: Catalogue, limit: int | None) -> list[ProductRecord]:
    from prodcat.record import parse_record

    if not catalogue.path.is_file():
        raise ProdcatError(f"catalogue file {catalogue.path} does not exist")
    records, rejected = [], 0
    first_reason = ""
    for raw in islice(catalogue.read(), limit):  # read_catalogue checks the preset and the mapping
        try:
            records.append(parse_record(raw))
        except InvalidRecord as exc:
            rejected += 1  # the stream would dead-letter it; training skips it
            first_reason = first_reason or exc.reason
    if not records:
        why = (f"all {rejected} rejected, the first because {first_reason[:160]}; a catalogue without a header "
               "or with its own column names needs --columns/--mapping (and --no-header)") if rejected else "it is empty"
        raise DataError(f"no usable product in {catalogue.path} ({catalogue.describe()}): {why}")
    return records


def _config(features: Path | None, use_category: bool):
    from models.config import FeatureConfig

    config = FeatureConfig.load(features) if features else FeatureConfig.default()
    if not use_category:
        config = config.with_fields(category={"kind": "drop"}, category_path={"kind": "drop"})
    return config.with_fields(image={"kind": "drop"})  # text only from the CLI (image vectors: the retrain job)


def _labels_file(path: Path, records: list[ProductRecord], taxonomy: Taxonomy) -> list[set[str]]:
    """JSONL lines ``{"id": ..., "categories": [category id or "A > B" path, ...]}``; unknown ids are unlabelled."""
    from prodcat.cleaning import split_category_path

    by_id: dict[str, set[str]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            product, categories = str(row["id"]), row["categories"]
        except (ValueError, KeyError, TypeError):
            raise DataError(f"{path}:{number}: expected a JSON object with 'id' and 'categories', "
                            f"received {line[:80]!r}") from None
        found = set()
        for category in categories:
            cid = category if category in taxonomy else taxonomy.find(split_category_path(str(category)))
            if cid is None:
                raise DataError(f"{path}:{number}: unknown category {category!r}; expected an id or an 'A > B' path "
                                "of the catalogue's taxonomy (check --max-depth/--min-support)")
            found.add(cid)
        by_id.setdefault(product, set()).update(found)
    return [by_id.get(str(r.id), set()) for r in records]


def _metrics_table(title: str, columns: dict[str, dict[str, Any]]) -> Table:
    """One row per metric, one column per model: fits 80 columns (a pipe) for the ensemble and its members."""
    shown = table("metric", *columns, title=title)
    for key in METRIC_KEYS:
        shown.add_row(key.replace("_", " "), *[f"{m[key]:.3f}" for m in columns.values()])
    return shown


def _holdout_split(records: list[ProductRecord], fraction: float | None, folds: int,
                   catalogue: Path) -> tuple[list[ProductRecord], list[ProductRecord]]:
    """Seeded (reproducible) training and held-out products; all train without ``--holdout``."""
    from prodcat.catalogue import true_category_path

    if fraction is None:
        return records, []
    n, held = len(records), round(len(records) * fraction)
    if held < 1 or n - held < folds * 2:
        raise DataError(f"--holdout {fraction:g} of {n} products leaves {held} held out and {n - held} to train on; "
                        f"expected at least 1 and {folds * 2}: use a bigger catalogue or another fraction")
    order = random.Random(0).sample(range(n), n)
    training, held_out = [records[i] for i in sorted(order[held:])], [records[i] for i in sorted(order[:held])]
    if not any(true_category_path(r) for r in held_out):
        raise DataError(f"--holdout scores against the catalogue's own category paths, and none of the {held} "
                        f"held-out products of {catalogue} has one; leave --holdout out or map the category column")
    return training, held_out


def _held_out_scores(held_out: list[ProductRecord], classifier: Classifier,
                     ruleset: RuleSet | None) -> dict[str, dict[str, Any]]:
    """The model (and the rules it learnt from, if any) on held-out products vs the catalogue's own categories."""
    from models.labels import label_matrix, labels_from_paths
    from models.metrics import evaluate as score
    from prodcat.catalogue import true_category_path

    taxonomy = classifier.taxonomy
    scored = [r for r in held_out if true_category_path(r)]
    truth = label_matrix(labels_from_paths([true_category_path(r) for r in scored], taxonomy), taxonomy) > 0.5
    scores = {"model": score(truth, classifier.decide(scored), taxonomy)}
    if ruleset is not None:
        fired = label_matrix([m.labels for m in ruleset.apply_many(scored)], taxonomy) > 0.5
        scores["rules"] = score(truth, fired, taxonomy)
    return scores


def _weak(records: list[ProductRecord], ruleset: RuleSet, taxonomy: Taxonomy,
          rule_sets: list[set[str]]) -> tuple[list[set[str]], np.ndarray]:
    """Label sets and per-entry weights from the rules and the semantic matcher (``--labels weak``)."""
    from embedder.backends.minilm import MiniLMEncoder
    from models.semantic import SemanticMatcher
    from models.weak_labels import weak_labels

    err.print(f"matching {len(records)} titles to {len(taxonomy)} categories with {MiniLMEncoder.__name__}")
    # the title only: a catalogue's category field is its truth, and the matcher was measured on titles
    weak = weak_labels(records, ruleset, taxonomy, matcher=SemanticMatcher(MiniLMEncoder(), fields=("title",)))
    by_rules = {c for s in rule_sets for c in s}
    beyond = {c for s in weak.label_sets for c in s} - by_rules
    err.print(f"weak labels: {len(weak.sources)} sources; {len(beyond)} categories no rule labels get labels; "
              f"{len(taxonomy) - len(by_rules | beyond)} categories get none")
    return weak.label_sets, weak.weights


def _self_trained(records: list[ProductRecord], label_sets: list[set[str]], weights: np.ndarray | None,
                  taxonomy: Taxonomy, config: FeatureConfig, rounds: int,
                  folds: int) -> tuple[list[set[str]], np.ndarray, list[dict[str, int]]]:
    """``--self-training ROUNDS``: a logreg teacher's confident out-of-fold pairs join the labels, round by round."""
    import numpy as np

    from models.self_training import self_train
    from models.training import train_ensemble

    def fit(sets: list[set[str]], w: np.ndarray, members: Sequence[str]) -> Classifier:
        return train_ensemble(records, sets, taxonomy, config=config, members=members, folds=folds,
                              sample_weight=w, keep_oof=True)

    start = np.ones((len(records), len(taxonomy)), np.float32) if weights is None else weights
    result = self_train(label_sets, start, taxonomy, fit, views=[["logreg"]], rounds=rounds,
                        on_round=lambda r, _: err.print(f"self-training round {r.round}: {r.added_pairs} pairs "
                                                        f"added on {r.added_products} products"))
    added = [{"round": r.round, "added_pairs": r.added_pairs, "added_products": r.added_products} for r in result.rounds]
    return result.label_sets, result.weights, added


def _taxonomy(taxonomy_file: Path | None, paths: list[list[str]], max_depth: int, min_support: int,
              catalogue: Path) -> tuple[Taxonomy, dict[str, int], str]:
    """The tree to learn (``--taxonomy`` or the catalogue's, cut), its support and what it is, in words."""
    from models.labels import labels_from_paths
    from prodcat.taxonomy import Taxonomy

    if taxonomy_file is not None:
        try:
            taxonomy = Taxonomy.from_json(taxonomy_file.read_bytes())
        except DataError as exc:
            raise DataError(f"--taxonomy: {taxonomy_file}: {exc}; pass the taxonomy JSON `rules generate` wrote") from None
        if len(taxonomy) == 0:
            raise DataError(f"--taxonomy: {taxonomy_file} holds no category; pass a taxonomy JSON with categories")
        return taxonomy, taxonomy.support(labels_from_paths(paths, taxonomy)), f"the taxonomy of {taxonomy_file}"
    taxonomy, support = Taxonomy.from_catalogue(paths, max_depth=max_depth, min_support=min_support)
    if len(taxonomy) == 0:
        raise DataError(f"no category of {catalogue} has {min_support} products; lower --min-support")
    return taxonomy, support, f"the catalogue's tree cut at depth {max_depth} and {min_support} products"


def _training_labels(labels: str, rules: Path | None, records: list[ProductRecord], taxonomy: Taxonomy,
                     support: dict[str, int], tree: str,
                     ) -> tuple[list[set[str]], np.ndarray | None, RuleSet | None, str]:
    """What ``--labels`` (and ``--rules``) train on: label sets, per-entry weights or None, the rules that
    labelled (None for truth or a file) and what that is, in words, for the tables."""
    from models.labels import labels_from_paths
    from prodcat.catalogue import true_category_path
    from prodcat.rules import RuleSet, generate_rules

    if labels == "truth":
        return labels_from_paths([true_category_path(r) for r in records], taxonomy), None, None, \
            "the catalogue's own categories"
    if labels not in ("rules", "weak"):
        return _labels_file(Path(labels), records, taxonomy), None, None, f"the labels of {labels}"
    if rules is not None:
        try:
            ruleset = RuleSet.load(rules, taxonomy)
        except DataError as exc:
            raise DataError(f"{exc}; the rules resolve in {tree}: pass the --taxonomy file written with them, "
                            "or the --max-depth/--min-support they were generated with") from None
        rules_from = f"the rules in {rules}"
    else:
        ruleset = generate_rules(taxonomy, support=support)
        rules_from = "rules generated from the category names"
    label_sets = [m.labels for m in ruleset.apply_many(records)]
    if labels == "rules":
        return label_sets, None, ruleset, f"the labels of {rules_from}"
    weak_sets, weights = _weak(records, ruleset, taxonomy, label_sets)
    return weak_sets, weights, ruleset, f"the label model over {rules_from} and the semantic matcher"


def train(
    catalogue: Annotated[Path, typer.Argument(
        help="Catalogue file, e.g. ../shared/datasets/flipkart/products_20k_name_tree.csv.")],
    preset: PresetOpt = "auto",
    columns: ColumnsOpt = None,
    mapping: MappingOpt = None,
    no_header: NoHeaderOpt = False,
    labels: Annotated[str, typer.Option(help="'rules' (the rules label the products), 'weak' (the rules and a "
                                             "sentence encoder's category matches, weighed by a label model: reaches "
                                             "categories no rule labels), 'truth' (the catalogue's own category "
                                             "paths) or a JSONL file of {id, categories}.")] = "rules",
    rules: Annotated[Optional[Path], typer.Option(
        "--rules", help="Rules YAML to label with (with --labels rules or weak), e.g. written by `rules generate` and "
                        "edited; default: rules generated from the taxonomy's names.")] = None,
    taxonomy_file: Annotated[Optional[Path], typer.Option(
        "--taxonomy", help="Taxonomy JSON to learn, e.g. written by `rules generate`; default: the tree of the "
                           "catalogue's category paths, cut by --max-depth and --min-support.")] = None,
    holdout: Annotated[Optional[float], typer.Option(
        help="Hold out this fraction of the products (seeded) and score the model on them against the catalogue's "
             "own categories, beside the rules it learnt from.")] = None,
    registry: Annotated[Optional[Path], typer.Option(help="Model registry folder (default: <state_dir>/models).")] = None,
    max_depth: Annotated[int, typer.Option(min=1, help="Cut category paths at this depth.")] = DEFAULT_MAX_DEPTH,
    min_support: Annotated[int, typer.Option(min=1, help="Drop categories with fewer products.")] = DEFAULT_MIN_SUPPORT,
    members: Annotated[str, typer.Option(help="Comma-separated members: logreg, mlp, wide_deep, textcnn, gru.")] =
        "logreg,mlp,wide_deep,textcnn",
    combiner: Annotated[str, typer.Option(help="stacked, weighted or mean.")] = "stacked",
    folds: Annotated[int, typer.Option(min=2, max=10, help="Out-of-fold folds.")] = 3,
    pu: Annotated[Optional[float], typer.Option(min=0.0, max=1.0, help="PU correction: weight of unlabelled zeros "
                                                                        "(rule labels only), e.g. 0.1.")] = None,
    tune_on_labelled: Annotated[bool, typer.Option(
        "--tune-on-labelled", help="Fit the combiner and thresholds only on labelled products (rule labels: "
                                   "a product no rule fired on is not a negative).")] = False,
    self_training: Annotated[int, typer.Option(
        "--self-training", min=0, max=10, help="Rounds of self-training before the final fit: a logreg teacher's "
                                               "confident predictions (>= 0.9, out-of-fold) on pairs without a label "
                                               "become labels.")] = 0,
    limit: LimitOpt = None,
    features: Annotated[Optional[Path], typer.Option(help="Feature config YAML (default: models/features.yaml).")] = None,
    use_category: UseCategoryOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Train the ensemble on a catalogue and register it; prints the version and its scores, saying against what."""
    if combiner not in ("stacked", "weighted", "mean"):
        raise ConfigError(f"--combiner: expected stacked, weighted or mean, received {combiner!r}")
    labels_path = Path(labels) if labels not in ("rules", "weak", "truth") else None
    if labels_path is not None and not labels_path.is_file():
        raise ConfigError(f"--labels: expected 'rules', 'weak', 'truth' or an existing JSONL file, received {labels!r}")
    if rules is not None and labels not in ("rules", "weak"):
        raise ConfigError(f"--rules labels the products, so it goes with --labels rules (the default) or weak; "
                          f"received --labels {labels}")
    if holdout is not None and not 0 < holdout <= 0.9:
        raise ConfigError(f"--holdout: expected a fraction of the products above 0 and at most 0.9, received {holdout:g}")
    for option, given in (("--rules", rules), ("--taxonomy", taxonomy_file)):
        if given is not None and not given.is_file():
            raise ConfigError(f"{option}: file {given} does not exist")
    names = [m.strip() for m in members.split(",") if m.strip()]
    started = time.monotonic()
    source = Catalogue.from_options(catalogue, preset, columns, mapping, no_header=no_header)
    # a missing or empty catalogue, or one that cannot be held out, fails before TensorFlow loads
    records, held_out = _holdout_split(_records(source, limit), holdout, folds, catalogue)
    from models.labels import LabelWeighting
    from models.members import MEMBERS
    from models.registry import ModelRegistry
    from models.training import train_ensemble
    from prodcat.catalogue import true_category_path
    from prodcat.settings import Settings

    unknown = [m for m in names if m not in MEMBERS or m == "image_head"]
    if unknown or not names:
        raise ConfigError(f"--members: expected some of logreg, mlp, wide_deep, textcnn, gru, received {members!r}")
    config = _config(features, use_category)
    paths = [true_category_path(r) for r in records]
    taxonomy, support, tree = _taxonomy(taxonomy_file, paths, max_depth, min_support, catalogue)
    label_sets, sample_weight, ruleset, against = _training_labels(labels, rules, records, taxonomy, support, tree)
    labelled = sum(bool(s) for s in label_sets)
    if labelled < folds * 2:
        raise DataError(f"only {labelled} of {len(records)} products have a label; label more or change --labels")
    rounds: list[dict[str, int]] = []
    if self_training:
        label_sets, sample_weight, rounds = _self_trained(records, label_sets, sample_weight, taxonomy, config, self_training,
                                                  folds)
        against += f", then {self_training} rounds of self-training"
    weighting = LabelWeighting(pu_correction=pu is not None, unlabelled_weight=pu if pu is not None else 0.2)
    err.print(f"{len(records)} products, {len(taxonomy)} categories, {labelled} labelled ({labels})"
              + (f", {len(held_out)} held out" if held_out else ""))
    with Progress(TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[note]}"),
                  TimeElapsedColumn(), console=err, transient=True) as progress:
        task = progress.add_task("train", total=None, note="")
        classifier = train_ensemble(
            records, label_sets, taxonomy, config=config, members=names, combiner=cast("CombinerKind", combiner),
            folds=folds, weighting=weighting, tune_on="labelled" if tune_on_labelled else "all",
            sample_weight=sample_weight,
            on_progress=lambda stage, done, total: progress.update(task, completed=done, total=total, note=stage))
    held_out_scores = _held_out_scores(held_out, classifier, ruleset) if held_out else None
    root = registry or Settings().state_dir / "models"
    store = ModelRegistry(root)
    version = store.register(classifier)
    validation = {"ensemble": classifier.metrics["validation"], **classifier.metrics["validation_members"]}
    seconds = time.monotonic() - started
    if as_json:
        print_json({"version": version, "path": str(store.path(version)), "seconds": round(seconds, 1),
                    "products": len(records), "categories": len(taxonomy), "labelled": labelled,
                    "validation": {"against": against, "scores": validation},
                    **({"self_training": rounds} if self_training else {}),
                    **({"holdout": {"products": len(held_out), "against": "the catalogue's own categories",
                                    "ids": [r.id for r in held_out], "scores": held_out_scores}}
                       if held_out_scores is not None else {})})
        return
    out.print(_metrics_table(f"out-of-fold validation on {len(records)} products, vs {against}", validation))
    if held_out_scores is not None:
        scored = held_out_scores["model"]["n_products"]
        out.print(_metrics_table(f"{scored} held-out products, vs the catalogue's own categories", held_out_scores))
    out.print(f"registered [bold]{version}[/bold] at {store.path(version)} in {seconds:.0f}s")


def _check_model_dir(model_dir: Path) -> None:
    """A registered version's folder, checked without TensorFlow (seconds)."""
    if not model_dir.is_dir():
        raise ProdcatError(f"model directory {model_dir} does not exist; pass a registered version's folder")
    if not (model_dir / "manifest.json").is_file():
        raise DataError(f"{model_dir} is not a model directory (no manifest.json); pass a registered version's "
                        "folder, e.g. <state_dir>/models/<version>")


def _load(model_dir: Path) -> Classifier:
    _check_model_dir(model_dir)  # before TensorFlow is imported
    from models.artifact import load_classifier  # TensorFlow/Keras: only once there is a model to load

    try:
        return load_classifier(model_dir)
    except OSError as exc:  # a file of the artifact missing or unreadable
        raise DataError(f"model directory {model_dir} is incomplete: cannot read {exc.filename or exc} "
                        f"({exc.strerror or type(exc).__name__}); pass a complete registered version") from None


def evaluate(
    model_dir: Annotated[Path, typer.Argument(help="A registered model's folder.")],
    catalogue: Annotated[Path, typer.Argument(help="Catalogue with true category paths.")],
    preset: PresetOpt = "auto",
    columns: ColumnsOpt = None,
    mapping: MappingOpt = None,
    no_header: NoHeaderOpt = False,
    limit: LimitOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Score a model against a catalogue's own category paths (mapped onto the model's taxonomy)."""
    from models.labels import label_matrix, labels_from_paths
    from models.metrics import evaluate as score
    from prodcat.catalogue import true_category_path

    source = Catalogue.from_options(catalogue, preset, columns, mapping, no_header=no_header)
    _check_model_dir(model_dir)
    records = _records(source, limit)  # a catalogue that does not fit its mapping fails before TensorFlow loads
    classifier = _load(model_dir)
    y = label_matrix(labels_from_paths([true_category_path(r) for r in records], classifier.taxonomy),
                     classifier.taxonomy)
    started = time.monotonic()
    decided = classifier.decide(records)
    seconds = time.monotonic() - started
    metrics = score(y > 0.5, decided, classifier.taxonomy)
    per_second = len(records) / max(seconds, 1e-9)
    if as_json:
        print_json({"version": classifier.version, "catalogue": str(catalogue), "products": len(records),
                    "products_per_s": round(per_second, 1), "metrics": metrics})
        return
    out.print(_metrics_table(f"{classifier.version} on {len(records)} products of {catalogue.name}",
                             {"vs truth": metrics}))
    levels = ", ".join(f"level {k[9:]}: {v:.3f}" for k, v in metrics.items() if k.startswith("f1_level_"))
    out.print(f"per-level F1: {levels}; {per_second:.0f} products/s")


def _prediction(record: ProductRecord, result: Any, classifier: Classifier) -> dict[str, Any]:
    """One product's decision as JSON: categories with score and the tokens behind them, all scores, uncertainty."""
    return {"id": record.id, "version": classifier.version, "categories": [
        {"id": c, "path": classifier.taxonomy.path_str(c), "score": result.scores.get(c, 0.0),
         "because_of": list(result.explanation.get(c, []))} for c in result.categories],
        "scores": {classifier.taxonomy.path_str(c): s for c, s in result.scores.items()},
        "uncertainty": result.uncertainty, "disagreement": result.disagreement}


def _parsed_batches(lines: Iterable[bytes | str], source: str, size: int = PREDICT_BATCH) -> Iterator[list[ProductRecord]]:
    """JSONL lines as batches of records; a line prodcat cannot read is a one-line error naming it."""
    from prodcat.record import parse_record

    batch: list[ProductRecord] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            batch.append(parse_record(line))
        except InvalidRecord as exc:
            raise DataError(f"{source}:{number}: {exc.reason}; expected one JSON product object per line") from None
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _predict_jsonl(model_dir: Path, lines: Iterable[bytes | str], source: str) -> None:
    """JSONL in, JSONL out: one prediction line per product line, written batch by batch."""
    _check_model_dir(model_dir)  # before reading a long input
    batches = _parsed_batches(lines, source)
    first = next(batches, None)  # an empty input fails before TensorFlow loads
    if first is None:
        raise DataError(f"no product in {source}; expected one JSON product object per line")
    classifier = _load(model_dir)
    for batch in chain([first], batches):
        for record, result in zip(batch, classifier.categorise_batch(batch), strict=True):
            print_json_line(_prediction(record, result, classifier))
        sys.stdout.flush()


def predict(
    model_dir: Annotated[Path, typer.Argument(help="A registered model's folder.")],
    json_product: Annotated[Optional[str], typer.Argument(
        help="One product as JSON text or a .json file; a .jsonl file, '-' or nothing: JSONL (one product per "
             "line, from the file or stdin), answered with one JSON line per product.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Categorise products and print categories, scores, the tokens behind them and the uncertainty."""
    from prodcat.record import parse_record

    if json_product is None or json_product == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise ConfigError("expected a product as JSON text, a .json/.jsonl file, or JSONL on stdin "
                              "(e.g. prodcat predict MODEL_DIR < products.jsonl); stdin is a terminal")
        # bytes, so parse_record judges the encoding (a non-UTF-8 line is its error, not a decoding crash)
        _predict_jsonl(model_dir, getattr(sys.stdin, "buffer", sys.stdin), "stdin")
        return
    text = json_product
    if not text.lstrip().startswith("{"):
        path = Path(text)
        if not path.is_file():
            raise ProdcatError(f"expected a JSON object, a .json/.jsonl file or '-' (stdin), received {text[:60]!r}")
        if path.suffix.lower() in (".jsonl", ".ndjson"):
            with path.open("rb") as lines:
                _predict_jsonl(model_dir, lines, str(path))
            return
        text = path.read_text(encoding="utf-8")
    record = parse_record(text)  # InvalidRecord (a ProdcatError) says what is wrong
    classifier = _load(model_dir)
    result = classifier.categorise_batch([record])[0]
    if as_json:
        print_json(_prediction(record, result, classifier))
        return
    shown = table("category", "score", "because of", title=f"{record.title or record.id} ({classifier.version})")
    for category in result.categories:
        shown.add_row(classifier.taxonomy.path_str(category), f"{result.scores.get(category, 0.0):.3f}",
                      ", ".join(result.explanation.get(category, [])))
    if not result.categories:
        shown.add_row("[dim](no category above its threshold)[/dim]", "", "")
    out.print(shown)
    others = [f"{classifier.taxonomy.path_str(c)} {s:.3f}" for c, s in result.scores.items()
              if c not in result.categories]
    out.print(f"uncertainty {result.uncertainty:.3f}, disagreement {result.disagreement or 0.0:.3f}; "
              f"next: {'; '.join(others) or '-'}", highlight=False)
