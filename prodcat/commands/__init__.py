"""The commands of each package (models, embedder, retrain) for the ``prodcat`` CLI: the top floor.

Kept beside ``prodcat.cli`` rather than in their packages, so no package below imports the CLI.
"""
