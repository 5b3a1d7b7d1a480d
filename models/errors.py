"""Errors of the models package; all derive from :class:`prodcat.errors.ProdcatError`."""

from prodcat.errors import ConfigError, DataError, ProdcatError

__all__ = ["ConfigError", "DataError", "NotFittedError"]


class NotFittedError(ProdcatError):
    """A featuriser or member was used before ``fit`` (or ``load``)."""
