"""Start a classifier worker: load the categoriser, make sure topics exist, run the Faust app."""

from __future__ import annotations

from pathlib import Path

import faust

from prodcat.rules import RuleCategoriser, RuleSet
from prodcat.settings import Settings
from prodcat.taxonomy import Taxonomy
from streams.app import create_app
from streams.topics import ensure_topics

DATA = Path(__file__).resolve().parents[1] / "prodcat" / "data"


def load_rule_categoriser(settings: Settings) -> tuple[RuleCategoriser, Taxonomy]:
    """The legacy rules (the demo's when no PRODCAT_RULES_PATH / PRODCAT_TAXONOMY_PATH is set)."""
    taxonomy_path = settings.taxonomy_path or DATA / "demo_taxonomy.json"
    rules_path = settings.rules_path or DATA / "demo_rules.yaml"
    taxonomy = Taxonomy.from_json(Path(taxonomy_path).read_text())
    return RuleCategoriser(RuleSet.load(rules_path, taxonomy)), taxonomy


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run until SIGTERM/SIGINT; offsets of unfinished batches are not committed."""
    categoriser, taxonomy = load_rule_categoriser(settings)
    ensure_topics(settings)
    app = create_app(settings, categoriser, taxonomy)
    faust.Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()
