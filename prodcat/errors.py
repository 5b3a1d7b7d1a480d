"""The project's exception root and its few specific kinds."""


class ProdcatError(Exception):
    """Base class of every error prodcat raises on purpose."""


class ConfigError(ProdcatError):
    """A setting is missing or wrong; the message names the setting to change."""


class InvalidRecord(ProdcatError):
    """An input record cannot be processed; ``stage`` says where it was rejected."""

    def __init__(self, reason: str, stage: str = "parse") -> None:
        super().__init__(reason)
        self.reason = reason
        self.stage = stage


class StackError(ProdcatError):
    """A local service could not be started, reached or stopped."""


class DataError(ProdcatError):
    """An input file (catalogue, taxonomy, rules) is missing or malformed."""


class NotFound(ProdcatError):
    """A record asked for by id (a product, a model version) does not exist."""
