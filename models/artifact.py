"""A trained :class:`~models.classifier.Classifier` as a versioned directory, written atomically.

Layout::

    <version>/
      manifest.json     format, version, member order, created, training settings
      config.yaml       the feature config (also inside featuriser/)
      featuriser/       Featuriser.save
      members/<name>/   Member.save, one per member
      taxonomy.json     Taxonomy.to_json
      thresholds.json   Thresholds.save
      combiner.json     Ensemble.save
      metrics.json      validation (and any test) metrics
      MODEL_CARD.md     what it is, how it was trained, how well it did

:func:`save_classifier` writes into a temporary sibling directory and renames it into place, so
a reader (a worker hot-swapping on an announcement) never sees a half-written model.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from models.classifier import Classifier
from models.ensemble import load_ensemble
from models.errors import DataError
from models.featuriser import Featuriser
from models.members import load_member
from models.thresholds import Thresholds
from prodcat.taxonomy import Taxonomy

__all__ = ["FORMAT", "load_classifier", "save_classifier"]

FORMAT = "prodcat.classifier/1"
_HEADLINE = ("micro_precision", "micro_recall", "micro_f1", "macro_f1", "hierarchical_f1", "coverage")


def _model_card(classifier: Classifier, metrics: dict[str, Any]) -> str:
    training = classifier.training
    lines = [f"# Model {classifier.version}", "",
             f"Multi-label product categoriser: {len(classifier.members)} members "
             f"({', '.join(classifier.members)}) combined by a {classifier.combiner.kind} ensemble, "
             f"per-category thresholds tuned for F{classifier.thresholds.beta:g} (precision first).", "",
             f"- categories: {len(classifier.taxonomy)} ({classifier.taxonomy.describe()})",
             f"- trained on {training.get('n_records', '?')} records "
             f"({training.get('labelled_share', float('nan')):.0%} with a label), "
             f"{training.get('folds', '?')}-fold out-of-fold stacking, {training.get('seconds', '?')} s",
             f"- label weighting: {training.get('weighting')}", "",
             "## Metrics", "", "| split | " + " | ".join(_HEADLINE) + " |", "|---" * (len(_HEADLINE) + 1) + "|"]
    for split, values in metrics.items():
        if isinstance(values, dict) and all(k in values for k in _HEADLINE):
            lines.append(f"| {split} | " + " | ".join(f"{values[k]:.3f}" for k in _HEADLINE) + " |")
    lines += ["", "`validation` = held-out share of the out-of-fold predictions (thresholds were tuned on it, "
              "so it is optimistic). Inputs: see config.yaml; the category fields must not carry the label."]
    return "\n".join(lines) + "\n"


def save_classifier(classifier: Classifier, directory: str | Path, *, metrics: dict[str, Any] | None = None) -> Path:
    """Write ``classifier`` to ``directory`` (which must not exist yet); returns the directory."""
    directory = Path(directory)
    if directory.exists():
        raise DataError(f"model directory {directory} already exists; pick a new directory or version")
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.parent / f".{directory.name}.tmp-{uuid.uuid4().hex[:8]}"
    all_metrics = {**classifier.metrics, **(metrics or {})}
    try:
        tmp.mkdir()
        classifier.featuriser.save(tmp / "featuriser")
        (tmp / "config.yaml").write_text(classifier.featuriser.config.to_yaml(), encoding="utf-8")
        for name, member in classifier.members.items():
            member.save(tmp / "members" / name)
        (tmp / "taxonomy.json").write_text(classifier.taxonomy.to_json(), encoding="utf-8")
        classifier.thresholds.save(tmp / "thresholds.json")
        classifier.combiner.save(tmp / "combiner.json")
        (tmp / "metrics.json").write_text(json.dumps(all_metrics, indent=1), encoding="utf-8")
        manifest = {"format": FORMAT, "version": classifier.version, "members": list(classifier.members),
                    "combiner": classifier.combiner.kind, "created": datetime.now(timezone.utc).isoformat(),
                    "training": classifier.training, "explain_tokens": classifier.explain_tokens,
                    "n_extra_scores": classifier.n_extra_scores}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        (tmp / "MODEL_CARD.md").write_text(_model_card(classifier, all_metrics), encoding="utf-8")
        os.rename(tmp, directory)  # atomic on one filesystem; fails if directory appeared meanwhile
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    classifier.metrics = all_metrics
    return directory


def load_classifier(location: str | Path) -> Classifier:
    """Rebuild a classifier from a directory written by :func:`save_classifier`."""
    directory = Path(location)
    manifest_path = directory / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {manifest_path}: {exc}; pass a model directory written by "
                        "save_classifier (or a registry version's path)") from None
    if manifest.get("format") != FORMAT:
        raise DataError(f"Expected a model directory of format {FORMAT!r}. Received: {manifest.get('format')!r} "
                        f"in {manifest_path}")
    try:
        metrics = json.loads((directory / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        metrics = {}
    return Classifier(
        featuriser=Featuriser.load(directory / "featuriser"),
        members={name: load_member(directory / "members" / name) for name in manifest["members"]},
        combiner=load_ensemble(directory / "combiner.json"),
        thresholds=Thresholds.load(directory / "thresholds.json"),
        taxonomy=Taxonomy.from_json((directory / "taxonomy.json").read_text(encoding="utf-8")),
        version=manifest["version"],
        metrics=metrics,
        training=manifest.get("training", {}),
        explain_tokens=int(manifest.get("explain_tokens", 3)),
        n_extra_scores=int(manifest.get("n_extra_scores", 3)),
    )
