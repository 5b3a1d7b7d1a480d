"""The project's exception root, its few specific kinds, and the stages a record can fail at."""

from enum import StrEnum


class Stage(StrEnum):
    """Where in the stream a record was rejected: the dead letter's ``stage`` header."""

    PARSE = "parse"  # not UTF-8 JSON of an object within the size and nesting limits
    VALIDATE = "validate"  # a JSON object prodcat cannot use (no id, bad updated_at, too big...)
    DEDUP = "dedup"
    IMAGES = "images"
    MODEL = "model"
    DOCUMENT = "document"
    ELASTICSEARCH = "elasticsearch"
    MILVUS = "milvus"
    LABELLING = "labelling"  # the labelling-request gate (Redis)
    KAFKA = "kafka"
    LABELS = "labels"  # human labels coming in on labelling.labels


class ProdcatError(Exception):
    """Base class of every error prodcat raises on purpose."""


class ConfigError(ProdcatError):
    """A setting is missing or wrong; the message names the setting to change."""


class InvalidRecord(ProdcatError):
    """An input record cannot be processed; ``stage`` says where it was rejected."""

    def __init__(self, reason: str, stage: Stage | str = Stage.PARSE) -> None:
        super().__init__(reason)
        self.reason = reason
        self.stage = Stage(stage)


class StackError(ProdcatError):
    """A local service could not be started, reached or stopped."""


class DataError(ProdcatError):
    """An input file (catalogue, taxonomy, rules) is missing or malformed."""


class NotFound(ProdcatError):
    """A record asked for by id (a product, a model version) does not exist."""
