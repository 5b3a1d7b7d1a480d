"""Which categoriser a worker or the retrain service runs: the legacy rules, or an announced model."""

from __future__ import annotations

from pathlib import Path

from prodcat.categoriser import Categoriser
from prodcat.errors import ConfigError
from prodcat.rules import RuleCategoriser, RuleSet
from prodcat.taxonomy import Taxonomy
from runtime.model_updates import Announcement

DATA = Path(__file__).resolve().parents[1] / "prodcat" / "data"


def load_rules(rules_path: Path, taxonomy_path: Path, version: str | None = None) -> RuleCategoriser:
    """The legacy rules as a categoriser."""
    taxonomy = Taxonomy.from_json(Path(taxonomy_path).read_text())
    return RuleCategoriser(RuleSet.load(rules_path, taxonomy), version=version)


def load_announced(announcement: Announcement) -> Categoriser:
    """The categoriser a models.updates announcement points at."""
    if announcement.kind == "rules":
        location = Path(announcement.location)
        return load_rules(location / "rules.yaml", location / "taxonomy.json", announcement.version)
    if announcement.kind == "model":
        from models.artifact import (
            load_classifier,  # TensorFlow/Keras only when a model is announced
        )

        return load_classifier(announcement.location).warm_up()  # traced before it meets a batch
    raise ConfigError(f"unknown model kind {announcement.kind!r} in the announcement of {announcement.version}")
