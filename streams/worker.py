"""Start a classifier worker: load the categoriser, make sure topics exist, run the Faust app."""

from __future__ import annotations

from pathlib import Path

import faust

from prodcat.categoriser import Categoriser
from prodcat.errors import ConfigError
from prodcat.rules import RuleCategoriser, RuleSet
from prodcat.settings import Settings
from prodcat.taxonomy import Taxonomy
from streams.app import create_app
from streams.model_updates import Announcement, AnnouncementReader
from streams.topics import ensure_topics

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
    raise ConfigError(f"unknown model kind {announcement.kind!r} in the announcement of {announcement.version}")


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run until SIGTERM/SIGINT; offsets of unfinished batches are not committed."""
    ensure_topics(settings)
    reader = AnnouncementReader(settings)
    promoted = reader.latest()
    reader.close()
    # the promoted model if there is one, else the legacy rules
    categoriser = load_announced(promoted) if promoted else load_rules(
        settings.rules_path or DATA / "demo_rules.yaml", settings.taxonomy_path or DATA / "demo_taxonomy.json")
    app = create_app(settings, categoriser, load_model=load_announced)
    faust.Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()
