"""What the edge accepts from a feed: size, nesting and shape limits, each an operator setting.

A hostile or broken feed must cost one dead letter, never a crash loop: every limit here is
checked before the record's content is used, and each breach is an
:class:`~prodcat.errors.InvalidRecord` whose reason names the setting that allows more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prodcat.errors import InvalidRecord, Stage

__all__ = ["InputLimits", "check_shape", "ES_MAX_ID_BYTES"]

# Elasticsearch refuses a whole bulk request when one document id is longer than this.
ES_MAX_ID_BYTES = 512


@dataclass(frozen=True)
class InputLimits:
    """Limits on one raw product event (``PRODCAT_MAX_*`` settings; see :meth:`Settings.input_limits`)."""

    message_bytes: int = 1 << 20
    json_depth: int = 32
    fields: int = 1_000  # keys in the whole message, nested objects included
    field_name_chars: int = 256
    field_chars: int = 20_000
    id_bytes: int = ES_MAX_ID_BYTES
    document_bytes: int = 256 << 10  # the stored Elasticsearch document
    future_skew_s: float = 24 * 3600.0  # how far ahead of this clock an updated_at may be

    def __post_init__(self) -> None:
        if not 1 <= self.id_bytes <= ES_MAX_ID_BYTES:
            raise ValueError(f"Expected id_bytes between 1 and {ES_MAX_ID_BYTES} (Elasticsearch's limit). "
                             f"Received {self.id_bytes}; lower PRODCAT_MAX_ID_BYTES.")


def _too_many(what: str, found: int, limit: int, setting: str) -> InvalidRecord:
    return InvalidRecord(f"{what}: {found:,} is more than {setting}={limit:,}; fix the feed or raise the setting",
                         stage=Stage.PARSE)


def check_shape(value: Any, limits: InputLimits) -> None:
    """Refuse JSON deeper, wider or with longer keys than ``limits`` allow (iterative: no recursion)."""
    keys = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limits.json_depth:
            raise _too_many("JSON nesting depth", depth, limits.json_depth, "PRODCAT_MAX_JSON_DEPTH")
        if isinstance(node, dict):
            keys += len(node)
            if keys > limits.fields:
                raise _too_many("fields in the message", keys, limits.fields, "PRODCAT_MAX_FIELDS")
            for key, child in node.items():
                if len(key) > limits.field_name_chars:
                    raise _too_many(f"field name {key[:40]!r}... characters", len(key), limits.field_name_chars,
                                    "PRODCAT_MAX_FIELD_NAME_CHARS")
                if isinstance(child, (dict, list)):
                    stack.append((child, depth + 1))
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node if isinstance(child, (dict, list)))
