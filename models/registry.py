"""A folder of model artifacts, one sub-directory per version.

Promotion is not done here: the retrain job registers a model, then announces it with
``runtime.model_updates.announce(settings, Announcement(version, location=str(registry.path(version)),
kind="model"))`` and every worker loads it with :func:`models.artifact.load_classifier`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from models.artifact import load_classifier, save_classifier
from models.classifier import Classifier
from prodcat.errors import NotFound

__all__ = ["ModelRegistry"]


class ModelRegistry:
    """Versioned classifiers under ``root`` (``root/<version>/``)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"ModelRegistry({str(self.root)!r})"

    def register(self, classifier: Classifier, metrics: dict[str, Any] | None = None) -> str:
        """Save ``classifier`` under its version (atomically); returns the version."""
        save_classifier(classifier, self.root / classifier.version, metrics=metrics)
        return classifier.version

    def versions(self) -> list[str]:
        """Registered versions, oldest first (version ids start with a UTC timestamp)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and (p / "manifest.json").is_file())

    def latest(self) -> str | None:
        versions = self.versions()
        return versions[-1] if versions else None

    def path(self, version: str) -> Path:
        """The artifact directory of ``version``; :class:`NotFound` if it is not registered."""
        path = self.root / version
        if "/" in version or version.startswith(".") or not (path / "manifest.json").is_file():
            raise NotFound(f"no model version {version!r} in {self.root}; expected one of {self.versions()[-5:]}")
        return path

    def load(self, version: str) -> Classifier:
        return load_classifier(self.path(version))

    def metrics(self, version: str) -> dict[str, Any]:
        return json.loads((self.path(version) / "metrics.json").read_text(encoding="utf-8"))
